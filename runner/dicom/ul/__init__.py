"""A lean DICOM upper layer (PS3.8) for the runner's bulk paths: receiving and sending C-STOREs.

pynetdicom runs two polling threads per association (1 ms sleeps) and copies every PDU
through its state machine and event queues; relaying a hospital's archive through it cost
about 6 CPU-seconds per 600 MB, more than the two C++ archives at both ends together. This
package speaks the same protocol with blocking sockets and no per-PDU objects: `pdu` encodes
and decodes PDUs, `dimse` command sets, `link` reads and writes them on a socket, `acceptor`
serves associations (the migration listener), `requestor` requests them (the forwarder).

pynetdicom stays for everything else (C-FIND, C-MOVE, N-ACTION, C-ECHO as SCU): low volume,
rich features. Both ends are tested against DCMTK and Orthanc, the peers the runner meets.
"""
