"""An instance split around its Pixel Data: morph the header, carry the pixels as received.

Morphing needs the attributes as a pydicom Dataset; it never needs the pixel data, which is
most of an image's bytes. `split_instance` reads every element of a Part-10 file except
Pixel Data (7FE0,0010), whose encoded element (header and value, native or encapsulated) is
kept as a view of the file's bytes. One walk over the element headers finds where each
element lies; the Dataset is made of the raw elements pydicom's reader would make of those
bytes (converted when a rule reads them), without pydicom reading them a second time, and
pydicom reads the header itself wherever the walk is unsure (and each value of undefined
length, which it parses at once); `encode_split` copies the elements no rule changed from
the file as they are, has pydicom encode only the changed ones, and puts the Pixel Data
element back in its place, all in the file's transfer syntax.

A deflated file is inflated first (`SplitInstance.raw` then holds the Explicit VR Little
Endian bytes it stands for), split and morphed as such, and `encode_split` deflates the
result again (padded to an even length): a morphed deflated instance stays deflated. Files
without Pixel Data are not split (`split_instance` gives None): the caller reads them whole.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from io import BytesIO
from typing import cast

from pydicom import Dataset
from pydicom.charset import convert_encodings, default_encoding
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import (
    DataElement,
    RawDataElement,
    convert_raw_data_element,
    empty_value_for_VR,
)
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset
from pydicom.filewriter import correct_ambiguous_vr_element, write_data_element, write_dataset
from pydicom.tag import BaseTag
from pydicom.uid import UID

from runner.dicom.part10 import FileMeta, read_meta
from runner.dicom.ul.datasets import deflate, inflate
from runner.dicomdict import LONG_VRS

PIXEL_DATA = 0x7FE00010
_ITEM, _ITEM_END, _SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_UNDEFINED = 0xFFFFFFFF


class SplitError(ValueError):
    """A file whose elements around Pixel Data cannot be delimited."""


@dataclass(frozen=True, slots=True)
class SplitInstance:
    """A spooled instance: its attributes but Pixel Data, and Pixel Data as encoded."""

    meta: FileMeta
    dataset: Dataset  # every element but Pixel Data (no file_meta: `meta` has what it says)
    raw: bytes  # the whole file (a deflated one inflated: meta, then Explicit VR LE)
    pixel_start: int  # where the encoded Pixel Data element starts in `raw`
    pixel_end: int  # and where it ends
    head_spans: dict[int, tuple[int, int]] | None = None  # the elements before Pixel Data

    @property
    def pixel_element(self) -> memoryview:
        """The encoded Pixel Data element, as in the file."""
        return memoryview(self.raw)[self.pixel_start:self.pixel_end]


def split_instance(raw: bytes) -> SplitInstance | None:
    """Split a Part-10 file's bytes (inflated first when deflated); None when it has no
    Pixel Data."""
    meta = read_meta(raw)
    syntax = UID(meta.transfer_syntax)
    if syntax.is_deflated:
        raw = raw[:meta.dataset_offset] + inflate(memoryview(raw)[meta.dataset_offset:])
    implicit, little = syntax.is_implicit_VR, syntax.is_little_endian
    head = _head(raw, meta.dataset_offset, implicit, little)
    if head is not None:
        start, spans = head
        dataset = _raw_dataset(raw, spans, meta.dataset_offset, implicit, little)
    else:  # the walk is unsure: pydicom finds Pixel Data itself
        stream = BytesIO(raw)
        stream.seek(meta.dataset_offset)
        dataset = read_dataset(stream, implicit, little, stop_when=_at_pixel_data)
        start, spans = stream.tell(), None
    if start + 8 > len(raw) or _tag(raw, start, little) != PIXEL_DATA:
        return None
    end = _element_end(raw, start, syntax)
    if end < len(raw):  # elements after Pixel Data (trailing padding, mostly)
        tail = read_dataset(BytesIO(raw[end:]), implicit, little)
        dataset._dict.update(tail._dict)  # as read: Dataset.update converts private elements
    return SplitInstance(meta, dataset, raw, start, end, spans)


_VR_NAMES: dict[bytes, str] = {}


def _raw_dataset(raw: bytes, spans: dict[int, tuple[int, int]], base: int, implicit: bool,
                 little: bool) -> Dataset:
    """The elements at `spans` as pydicom's `read_dataset` gives them for raw[base:]: raw
    elements, each converted when first read; pydicom parses an undefined-length value
    (a sequence, mostly) at once, so it reads those elements itself."""
    order = "<" if little else ">"
    long_length, short_length = struct.Struct(order + "L"), struct.Struct(order + "H")
    elements: dict[BaseTag, RawDataElement | DataElement] = {}
    encoding: str | list[str] = default_encoding
    for tag, (start, end) in spans.items():
        vr: str | None
        if implicit:
            vr, value = None, start + 8
            (length,) = long_length.unpack_from(raw, start + 4)
        else:
            code = raw[start + 4:start + 6]
            vr = _VR_NAMES.get(code) or _VR_NAMES.setdefault(code, code.decode(default_encoding))
            if code in LONG_VRS:
                value = start + 12
                (length,) = long_length.unpack_from(raw, start + 8)
            else:
                value = start + 8
                (length,) = short_length.unpack_from(raw, start + 6)
        key = BaseTag(tag)
        if length == _UNDEFINED:
            alone = read_dataset(BytesIO(raw[start:end]), implicit, little,
                                 parent_encoding=encoding)
            elements[key] = alone._dict[key]
            continue
        element = RawDataElement(
            key, vr, length,
            raw[value:end] if length else cast("bytes | None", empty_value_for_VR(vr, raw=True)),
            value - base, implicit, little)
        elements[key] = element
        if tag == 0x00080005:
            encoding = convert_encodings(convert_raw_data_element(element).value)
    dataset = Dataset(elements)
    dataset.set_original_encoding(implicit, little, encoding)
    return dataset


def encode_split(split: SplitInstance, changed: frozenset[int]) -> list[bytes | memoryview]:
    """The data set bytes of `split` after rules changed the top-level elements `changed`
    (MorphResult.changed_tags), Pixel Data where it belongs; deflated again when the file
    was deflated.
    """
    parts = _encode_parts(split, changed)
    if UID(split.meta.transfer_syntax).is_deflated:
        return [deflate(b"".join(parts))]
    return parts


def _encode_parts(split: SplitInstance, changed: frozenset[int]) -> list[bytes | memoryview]:
    """The data set bytes of `split` in its (inflated) encoding, in three parts.

    Unchanged elements are copied from the file as they are; only the changed ones are
    encoded by pydicom. Group lengths (gggg,0000) of groups above 0006 are left out, as
    pydicom leaves them out (a changed element would make them wrong). When the file's
    elements cannot be delimited with certainty, the whole dataset is encoded by pydicom.
    """
    syntax = UID(split.meta.transfer_syntax)
    spans = dict(split.head_spans) if split.head_spans is not None else \
        _top_level(split.raw, split.meta.dataset_offset, split.pixel_start, syntax)
    tail = _top_level(split.raw, split.pixel_end, len(split.raw), syntax)
    if spans is None or tail is None:
        return _encode_whole(split)
    spans.update(tail)
    ds = split.dataset
    charset = ds.get("SpecificCharacterSet")
    head_out, tail_out = bytearray(), bytearray()
    for tag in sorted(set(spans) | {tag for tag in changed if tag in ds}):
        if tag & 0xFFFF == 0 and tag >> 16 > 6:
            continue  # a group length
        out = head_out if tag < PIXEL_DATA else tail_out
        if tag not in changed:
            start, end = spans[tag]
            out += memoryview(split.raw)[start:end]
        elif tag in ds:
            out += _encode_element(ds, tag, syntax, charset)
    return [bytes(head_out), split.pixel_element, bytes(tail_out)]


def _encode_whole(split: SplitInstance) -> list[bytes | memoryview]:
    """pydicom encodes every element but Pixel Data (raw elements as they were read)."""
    syntax = UID(split.meta.transfer_syntax)
    # Built from dicts, elements as they are: assigning a raw private element converts it.
    # The instance's character set is the tail's parent encoding, as it has none of its own:
    # pydicom would otherwise see a changed character set and re-encode every element.
    elements = {tag: split.dataset.get_item(tag) for tag in list(split.dataset.keys())}
    original = split.dataset.original_character_set
    head = Dataset({tag: e for tag, e in elements.items() if tag < PIXEL_DATA},
                   parent_encoding=original)
    tail = Dataset({tag: e for tag, e in elements.items() if tag >= PIXEL_DATA},
                   parent_encoding=original)
    encodings = convert_encodings(split.dataset.get("SpecificCharacterSet"))
    for part in (head, tail):  # as read: pydicom then writes raw elements as they are
        part.set_original_encoding(syntax.is_implicit_VR, syntax.is_little_endian, original)
    return [_encode(head, syntax, encodings), split.pixel_element,
            _encode(tail, syntax, encodings)]


def _encode_element(ds: Dataset, tag: int, syntax: UID, charset: object) -> bytes:
    out = DicomBytesIO()
    out.is_little_endian = syntax.is_little_endian
    out.is_implicit_VR = syntax.is_implicit_VR
    element = correct_ambiguous_vr_element(ds[tag], ds, syntax.is_little_endian)
    write_data_element(out, element, charset)  # type: ignore[arg-type]
    return out.getvalue()


def _top_level(raw: bytes, start: int, end: int, syntax: UID) -> dict[int, tuple[int, int]] | None:
    """Where each top-level element of raw[start:end] lies; None when not certain."""
    little = syntax.is_little_endian
    walk = Walk(raw, end, "<" if little else ">", syntax.is_implicit_VR)
    spans: dict[int, tuple[int, int]] = {}
    offset = start
    while offset < end:
        element_end = walk.element(offset, 0)
        if element_end is None:
            return None
        spans[_tag(raw, offset, little)] = (offset, element_end)
        offset = element_end
    return spans


class Walk:
    """Element headers only: finds where elements, items and sequences end.

    pydicom parses an undefined-length sequence when reading and encodes its items again
    when writing: group lengths in them are left out, their elements sorted, delimiters
    written with length 0. The walk goes into those items too and is unsure (None) where
    pydicom would not write back the bytes as they are. Defined-length sequences pydicom
    keeps raw and writes as read, so the walk steps over them.
    """

    MAX_DEPTH = 16

    def __init__(self, raw: bytes, limit: int, order: str, implicit: bool) -> None:
        self.raw, self.limit, self.order, self.implicit = raw, limit, order, implicit
        self.little = order == "<"

    def element(self, offset: int, depth: int) -> int | None:
        """Where the element at `offset` ends."""
        if offset + 8 > self.limit:
            return None
        if self.implicit:
            (length,) = struct.unpack_from(self.order + "L", self.raw, offset + 4)
            value, vr = offset + 8, b""
        else:
            vr = self.raw[offset + 4: offset + 6]
            if not (0x40 < vr[0] < 0x5B and 0x40 < vr[1] < 0x5B):
                return None  # implicit VR after all (allowed in items): pydicom re-encodes it
            if vr in LONG_VRS:
                if offset + 12 > self.limit:
                    return None
                (length,) = struct.unpack_from(self.order + "L", self.raw, offset + 8)
                value = offset + 12
            else:
                (length,) = struct.unpack_from(self.order + "H", self.raw, offset + 6)
                value = offset + 8
        if length != _UNDEFINED:
            return int(value + length) if value + length <= self.limit else None
        if vr == b"UN" or depth >= self.MAX_DEPTH:
            return None  # an undefined-length UN holds implicit VR: leave it to pydicom
        parsed = self._parsed(_tag(self.raw, offset, self.little), vr, value)
        return self.items(value, depth + 1, parsed)

    def _parsed(self, tag: int, vr: bytes, value: int) -> bool:
        """Whether pydicom reads this undefined-length value as a sequence."""
        if not self.implicit:
            return vr == b"SQ"
        try:
            return bool(dictionary_VR(tag) == "SQ")
        except KeyError:  # a private tag: a sequence if an item follows
            return value + 4 <= self.limit and _tag(self.raw, value, self.little) == _ITEM

    def items(self, offset: int, depth: int, parsed: bool) -> int | None:
        """Where the undefined-length value (items, then a sequence delimiter) ends."""
        while offset + 8 <= self.limit:
            tag = _tag(self.raw, offset, self.little)
            (length,) = struct.unpack_from(self.order + "L", self.raw, offset + 4)
            if tag == _SEQUENCE_END:
                return offset + 8 if length == 0 else None  # pydicom writes length 0
            if tag != _ITEM:
                return None
            if not parsed:  # pydicom keeps the value raw, up to the first delimiter tag
                item_end = None if length == _UNDEFINED else offset + 8 + int(length)
            elif length == _UNDEFINED:
                item_end = self.item(offset + 8, None, depth)
            else:
                item_end = self.item(offset + 8, offset + 8 + int(length), depth)
            if item_end is None:
                return None
            offset = item_end
        return None

    def item(self, offset: int, end: int | None, depth: int) -> int | None:
        """Where the sequence item whose elements start at `offset` ends: at `end` (defined
        length) or after its delimiter. None for a group length, elements out of order or
        a delimiter with a length: pydicom would not write them back as they are."""
        limit = self.limit if end is None else end
        previous = -1
        while offset != end:
            if offset + 8 > limit:
                return None
            tag = _tag(self.raw, offset, self.little)
            if end is None and tag == _ITEM_END:
                (length,) = struct.unpack_from(self.order + "L", self.raw, offset + 4)
                return offset + 8 if length == 0 else None
            if tag <= previous or (tag & 0xFFFF == 0 and tag >> 16 > 6):
                return None
            previous = tag
            element_end = self.element(offset, depth)
            if element_end is None or element_end > limit:
                return None
            offset = element_end
        return offset


def _head(raw: bytes, offset: int, implicit: bool,
          little: bool) -> tuple[int, dict[int, tuple[int, int]]] | None:
    """Where the top-level Pixel Data element starts, and the elements before it, found by
    walking element headers; None when there is no Pixel Data or the walk is unsure."""
    if implicit and offset + 6 <= len(raw) and \
            0x40 < raw[offset + 4] < 0x5B and 0x40 < raw[offset + 5] < 0x5B:
        return None  # explicit VR in an implicit VR file, as pydicom sees it: left to pydicom
    walk = Walk(raw, len(raw), "<" if little else ">", implicit)
    spans: dict[int, tuple[int, int]] = {}
    while offset + 8 <= len(raw):
        tag = _tag(raw, offset, little)
        if tag >= PIXEL_DATA:
            return (offset, spans) if tag == PIXEL_DATA else None
        end = walk.element(offset, 0)
        if end is None:
            return None
        spans[tag] = (offset, end)
        offset = end
    return None


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
