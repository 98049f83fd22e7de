"""Synthetic DICOM: deterministic instances and studies for tests, the demo and benchmarks.

Everything is derived from a seed string: the same seed gives the same UIDs, names, dates
and pixels, so tests can be written against exact values and re-runs reproduce them.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from io import BytesIO
from pathlib import Path

from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    UID,
    ExplicitVRLittleEndian,
    generate_uid,
)

UID_ROOT = "1.2.826.0.1.3680043.8.498."  # pydicom's root; fine for synthetic data
DEFAULT_CHARSET = "ISO_IR 192"  # UTF-8
DEFAULT_INSTITUTION = "Pacsmig General Hospital"

# Storage SOP classes by modality; anything else becomes Secondary Capture.
SOP_CLASS_BY_MODALITY: dict[str, UID] = {
    "CT": UID("1.2.840.10008.5.1.4.1.1.2"),
    "MR": UID("1.2.840.10008.5.1.4.1.1.4"),
    "CR": UID("1.2.840.10008.5.1.4.1.1.1"),
    "DX": UID("1.2.840.10008.5.1.4.1.1.1.1"),
    "MG": UID("1.2.840.10008.5.1.4.1.1.1.2"),
    "US": UID("1.2.840.10008.5.1.4.1.1.6.1"),
}
SECONDARY_CAPTURE = UID("1.2.840.10008.5.1.4.1.1.7")
_CROSS_SECTIONAL = frozenset({"CT", "MR"})

_FAMILY_NAMES = ("Müller", "García", "O'Brien", "Nakamura", "Smith", "Øster", "Nowak", "Dubois")
_GIVEN_NAMES = ("Jürgen", "José", "Siobhán", "Yuki", "Anne", "Søren", "Zofia", "Hélène")


def seeded_uid(*parts: str) -> UID:
    """A UID under UID_ROOT that depends only on `parts` (same parts, same UID)."""
    return generate_uid(prefix=UID_ROOT, entropy_srcs=list(parts))


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def _file_meta(sop_class: UID, sop_uid: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = UID(sop_uid)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = "PACSMIG_SIM"
    return meta


def _pixels(seed: str, rows: int, cols: int, bits_allocated: int) -> bytes:
    """Deterministic noise; BitsStored equals BitsAllocated, so every byte value is valid."""
    size = rows * cols * (bits_allocated // 8)
    return random.Random(seed).randbytes(size + size % 2)


def _set_image(ds: Dataset, rows: int, cols: int, bits_allocated: int, seed: str) -> None:
    if bits_allocated not in (8, 16):
        raise ValueError(f"bits_allocated must be 8 or 16: {bits_allocated}")
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = rows
    ds.Columns = cols
    ds.BitsAllocated = bits_allocated
    ds.BitsStored = bits_allocated
    ds.HighBit = bits_allocated - 1
    ds.PixelRepresentation = 0
    ds.PixelData = _pixels(seed, rows, cols, bits_allocated)
    ds["PixelData"].VR = "OB" if bits_allocated == 8 else "OW"


def _set_geometry(ds: Dataset, study_uid: str, instance_number: int) -> None:
    ds.FrameOfReferenceUID = seeded_uid(study_uid, "frame-of-reference")
    ds.ImagePositionPatient = [0.0, 0.0, float(instance_number)]
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.PixelSpacing = [0.5, 0.5]
    ds.SliceThickness = 1.0
    if ds.Modality == "CT":
        ds.KVP = 120
        ds.RescaleIntercept = -1024
        ds.RescaleSlope = 1


def make_instance(
    study_uid: str,
    series_uid: str,
    sop_uid: str,
    patient_id: str,
    patient_name: str,
    study_date: date,
    modality: str,
    rows: int = 64,
    cols: int = 64,
    *,
    bits_allocated: int = 8,
    series_number: int = 1,
    instance_number: int = 1,
    accession_number: str = "",
    institution_name: str = DEFAULT_INSTITUTION,
    patient_birth_date: date | None = None,
    patient_sex: str = "O",
    study_description: str = "",
    charset: str | None = DEFAULT_CHARSET,
    instance_availability: str | None = None,
) -> FileDataset:
    """One image instance with valid Part-10 file meta (explicit VR little endian).

    `charset` is the SpecificCharacterSet ("ISO_IR 192" is UTF-8, "ISO_IR 100" Latin-1,
    None plain ASCII); names are encoded with it when the dataset is written.
    `instance_availability` (ONLINE, NEARLINE, OFFLINE) is written into the instance, so a
    PACS that answers C-FIND from its stored files (Orthanc does) reports that tier.
    """
    sop_class = SOP_CLASS_BY_MODALITY.get(modality, SECONDARY_CAPTURE)
    ds = FileDataset("", Dataset(), file_meta=_file_meta(sop_class, sop_uid), preamble=b"\0" * 128)
    if charset:
        ds.SpecificCharacterSet = charset
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.PatientID = patient_id
    ds.PatientName = patient_name
    ds.PatientBirthDate = patient_birth_date.strftime("%Y%m%d") if patient_birth_date else ""
    ds.PatientSex = patient_sex
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = study_date.strftime("%Y%m%d")
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = "093000"
    ds.AccessionNumber = accession_number
    ds.StudyID = accession_number[-16:] or "1"
    ds.StudyDescription = study_description or f"{modality} study"
    ds.SeriesDescription = f"{modality} series {series_number}"
    ds.ReferringPhysicianName = "Referrer^Rita"
    ds.InstitutionName = institution_name
    ds.Manufacturer = "PACSMIG SIM"
    ds.Modality = modality
    ds.SeriesNumber = series_number
    ds.InstanceNumber = instance_number
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL" if modality in _CROSS_SECTIONAL else "OTHER"]
    if sop_class == SECONDARY_CAPTURE:
        ds.ConversionType = "WSD"
    if modality in _CROSS_SECTIONAL:
        _set_geometry(ds, study_uid, instance_number)
    if instance_availability:
        ds.InstanceAvailability = instance_availability
    _set_image(ds, rows, cols, bits_allocated, sop_uid)
    return ds


@dataclass(frozen=True, slots=True)
class StudySpec:
    """A synthetic study, all of whose UIDs and values derive from `seed`."""

    seed: str
    patient_id: str
    patient_name: str
    study_date: date
    modality: str
    series_count: int = 1
    instances_per_series: int = 1
    rows: int = 64
    cols: int = 64
    bits_allocated: int = 8
    patient_birth_date: date = date(1960, 1, 1)
    institution_name: str = DEFAULT_INSTITUTION
    charset: str | None = DEFAULT_CHARSET
    instance_availability: str | None = None

    @property
    def study_uid(self) -> UID:
        """The StudyInstanceUID."""
        return seeded_uid(self.seed, "study")

    def series_uid(self, series: int) -> UID:
        """The SeriesInstanceUID of series number `series` (1-based)."""
        return seeded_uid(self.seed, "series", str(series))

    def sop_uid(self, series: int, instance: int) -> UID:
        """The SOPInstanceUID of instance `instance` of series `series` (both 1-based)."""
        return seeded_uid(self.seed, "sop", str(series), str(instance))

    @property
    def accession_number(self) -> str:
        """A 12-digit accession number derived from the seed."""
        return str(int(_digest(self.seed, "accession"), 16))[:12]

    @property
    def instance_count(self) -> int:
        """How many instances the study holds."""
        return self.series_count * self.instances_per_series

    @property
    def sop_uids(self) -> list[UID]:
        """Every SOPInstanceUID of the study, series by series."""
        return [sop for _, _, sop in self._positions()]

    def _positions(self) -> list[tuple[int, int, UID]]:
        return [
            (series, instance, self.sop_uid(series, instance))
            for series in range(1, self.series_count + 1)
            for instance in range(1, self.instances_per_series + 1)
        ]


def ct_512(spec: StudySpec) -> StudySpec:
    """The same study as CT with 512x512 16-bit images (about 512 kB per instance)."""
    return replace(spec, modality="CT", rows=512, cols=512, bits_allocated=16)


def make_study(spec: StudySpec) -> list[FileDataset]:
    """Every instance of `spec`, series by series."""
    return [
        make_instance(
            spec.study_uid,
            spec.series_uid(series),
            sop_uid,
            spec.patient_id,
            spec.patient_name,
            spec.study_date,
            spec.modality,
            spec.rows,
            spec.cols,
            bits_allocated=spec.bits_allocated,
            series_number=series,
            instance_number=instance,
            accession_number=spec.accession_number,
            institution_name=spec.institution_name,
            patient_birth_date=spec.patient_birth_date,
            charset=spec.charset,
            instance_availability=spec.instance_availability,
        )
        for series, instance, sop_uid in spec._positions()
    ]


def to_bytes(ds: FileDataset) -> bytes:
    """The Part-10 file of `ds` as bytes (for uploads and C-STORE from memory)."""
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def write_study(directory: Path, spec: StudySpec) -> list[Path]:
    """Write every instance of `spec` under `directory`/<hash of the study UID>/; the paths."""
    study_dir = directory / _digest(spec.study_uid)[:16]
    study_dir.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for ds in make_study(spec):
        path = study_dir / f"{ds.SeriesNumber:03d}-{ds.InstanceNumber:05d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def synthetic_archive(
    seed: str,
    count: int,
    date_from: date,
    date_to: date,
    modalities: Sequence[str] = ("CT", "MR", "CR"),
    series_count: int = 1,
    instances_per_series: int = 2,
    charset: str | None = DEFAULT_CHARSET,
) -> list[StudySpec]:
    """`count` studies spread over [date_from, date_to], patients and modalities drawn
    deterministically from `seed`; sorted by study date."""
    if date_to < date_from or count < 0 or not modalities:
        raise ValueError("need date_from <= date_to, count >= 0 and at least one modality")
    rng = random.Random(seed)
    span = (date_to - date_from).days
    template = StudySpec(
        seed="",
        patient_id="",
        patient_name="",
        study_date=date_from,
        modality="",
        series_count=series_count,
        instances_per_series=instances_per_series,
        charset=charset,
    )
    specs = [
        _archive_study(rng, template, f"{seed}/{index}", span, modalities)
        for index in range(count)
    ]
    return sorted(specs, key=lambda spec: (spec.study_date, spec.study_uid))


def _archive_study(
    rng: random.Random, template: StudySpec, seed: str, span: int, modalities: Sequence[str]
) -> StudySpec:
    study_date = template.study_date + timedelta(days=rng.randint(0, span))
    modality = rng.choice(list(modalities))
    patient = rng.randrange(1_000_000)
    name = f"{rng.choice(_FAMILY_NAMES)}^{rng.choice(_GIVEN_NAMES)}"
    birth = date(1930, 1, 1) + timedelta(days=rng.randrange(365 * 80))
    return replace(
        template,
        seed=seed,
        patient_id=f"SIM{patient:06d}",
        patient_name=name,
        study_date=study_date,
        modality=modality,
        patient_birth_date=birth,
    )
