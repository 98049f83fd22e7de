"""Datasets for the morph tests: generated instances, raw byte values, encode round-trips."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.tag import BaseTag
from pydicom.uid import ExplicitVRLittleEndian

from runner.morph import RuleSet, compile_rules
from runner.morph.charset import CharsetFallback
from runner.profile.morphing import MorphRule

HERE = Path(__file__).resolve().parent
PATIENT_IDS = HERE / "patient-ids.csv"
STUDY_UID = "1.2.826.0.1.3680043.8.498.1"
SERIES_UID = "1.2.826.0.1.3680043.8.498.1.1"
SOP_UID = "1.2.826.0.1.3680043.8.498.1.1.1"
CR_STORAGE = "1.2.840.10008.5.1.4.1.1.1"

SPEC_RULES: list[dict[str, Any]] = [
    {"when": {"Modality": ["CR", "DX"]}, "set": {"InstitutionName": "Example Hospital"}},
    {"replace": {"tag": "AccessionNumber", "pattern": r"^(\d+)$", "with": r"EXH\1"}},
    {"map": {"tag": "PatientID", "table": str(PATIENT_IDS), "missing": "keep"}},
    {"delete": ["OtherPatientIDs"]},
    {"remove_private": True},
]


def rules(*specs: dict[str, Any], allow_uid_changes: bool = False,
          charset_fallback: CharsetFallback = "keep") -> RuleSet:
    """Compile rules written as the profile's YAML would parse."""
    models = [MorphRule.model_validate(spec) for spec in specs]
    return compile_rules(models, allow_uid_changes=allow_uid_changes,
                         charset_fallback=charset_fallback)


def cr_instance(**values: Any) -> Dataset:
    """An in-memory CR instance with the attributes the spec's rules look at."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = CR_STORAGE
    ds.SOPInstanceUID = SOP_UID
    ds.StudyDate = "20190412"
    ds.AccessionNumber = "123456"
    ds.Modality = "CR"
    ds.InstitutionName = "Old Clinic"
    ds.PatientName = "Doe^Jane"
    ds.PatientID = "PID001"
    ds.OtherPatientIDs = "LEGACY-9"
    ds.StudyInstanceUID = STUDY_UID
    ds.SeriesInstanceUID = SERIES_UID
    ds.SeriesNumber = "1"
    ds.Rows = 4
    for keyword, value in values.items():
        if value is None:
            if keyword in ds:
                delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    return ds


def add_private(ds: Dataset) -> Dataset:
    """A private block at the top level and one inside a sequence item."""
    ds.add_new(0x00090010, "LO", "ACME 1.0")
    ds.add_new(0x00091001, "LO", "vendor secret")
    item = Dataset()
    item.CodeValue = "XR123"
    item.add_new(0x00110010, "LO", "ACME 2.0")
    item.add_new(0x00111002, "SH", "nested")
    ds.ProcedureCodeSequence = [item]
    return ds


def encode(ds: Dataset) -> bytes:
    """The dataset as an explicit-VR little-endian Part 10 file."""
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = CR_STORAGE  # not read from ds: it may be broken
    ds.file_meta.MediaStorageSOPInstanceUID = SOP_UID
    out = BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def reread(ds: Dataset) -> Dataset:
    """The dataset written and read back: every element raw, as from the spool."""
    return dcmread(BytesIO(encode(ds)))


def with_raw(ds: Dataset, tag: int, vr: str, value: bytes) -> Dataset:
    """Put bytes into the dataset exactly as given, as if read from a file."""
    ds[tag] = RawDataElement(BaseTag(tag), vr, len(value), value, 0, False, True)
    return ds


def raw_bytes(ds: Dataset, tag: int) -> bytes:
    """The bytes an element's value is written as."""
    back = dcmread(BytesIO(encode(ds)))
    elem = back.get_item(tag)
    assert isinstance(elem, RawDataElement) and elem.value is not None
    return elem.value


def tags_of(ds: Dataset) -> list[int]:
    """The tags present, without converting elements (iterating a Dataset would)."""
    return sorted(ds.keys())
