"""`pacsmig priority` and `pacsmig listen`: priority requests received when the ledger is not
the receiver's to write, kept in the priority inbox (runner.execute.priority.inbox), which
the run's lane takes within a second, or when the next run starts.

`priority` asks by hand for one patient's priors; `listen` serves the profile's HL7 v2
listener between runs (an order answered AA is in the inbox), until Ctrl-C.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

from runner.morph.accession import masked
from runner.morph.loaded import load_profile
from runner.plan.priority import PriorityRequest, Trigger


def priority(profile: Path, patient_id: str, due: date | None, modality: str, issuer: str,
             body_part: str, echo: Callable[[str], object]) -> int:
    """Keep the request in the inbox; exit code 0 (the CLI refuses a patient ID that cannot
    be asked)."""
    from runner.execute.priority.inbox import INBOX_FILENAME, Inbox

    loaded = load_profile(profile)
    now = datetime.now(UTC)
    request = PriorityRequest(Trigger.MANUAL, patient_id, now, issuer, due,
                              modality.upper(), body_part.upper(), reference=now.isoformat(),
                              event="pacsmig priority")
    Inbox(loaded.profile.reports.dir / INBOX_FILENAME).append(request)
    shown = masked(patient_id) if loaded.profile.reports.mask_identifiers else patient_id
    echo(f"Priority request {request.request_id[:8]} kept for patient {shown}"
         f"{f', due {due.isoformat()}' if due else ''}: a run going on moves the patient's "
         "priors first within a second; else the next `pacsmig run` does.")
    return 0


def listen(profile: Path, echo: Callable[[str], object],
           until: threading.Event | None = None) -> int:
    """Serve `priority.hl7` into the inbox until interrupted (or `until` is set); exit code
    0, 1 when the port cannot be listened on (a run of the site may be serving it)."""
    from runner.errors import DicomError
    from runner.execute.peers import tls_files
    from runner.execute.priority.finder import has_wildcards
    from runner.execute.priority.hl7_listener import Hl7Listener
    from runner.execute.priority.inbox import INBOX_FILENAME, Inbox
    from runner.execute.priority.lane import RequestRefused

    loaded = load_profile(profile)
    section = loaded.profile.priority.hl7
    if section is None:
        echo("The profile has no priority.hl7: nothing to listen for.")
        return 0
    inbox = Inbox(loaded.profile.reports.dir / INBOX_FILENAME)

    def accept(request: PriorityRequest) -> None:
        if has_wildcards(request.patient_id):
            raise RequestRefused("the patient ID has wildcard characters (* ? \\)")
        inbox.append(request)

    context = None
    if section.tls is not None:
        from runner.dicom.tls import server_context

        context = server_context(tls_files(section.tls))  # type: ignore[arg-type]
    try:
        listener = Hl7Listener(section.host, section.port, accept, context).start()
    except OSError as exc:
        raise DicomError(f"priority.hl7: cannot listen on {section.host}:{section.port}: "
                         f"{exc.strerror or exc} (is a run of this site serving it?)") from exc
    echo(f"Listening for HL7 v2 on {section.host}:{listener.port}; orders are kept in "
         f"{inbox.path} for the next run (Ctrl-C to stop)")
    try:
        (until or threading.Event()).wait()
    except KeyboardInterrupt:
        pass  # the way to stop it
    finally:
        listener.stop()
        echo(f"Stopped: {listener.answered['AA']} kept, {listener.answered['AE']} answered AE, "
             f"{listener.answered['AR']} answered AR")
    return 0
