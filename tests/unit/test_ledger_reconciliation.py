"""The `reconciliation` view: one row per study, each status and each count as the spec says."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from runner.ledger import (
    Ledger,
    RetrievePurpose,
    StudyPlanned,
    StudyStatus,
    VerificationMethod,
)
from runner.ledger.queries import ReconciliationRow, reconciliation
from runner.profile.tiers import Location


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with Ledger.open(tmp_path / "ledger.duckdb") as opened:
        yield opened


def plan(ledger: Ledger, study: str, instances: int | None = 3) -> None:
    ledger.upsert_studies([StudyPlanned(
        study_uid=study, study_date=date(2018, 1, 2), modality="MR", tier=Location.NEARLINE,
        device="pacs", planned_instances=instances, planned_mb=4.0, phase_index=1,
        order_index=0)])


def receive(ledger: Ledger, study: str, count: int, forward: bool = True) -> list[str]:
    retrieve_id = ledger.record_retrieve_started(study_uid=study, device="pacs",
                                                 purpose=RetrievePurpose.MIGRATE)
    uids = [f"{study}.{i}" for i in range(count)]
    for uid in uids:
        ledger.record_received(sop_instance_uid=uid, study_uid=study, series_uid=f"{study}.0",
                               sop_class_uid="1.2.840.10008.5.1.4.1.1.4",
                               transfer_syntax="1.2.840.10008.1.2.1", nbytes=500,
                               spool_name=f"spool-{uid}", retrieve_id=retrieve_id)
        if forward:
            ledger.record_forwarded(sop_instance_uid=uid, study_uid=study, ok=True, status=0)
    return uids


def row(ledger: Ledger, study: str) -> ReconciliationRow:
    rows = [r for r in reconciliation(ledger) if r.study_uid == study]
    assert len(rows) == 1
    return rows[0]


def test_view_has_exactly_the_spec_columns(ledger: Ledger) -> None:
    names = [r[0] for r in ledger.query("SELECT column_name FROM (DESCRIBE reconciliation)")]
    assert names == ["study_uid", "tier", "source_instances", "received_instances",
                     "destination_instances", "status"]


def test_a_planned_study_with_no_work_is_pending(ledger: Ledger) -> None:
    plan(ledger, "1.1")
    assert row(ledger, "1.1") == ReconciliationRow("1.1", "nearline", 3, 0, 0, "pending")


def test_a_study_being_retrieved_is_in_progress(ledger: Ledger) -> None:
    plan(ledger, "1.1")
    receive(ledger, "1.1", 2)
    assert row(ledger, "1.1") == ReconciliationRow("1.1", "nearline", 3, 2, 0, "in_progress")


def test_a_retrieve_with_nothing_received_yet_is_in_progress(ledger: Ledger) -> None:
    plan(ledger, "1.1")
    ledger.record_retrieve_started(study_uid="1.1", device="pacs",
                                   purpose=RetrievePurpose.MIGRATE)
    assert row(ledger, "1.1").status == "in_progress"


def test_a_redate_retrieve_alone_leaves_a_study_pending(ledger: Ledger) -> None:
    plan(ledger, "1.1")
    retrieve_id = ledger.record_retrieve_started(study_uid="1.1", device="pacs",
                                                 purpose=RetrievePurpose.REDATE)
    ledger.record_retrieve_finished(retrieve_id, final_status=0, category="success",
                                    completed=9)
    assert row(ledger, "1.1") == ReconciliationRow("1.1", "nearline", 3, 0, 0, "pending")


def test_a_study_confirmed_in_full_at_the_destination_is_verified(ledger: Ledger) -> None:
    plan(ledger, "1.1")
    uids = receive(ledger, "1.1", 3)
    ledger.record_verification(study_uid="1.1", method=VerificationMethod.IMAGE_FIND,
                               expected=3, found=3, ok=True, confirmed_uids=uids)
    assert row(ledger, "1.1") == ReconciliationRow("1.1", "nearline", 3, 3, 3, "verified")


def test_a_check_that_finds_instances_missing_is_incomplete(ledger: Ledger) -> None:
    plan(ledger, "1.1")
    uids = receive(ledger, "1.1", 3)
    ledger.record_verification(study_uid="1.1", method=VerificationMethod.IMAGE_FIND,
                               expected=3, found=2, ok=False, confirmed_uids=uids[:2],
                               missing_uids=uids[2:])
    assert row(ledger, "1.1") == ReconciliationRow("1.1", "nearline", 3, 3, 2, "incomplete")


def test_an_ok_check_short_of_the_source_count_is_incomplete(ledger: Ledger) -> None:
    plan(ledger, "1.1", instances=5)
    uids = receive(ledger, "1.1", 3)
    ledger.record_verification(study_uid="1.1", method=VerificationMethod.IMAGE_FIND,
                               expected=3, found=3, ok=True, confirmed_uids=uids)
    assert row(ledger, "1.1") == ReconciliationRow("1.1", "nearline", 5, 3, 3, "incomplete")


def test_a_study_the_engine_gave_up_on_is_failed(ledger: Ledger) -> None:
    plan(ledger, "1.1")
    receive(ledger, "1.1", 1)
    ledger.record_study_status("1.1", StudyStatus.FAILED, reason="source refuses C-MOVE")
    assert row(ledger, "1.1") == ReconciliationRow("1.1", "nearline", 3, 1, 0, "failed")


def test_a_later_repair_that_completes_the_study_makes_it_verified(ledger: Ledger) -> None:
    plan(ledger, "1.1")
    uids = receive(ledger, "1.1", 3)
    ledger.record_verification(study_uid="1.1", method=VerificationMethod.IMAGE_FIND,
                               expected=3, found=2, ok=False, confirmed_uids=uids[:2])
    ledger.flush()
    ledger.record_verification(study_uid="1.1", method=VerificationMethod.IMAGE_FIND,
                               expected=1, found=1, ok=True, confirmed_uids=uids[2:])
    assert row(ledger, "1.1") == ReconciliationRow("1.1", "nearline", 3, 3, 3, "verified")


def test_unknown_planned_count_falls_back_to_what_the_retrieve_reported(ledger: Ledger) -> None:
    plan(ledger, "1.1", instances=None)
    retrieve_id = ledger.record_retrieve_started(study_uid="1.1", device="pacs",
                                                 purpose=RetrievePurpose.MIGRATE)
    assert row(ledger, "1.1").source_instances is None
    ledger.record_retrieve_finished(retrieve_id, final_status=0xB000, category="warning",
                                    completed=6, failed=1, warning=0, remaining=0)
    assert row(ledger, "1.1").source_instances == 7


def test_a_count_only_check_gives_the_destination_count(ledger: Ledger) -> None:
    plan(ledger, "1.1")
    receive(ledger, "1.1", 3)
    ledger.record_verification(study_uid="1.1", method=VerificationMethod.COUNT, expected=3,
                               found=3, ok=True)
    assert row(ledger, "1.1") == ReconciliationRow("1.1", "nearline", 3, 3, 3, "verified")


def test_receiving_an_instance_twice_counts_it_once(ledger: Ledger) -> None:
    plan(ledger, "1.1")
    receive(ledger, "1.1", 2)
    ledger.flush()
    receive(ledger, "1.1", 2)
    assert row(ledger, "1.1").received_instances == 2
