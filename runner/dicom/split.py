"""An instance split around its Pixel Data: morph the header, carry the pixels as received.

Morphing needs the attributes as a pydicom Dataset; it never needs the pixel data, which is
most of an image's bytes. `split_instance` parses every element of a Part-10 file except
Pixel Data (7FE0,0010), whose encoded element (header and value, native or encapsulated) is
kept as a view of the file's bytes; `encode_split` writes the morphed attributes back around
that view, in the file's transfer syntax. Measured on a 512x512 16-bit CT (benchmarks/
morph_split.py): about a third of the CPU of `dcmread` + writing the whole dataset.

Deflated files, and files without Pixel Data, are not split (`split_instance` gives None):
the caller reads them whole.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from io import BytesIO

from pydicom import Dataset
from pydicom.charset import convert_encodings
from pydicom.dataset import FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset
from pydicom.filewriter import write_dataset
from pydicom.tag import BaseTag
from pydicom.uid import UID

from runner.dicom.part10 import FileMeta, read_meta

PIXEL_DATA = 0x7FE00010
_ITEM, _SEQUENCE_END = 0xFFFEE000, 0xFFFEE0DD
_UNDEFINED = 0xFFFFFFFF


class SplitError(ValueError):
    """A file whose elements around Pixel Data cannot be delimited."""


@dataclass(frozen=True, slots=True)
class SplitInstance:
    """A spooled instance: its attributes but Pixel Data, and Pixel Data as encoded."""

    meta: FileMeta
    dataset: Dataset  # every element but Pixel Data, with file_meta
    pixel_element: memoryview  # the encoded Pixel Data element, as in the file


def split_instance(raw: bytes) -> SplitInstance | None:
    """Split a Part-10 file's bytes; None when it is deflated or has no Pixel Data."""
    meta = read_meta(raw)
    syntax = UID(meta.transfer_syntax)
    if syntax.is_deflated:
        return None
    stream = BytesIO(raw)
    stream.seek(meta.dataset_offset)
    dataset = read_dataset(stream, syntax.is_implicit_VR, syntax.is_little_endian,
                           stop_when=_at_pixel_data)
    start = stream.tell()
    if start + 8 > len(raw) or _tag(raw, start, syntax.is_little_endian) != PIXEL_DATA:
        return None
    end = _element_end(raw, start, syntax)
    stream.seek(end)
    dataset.update(read_dataset(stream, syntax.is_implicit_VR, syntax.is_little_endian))
    dataset.file_meta = FileMetaDataset()
    dataset.file_meta.MediaStorageSOPClassUID = UID(meta.sop_class_uid)
    dataset.file_meta.MediaStorageSOPInstanceUID = UID(meta.sop_instance_uid)
    dataset.file_meta.TransferSyntaxUID = syntax
    return SplitInstance(meta, dataset, memoryview(raw)[start:end])


def encode_split(split: SplitInstance) -> list[bytes | memoryview]:
    """The data set bytes of `split` (as morphed since), Pixel Data where it belongs."""
    syntax = UID(split.meta.transfer_syntax)
    head, tail = Dataset(), Dataset()
    for tag in list(split.dataset.keys()):  # get_item: untouched elements stay raw bytes
        (head if tag < PIXEL_DATA else tail)[tag] = split.dataset.get_item(tag)
    encodings = convert_encodings(split.dataset.get("SpecificCharacterSet"))
    for part in (head, tail):  # as read: pydicom then writes raw elements as they are
        part.set_original_encoding(syntax.is_implicit_VR, syntax.is_little_endian,
                                   split.dataset.original_character_set)
    return [_encode(head, syntax, encodings), split.pixel_element,
            _encode(tail, syntax, encodings)]


def _at_pixel_data(tag: BaseTag, _vr: str | None, _length: int) -> bool:
    return bool(tag >= PIXEL_DATA)


def _encode(ds: Dataset, syntax: UID, encodings: list[str]) -> bytes:
    """`ds` encoded; text in `encodings` (the tail has no SpecificCharacterSet of its own)."""
    if not len(ds):
        return b""
    out = DicomBytesIO()
    out.is_little_endian = syntax.is_little_endian
    out.is_implicit_VR = syntax.is_implicit_VR
    write_dataset(out, ds, parent_encoding=encodings)
    return out.getvalue()


def _tag(raw: bytes, offset: int, little: bool) -> int:
    group, element = struct.unpack_from("<HH" if little else ">HH", raw, offset)
    return int(group) << 16 | int(element)


def _element_end(raw: bytes, start: int, syntax: UID) -> int:
    """Where the Pixel Data element starting at `start` ends."""
    order = "<" if syntax.is_little_endian else ">"
    if syntax.is_implicit_VR:
        (length,) = struct.unpack_from(order + "L", raw, start + 4)
        value = start + 8
    else:
        (length,) = struct.unpack_from(order + "L", raw, start + 8)
        value = start + 12
    if length != _UNDEFINED:
        if value + length > len(raw):
            raise SplitError("Pixel Data overruns the file")
        return int(value + length)
    offset = value  # encapsulated: items up to the sequence delimiter
    while offset + 8 <= len(raw):
        tag = _tag(raw, offset, syntax.is_little_endian)
        (item_length,) = struct.unpack_from(order + "L", raw, offset + 4)
        if tag == _SEQUENCE_END:
            return offset + 8
        if tag != _ITEM or item_length == _UNDEFINED:
            raise SplitError(f"unexpected tag {tag:08X} in encapsulated Pixel Data")
        offset += 8 + int(item_length)
    raise SplitError("encapsulated Pixel Data without its sequence delimiter")
