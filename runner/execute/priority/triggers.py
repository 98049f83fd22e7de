"""The priority lane's triggers as the profile sets them: the HL7 v2 listener (started and
stopped with the run), and the pollers the lane's thread calls (the worklist when due, the
clinic list when it changed). A trigger that cannot start (the HL7 port taken) stops the
run before it begins: orders would otherwise go unanswered while the migration looked
healthy."""

from __future__ import annotations

from datetime import datetime

from runner.errors import DicomError
from runner.execute.peers import dicom_settings, tls_files
from runner.execute.priority.clinic_list import ClinicList
from runner.execute.priority.hl7_listener import Hl7Listener
from runner.execute.priority.lane import Polled, Poller, PriorityLane
from runner.execute.priority.worklist import WorklistPoller
from runner.profile.models import SiteProfile


class Triggers:
    """The profile's triggers for one run's lane."""

    def __init__(self, profile: SiteProfile, lane: PriorityLane) -> None:
        self.profile = profile
        self.lane = lane
        self.hl7: Hl7Listener | None = None

    def start(self) -> None:
        """Give the lane its pollers and start listening (DicomError if the HL7 port cannot
        be bound)."""
        priority = self.profile.priority
        if priority.worklist is not None:
            self.lane.pollers.append(_worklist(WorklistPoller(
                priority.worklist, self.profile.source.calling_ae_title,
                dicom_settings(self.profile))))
        if priority.csv is not None:
            self.lane.pollers.append(_clinic(ClinicList(priority.csv)))
        section = priority.hl7
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


def _worklist(poller: WorklistPoller) -> Poller:
    def poll(now: datetime) -> Polled:
        found = poller.poll_if_due(now)
        return Polled(found.requests, [found.problem] if found.problem else [])

    return poll


def _clinic(clinic: ClinicList) -> Poller:
    def poll(now: datetime) -> Polled:
        found = clinic.read_if_changed(now)
        return Polled(found.requests, [str(problem) for problem in found.problems])

    return poll
