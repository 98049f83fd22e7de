"""The synthetic DICOM generator is deterministic and writes valid Part-10 files."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from io import BytesIO
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import ExplicitVRLittleEndian

from runner.sim.generate import (
    SOP_CLASS_BY_MODALITY,
    StudySpec,
    ct_512,
    make_instance,
    make_study,
    synthetic_archive,
    to_bytes,
    write_study,
)

SPEC = StudySpec(
    seed="unit",
    patient_id="P1",
    patient_name="Müller^Jürgen",
    study_date=date(2021, 5, 4),
    modality="CT",
    series_count=2,
    instances_per_series=3,
)


def test_same_seed_gives_the_same_uids_and_bytes() -> None:
    first = [to_bytes(ds) for ds in make_study(SPEC)]
    again = [to_bytes(ds) for ds in make_study(replace(SPEC))]
    assert first == again


def test_different_seeds_give_different_uids() -> None:
    other = replace(SPEC, seed="unit-2")
    assert other.study_uid != SPEC.study_uid
    assert not set(other.sop_uids) & set(SPEC.sop_uids)


def test_every_uid_of_a_study_is_distinct_and_valid() -> None:
    uids = [SPEC.study_uid, SPEC.series_uid(1), SPEC.series_uid(2), *SPEC.sop_uids]
    assert len(set(uids)) == len(uids) == 3 + SPEC.instance_count
    assert all(uid.is_valid and len(uid) <= 64 for uid in uids)


def test_study_has_its_instances_across_series() -> None:
    instances = make_study(SPEC)
    assert len(instances) == 6
    assert {ds.SeriesInstanceUID for ds in instances} == {SPEC.series_uid(1), SPEC.series_uid(2)}
    assert [ds.SOPInstanceUID for ds in instances] == SPEC.sop_uids
    assert {ds.StudyInstanceUID for ds in instances} == {SPEC.study_uid}


def test_instance_is_a_valid_part10_file_with_realistic_tags() -> None:
    ds = pydicom.dcmread(BytesIO(to_bytes(make_study(SPEC)[0])))
    assert ds.preamble == b"\0" * 128
    assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert ds.file_meta.MediaStorageSOPClassUID == ds.SOPClassUID == SOP_CLASS_BY_MODALITY["CT"]
    assert ds.AccessionNumber == SPEC.accession_number
    assert ds.InstitutionName
    assert ds.PatientBirthDate == "19600101"
    assert ds.StudyDate == "20210504"
    assert ds.Modality == "CT"
    assert len(ds.PixelData) == 64 * 64


@pytest.mark.parametrize("charset", ["ISO_IR 192", "ISO_IR 100"])
def test_non_ascii_names_survive_a_round_trip_in_the_declared_charset(charset: str) -> None:
    ds = make_instance("1.2.3", "1.2.3.1", "1.2.3.1.1", "P1", "Müller^Jürgen",
                       date(2020, 1, 1), "MR", charset=charset)
    raw = to_bytes(ds)
    expected = "Müller".encode("utf-8" if charset == "ISO_IR 192" else "latin-1")
    assert expected in raw
    back = pydicom.dcmread(BytesIO(raw))
    assert back.SpecificCharacterSet == charset
    assert str(back.PatientName) == "Müller^Jürgen"


def test_ct_512_option_makes_full_size_16_bit_images() -> None:
    ds = make_study(ct_512(SPEC))[0]
    assert (ds.Rows, ds.Columns, ds.BitsAllocated) == (512, 512, 16)
    assert len(ds.PixelData) == 512 * 512 * 2
    assert ds.RescaleIntercept == -1024


def test_instance_availability_is_written_only_when_asked() -> None:
    assert "InstanceAvailability" not in make_study(SPEC)[0]
    nearline = replace(SPEC, instance_availability="NEARLINE")
    assert make_study(nearline)[0].InstanceAvailability == "NEARLINE"


def test_write_study_writes_readable_files_named_without_patient_data(tmp_path: Path) -> None:
    paths = write_study(tmp_path, SPEC)
    assert len(paths) == SPEC.instance_count
    assert all(SPEC.patient_id not in str(path) for path in paths)
    assert sorted(pydicom.dcmread(p).SOPInstanceUID for p in paths) == sorted(SPEC.sop_uids)


def test_synthetic_archive_is_deterministic_sorted_and_within_the_dates() -> None:
    first = synthetic_archive("arch", 30, date(2019, 1, 1), date(2023, 12, 31), ("CT", "MR"))
    again = synthetic_archive("arch", 30, date(2019, 1, 1), date(2023, 12, 31), ("CT", "MR"))
    assert first == again
    assert len({spec.study_uid for spec in first}) == 30
    dates = [spec.study_date for spec in first]
    assert dates == sorted(dates)
    assert date(2019, 1, 1) <= dates[0] and dates[-1] <= date(2023, 12, 31)
    assert {spec.modality for spec in first} == {"CT", "MR"}
    assert synthetic_archive("other", 30, date(2019, 1, 1), date(2023, 12, 31)) != first

