"""The priority lane's triggers as the profile sets them: the HL7 v2 listener (started and
stopped with the run), and the pollers the lane's thread calls (the worklist, the clinic
list). A trigger that cannot start (the HL7 port taken) stops the run before it begins:
orders would otherwise go unanswered while the migration looked healthy."""

from __future__ import annotations

from runner.errors import DicomError
from runner.execute.peers import tls_files
from runner.execute.priority.hl7_listener import Hl7Listener
from runner.execute.priority.lane import PriorityLane
from runner.profile.models import SiteProfile


class Triggers:
    """The profile's triggers for one run's lane."""

    def __init__(self, profile: SiteProfile, lane: PriorityLane) -> None:
        self.profile = profile
        self.lane = lane
        self.hl7: Hl7Listener | None = None

    def start(self) -> None:
        """Start listening (DicomError if the HL7 port cannot be bound)."""
        section = self.profile.priority.hl7
        if section is None:
            return
        from runner.dicom.tls import server_context

        files = tls_files(section.tls)
        context = server_context(files) if files is not None else None
        try:
            self.hl7 = Hl7Listener(section.host, section.port, self.lane.submit,
                                   context).start()
        except OSError as exc:
            raise DicomError(f"priority.hl7: cannot listen on {section.host}:{section.port}: "
                             f"{exc.strerror or exc}") from exc

    def stop(self) -> None:
        """Stop listening (a message being answered is answered first)."""
        if self.hl7 is not None:
            self.hl7.stop()
            self.hl7 = None
