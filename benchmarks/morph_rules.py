"""Benchmark: applying a 10-rule morph set to CT instances, against fair floors in the same run.

Run: .venv/bin/python benchmarks/morph_rules.py [--instances N] [--batch N]
Builds realistic CT instances with pydicom (about 100 header elements, sequences, a private
block, 512x512 16-bit pixel data), encodes them once, and reads each back before timing so
every element is raw, as from the spool. Times per instance, in the same run:
  - floor: one assignment (`ds.InstitutionName = ...`), the least any morph can cost;
  - the 10 rules on instances they change (CR/CT with private tags, mapped patient);
  - the 10 rules on instances none of them changes;
  - floor: read + write (pass-through), then read + apply + write: the forwarder's path.
The machine is noisy: compare the ratios between runs, not the absolute figures.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from io import BytesIO
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `runner` importable from the checkout
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

from runner.morph import RuleSet, compile_rules
from runner.profile.morphing import MorphRule

CT_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
ROOT = "1.2.826.0.1.3680043.8.498"
TABLE_ENTRIES = 10_000


def ten_rules(table: Path) -> list[dict[str, Any]]:
    """The spec's five rules and five more of the common kinds."""
    return [
        {"when": {"Modality": ["CR", "DX", "CT"]}, "set": {"InstitutionName": "Example Hospital"}},
        {"replace": {"tag": "AccessionNumber", "pattern": r"^(\d+)$", "with": r"EXH\1"}},
        {"map": {"tag": "PatientID", "table": str(table), "missing": "keep"}},
        {"delete": ["OtherPatientIDs"]},
        {"remove_private": True},
        {"when": {"StationName": {"matches": "^CT0[1-4]$"}}, "set": {"StationName": "CT-MAIN"}},
        {"copy": {"from": "AccessionNumber", "to": "StudyID"}},
        {"replace": {"tag": "InstitutionalDepartmentName", "pattern": "(?i)radiology",
                     "with": "Imaging"}},
        {"when": {"BodyPartExamined": {"exists": False}}, "set": {"BodyPartExamined": "UNKNOWN"}},
        {"delete": ["PatientBirthTime", "(0010,2160)"]},
    ]


def write_table(path: Path) -> Path:
    """A from,to table of patient IDs, as large as a mid-size site's."""
    rows = "".join(f"P{i:07d},EXH{i:07d}\n" for i in range(TABLE_ENTRIES))
    path.write_text("from,to\n" + rows, encoding="utf-8")
    return path


def ct_instance(number: int, touched: bool) -> Dataset:
    """A CT instance; `touched`: one every rule changes, else one none of them changes."""
    ds = Dataset()
    _patient_study(ds, number, touched)
    _equipment_image(ds, number, touched)
    _sequences_and_private(ds, touched)
    _pixels(ds)
    return ds


def _patient_study(ds: Dataset, number: int, touched: bool) -> None:
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = CT_STORAGE
    ds.SOPInstanceUID = f"{ROOT}.3.{number}"
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = "20190412"
    ds.StudyTime = ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = "101530.250000"
    ds.AccessionNumber = f"{4000000 + number}" if touched else f"EXH{number}"
    ds.Modality = "CT" if touched else "MR"
    ds.Manufacturer = "ACME Medical"
    ds.InstitutionName = "St. Jürgen Klinikum" if touched else "Example Hospital"
    ds.ReferringPhysicianName = "Schmidt^Anna^^Dr."
    ds.StudyDescription = "CT Thorax mit KM"
    ds.SeriesDescription = "Thorax 1.0 B31f"
    ds.InstitutionalDepartmentName = "Radiology" if touched else "Imaging"
    ds.PatientName = "Müller^Hans"
    ds.PatientID = f"P{number % TABLE_ENTRIES:07d}" if touched else f"X{number}"
    ds.PatientBirthDate = "19550301"
    ds.PatientSex = "M"
    if touched:
        ds.OtherPatientIDs = "LEGACY-1"
        ds.PatientBirthTime = "0830"
    ds.PatientAge = "064Y"
    ds.StudyInstanceUID = f"{ROOT}.1.{number // 300}"
    ds.SeriesInstanceUID = f"{ROOT}.2.{number // 100}"
    ds.StudyID = ds.AccessionNumber
    ds.SeriesNumber = "3"
    ds.InstanceNumber = str(number % 300 + 1)


def _equipment_image(ds: Dataset, number: int, touched: bool) -> None:
    ds.StationName = "CT02" if touched else "CT-MAIN"
    ds.ManufacturerModelName = "Somatom X"
    ds.DeviceSerialNumber = "12345"
    ds.SoftwareVersions = "VA40"
    ds.BodyPartExamined = "" if touched else "CHEST"
    ds.SliceThickness = "1.0"
    ds.KVP = "120"
    ds.DataCollectionDiameter = "500"
    ds.ReconstructionDiameter = "350"
    ds.GantryDetectorTilt = "0"
    ds.TableHeight = "150"
    ds.RotationDirection = "CW"
    ds.ExposureTime = "500"
    ds.XRayTubeCurrent = "200"
    ds.Exposure = "100"
    ds.ConvolutionKernel = "B31f"
    ds.PatientPosition = "HFS"
    ds.ImagePositionPatient = ["-175.0", "-175.0", f"{-number * 1.0:.1f}"]
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    ds.FrameOfReferenceUID = f"{ROOT}.4.{number // 300}"
    ds.SliceLocation = f"{-number * 1.0:.1f}"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = ds.Columns = 512
    ds.PixelSpacing = ["0.68359375", "0.68359375"]
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.WindowCenter, ds.WindowWidth = "40", "400"
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = "-1024", "1", "HU"


def _sequences_and_private(ds: Dataset, touched: bool) -> None:
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "CTTHOR", "L", "CT Thorax"
    reference = Dataset()
    reference.ReferencedSOPClassUID = CT_STORAGE
    reference.ReferencedSOPInstanceUID = f"{ROOT}.9.1"
    if touched:
        code.add_new(0x00190010, "LO", "ACME CT")
        code.add_new(0x00191001, "DS", "1.5")
        ds.add_new(0x00290010, "LO", "ACME CSA HEADER")
        ds.add_new(0x00291010, "OB", bytes(2048))
    ds.ProcedureCodeSequence = [code]
    ds.ReferencedImageSequence = [reference]


def _pixels(ds: Dataset) -> None:
    ds.PixelData = bytes(range(256)) * (512 * 512 * 2 // 256)


def encode(ds: Dataset) -> bytes:
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    out = BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def batches(blobs: list[bytes], total: int, size: int) -> Iterator[list[Dataset]]:
    """Freshly read datasets, `size` at a time (reading is not timed)."""
    for start in range(0, total, size):
        stop = min(total, start + size)
        yield [dcmread(BytesIO(blobs[i % len(blobs)])) for i in range(start, stop)]


def per_instance(blobs: list[bytes], total: int, size: int,
                 work: Callable[[Dataset], object]) -> float:
    """Seconds per instance of `work` on freshly read datasets."""
    spent = 0.0
    for batch in batches(blobs, total, size):
        started = time.perf_counter()
        for ds in batch:
            work(ds)
        spent += time.perf_counter() - started
    return spent / total


def pipeline(blobs: list[bytes], total: int, ruleset: RuleSet | None) -> float:
    """Seconds per instance to read, optionally morph, and write one instance."""
    started = time.perf_counter()
    for i in range(total):
        ds = dcmread(BytesIO(blobs[i % len(blobs)]))
        if ruleset is not None:
            ruleset.apply(ds)
        ds.save_as(BytesIO())
    return (time.perf_counter() - started) / total


def assign(ds: Dataset) -> None:
    ds.InstitutionName = "Example Hospital"


def report(label: str, seconds: float, floor: float) -> None:
    print(f"  {label:<44} {1 / seconds:>11,.0f} {seconds * 1e6:>10.1f} {seconds / floor:>9.1f}x")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--instances", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=200, help="datasets read per timed batch")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        table = write_table(Path(tmp) / "patient-ids.csv")
        specs = ten_rules(table)
        ruleset = compile_rules([MorphRule.model_validate(s) for s in specs])
    touched = [encode(ct_instance(n, touched=True)) for n in range(50)]
    untouched = [encode(ct_instance(n, touched=False)) for n in range(50)]
    check(ruleset, touched[0], untouched[0])
    n, size = args.instances, args.batch
    print(f"{len(specs)} rules ({TABLE_ENTRIES:,}-entry table), {n:,} CT instances "
          f"({len(touched[0]) // 1024} KiB each)")
    print(f"  {'':<44} {'instances/s':>11} {'us/inst':>10} {'vs floor':>10}")
    floor = per_instance(touched, n, size, assign)
    report("floor: one assignment", floor, floor)
    report("apply, every rule changes the instance", per_instance(touched, n, size, ruleset.apply),
           floor)
    report("apply, no rule changes the instance", per_instance(untouched, n, size, ruleset.apply),
           floor)
    report("may_touch (dry run), no rule changes it",
           per_instance(untouched, n, size, ruleset.may_touch), floor)
    io_floor = pipeline(touched, n, None)
    report("floor: read + write (pass-through)", io_floor, io_floor)
    report("read + apply + write, rules change it", pipeline(touched, n, ruleset), io_floor)


def check(ruleset: RuleSet, touched: bytes, untouched: bytes) -> None:
    """The instances are what the benchmark says: all ten rules fire, or none does."""
    fired = ruleset.apply(dcmread(BytesIO(touched))).fired
    assert fired == tuple(range(10)), fired
    assert ruleset.apply(dcmread(BytesIO(untouched))).fired == ()


if __name__ == "__main__":
    main()
