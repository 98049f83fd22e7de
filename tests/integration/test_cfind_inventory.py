"""Live inventory by C-FIND against real peers: Orthanc, dcmqrscp and an in-process SCP."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest
from pydicom import Dataset

from runner.dicom.find import c_find
from runner.dicom.peer import DicomSettings, Peer
from runner.errors import DicomError
from runner.inventory.census import Keys
from runner.inventory.cfind import CensusRequest, Window, inventory_by_cfind, study_query
from runner.inventory.model import Inventory
from runner.profile.tiers import Location
from runner.sim.generate import StudySpec, make_study, synthetic_archive, to_bytes, write_study
from tests.conftest import require_peer_binaries
from tests.peers import (
    HOST,
    DcmqrscpProcess,
    OrthancProcess,
    PynetdicomScp,
    date_range_matches,
    free_port,
)

SETTINGS = DicomSettings(acse_timeout=5, dimse_timeout=10, network_timeout=10,
                         connection_timeout=2)
FIRST, LAST = date(2018, 1, 1), date(2023, 12, 31)
TIERS = ("ONLINE", "NEARLINE", "OFFLINE", "UNAVAILABLE", None)
EXPECTED_TIER = {
    "ONLINE": Location.LOCAL,
    "NEARLINE": Location.NEARLINE,
    "OFFLINE": Location.OFFLINE,
    "UNAVAILABLE": Location.OFFLINE,
    None: Location.LOCAL,
}


def archive() -> list[StudySpec]:
    """36 studies over six years, with varied sizes and tiers (some with no tier at all)."""
    specs = synthetic_archive("inventory", 36, FIRST, LAST, ("CT", "MR", "CR"))
    return [
        replace(
            spec,
            series_count=1 + index % 2,
            instances_per_series=1 + index % 3,
            instance_availability=TIERS[index % len(TIERS)],
        )
        for index, spec in enumerate(specs)
    ]


SPECS = archive()
BY_UID: dict[str, StudySpec] = {spec.study_uid: spec for spec in SPECS}


def load(orthanc: OrthancProcess, specs: list[StudySpec]) -> None:
    for spec in specs:
        orthanc.upload_all(to_bytes(ds) for ds in make_study(spec))


@pytest.fixture(scope="module")
def archive_orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrthancProcess]:
    """One Orthanc holding the archive, shared by the tests that only read it."""
    require_peer_binaries()
    orthanc = OrthancProcess(tmp_path_factory.mktemp("archive-orthanc"), aet="ARCHIVE").start()
    try:
        load(orthanc, SPECS)
        yield orthanc
    finally:
        orthanc.stop()


def inventory(
    devices: list[tuple[str, Peer]], max_results: int = 1000, modalities: tuple[str, ...] = ()
) -> Inventory:
    request = CensusRequest(FIRST, LAST, 365, max_results=max_results, modalities=modalities)
    return inventory_by_cfind(devices, "PACSMIG", SETTINGS, request)


def assert_each_study_once(inv: Inventory, specs: list[StudySpec]) -> None:
    uids = Counter(study.study_uid for study in inv.studies)
    assert set(uids) == {spec.study_uid for spec in specs}
    assert max(uids.values()) == 1


def test_archive_has_studies_in_every_tier_and_some_without_one() -> None:
    assert {spec.instance_availability for spec in SPECS} == set(TIERS)


@pytest.mark.peers
def test_window_reaching_result_cap_is_split_until_every_study_is_found_once(
    archive_orthanc: OrthancProcess,
) -> None:
    inv = inventory([("main", archive_orthanc.peer)], max_results=3)
    assert_each_study_once(inv, SPECS)
    assert any("split because their answer was full" in note for note in inv.notes)
    assert inv.census.complete and not any("gap" in note for note in inv.notes)
    for study in inv.studies:
        spec = BY_UID[study.study_uid]
        assert study.study_date == spec.study_date
        assert study.instances == spec.instance_count
        assert study.location is EXPECTED_TIER[spec.instance_availability]
        assert (study.modality, study.device, study.patient_id) == (
            spec.modality, "main", spec.patient_id)
        assert study.size_mb is None and study.estimated_mb > 0


@pytest.mark.peers
def test_large_windows_under_the_cap_need_no_split(archive_orthanc: OrthancProcess) -> None:
    inv = inventory([("main", archive_orthanc.peer)], max_results=1000)
    assert_each_study_once(inv, SPECS)
    assert not any("answer was full" in note for note in inv.notes)


@pytest.mark.peers
def test_studies_without_instance_availability_are_assumed_local_with_a_note(
    archive_orthanc: OrthancProcess,
) -> None:
    inv = inventory([("main", archive_orthanc.peer)])
    missing = sum(1 for spec in SPECS if spec.instance_availability is None)
    notes = [n for n in inv.notes if n.startswith("InstanceAvailability")]
    assert len(notes) == 1
    assert f"for {missing} of {len(SPECS)} studies" in notes[0] and "assumed local" in notes[0]


@pytest.mark.peers
def test_the_census_holds_every_modality_whatever_the_filter(
    archive_orthanc: OrthancProcess,
) -> None:
    # The profile's modality filter excludes studies in the plan, with that reason: the
    # census itself counts every study the source holds.
    inv = inventory([("main", archive_orthanc.peer)], max_results=5, modalities=("CT", "CR"))
    assert_each_study_once(inv, SPECS)
    assert {study.modality for study in inv.studies} == {s.modality for s in SPECS}


@pytest.mark.peers
def test_peer_result_limit_forces_splitting_until_complete(
    orthanc_factory: Callable[..., OrthancProcess],
) -> None:
    orthanc = orthanc_factory(extra_config={"LimitFindResults": 3})
    specs = SPECS[:20]
    load(orthanc, specs)
    capped = c_find(orthanc.peer, "PACSMIG", SETTINGS, "STUDY",
                    study_query(Keys(Window(FIRST, LAST))))
    assert not capped.ok and len(capped.identifiers) == 3  # the PACS really truncates
    inv = inventory([("capped", orthanc.peer)], max_results=1000)
    assert_each_study_once(inv, specs)


@pytest.mark.peers
def test_a_full_single_day_is_split_by_patient_id_and_one_patient_over_the_cap_is_a_gap(
    orthanc_factory: Callable[..., OrthancProcess],
) -> None:
    orthanc = orthanc_factory()
    same_day = [replace(spec, study_date=date(2020, 6, 1)) for spec in SPECS[:4]]
    same_patient = [replace(spec, study_date=date(2020, 7, 1), patient_id="ONE")
                    for spec in SPECS[4:7]]
    load(orthanc, same_day + same_patient)
    inv = inventory([("main", orthanc.peer)], max_results=2)
    assert_each_study_once(inv, same_day + same_patient)  # what full answers gave is kept
    gaps = [note for note in inv.notes if note.startswith("census gap")]
    assert len(gaps) == 1 and "2020-07-01, one Patient ID" in gaps[0], gaps
    assert not inv.census.complete


@pytest.mark.peers
def test_down_device_is_skipped_and_the_next_one_used(archive_orthanc: OrthancProcess) -> None:
    down = Peer("DOWN", HOST, free_port())
    inv = inventory([("down", down), ("backup", archive_orthanc.peer)], max_results=10)
    assert_each_study_once(inv, SPECS)
    assert {study.device for study in inv.studies} == {"backup"}
    assert any("used device backup" in note and "down" in note for note in inv.notes)


def test_no_device_answering_raises_dicom_error_naming_the_devices() -> None:
    devices = [("alpha", Peer("A", HOST, free_port())), ("beta", Peer("B", HOST, free_port()))]
    with pytest.raises(DicomError, match="alpha") as raised:
        inventory(devices)
    assert "beta" in str(raised.value)


def _answer(spec: StudySpec) -> Dataset:
    ds = Dataset()
    ds.StudyInstanceUID = spec.study_uid
    ds.StudyDate = spec.study_date.strftime("%Y%m%d")
    ds.ModalitiesInStudy = spec.modality
    ds.NumberOfStudyRelatedInstances = spec.instance_count
    ds.InstanceAvailability = "NEARLINE"
    ds.PatientID = spec.patient_id
    return ds


@pytest.mark.peers
def test_device_going_down_mid_sweep_hands_over_and_the_first_answer_wins(
    archive_orthanc: OrthancProcess, pynetdicom_scp_factory: Callable[..., PynetdicomScp]
) -> None:
    scps: list[PynetdicomScp] = []

    def answer_once_then_die(query: Dataset) -> Iterator[tuple[int, Dataset | None]]:
        for spec in SPECS:
            if date_range_matches(query, _answer(spec)):
                yield 0xFF00, _answer(spec)
        scps[0].stop()  # the device goes down after its first answer
        yield 0x0000, None

    scps.append(pynetdicom_scp_factory(on_find=answer_once_then_die, aet="FLAKY"))
    inv = inventory([("flaky", scps[0].peer), ("backup", archive_orthanc.peer)])
    assert_each_study_once(inv, SPECS)
    first_year = {s.study_uid for s in SPECS if s.study_date.year == FIRST.year}
    by_device = {study.study_uid: study.device for study in inv.studies}
    assert {uid for uid, device in by_device.items() if device == "flaky"} == first_year
    assert all(
        study.location is Location.NEARLINE for study in inv.studies if study.device == "flaky"
    )
    assert scps[0].finds == 1
    assert any("used device backup" in note and "flaky" in note for note in inv.notes)


@pytest.fixture
def archive_dcmqrscp(
    dcmqrscp_factory: Callable[..., DcmqrscpProcess], tmp_path: Path
) -> DcmqrscpProcess:
    server = dcmqrscp_factory(aet="QRSCP")
    server.add_files(path for spec in SPECS for path in write_study(tmp_path / "files", spec))
    return server


@pytest.mark.peers
def test_dcmqrscp_answers_no_counts_tiers_or_modalities(archive_dcmqrscp: DcmqrscpProcess) -> None:
    outcome = c_find(archive_dcmqrscp.peer, "PACSMIG", SETTINGS, "STUDY",
                     study_query(Keys(Window(FIRST, LAST))))
    assert outcome.ok and len(outcome.identifiers) == len(SPECS)
    for keyword in ("NumberOfStudyRelatedInstances", "InstanceAvailability", "ModalitiesInStudy"):
        assert all(not ds.get(keyword) for ds in outcome.identifiers), keyword


@pytest.mark.peers
def test_inventory_on_dcmqrscp_falls_back_to_series_level_and_notes_it(
    archive_dcmqrscp: DcmqrscpProcess,
) -> None:
    inv = inventory([("qr", archive_dcmqrscp.peer)], max_results=8, modalities=("MR",))
    assert_each_study_once(inv, SPECS)
    assert {(s.modality, s.location) for s in inv.studies} == {
        (spec.modality, Location.LOCAL) for spec in SPECS}
    # dcmqrscp answers no NumberOfSeriesRelatedInstances either: counts stay unknown
    assert all(study.instances is None for study in inv.studies)
    total = len(SPECS)
    notes = "\n".join(inv.notes)
    assert f"NumberOfStudyRelatedInstances not answered for {total} of {total} studies" in notes
    assert f"unknown for {total}" in notes
    assert f"ModalitiesInStudy not answered for {total} of {total} studies" in notes
    assert "taken from a SERIES-level query for 36, unknown for 0" in notes
    assert "assumed local" in notes
