"""A destination that drops some instances: verification catches it, retries, reports."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import date
from pathlib import Path

import duckdb
import pytest

from runner.dicom.peer import Peer
from runner.sim.generate import StudySpec, make_study, synthetic_archive, to_bytes
from tests.fakes import FussyArchive
from tests.integration.test_migration import Site
from tests.peers import OrthancProcess, free_port
from tests.profiles import profile_data, write_profile

pytestmark = pytest.mark.peers

REFUSE_CR = """
function ReceivedInstanceFilter(dicom, origin, info)
  if dicom.Modality == 'CR' then
    return false
  end
  return true
end
"""


def test_instances_acknowledged_but_dropped_are_caught_retried_then_reported(
        tmp_path: Path, orthanc_factory: Callable[..., OrthancProcess]) -> None:
    specs: list[StudySpec] = synthetic_archive("reject", 3, date(2016, 1, 1), date(2018, 1, 1),
                                               modalities=("CT",))
    specs[1] = replace(specs[1], modality="CR")
    lua = tmp_path / "refuse-cr.lua"
    lua.write_text(REFUSE_CR)
    listener_port = free_port()
    source = orthanc_factory(aet="OLDPACS",
                             modalities={"pacsmig": Peer("PACSMIG", "127.0.0.1", listener_port)})
    destination = orthanc_factory(aet="NEWVNA", extra_config={"LuaScripts": [str(lua)]})
    source.upload_all(to_bytes(ds) for s in specs for ds in make_study(s))
    data = profile_data(tmp_path, [("old1", source.peer)], destination.peer, listener_port,
                        retries={"store_attempts": 2, "backoff_seconds": 0.1})
    site = Site(source, destination, write_profile(tmp_path, data), specs, tmp_path / "reports")

    result = site.pacsmig("run")
    assert result.returncode == 1
    assert "2 of 3 studies verified" in result.stdout and "1 failed" in result.stdout
    statuses = {row[0]: row[4] for row in site.reconciliation()}
    assert statuses == {specs[0].study_uid: "verified", specs[1].study_uid: "failed",
                        specs[2].study_uid: "verified"}
    with duckdb.connect(str(site.reports / "ledger.duckdb"), read_only=True) as conn:
        attempts = conn.execute("SELECT sop_instance_uid, count(*) FILTER (WHERE ok) FROM forwards "
                                "WHERE study_uid = ? GROUP BY ALL", [specs[1].study_uid]
                                ).fetchall()
        retrieves = conn.execute("SELECT count(*) FROM retrieves WHERE study_uid = ?",
                                 [specs[1].study_uid]).fetchone()
        reason = conn.execute("SELECT reason FROM studies WHERE study_uid = ?",
                              [specs[1].study_uid]).fetchone()
    # Orthanc's filter answers success and keeps nothing: each retrieve re-sends, each check
    # finds nothing, until the retrieve attempts are used up.
    assert retrieves == (3,)
    assert sorted(n for _, n in attempts) == [3] * specs[1].instance_count
    assert reason is not None and "missing at the destination" in str(reason[0])
    assert len(destination.instances()) == specs[0].instance_count + specs[2].instance_count


@pytest.fixture
def fussy() -> Iterator[FussyArchive]:
    archive = FussyArchive().start()
    yield archive
    archive.stop()


def fussy_site(tmp_path: Path, orthanc_factory: Callable[..., OrthancProcess],
               archive: FussyArchive, specs: list[StudySpec]) -> Site:
    listener_port = free_port()
    source = orthanc_factory(aet="OLDPACS",
                             modalities={"pacsmig": Peer("PACSMIG", "127.0.0.1", listener_port)})
    source.upload_all(to_bytes(ds) for s in specs for ds in make_study(s))
    data = profile_data(tmp_path, [("old1", source.peer)], archive.peer, listener_port,
                        retries={"store_attempts": 3, "backoff_seconds": 0.1})
    return Site(source, archive, write_profile(tmp_path, data), specs, tmp_path / "reports")


def test_out_of_resources_is_retried_with_backoff_until_stored(
        tmp_path: Path, orthanc_factory: Callable[..., OrthancProcess],
        fussy: FussyArchive) -> None:
    fussy.policy = lambda _sop, attempt: 0xA700 if attempt < 3 else 0x0000
    specs = synthetic_archive("busy", 2, date(2016, 1, 1), date(2018, 1, 1))
    site = fussy_site(tmp_path, orthanc_factory, fussy, specs)
    result = site.pacsmig("run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert set(fussy.stored) == {u for s in specs for u in s.sop_uids}
    assert set(fussy.attempts.values()) == {3}
    assert {row[4] for row in site.reconciliation()} == {"verified"}


def test_permanent_refusal_sets_instances_aside_with_the_reason_and_keeps_them(
        tmp_path: Path, orthanc_factory: Callable[..., OrthancProcess],
        fussy: FussyArchive) -> None:
    specs = synthetic_archive("refuse", 2, date(2016, 1, 1), date(2018, 1, 1))
    refused = set(specs[0].sop_uids)
    fussy.policy = lambda sop, _attempt: 0xC000 if sop in refused else 0x0000
    site = fussy_site(tmp_path, orthanc_factory, fussy, specs)
    result = site.pacsmig("run")
    assert result.returncode == 1
    statuses = {row[0]: row[4] for row in site.reconciliation()}
    assert statuses == {specs[0].study_uid: "failed", specs[1].study_uid: "verified"}
    assert all(fussy.attempts[sop] == 3 for sop in refused)
    with duckdb.connect(str(site.reports / "ledger.duckdb"), read_only=True) as conn:
        reasons = conn.execute("SELECT DISTINCT quarantined FROM instances WHERE study_uid = ?",
                               [specs[0].study_uid]).fetchall()
    assert len(reasons) == 1 and "0xC000" in str(reasons[0][0])
    assert len([p for p in (tmp_path / "spool").iterdir() if p.is_file()]) == len(refused)


def test_lost_store_response_is_resent_harmlessly_and_verifies(
        tmp_path: Path, orthanc_factory: Callable[..., OrthancProcess],
        fussy: FussyArchive) -> None:
    specs = synthetic_archive("lost", 1, date(2016, 1, 1), date(2018, 1, 1))
    first = specs[0].sop_uids[0]
    fussy.policy = lambda sop, attempt: "lost" if sop == first and attempt == 1 else 0x0000
    site = fussy_site(tmp_path, orthanc_factory, fussy, specs)
    result = site.pacsmig("run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert fussy.attempts[first] == 2
    assert set(fussy.stored) == set(specs[0].sop_uids)
