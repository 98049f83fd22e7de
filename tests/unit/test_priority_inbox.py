"""The priority inbox: requests kept on disk while the ledger is not the receiver's, taken
into the ledger by a run, and never lost between the two."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from runner.execute.priority.inbox import Inbox
from runner.plan.priority import PriorityRequest, Trigger


def request(patient: str = "P1") -> PriorityRequest:
    return PriorityRequest(Trigger.HL7, patient, datetime.now(UTC), "HOSP", date(2026, 12, 7),
                           "CT", "CHEST", reference=f"MSG-{patient}", event="ORM^O01")


def test_requests_kept_come_back_whole_and_the_inbox_is_then_empty(tmp_path: Path) -> None:
    inbox = Inbox(tmp_path / "reports" / "inbox.jsonl")
    inbox.append(request("P1"))
    inbox.append(request("P2"))
    assert inbox.waiting() == 2
    assert (inbox.path.stat().st_mode & 0o777) == 0o600  # patient IDs: the owner's only
    taken: list[PriorityRequest] = []
    assert inbox.take(taken.extend) == 2
    assert [r.request_id for r in taken] == [request("P1").request_id,
                                             request("P2").request_id]
    assert (taken[0].due, taken[0].issuer, taken[0].body_part) == (date(2026, 12, 7), "HOSP",
                                                                   "CHEST")
    assert inbox.waiting() == 0 and inbox.take(taken.extend) == 0


def test_requests_stay_when_keeping_them_fails(tmp_path: Path) -> None:
    inbox = Inbox(tmp_path / "inbox.jsonl")
    inbox.append(request())

    def fail(_requests: list[PriorityRequest]) -> None:
        raise OSError("the ledger could not commit")

    with pytest.raises(OSError):
        inbox.take(fail)
    assert inbox.waiting() == 1  # taken again by the next pass


def test_a_line_that_cannot_be_read_is_left_out_and_the_rest_served(tmp_path: Path) -> None:
    inbox = Inbox(tmp_path / "inbox.jsonl")
    inbox.append(request("P1"))
    with inbox.path.open("a", encoding="utf-8") as handle:
        handle.write('{"trigger": "hl7", "patient_id": \n')
    inbox.append(request("P2"))
    taken: list[PriorityRequest] = []
    assert inbox.take(taken.extend) == 2
    assert [r.patient_id for r in taken] == ["P1", "P2"]
