"""Asking the destination whether a study arrived: by instances (image-level C-FIND), by
counts, or by storage commitment (the reports the listener takes, matched to their request)."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

from runner.destinations.holdings import DimseHoldings, Holdings
from runner.dicom.commitment_report import CommitmentReport
from runner.dicom.peer import DicomSettings, Peer
from runner.ledger import VerificationMethod

METHODS: dict[str, VerificationMethod] = {
    "instances": VerificationMethod.IMAGE_FIND,
    "counts": VerificationMethod.COUNT,
    "commitment": VerificationMethod.COMMITMENT,
}


@dataclass(frozen=True, slots=True)
class Check:
    """What the destination said of a study.

    `answered` is False when it could not be asked (then try again later); `confirmed` are
    the source SOP Instance UIDs it holds (empty for count checks), `found` how many it holds.
    """

    answered: bool
    found: int
    confirmed: frozenset[str]
    detail: str
    values: Mapping[str, Mapping[int, str]] = field(default_factory=dict)  # by destination UID


class CommitmentWaiter:
    """Storage commitment reports that arrive on the listener, matched to their request."""

    def __init__(self) -> None:
        self._reports: dict[str, CommitmentReport] = {}
        self._cond = threading.Condition()

    def deliver(self, report: CommitmentReport) -> None:
        """Called by the listener for every N-EVENT-REPORT."""
        with self._cond:
            self._reports[report.transaction_uid] = report
            self._cond.notify_all()

    def wait(self, transaction_uid: str, timeout: float) -> CommitmentReport | None:
        """The report for `transaction_uid`, or None after `timeout` seconds."""
        with self._cond:
            self._cond.wait_for(lambda: transaction_uid in self._reports, timeout)
            return self._reports.pop(transaction_uid, None)


@dataclass(frozen=True, slots=True)
class Verifier:
    """Checks studies at the destination with the profile's method (`holdings`: how the
    destination is asked what it holds, when not by C-FIND: a DICOMweb one, by QIDO-RS)."""

    destination: Peer | None
    calling_ae: str
    settings: DicomSettings
    method: str
    waiter: CommitmentWaiter
    commitment_timeout: float = 60.0
    value_tags: tuple[int, ...] = ()  # asked for with `instances`, to check morphed values
    holdings: Holdings | None = None

    def destination_holdings(self) -> Holdings:
        """How the destination is asked what it holds."""
        if self.holdings is not None:
            return self.holdings
        assert self.destination is not None, "a verifier has a peer or holdings"
        return DimseHoldings(self.destination, self.calling_ae, self.settings)

    def check(self, study_uid: str, expected: dict[str, tuple[str, str]]) -> Check:
        """Check `study_uid`; `expected` maps source SOP UID -> (destination UID, SOP class)."""
        if self.method == "counts":
            return self._counts(study_uid)
        if self.method == "commitment":
            return self._commitment(expected)
        return self._instances(study_uid, expected)

    def _instances(self, study_uid: str, expected: dict[str, tuple[str, str]]) -> Check:
        found = self.destination_holdings().present(study_uid, self.value_tags)
        if not found.ok:
            return Check(False, 0, frozenset(), found.detail)
        confirmed = frozenset(src for src, (dest, _) in expected.items()
                              if dest in found.sop_uids)
        return Check(True, len(found.sop_uids), confirmed, found.detail, found.values)

    def _counts(self, study_uid: str) -> Check:
        counted = self.destination_holdings().count(study_uid)
        if not counted.ok or counted.count is None:
            return Check(False, 0, frozenset(), counted.detail)
        return Check(True, counted.count, frozenset(), counted.detail)

    def _commitment(self, expected: dict[str, tuple[str, str]]) -> Check:
        if not expected:
            return Check(True, 0, frozenset(), "nothing to commit")
        # Imported here: only a commitment check needs the commitment SCU.
        from runner.dicom.commitment import request_commitment

        assert self.destination is not None, "commitment is DIMSE's"
        refs = [(sop_class, dest) for dest, sop_class in expected.values()]
        request = request_commitment(self.destination, self.calling_ae, self.settings, refs,
                                     wait_for_report=min(0.5, self.commitment_timeout))
        if not request.ok:
            return Check(False, 0, frozenset(), request.detail)
        report = request.report or self.waiter.wait(request.transaction_uid,
                                                    self.commitment_timeout)
        if report is None:
            return Check(False, 0, frozenset(), "no storage commitment report arrived")
        confirmed = frozenset(src for src, (dest, _) in expected.items()
                              if dest in report.committed)
        detail = f"{len(report.failed)} failed" if report.failed else "all committed"
        return Check(True, len(report.committed), confirmed, detail)
