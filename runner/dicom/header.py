"""The identifying elements of a received data set, read without decoding it.

Only the four UIDs the runner needs (SOP Class, SOP Instance, Study, Series) are read, and
the pixel data never: the element headers of the first 16 KB are walked up to
SeriesInstanceUID (0020,000E) (`scan_header`: 24 µs per CT); when the walk is unsure (the
elements go past the first 16 KB, or it cannot step over one), pydicom reads the data set up
to there (`parse_dataset_header`: 98 µs). A data set whose UIDs cannot be read is a
`HeaderError`.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from pydicom import Dataset
from pydicom.tag import BaseTag, Tag
from pydicom.uid import UID

from runner.dicom.split import Walk as _Walk
from runner.dicom.ul import datasets
from runner.dicomdict import LONG_VRS as _LONG_VRS

_SOP_CLASS, _SOP_INSTANCE = Tag(0x0008, 0x0016), Tag(0x0008, 0x0018)
_STUDY, _SERIES = Tag(0x0020, 0x000D), Tag(0x0020, 0x000E)
_HEADER_TAGS: list[BaseTag | int] = [_SOP_CLASS, _SOP_INSTANCE, _STUDY, _SERIES]


class HeaderError(ValueError):
    """A dataset whose identifying header elements cannot be read."""


@dataclass(frozen=True, slots=True)
class _Header:
    sop_class_uid: str
    sop_instance_uid: str
    study_uid: str
    series_uid: str


def _past_series(tag: BaseTag, _vr: str | None, _length: int) -> bool:
    return bool(tag > _SERIES)


def parse_dataset_header(dataset: bytes, transfer_syntax: str) -> _Header:
    """The four identifying UIDs of a data set (as received), without reading pixel data."""
    try:
        ds = datasets.decode(dataset, transfer_syntax, stop_when=_past_series,
                             specific_tags=_HEADER_TAGS)
        return _Header(*(_uid(ds, tag) for tag in _HEADER_TAGS))
    except HeaderError:
        raise
    except Exception as error:  # pydicom raises many kinds on garbage; all mean "malformed"
        raise HeaderError(f"cannot parse the dataset header: {error}") from error


_HEADER_PREFIX = 16384  # the identifying elements come first: enough for nearly every file


def header_of(fragments: Sequence[memoryview], transfer_syntax: str) -> _Header:
    """The identifying UIDs of a received data set: walked in its first bytes, else (the
    walk unsure, or the data set deflated) read by pydicom from the whole data set."""
    syntax = UID(transfer_syntax)
    if fragments and not syntax.is_deflated:
        scanned = scan_header(fragments[0][:_HEADER_PREFIX], syntax.is_implicit_VR,
                              syntax.is_little_endian)
        if scanned is not None:
            return scanned
    return parse_dataset_header(b"".join(fragments), transfer_syntax)


_WANTED = {int(tag): index for index, tag in enumerate(_HEADER_TAGS)}
_LAST_WANTED = int(_SERIES)


def scan_header(data: bytes | memoryview, implicit: bool, little: bool) -> _Header | None:
    """The four identifying UIDs read from element headers and values directly (a fifth of
    pydicom's time); None when unsure: data cut short before the element past
    SeriesInstanceUID, a value that is not plain ASCII, an element the walk cannot step
    over. The caller then asks pydicom."""
    order = "<" if little else ">"
    raw = bytes(data)
    walk = _Walk(raw, len(raw), order, implicit)
    found: list[str | None] = [None] * len(_HEADER_TAGS)
    offset = 0
    while offset + 8 <= len(raw):
        group, element = struct.unpack_from(order + "HH", raw, offset)
        tag = group << 16 | element
        if tag > _LAST_WANTED:
            break
        end = walk.element(offset, 0)
        if end is None:
            return None
        index = _WANTED.get(tag)
        if index is not None:
            start = offset + (8 if implicit or raw[offset + 4:offset + 6] not in _LONG_VRS
                              else 12)
            try:
                found[index] = raw[start:end].decode("ascii").strip("\0 ")
            except UnicodeDecodeError:
                return None
        offset = end
    else:
        return None  # the data ends before the element past SeriesInstanceUID
    if not all(found):
        return None
    return _Header(*(uid for uid in found if uid is not None))


def _uid(ds: Dataset, tag: BaseTag | int) -> str:
    value = ds.get(tag)
    text = str(value.value).strip("\0 ") if value is not None and value.value else ""
    if not text:
        raise HeaderError(f"the dataset has no {Tag(tag)} value")
    return text
