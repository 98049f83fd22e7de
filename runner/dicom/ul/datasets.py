"""Data sets in DIMSE messages (identifiers, event information, morphed instances): pydicom
encoding and decoding in a presentation context's transfer syntax, deflate included.

A deflated data set is a raw deflate stream (no zlib header) padded with one NUL byte to an
even length (PS3.5 A.5): a data set of odd length breaks the PDV framing, and DCMTK-based
peers (Orthanc) abort the association on it.
"""

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
        return deflate(out.getvalue())
    return out.getvalue()


def deflate(data: bytes | memoryview) -> bytes:
    """`data` (an Explicit VR Little Endian data set) as Deflated Explicit VR Little Endian
    sends it: raw deflate, padded to an even length."""
    packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    packed = packer.compress(data) + packer.flush()
    return packed + b"\0" if len(packed) % 2 else packed


def inflate(data: bytes | memoryview) -> bytes:
    """The Explicit VR Little Endian bytes of a deflated data set (its padding ignored)."""
    return zlib.decompress(data, -zlib.MAX_WBITS)


def decode(raw: bytes, transfer_syntax: str, **options: Any) -> Dataset:
    """A data set received in `transfer_syntax`; `options` go to pydicom's read_dataset."""
    syntax = UID(transfer_syntax)
    stream = BytesIO(inflate(raw)) if syntax.is_deflated else BytesIO(raw)
    return read_dataset(stream, syntax.is_implicit_VR, syntax.is_little_endian, **options)
