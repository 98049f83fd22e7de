"""Every default the DICOM layer shares with the site profile, declared once.

The profile's models (runner.profile.models) take their defaults from here, and so do the
plain values of runner.dicom (DicomSettings, ListenerConfig, AcceptorPolicy) for callers
that give none: the DICOM layer imports this module, never the pydantic models. The README
and schemas/site-profile.schema.json show the same values (tests/unit/test_defaults.py).
"""

from __future__ import annotations

ACSE_TIMEOUT: float = 30  # seconds to associate and to release
DIMSE_TIMEOUT: float = 120  # seconds for one DIMSE answer (a C-MOVE's next pending status)
NETWORK_TIMEOUT: float = 120  # seconds of silence on an association before it is aborted
CONNECTION_TIMEOUT: float = 10  # seconds to open a TCP connection
MAX_PDU = 262144  # bytes: the largest PDU received (never 0, which means unlimited)
LISTENER_MAX_ASSOCIATIONS = 16  # associations the listener serves at once
# Memory for received instances on their way to the destination (cut-through); beyond it
# they go to the spool on disk. 0: every instance goes through the spool.
LISTENER_MAX_MEMORY_MB = 256
# With that memory full, how long a received instance waits for a forward to give space back
# before it goes to the spool (seconds; 0: to the spool at once). See runner.dicom.arena.
LISTENER_MEMORY_WAIT_SECONDS = 0.5
# The longest a received instance waits for room in all, however often space comes back
# meanwhile (one larger than any free extent, while small ones come and go): far below the
# time a source waits for a C-STORE answer (30 s and more for every PACS we know). Also the
# most `listener.memory_wait_seconds` may be.
MEMORY_WAIT_LIMIT_SECONDS = 10.0
