"""Data that cannot rot: every spooled instance's content checksum is recorded at receipt,
and a file that survived a restart is forwarded again only if it still holds those bytes."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from runner.dicom.spool import Spool, content_checksum, file_checksum
from runner.execute.resume import restore_instances
from runner.execute.work import StudyWork
from runner.inventory.model import Study
from runner.ledger import Ledger, StudyPlanned
from runner.profile.tiers import Location

STUDY = Study("1.2.3", date(2020, 1, 1), "CT", 2, None, Location.LOCAL)


def test_a_spooled_file_carries_the_checksum_of_what_was_written(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", 10**7)
    entry = spool.write_parts([b"DICM" * 100, memoryview(b"pixels" * 1000)])
    assert entry.checksum == content_checksum([b"DICM" * 100 + b"pixels" * 1000])
    assert file_checksum(entry.path) == entry.checksum
    assert len(entry.checksum) == 16


def _receive(ledger: Ledger, spool: Spool, sop: str, raw: bytes) -> Path:
    entry = spool.write(raw)
    ledger.record_received(sop_instance_uid=sop, study_uid=STUDY.study_uid, series_uid="1.2.3.4",
                           sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
                           transfer_syntax="1.2.840.10008.1.2.1", nbytes=entry.size,
                           spool_name=entry.name, checksum=entry.checksum)
    return entry.path


def test_a_file_damaged_after_receipt_is_not_forwarded_again_but_retrieved(
        tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", 10**7)
    with Ledger.open(tmp_path / "ledger.duckdb") as ledger:
        ledger.upsert_studies([StudyPlanned.from_study(STUDY, phase_index=0, order_index=0)])
        intact = _receive(ledger, spool, "1.2.3.4.1", b"A" * 5000)
        damaged = _receive(ledger, spool, "1.2.3.4.2", b"B" * 5000)
        ledger.flush()
        damaged.write_bytes(b"B" * 2500 + b"\0" * 2500)  # a power cut left it half written
        assert intact.exists()
        work = StudyWork(STUDY, 0, 0, "dev", expected=2)
        again = restore_instances(ledger, [work], spool, lambda _study, _sops: set())
        ledger.flush()
        events = ledger.query("SELECT kind, detail->>'sop_instance_uid' FROM events")
    assert again == ["1.2.3.4.1"]
    assert set(work.received) == {"1.2.3.4.1"}  # the damaged one is retrieved again
    assert events == [("spool_file_damaged", "1.2.3.4.2")]
