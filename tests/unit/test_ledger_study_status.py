"""The status the writer keeps per study (`study_status`, schema version 10): always the
reconciliation view's, whatever the facts; a few studies refreshed by key, a plan or a
complete census rewriting the table; an older ledger filled when opened."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from runner.ledger import (
    CensusStudy,
    CensusTaken,
    Ledger,
    RetrievePurpose,
    StudiesPlanned,
    StudyPlanned,
    StudyStatus,
    VerificationMethod,
)
from runner.ledger.events import FACT_TYPES
from runner.ledger.queries import status_summary, studies_to_do
from runner.ledger.schema import MIGRATIONS, SCHEMA_VERSION, migrate
from runner.ledger.study_status import DRIFT, LIVE, PLACED
from runner.profile.tiers import Location

T0 = datetime(2026, 2, 1, tzinfo=UTC)
KEPT = "SELECT * FROM study_status ORDER BY study_uid"


def planned(study: str, order: int = 0) -> StudyPlanned:
    return StudyPlanned(study_uid=study, study_date=date(2019, 5, 1), modality="CT",
                        tier=Location.LOCAL, device="pacs", planned_instances=2,
                        planned_mb=3.0, phase_index=0, order_index=order)


def found(study: str, disposition: str = "planned") -> CensusStudy:
    return CensusStudy(study_uid=study, study_date=date(2019, 5, 1), raw_date="20190501",
                       modality="CT", tier=Location.LOCAL, device="pacs", instances=2,
                       disposition=disposition,
                       reason=None if disposition == "planned" else "modality",
                       detail=None if disposition == "planned" else "SR is not migrated")


def census(studies: list[CensusStudy], at: datetime, complete: bool = True) -> CensusTaken:
    return CensusTaken(at=at, command="census", method="study", origin="source",
                       of_source=True, queries=1, complete=complete, studies=tuple(studies))


def agrees(ledger: Ledger) -> None:
    """The kept table holds exactly the view's rows."""
    assert ledger.query(DRIFT) == []
    assert ledger.query(KEPT) == ledger.query(LIVE + " ORDER BY study_uid")


def statuses(ledger: Ledger) -> dict[str, str]:
    return dict(ledger.query("SELECT study_uid, status FROM study_status"))


def test_every_declared_fact_says_which_studies_it_changes() -> None:
    assert [fact for fact in FACT_TYPES if fact not in PLACED] == []


def test_the_kept_status_follows_each_kind_of_fact_as_the_view_does(tmp_path: Path) -> None:
    with Ledger.open(tmp_path / "ledger.duckdb", batch_ms=1) as ledger:
        ledger.record(census([found("S1"), found("S2"), found("S3"), found("SR", "excluded")],
                             T0))
        ledger.record(StudiesPlanned(studies=(planned("S1"), planned("S2", 1),
                                              planned("S3", 2))))
        ledger.flush()
        agrees(ledger)
        assert statuses(ledger) == {"S1": "pending", "S2": "pending", "S3": "pending",
                                    "SR": "excluded"}
        first = ledger.record_retrieve_started(study_uid="S1", device="pacs",
                                               purpose=RetrievePurpose.MIGRATE)
        for i in range(2):
            ledger.record_received(sop_instance_uid=f"1.{i}", study_uid="S1",
                                   series_uid="S1.1", sop_class_uid="1.2",
                                   transfer_syntax="1.2.840.10008.1.2.1", nbytes=1000,
                                   spool_name=f"f{i}", retrieve_id=first)
        ledger.flush()
        agrees(ledger)
        assert statuses(ledger)["S1"] == "in_progress"
        ledger.record_retrieve_finished(retrieve_id=first, final_status=0, category="success",
                                        completed=2, failed=0, warning=0, remaining=0)
        ledger.record_verification(study_uid="S1", method=VerificationMethod.IMAGE_FIND,
                                   expected=2, found=2, ok=True, confirmed_uids=["1.0", "1.1"])
        ledger.record_verification(study_uid="S2", method=VerificationMethod.COUNT,
                                   expected=2, found=1, ok=False)
        ledger.record_study_status("S3", StudyStatus.FAILED, reason="the source refused it")
        ledger.flush()
        agrees(ledger)
        assert statuses(ledger) == {"S1": "verified", "S2": "incomplete", "S3": "failed",
                                    "SR": "excluded"}
        assert [s.study_uid for s in studies_to_do(ledger)] == ["S2"]
        # a complete census without S2: it is gone from the source (a study it does not name)
        ledger.record(census([found("S1"), found("S3"), found("SR", "excluded")],
                             T0 + timedelta(days=1)))
        ledger.flush()
        agrees(ledger)
        assert ledger.query("SELECT study_uid FROM study_status WHERE at_source = 'gone'") == [
            ("S2",)]
        by_status = {(c.status, c.tier): c.studies for c in status_summary(ledger).by_status}
    assert by_status == {("verified", "local"): 1, ("incomplete", "local"): 1,
                         ("failed", "local"): 1}


def test_a_few_studies_are_refreshed_by_key_and_a_plan_rewrites_the_table(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    statements: list[str] = []
    original = duckdb.DuckDBPyConnection.execute

    def spy(conn: duckdb.DuckDBPyConnection, sql: str, *args: object) -> object:
        statements.append(sql)
        return original(conn, sql, *args)

    with Ledger.open(tmp_path / "ledger.duckdb", batch_ms=1) as ledger:
        ledger.record(StudiesPlanned(studies=tuple(planned(f"S{i}", i) for i in range(3000))))
        ledger.flush()
        monkeypatch.setattr(duckdb.DuckDBPyConnection, "execute", spy)
        ledger.record_retrieve_started(study_uid="S7", device="pacs",
                                       purpose=RetrievePurpose.MIGRATE)
        ledger.flush()
        few = list(statements)
        statements.clear()
        ledger.record(StudiesPlanned(studies=tuple(planned(f"S{i}", i + 1)
                                                   for i in range(3000))))
        ledger.flush()
        monkeypatch.undo()
        assert statuses(ledger)["S7"] == "in_progress"
        agrees(ledger)
    assert not [sql for sql in few if "DELETE FROM study_status" in sql]
    assert [sql for sql in few if sql.startswith("UPDATE study_status")]
    assert [sql for sql in statements if "DELETE FROM study_status" in sql]


def test_a_ledger_made_at_version_9_gets_its_study_status_filled(tmp_path: Path) -> None:
    path = tmp_path / "ledger.duckdb"
    conn = duckdb.connect(str(path))
    assert migrate(conn, MIGRATIONS[:9]) == 9
    conn.execute("""INSERT INTO studies (study_uid, modality, tier, planned_instances,
        planned_mb, phase_index, order_index, planned_at, status, updated_at)
        SELECT 'S' || i, 'CT', 'local', 2, 1.0, 0, i, now(),
               CASE WHEN i = 0 THEN 'failed' ELSE 'pending' END, now()
        FROM range(3) t(i)""")
    conn.execute("""INSERT INTO verifications VALUES ('S1', now(), 'count', 2, 2, 0, [],
        true, NULL)""")
    conn.close()
    with Ledger.open(path) as ledger:
        assert ledger.query("SELECT max(version) FROM schema_version") == [(SCHEMA_VERSION,)]
        assert statuses(ledger) == {"S0": "failed", "S1": "verified", "S2": "pending"}
        agrees(ledger)
