"""The ledger's read models: what to do next, what to resume, what to verify, the summary."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from runner.inventory.model import Study
from runner.ledger import Ledger, RetrievePurpose, StudyPlanned, StudyStatus, VerificationMethod
from runner.ledger import queries as q
from runner.profile.tiers import Location


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with Ledger.open(tmp_path / "ledger.duckdb") as opened:
        yield opened


def study(uid: str, location: Location = Location.LOCAL) -> Study:
    return Study(study_uid=uid, study_date=date(2017, 6, 1), modality="CR", instances=2,
                 size_mb=1000.0, location=location, device="pacs", patient_id="SECRET-ID")


def receive(ledger: Ledger, study_uid: str, sop: str, nbytes: int = 10**9) -> None:
    ledger.record_received(sop_instance_uid=sop, study_uid=study_uid, series_uid="4.4",
                           sop_class_uid="1.2.840.10008.5.1.4.1.1.1",
                           transfer_syntax="1.2.840.10008.1.2.1", nbytes=nbytes,
                           spool_name=f"spool-{sop}")


def test_studies_to_do_follow_plan_order_and_skip_finished_ones(ledger: Ledger) -> None:
    ledger.upsert_studies([
        StudyPlanned.from_study(study("1.c", Location.NEARLINE), phase_index=1, order_index=0),
        StudyPlanned.from_study(study("1.b"), phase_index=0, order_index=1),
        StudyPlanned.from_study(study("1.a"), phase_index=0, order_index=0),
        StudyPlanned.from_study(study("1.d"), phase_index=0, order_index=2),
    ])
    ledger.record_study_status("1.a", StudyStatus.FAILED, reason="gone from source")
    receive(ledger, "1.b", "1.b.1")
    todo = q.studies_to_do(ledger)
    assert [(t.study_uid, t.status) for t in todo] == [
        ("1.b", "in_progress"), ("1.d", "pending"), ("1.c", "pending")]
    assert todo[2].tier == "nearline"


def test_the_plan_never_stores_a_patient_id(ledger: Ledger) -> None:
    ledger.upsert_studies([StudyPlanned.from_study(study("1.a"), phase_index=0, order_index=0)])
    cells = ledger.query("SELECT * FROM studies")[0]
    assert "SECRET-ID" not in [str(c) for c in cells]


def test_resume_lists_instances_received_but_not_forwarded(ledger: Ledger) -> None:
    for sop in ("5.1", "5.2", "5.3", "5.4"):
        receive(ledger, "1.a", sop)
    ledger.record_forwarded(sop_instance_uid="5.1", study_uid="1.a", ok=True, status=0)
    ledger.record_forwarded(sop_instance_uid="5.2", study_uid="1.a", ok=False, status=0xA700,
                            reason="out of resources")
    ledger.record_quarantined(sop_instance_uid="5.3", study_uid="1.a", reason="no SOP class")
    pending = q.unforwarded_instances(ledger)
    assert [(p.sop_instance_uid, p.spool_name, p.forward_attempts) for p in pending] == [
        ("5.2", "spool-5.2", 1), ("5.4", "spool-5.4", 0)]
    assert q.unforwarded_instances(ledger, study_uid="other") == []


def test_unverified_instances_give_the_uid_the_destination_knows(ledger: Ledger) -> None:
    for sop in ("5.1", "5.2", "5.3"):
        receive(ledger, "1.a", sop)
    ledger.record_forwarded(sop_instance_uid="5.1", study_uid="1.a", ok=True, status=0,
                            dest_sop_instance_uid="9.5.1")
    ledger.record_forwarded(sop_instance_uid="5.2", study_uid="1.a", ok=True, status=0)
    ledger.record_forwarded(sop_instance_uid="5.3", study_uid="1.a", ok=True, status=0)
    ledger.record_verification(study_uid="1.a", method=VerificationMethod.COMMITMENT,
                               expected=1, found=1, ok=True, confirmed_uids=["5.3"])
    unverified = q.unverified_instances(ledger, "1.a")
    assert [(u.sop_instance_uid, u.dest_uid) for u in unverified] == [
        ("5.1", "9.5.1"), ("5.2", "5.2")]
    assert q.unverified_counts(ledger) == {"1.a": 2}


def test_status_summary_counts_studies_gb_and_retrieves_per_device(ledger: Ledger) -> None:
    ledger.upsert_studies([
        StudyPlanned.from_study(study("1.a"), phase_index=0, order_index=0),
        StudyPlanned.from_study(study("1.b"), phase_index=0, order_index=1),
    ])
    done = ledger.record_retrieve_started(study_uid="1.a", device="pacs",
                                          purpose=RetrievePurpose.MIGRATE)
    ledger.record_retrieve_finished(done, final_status=0xA702, category="failure",
                                    completed=1, failed=1)
    ledger.record_retrieve_started(study_uid="1.b", device="pacs",
                                   purpose=RetrievePurpose.MIGRATE)
    receive(ledger, "1.a", "5.1", nbytes=2 * 10**9)
    summary = q.status_summary(ledger)
    assert summary.by_status == (q.StatusCount("in_progress", "local", 2, 2.0, 2.0),)
    assert summary.devices == (q.DeviceRetrieves("pacs", 2, 1, 1, 1, 1),)
