"""A lean DICOM upper layer (PS3.8) for the runner's bulk paths: receiving and sending C-STOREs.

pynetdicom runs two polling threads per association (1 ms sleeps) and copies every PDU
through its state machine and event queues; relaying a hospital's archive through it cost
about 6 CPU-seconds per 600 MB, more than the two C++ archives at both ends together. This
package speaks the same protocol with blocking sockets and no per-PDU objects: `pdu` encodes
and decodes PDUs, `dimse` command sets, `datasets` the data sets they carry, `link` reads and
writes them on a socket, `acceptor` serves associations (the migration listener), `requestor`
requests them (C-STORE, C-MOVE, C-FIND, C-ECHO and Storage Commitment's N-ACTION:
runner.dicom.store, move, find, echo, commitment).

pynetdicom stays only as a peer: the simulated PACS and destination of the demo and tests
(runner.sim), never in the runner. Both ends of this package are tested against DCMTK and
Orthanc, the peers the runner meets, and against pynetdicom as an oracle.
"""
