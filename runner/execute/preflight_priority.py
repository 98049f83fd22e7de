"""The pre-flight checks of the priority lane's triggers (`pacsmig check`): the HL7 port can
be listened on (and its TLS files load), the worklist answers a poll, and the clinic list
reads without a problem. None of them starts a listener for longer than the check."""

from __future__ import annotations

import socket
from collections.abc import Callable
from datetime import UTC, datetime

from runner.dicom.peer import DicomSettings
from runner.errors import InputError
from runner.execute.peers import tls_files
from runner.execute.priority.clinic_list import read_clinic_list
from runner.execute.priority.worklist import WorklistPoller
from runner.profile.models import SiteProfile

Record = Callable[[str, bool, str], bool]  # name, ok, detail -> ok


def priority_checks(profile: SiteProfile, settings: DicomSettings, record: Record) -> None:
    """Each trigger the profile sets, checked as the run would use it."""
    priority = profile.priority
    if priority.hl7 is not None:
        hl7 = priority.hl7
        record(f"HL7 listener {hl7.host}:{hl7.port}", *_can_listen(hl7.host, hl7.port))
        files = tls_files(hl7.tls)
        if files is not None:
            from runner.dicom.tls import server_context

            try:
                server_context(files)
                record("HL7 listener TLS", True, "certificate and key load")
            except InputError as error:
                record("HL7 listener TLS", False, str(error))
    if priority.worklist is not None:
        poller = WorklistPoller(priority.worklist, profile.source.calling_ae_title, settings)
        polled = poller.poll(datetime.now(UTC))
        record(f"worklist {poller.peer}", not polled.problem, polled.problem or (
            f"answered: {len(polled.requests)} procedure steps scheduled from today to "
            f"{priority.worklist.days_ahead} days on"))
    if priority.csv is not None:
        read = read_clinic_list(priority.csv, datetime.now(UTC))
        name = f"clinic list {priority.csv}"
        if read.problems:
            record(name, False, f"{len(read.problems)} rows cannot be used; first: "
                                f"{read.problems[0]}")
        elif not priority.csv.exists():
            record(name, True, "not there yet: read when it appears during a run")
        else:
            record(name, True, f"{len(read.requests)} patients")


def _can_listen(host: str, port: int) -> tuple[bool, str]:
    """Whether a listener can bind `host:port` now (released at once)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
            sock.listen(1)
        except OSError as error:
            return False, (f"cannot listen: {error.strerror or error} (another program holds "
                           "the port, or a `pacsmig run` of this site is going on)")
    return True, "the port is free: the runner listens there while a run goes on"
