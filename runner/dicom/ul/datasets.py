"""Data sets in DIMSE messages (identifiers, event information, morphed instances): pydicom
encoding and decoding in a presentation context's transfer syntax, deflate included."""

from __future__ import annotations

import zlib
from io import BytesIO
from typing import Any

from pydicom import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset
from pydicom.filewriter import write_dataset
from pydicom.uid import UID


def encode(ds: Dataset, transfer_syntax: str) -> bytes:
    """`ds` encoded in `transfer_syntax` (an uncompressed one, or the dataset's own)."""
    syntax = UID(transfer_syntax)
    out = DicomBytesIO()
    out.is_little_endian = syntax.is_little_endian
    out.is_implicit_VR = syntax.is_implicit_VR
    write_dataset(out, ds)
    if syntax.is_deflated:
        packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
        return packer.compress(out.getvalue()) + packer.flush()
    return out.getvalue()


def decode(raw: bytes, transfer_syntax: str, **options: Any) -> Dataset:
    """A data set received in `transfer_syntax`; `options` go to pydicom's read_dataset."""
    syntax = UID(transfer_syntax)
    stream = BytesIO(zlib.decompress(raw, -zlib.MAX_WBITS)) if syntax.is_deflated \
        else BytesIO(raw)
    return read_dataset(stream, syntax.is_implicit_VR, syntax.is_little_endian, **options)
