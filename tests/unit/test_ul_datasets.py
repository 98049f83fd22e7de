"""Data sets in DIMSE messages: deflated ones padded to an even length, read back as written."""

from __future__ import annotations

import zlib

from pydicom import Dataset
from pydicom.uid import DeflatedExplicitVRLittleEndian

from runner.dicom.ul import datasets


def _dataset(name: str) -> Dataset:
    ds = Dataset()
    ds.SOPInstanceUID = "1.2.3.4"
    ds.InstitutionName = name
    return ds


def test_every_deflated_data_set_has_an_even_length_and_decodes_to_what_was_encoded() -> None:
    odd = 0
    for size in range(1, 40):
        ds = _dataset("X" * size)
        packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
        plain = datasets.encode(ds, "1.2.840.10008.1.2.1")
        odd += len(packer.compress(plain) + packer.flush()) % 2
        raw = datasets.encode(ds, DeflatedExplicitVRLittleEndian)
        assert len(raw) % 2 == 0
        assert datasets.decode(raw, DeflatedExplicitVRLittleEndian).InstitutionName == "X" * size
    assert odd  # the sizes gave odd deflate streams, which needed the pad
