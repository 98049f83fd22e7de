"""The report SQL on small hand-built ledgers: every section's numbers, scopes and masking."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from runner.errors import LedgerError
from runner.inventory.model import Location
from runner.ledger import (
    EventRecorded,
    InstanceReceived,
    Ledger,
    RetrieveFinished,
    RetrievePurpose,
    RetrieveStarted,
    RunEnded,
    RunStarted,
    StudyPlanned,
    StudyStatus,
    VerificationMethod,
)
from runner.ledger.queries import RedateTotals, redate_totals
from runner.report.collect import Identity, ReportData, collect
from runner.report.scope import ReportScope
from runner.report.source import LedgerReader, sql_text

T0 = datetime(2024, 3, 4, 9, 0, tzinfo=UTC)  # a Monday
SITE = "test-site"
EVERYTHING = ReportScope()


class Builder:
    """Writes facts for hand-made studies, with explicit times where they matter."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.orders = 0

    def plan(self, uid: str, *, tier: Location = Location.LOCAL, modality: str = "CT",
             study_date: date | None = date(2020, 1, 1), phase: int = 0,
             instances: int | None = 2, device: str = "old1", mb: float = 1.0) -> None:
        self.orders += 1
        self.ledger.upsert_studies([StudyPlanned(
            study_uid=uid, study_date=study_date, modality=modality, tier=tier, device=device,
            planned_instances=instances, planned_mb=mb, phase_index=phase,
            order_index=self.orders)])

    def retrieve(self, uid: str, *, at: datetime = T0, seconds: float = 60,
                 device: str = "old1", purpose: RetrievePurpose = RetrievePurpose.MIGRATE,
                 category: str = "success", detail: str | None = None,
                 failed: int | None = None) -> str:
        started = RetrieveStarted(study_uid=uid, device=device, purpose=purpose, at=at)
        self.ledger.record(started)
        self.ledger.record(RetrieveFinished(
            retrieve_id=started.retrieve_id, final_status=0 if category == "success" else 0xC000,
            category=category, detail=detail, failed=failed,
            at=at + timedelta(seconds=seconds)))
        return started.retrieve_id

    def receive(self, uid: str, sop: str, *, at: datetime = T0, nbytes: int = 1000,
                series: str = "s1", retrieve_id: str | None = None) -> None:
        self.ledger.record(InstanceReceived(
            sop_instance_uid=sop, study_uid=uid, series_uid=f"{uid}.{series}",
            sop_class_uid="1.2.840.10008.5.1.4.1.1.2", transfer_syntax="1.2.840.10008.1.2.1",
            retrieve_id=retrieve_id, nbytes=nbytes, spool_name=f"spool-{sop}-{at:%s}", at=at))

    def migrate(self, uid: str, count: int = 2, *, at: datetime = T0, nbytes: int = 1000,
                device: str = "old1") -> list[str]:
        """Retrieve, receive, forward and confirm `count` instances: a verified study."""
        retrieve_id = self.retrieve(uid, at=at, device=device)
        sops = [f"{uid}.{n}" for n in range(count)]
        for n, sop in enumerate(sops):
            self.receive(uid, sop, at=at + timedelta(seconds=n), nbytes=nbytes,
                         retrieve_id=retrieve_id)
        self.ledger.flush()
        for sop in sops:
            self.ledger.record_forwarded(sop_instance_uid=sop, study_uid=uid, ok=True, status=0)
        self.ledger.record_verification(study_uid=uid, method=VerificationMethod.IMAGE_FIND,
                                        expected=count, found=count, ok=True,
                                        confirmed_uids=sops)
        return sops


@pytest.fixture
def ledger_path(tmp_path: Path) -> Path:
    return tmp_path / "reports" / "ledger.duckdb"


@contextmanager
def building(path: Path) -> Iterator[Builder]:
    """A new ledger at `path` with a run started, to write facts into."""
    with Ledger.open(path) as ledger:
        ledger.start_run(profile_path="/etc/site.yaml", profile_sha256="a" * 64,
                         runner_version="0.1.0", command="run")
        yield Builder(ledger)


@pytest.fixture
def site(ledger_path: Path) -> Iterator[Builder]:
    with building(ledger_path) as builder:
        yield builder


def identity(path: Path, scope: ReportScope = EVERYTHING, site_id: str = SITE) -> Identity:
    return Identity(site_id=site_id, site_name="Test Site", source_name="Old PACS",
                    destination_name="New VNA", profile_path="/etc/site.yaml",
                    profile_sha256="a" * 64, runner_version="0.1.0", ledger_path=str(path),
                    timezone="Europe/London", masked=True, generated_at=T0, scope=scope)


def report(path: Path, scope: ReportScope = EVERYTHING, site_id: str = SITE) -> ReportData:
    """Close the builder's ledger first: reports read a closed ledger."""
    with LedgerReader.open(path, "Europe/London") as reader:
        return collect(reader, identity(path, scope, site_id))


def close(site: Builder) -> None:
    site.ledger.end_run()
    site.ledger.close()


def test_reconciliation_query_has_the_spec_columns_first_one_row_per_study(
        site: Builder, ledger_path: Path) -> None:
    site.plan("1.1")
    site.plan("1.2")
    site.migrate("1.1")
    close(site)
    with LedgerReader.open(ledger_path, "UTC") as reader:
        reader.set_scope(ReportScope(), SITE)
        rows = reader.rows("reconciliation", lambda **row: row)
    assert [list(row) for row in rows] == [["study_uid", "tier", "source_instances",
                                            "received_instances", "destination_instances",
                                            "status", "study_date", "modality", "at_source",
                                            "excluded_because", "accession_before",
                                            "accession_after"]] * 2
    assert [tuple(row.values())[:6] for row in rows] == [("1.1", "local", 2, 2, 2, "verified"),
                                                         ("1.2", "local", 2, 0, 0, "pending")]


def test_headline_counts_planned_received_migrated_and_verified(
        site: Builder, ledger_path: Path) -> None:
    site.plan("1.1", mb=1500.0)
    site.plan("1.2", instances=3, mb=500.0)
    site.plan("1.3", instances=None, mb=0.0)
    site.migrate("1.1", nbytes=2 * 10**9)
    rid = site.retrieve("1.2")
    for sop in ("1.2.0", "1.2.1"):
        site.receive("1.2", sop, nbytes=10**9, retrieve_id=rid)
    site.ledger.flush()
    site.ledger.record_forwarded(sop_instance_uid="1.2.0", study_uid="1.2", ok=True, status=0)
    close(site)
    head = report(ledger_path).headline
    assert (head.planned_studies, head.planned_instances, head.unknown_size_studies,
            head.planned_gb) == (3, 5, 1, 2.0)
    assert (head.received_studies, head.received_instances, head.received_gb) == (2, 4, 6.0)
    assert (head.migrated_studies, head.migrated_instances, head.migrated_gb) == (2, 3, 5.0)
    assert (head.verified_studies, head.verified_instances, head.verified_gb) == (1, 2, 4.0)
    assert (head.destination_instances, head.outstanding_studies) == (2, 2)


def test_a_wave_is_chosen_by_study_date_and_phase_not_by_receipt_time(
        site: Builder, ledger_path: Path) -> None:
    site.plan("1.old", study_date=date(2015, 6, 1), phase=1)
    site.plan("1.new", study_date=date(2021, 6, 1), phase=1)
    site.plan("1.undated", study_date=None, phase=1)
    site.plan("1.other-phase", study_date=date(2015, 7, 1), phase=0)
    site.migrate("1.old", at=T0 + timedelta(days=400))
    site.migrate("1.new", at=T0)
    close(site)
    wave = ReportScope(date_from=date(2015, 1, 1), date_to=date(2015, 12, 31), phase=2)
    data = report(ledger_path, wave)
    assert data.headline.planned_studies == 1
    assert [t.key for t in data.totals if t.dimension == "year"] == ["2015"]
    assert {p.bucket.date() for p in data.weekly} == {date(2025, 4, 7)}
    assert [d.retrieves for d in data.devices] == [1]
    assert report(ledger_path, ReportScope(phase=2)).headline.planned_studies == 3
    assert report(ledger_path, ReportScope(date_to=date(2030, 1, 1))).headline \
        .planned_studies == 3


def test_totals_group_by_one_based_phase_tier_modality_and_study_year(
        site: Builder, ledger_path: Path) -> None:
    site.plan("1.1", phase=0, tier=Location.LOCAL, modality="CT", study_date=date(2019, 1, 1))
    site.plan("1.2", phase=1, tier=Location.NEARLINE, modality="MR", study_date=None)
    site.plan("1.3", phase=1, tier=Location.NEARLINE, modality="CT",
              study_date=date(2019, 5, 5))
    site.migrate("1.3", nbytes=10**9)
    close(site)
    totals = {(t.dimension, t.key): (t.studies, t.verified_studies, t.outstanding_studies,
                                     t.received_gb) for t in report(ledger_path).totals}
    assert totals == {
        ("phase", "1"): (1, 0, 1, 0.0), ("phase", "2"): (2, 1, 1, 2.0),
        ("tier", "local"): (1, 0, 1, 0.0), ("tier", "nearline"): (2, 1, 1, 2.0),
        ("modality", "CT"): (2, 1, 1, 2.0), ("modality", "MR"): (1, 0, 1, 0.0),
        ("year", "2019"): (2, 1, 1, 2.0), ("year", "no date"): (1, 0, 1, 0.0)}


def test_failures_group_retrieves_stores_quarantines_and_short_checks_with_reasons(
        site: Builder, ledger_path: Path) -> None:
    site.plan("1.1")
    site.plan("1.2")
    site.retrieve("1.1", category="timeout", detail="DIMSE timeout after 30 s")
    site.retrieve("1.2", category="timeout", detail="DIMSE timeout after 30 s")
    site.ledger.record(RetrieveStarted(study_uid="1.2", device="old1",
                                       purpose=RetrievePurpose.MIGRATE))
    site.receive("1.1", "1.1.0")
    site.ledger.flush()
    for _ in range(2):
        site.ledger.record_forwarded(sop_instance_uid="1.1.0", study_uid="1.1", ok=False,
                                     status=0xA700, reason="out of resources")
    site.ledger.record_quarantined(sop_instance_uid="1.1.0", study_uid="1.1",
                                   reason="refused by the destination")
    site.ledger.record_verification(study_uid="1.1", method=VerificationMethod.IMAGE_FIND,
                                    expected=2, found=0, ok=False, detail="0 of 2 found")
    close(site)
    failures = [(f.step, f.category, f.reason, f.occurrences, f.studies, f.instances)
                for f in report(ledger_path).failures]
    assert failures == [
        ("retrieve", "timeout", "DIMSE timeout after 30 s", 2, 2, None),
        ("retrieve", "no final response", "", 1, 1, None),
        ("store", "status 0xA700", "out of resources", 2, 1, 1),
        ("quarantine", "set aside", "refused by the destination", 1, 1, 1),
        ("verify", "image_find", "0 of 2 found", 1, 1, None)]


def test_throughput_buckets_weeks_in_the_site_time_zone_and_fills_empty_weeks(
        site: Builder, ledger_path: Path) -> None:
    site.plan("1.local", tier=Location.LOCAL)
    site.plan("1.near", tier=Location.NEARLINE)
    sunday_night_utc = datetime(2024, 6, 9, 23, 30, tzinfo=UTC)  # Monday 00:30 in London
    site.receive("1.local", "a", at=sunday_night_utc, nbytes=5)
    site.receive("1.near", "b", at=sunday_night_utc + timedelta(weeks=2), nbytes=7)
    site.receive("1.near", "b", at=sunday_night_utc + timedelta(weeks=2, hours=1), nbytes=7)
    close(site)
    weekly = [(p.bucket.date(), p.tier, p.bytes, p.instances)
              for p in report(ledger_path).weekly]
    assert weekly == [
        (date(2024, 6, 10), "local", 5, 1), (date(2024, 6, 10), "nearline", 0, 0),
        (date(2024, 6, 17), "local", 0, 0), (date(2024, 6, 17), "nearline", 0, 0),
        (date(2024, 6, 24), "local", 0, 0), (date(2024, 6, 24), "nearline", 14, 2)]


def test_device_busy_time_counts_overlapping_retrieves_once(
        site: Builder, ledger_path: Path) -> None:
    for uid in ("1.1", "1.2", "1.3", "1.4"):
        site.plan(uid)
    first = site.retrieve("1.1", at=T0, seconds=60)
    site.retrieve("1.2", at=T0 + timedelta(seconds=30), seconds=60)
    site.retrieve("1.3", at=T0 + timedelta(seconds=200), seconds=60, category="failure",
                  detail="unable to process")
    site.retrieve("1.4", at=T0, seconds=10, device="old2",
                  purpose=RetrievePurpose.REDATE)
    site.receive("1.1", "x", nbytes=300 * 10**6, retrieve_id=first)
    close(site)
    devices = {d.device: d for d in report(ledger_path).devices}
    old1 = devices["old1"]
    assert (old1.retrieves, old1.failed_retrieves, old1.receipts, old1.busy_seconds) == (
        3, 1, 1, 150.0)
    assert old1.mb_per_second == pytest.approx(2.0)
    assert (devices["old2"].redates, devices["old2"].bytes) == (1, 0)


def test_dead_time_pairs_each_start_with_the_next_end_and_open_periods_run_to_the_end(
        site: Builder, ledger_path: Path) -> None:
    site.plan("1.1")
    for kind, minutes in (("dead_time_start", 0), ("dead_time_start", 5),
                          ("dead_time_end", 10), ("dead_time_end", 12),
                          ("dead_time_start", 20)):
        site.ledger.record(EventRecorded(kind=kind, device="old1",
                                         at=T0 + timedelta(minutes=minutes)))
    site.ledger.record(EventRecorded(kind="device_down", device="old2", at=T0))
    site.ledger.record(EventRecorded(kind="device_up", device="old2",
                                     at=T0 + timedelta(seconds=90)))
    site.receive("1.1", "x", at=T0 + timedelta(minutes=30))
    close(site)
    data = report(ledger_path)
    assert data.span.last_at is not None
    still_open = (data.span.last_at - (T0 + timedelta(minutes=20))).total_seconds()
    assert [(p.device, p.periods, p.open_periods) for p in data.dead_time] == [("old1", 2, 1)]
    assert data.dead_time[0].seconds == pytest.approx(600 + still_open)
    assert [(p.device, p.periods, p.seconds) for p in data.down_time] == [("old2", 1, 90.0)]


def test_site_wide_dead_time_left_open_by_a_run_ends_with_that_run(
        site: Builder, ledger_path: Path) -> None:
    site.plan("1.1")
    earlier = RunStarted(run_id="earlier", profile_path="/etc/site.yaml",
                         profile_sha256="a" * 64, runner_version="0.1.0", command="run",
                         at=T0)
    site.ledger.record(earlier)
    site.ledger.record(EventRecorded(kind="dead_time_start", run_id="earlier",
                                     at=T0 + timedelta(minutes=10)))
    site.ledger.record(RunEnded(run_id="earlier", at=T0 + timedelta(hours=1)))
    site.receive("1.1", "x", at=T0 + timedelta(days=3))
    close(site)
    dead = report(ledger_path).dead_time
    assert [(p.device, p.periods, p.open_periods, p.seconds) for p in dead] == [
        ("all devices", 1, 1, 3000.0)]


def test_no_dead_time_events_means_empty_period_lists(site: Builder,
                                                      ledger_path: Path) -> None:
    site.plan("1.1")
    site.migrate("1.1")
    close(site)
    data = report(ledger_path)
    assert (data.dead_time, data.down_time) == ([], [])


def test_total_work_counts_redates_repeat_retrieves_and_repeat_receipts(
        site: Builder, ledger_path: Path) -> None:
    site.plan("1.1")
    site.plan("1.2")
    site.retrieve("1.1", purpose=RetrievePurpose.REDATE)
    site.retrieve("1.1", purpose=RetrievePurpose.REDATE, category="timeout",
                  at=T0 + timedelta(minutes=1))
    site.retrieve("1.1", category="timeout")
    site.retrieve("1.1", at=T0 + timedelta(minutes=5))
    site.retrieve("1.1", purpose=RetrievePurpose.REPAIR, at=T0 + timedelta(minutes=9))
    site.retrieve("1.2")
    site.receive("1.1", "a", nbytes=10)
    site.receive("1.1", "a", nbytes=10, at=T0 + timedelta(minutes=9))
    close(site)
    work = report(ledger_path).work
    assert (work.retrieves, work.migrate_retrieves, work.repair_retrieves,
            work.redate_retrieves, work.redated_studies, work.failed_redates,
            work.repeat_retrieves) == (6, 3, 1, 2, 1, 1, 2)
    assert (work.receipts, work.repeat_receipts, work.bytes_received) == (2, 1, 20)
    # the words `status` uses for the whole ledger, from the same counts
    with Ledger.open(ledger_path) as ledger:
        totals = redate_totals(ledger)
    assert totals == RedateTotals(2, 1, 1)
    assert totals.describe() == "2 retrieves of 1 recent study, 1 failed"


def test_exceptions_list_every_unverified_study_worst_first_with_reason_and_attempts(
        site: Builder, ledger_path: Path) -> None:
    for uid in ("1.ok", "1.pending", "1.failed", "1.short", "1.started"):
        site.plan(uid)
    site.migrate("1.ok")
    site.retrieve("1.failed", category="no_association", detail="connection refused")
    site.retrieve("1.failed", category="no_association", detail="connection refused")
    site.ledger.flush()
    site.ledger.record_study_status("1.failed", StudyStatus.FAILED,
                                    "retrieve from old1: connection refused")
    rid = site.retrieve("1.short")
    site.receive("1.short", "s0", retrieve_id=rid)
    site.receive("1.short", "s1", retrieve_id=rid)
    site.ledger.flush()
    site.ledger.record_forwarded(sop_instance_uid="s0", study_uid="1.short", ok=True, status=0)
    site.ledger.record_quarantined(sop_instance_uid="s1", study_uid="1.short",
                                   reason="refused: 0xC000")
    site.ledger.record_verification(study_uid="1.short", method=VerificationMethod.IMAGE_FIND,
                                    expected=2, found=1, ok=False, confirmed_uids=["s0"])
    site.retrieve("1.started")
    close(site)
    rows = [(e.study_uid, e.status, e.attempts, e.quarantined_instances, e.reason)
            for e in report(ledger_path).exceptions]
    assert rows == [
        ("1.failed", "failed", 2, 0, "retrieve from old1: connection refused"),
        ("1.short", "incomplete", 1, 1,
         "1 instance(s) set aside: refused: 0xC000; destination holds 1 of 2 instance(s)"),
        ("1.started", "in_progress", 1, 0, "started, not yet checked at the destination"),
        ("1.pending", "pending", 0, 0, "not started yet")]


def test_series_reconciliation_counts_each_series_the_runner_received(
        site: Builder, ledger_path: Path) -> None:
    site.plan("1.1", instances=3)
    for sop, series in (("a", "s1"), ("b", "s1"), ("c", "s2")):
        site.receive("1.1", sop, series=series)
    site.ledger.flush()
    site.ledger.record_forwarded(sop_instance_uid="a", study_uid="1.1", ok=True, status=0)
    site.ledger.record_quarantined(sop_instance_uid="c", study_uid="1.1", reason="bad")
    close(site)
    rows = [(s.series_uid, s.received_instances, s.stored_instances, s.verified_instances,
             s.quarantined_instances) for s in report(ledger_path).series]
    assert rows == [("1.1.s1", 2, 1, 0, 0), ("1.1.s2", 1, 0, 0, 1)]


def test_pseudonym_is_the_salted_sha256_of_the_uid_and_differs_between_sites(
        site: Builder, ledger_path: Path) -> None:
    site.plan("1.2.3")
    close(site)
    here = report(ledger_path).exceptions[0].pseudonym
    there = report(ledger_path, site_id="other-site").exceptions[0].pseudonym
    assert here == hashlib.sha256(b"test-site:1.2.3").hexdigest()[:10]
    assert there != here and len(there) == 10


def test_an_empty_ledger_gives_zero_totals_and_empty_sections(ledger_path: Path) -> None:
    Ledger.open(ledger_path).close()
    data = report(ledger_path)
    assert data.headline.planned_studies == 0 and data.headline.planned_gb == 0
    assert (data.totals, data.weekly, data.devices, data.exceptions, data.runs) == (
        [], [], [], [], [])
    assert (data.span.first_at, data.work.retrieves) == (None, 0)


def test_reading_a_missing_ledger_says_to_run_first(tmp_path: Path) -> None:
    with pytest.raises(LedgerError, match="no ledger yet"):
        LedgerReader.open(tmp_path / "ledger.duckdb", "UTC")


def test_reading_a_ledger_held_by_a_running_pacsmig_says_so(ledger_path: Path) -> None:
    Ledger.open(ledger_path).close()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from pathlib import Path; "
         "from runner.ledger import Ledger; l = Ledger.open(Path(sys.argv[1])); "
         "print('open', flush=True); sys.stdin.read()", str(ledger_path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        cwd=Path(__file__).parents[2])
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "open\n"
        with pytest.raises(LedgerError, match="in use"):
            LedgerReader.open(ledger_path, "UTC")
    finally:
        holder.communicate("", timeout=30)


def test_a_ledger_of_another_schema_version_is_refused(ledger_path: Path) -> None:
    Ledger.open(ledger_path).close()
    with duckdb.connect(str(ledger_path)) as conn:
        conn.execute("INSERT INTO schema_version VALUES (99, 'future', now())")
    with pytest.raises(LedgerError, match="schema version 99"):
        LedgerReader.open(ledger_path, "UTC")


def test_every_sql_file_starts_with_a_comment_saying_what_it_computes() -> None:
    from importlib import resources

    names = [p.name for p in (resources.files("runner.report") / "sql").iterdir()
             if p.name.endswith(".sql")]
    assert len(names) >= 12
    for name in names:
        assert sql_text(name.removesuffix(".sql")).startswith("-- "), name
