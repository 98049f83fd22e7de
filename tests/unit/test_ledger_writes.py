"""The ledger's writer: idempotent facts, order by timestamp, batching, flush, errors."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runner.errors import LedgerError
from runner.ledger import (
    EventRecorded,
    Fact,
    InstanceForwarded,
    InstanceQuarantined,
    InstanceReceived,
    Ledger,
    RetrieveFinished,
    RetrievePurpose,
    RetrieveStarted,
    StudiesPlanned,
    StudyPlanned,
    StudyStatus,
    StudyStatusChanged,
    VerificationMethod,
    VerificationRecorded,
)
from runner.profile.tiers import Location

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


def at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


def received(sop: str, seconds: int = 0, spool: str = "spool-a", study: str = "1.2.3") -> (
        InstanceReceived):
    return InstanceReceived(sop_instance_uid=sop, study_uid=study, series_uid="1.2.3.1",
                            sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
                            transfer_syntax="1.2.840.10008.1.2.1", retrieve_id=None,
                            nbytes=1000, spool_name=spool, at=at(seconds))


def forwarded(sop: str, seconds: int, ok: bool = True, study: str = "1.2.3") -> (
        InstanceForwarded):
    return InstanceForwarded(sop_instance_uid=sop, study_uid=study, ok=ok,
                             status=0 if ok else 0xA700, reason=None if ok else "out of resources",
                             at=at(seconds))


def planned(study: str, seconds: int = 0, modality: str = "CT") -> StudyPlanned:
    return StudyPlanned(study_uid=study, study_date=date(2019, 5, 4), modality=modality,
                        tier=Location.LOCAL, device="pacs", planned_instances=3,
                        planned_mb=1.5, phase_index=0, order_index=0, at=at(seconds))


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with Ledger.open(tmp_path / "ledger.duckdb") as opened:
        yield opened


def instance_row(ledger: Ledger, sop: str) -> dict[str, object]:
    rows = ledger.query("SELECT * FROM instances WHERE sop_instance_uid = ?", [sop])
    names = [r[0] for r in ledger.query("SELECT column_name FROM (DESCRIBE instances)")]
    assert len(rows) == 1
    return dict(zip(names, rows[0], strict=True))


def test_received_twice_is_one_instance_in_one_batch_and_across_batches(ledger: Ledger) -> None:
    ledger.record(received("1.1"))
    ledger.record(received("1.1"))
    ledger.flush()
    ledger.record(received("1.1"))
    ledger.flush()
    assert ledger.query("SELECT count(*) FROM receipts") == [(1,)]
    assert ledger.query("SELECT count(*) FROM instances") == [(1,)]
    assert ledger.stats().upsert_batches == 1


def test_forwarded_at_stays_once_set_when_a_later_attempt_fails(ledger: Ledger) -> None:
    ledger.record(received("1.1", 0))
    ledger.record(forwarded("1.1", 5, ok=True))
    ledger.flush()
    ledger.record(forwarded("1.1", 9, ok=False))
    ledger.record(forwarded("1.1", 9, ok=False))
    row = instance_row(ledger, "1.1")
    assert row["forwarded_at"] == at(5)
    assert row["forward_attempts"] == 2
    assert row["forward_status"] == 0xA700
    assert row["state"] == "forwarded"


def test_an_earlier_receipt_never_replaces_a_later_one(ledger: Ledger) -> None:
    ledger.record(received("1.1", 10, spool="newer"))
    ledger.flush()
    ledger.record(received("1.1", 3, spool="older"))
    assert instance_row(ledger, "1.1")["spool_name"] == "newer"


def test_a_later_receipt_after_forwarding_needs_forwarding_again(ledger: Ledger) -> None:
    ledger.record(received("1.1", 0, spool="first"))
    ledger.record(forwarded("1.1", 5))
    ledger.flush()
    ledger.record(received("1.1", 20, spool="repair"))
    row = instance_row(ledger, "1.1")
    assert (row["state"], row["spool_name"], row["forwarded_at"]) == ("received", "repair", at(5))


def test_an_older_status_never_overwrites_a_newer_one(ledger: Ledger) -> None:
    ledger.upsert_studies([planned("9.9", 0)])
    ledger.record(StudyStatusChanged(study_uid="9.9", status=StudyStatus.DONE, at=at(10)))
    ledger.flush()
    ledger.record(StudyStatusChanged(study_uid="9.9", status=StudyStatus.ACTIVE, at=at(4)))
    assert ledger.query("SELECT status, updated_at FROM studies") == [("done", at(10))]


def test_replanning_with_the_same_values_changes_nothing(ledger: Ledger) -> None:
    ledger.upsert_studies([planned("9.9", 0)])
    ledger.record(StudyStatusChanged(study_uid="9.9", status=StudyStatus.ACTIVE, at=at(1)))
    ledger.flush()
    ledger.upsert_studies([planned("9.9", 50)])
    assert ledger.query("SELECT planned_at, status FROM studies") == [(at(0), "active")]
    ledger.upsert_studies([planned("9.9", 60, modality="MR")])
    assert ledger.query("SELECT planned_at, modality, status FROM studies") == [
        (at(60), "MR", "active")]


def test_the_plan_is_one_fact_and_replanning_it_is_one_upsert(tmp_path: Path) -> None:
    studies = [planned(f"9.{i}") for i in range(3000)]
    with Ledger.open(tmp_path / "ledger.duckdb") as ledger:
        assert ledger.upsert_studies(studies) == 3000
        ledger.flush()
        assert (ledger.stats().facts, ledger.stats().upsert_batches) == (1, 0)
        ledger.upsert_studies(studies)
        ledger.flush()
        assert (ledger.stats().facts, ledger.stats().upsert_batches) == (2, 1)
        assert ledger.query("SELECT count(*) FROM studies") == [(3000,)]


def test_the_first_final_response_of_a_retrieve_stays(ledger: Ledger) -> None:
    ledger.upsert_studies([planned("9.9")])
    ledger.record(RetrieveStarted(retrieve_id="r1", study_uid="9.9", device="pacs",
                                  purpose=RetrievePurpose.MIGRATE, at=at(1)))
    ledger.record(RetrieveFinished(retrieve_id="r1", final_status=0xB000, category="warning",
                                   completed=2, failed=1, failed_uids=("1.3",), at=at(2)))
    ledger.flush()
    ledger.record(RetrieveFinished(retrieve_id="r1", final_status=0, category="success",
                                   completed=3, at=at(3)))
    assert ledger.query("SELECT final_status, failed_uids FROM retrieves") == [(0xB000, ["1.3"])]
    assert ledger.query("SELECT attempts FROM studies") == [(1,)]


def test_record_methods_return_ids_and_stamp_utc_times(ledger: Ledger) -> None:
    run_id = ledger.start_run(profile_path="site.yaml", profile_sha256="ab" * 32,
                              runner_version="0.1.0", command="run")
    event_id = ledger.record_event("stall", device="pacs", detail={"seconds": 30}, nbytes=7)
    ledger.end_run()
    rows = ledger.query("SELECT run_id, kind, detail->>'seconds', bytes, occurred_at FROM events"
                        " WHERE event_id = ?", [event_id])
    assert rows[0][:4] == (run_id, "stall", "30", 7)
    assert rows[0][4].utcoffset() == timedelta(0)
    assert ledger.query("SELECT ended_at IS NOT NULL FROM runs") == [(True,)]


def test_something_that_is_not_a_fact_is_refused_at_once(ledger: Ledger) -> None:
    with pytest.raises(TypeError, match="StudyPlanned"):
        ledger.record(planned("9.9"))  # type: ignore[arg-type]


def test_a_naive_datetime_is_refused_when_the_fact_is_made() -> None:
    with pytest.raises(ValueError, match="naive"):
        InstanceForwarded(sop_instance_uid="1", study_uid="2", ok=True, status=0,
                          at=datetime(2025, 1, 1))


def test_a_read_sees_every_write_recorded_before_it_without_flush(ledger: Ledger) -> None:
    for i in range(1200):
        ledger.record(received(f"1.{i}"))
    assert ledger.query("SELECT count(*) FROM receipts") == [(1200,)]


def test_many_facts_are_committed_in_few_transactions(tmp_path: Path) -> None:
    with Ledger.open(tmp_path / "ledger.duckdb", batch_size=500, batch_ms=50) as ledger:
        for i in range(5000):
            ledger.record(received(f"1.{i}"))
        ledger.flush()
        stats = ledger.stats()
    assert stats.facts == 5000
    assert 10 <= stats.transactions <= 50


def test_batch_size_one_commits_each_fact_alone(tmp_path: Path) -> None:
    with Ledger.open(tmp_path / "ledger.duckdb", batch_size=1) as ledger:
        for i in range(200):
            ledger.record(received(f"1.{i}"))
        ledger.flush()
        assert ledger.stats().transactions == 200


def test_writer_error_surfaces_at_flush_and_stops_all_writes(tmp_path: Path) -> None:
    path = tmp_path / "ledger.duckdb"
    ledger = Ledger.open(path)
    ledger.record(received("1.kept"))
    ledger.flush()
    ledger.query("DROP TABLE events")  # the next batch cannot be written
    ledger.record(received("1.lost"))
    ledger.record_event("stall")
    with pytest.raises(LedgerError, match="rolled back") as info:
        ledger.flush()
    assert isinstance(info.value.__cause__, LedgerError)
    with pytest.raises(LedgerError):
        ledger.record(received("1.after"))
    with pytest.raises(LedgerError):
        ledger.query("SELECT 1")
    with pytest.raises(LedgerError):
        ledger.close()
    conn = duckdb.connect(str(path))
    assert conn.execute("SELECT sop_instance_uid FROM receipts").fetchall() == [("1.kept",)]
    conn.close()


def test_a_closed_ledger_refuses_records_and_frees_the_file(tmp_path: Path) -> None:
    path = tmp_path / "ledger.duckdb"
    ledger = Ledger.open(path)
    ledger.close()
    with pytest.raises(LedgerError, match="closed"):
        ledger.record(received("1.1"))
    with Ledger.open(path) as again:
        assert again.query("SELECT count(*) FROM receipts") == [(0,)]


# --- replaying facts changes nothing ------------------------------------------------------

STUDIES = ("2.1", "2.2")
SOPS = ("3.1", "3.2", "3.3")
RETRIEVES = ("r1", "r2")
seconds = st.integers(min_value=1, max_value=2)

fact_strategy: st.SearchStrategy[Fact] = st.one_of(
    st.builds(lambda sop, s, spool: received(sop, s, spool, "2.1"),
              st.sampled_from(SOPS), seconds, st.sampled_from(("a", "b"))),
    st.builds(lambda sop, s, ok: forwarded(sop, s, ok, "2.1"),
              st.sampled_from(SOPS), seconds, st.booleans()),
    st.builds(lambda sop, s: InstanceQuarantined(sop_instance_uid=sop, study_uid="2.1",
                                                 reason="bad header", at=at(s)),
              st.sampled_from(SOPS), seconds),
    st.builds(lambda study, status, s: StudyStatusChanged(study_uid=study, status=status,
                                                          at=at(s)),
              st.sampled_from(STUDIES), st.sampled_from(StudyStatus), seconds),
    st.builds(lambda rid, n, s: RetrieveFinished(retrieve_id=rid, final_status=0,
                                                 category="success", completed=n, at=at(s)),
              st.sampled_from(RETRIEVES), st.integers(0, 5), seconds),
    st.builds(lambda ok, uids, s: VerificationRecorded(
        study_uid="2.1", method=VerificationMethod.IMAGE_FIND, expected=3, found=len(uids),
        missing=3 - len(uids), ok=ok, confirmed_uids=tuple(uids), at=at(s)),
        st.booleans(), st.lists(st.sampled_from(SOPS), max_size=3, unique=True), seconds),
    st.builds(lambda eid, kind, s: EventRecorded(event_id=eid, kind=kind, at=at(s)),
              st.sampled_from(("e1", "e2")), st.sampled_from(("stall", "device_down")), seconds),
)

PRELUDE: tuple[Fact, ...] = (
    StudiesPlanned(studies=(planned("2.1"), planned("2.2"))),
    RetrieveStarted(retrieve_id="r1", study_uid="2.1", device="pacs",
                    purpose=RetrievePurpose.MIGRATE, at=at(0)),
    RetrieveStarted(retrieve_id="r2", study_uid="2.2", device="pacs",
                    purpose=RetrievePurpose.REPAIR, at=at(0)),
)

TABLES = ("runs", "studies", "retrieves", "receipts", "forwards", "confirmations",
          "quarantines", "verifications", "events")


def state_after(passes: list[list[Fact]]) -> dict[str, list[tuple[object, ...]]]:
    with tempfile.TemporaryDirectory() as folder, \
            Ledger.open(Path(folder) / "ledger.duckdb", batch_ms=1) as ledger:
        for facts in passes:
            for fact in facts:
                ledger.record(fact)
            ledger.flush()
        return {t: ledger.query(f"SELECT * FROM {t} ORDER BY ALL") for t in
                (*TABLES, "instances", "reconciliation")}


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(fact_strategy, max_size=25))
def test_writing_any_facts_again_leaves_the_same_state(facts: list[Fact]) -> None:
    once = [[*PRELUDE, *facts]]
    one_at_a_time = [[fact] for fact in once[0]]
    doubled = [[fact for fact in once[0] for _ in range(2)]]
    expected = state_after(once)
    assert state_after(one_at_a_time + one_at_a_time) == expected
    assert state_after(doubled + once) == expected
