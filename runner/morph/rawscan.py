"""A header-only walk over a raw sequence's bytes: does any private tag lie inside?

Parsing a sequence with pydicom builds a dataset per item and costs far more than the rest
of a rule set; this walk reads only element headers. It answers False only when it walked
every item to the end and met no odd group; anything it does not plainly understand (big
endian, a truncated value, a UN that the dictionary calls a sequence) answers None, and the
caller parses the sequence properly.
"""

from __future__ import annotations

import struct

from pydicom.dataelem import RawDataElement

from runner.dicomdict import LONG_VRS as _LONG_VRS
from runner.dicomdict import vr_of

_ITEM, _ITEM_END, _SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_UNDEFINED = 0xFFFFFFFF
_TAG = struct.Struct("<HH")
_TAG_LENGTH = struct.Struct("<HHL")
_SHORT_LENGTH = struct.Struct("<H")
_LONG_LENGTH = struct.Struct("<L")


class _Unsure(Exception):
    """The bytes are not what the walk understands: parse them properly instead."""


def sequence_has_private(raw: RawDataElement) -> bool | None:
    """True or False for a little-endian raw sequence value, None when unsure."""
    if not raw.is_little_endian or raw.value is None:
        return None
    walk = _Walk(raw.value, raw.is_implicit_VR)
    try:
        return walk.items(0, len(raw.value))
    except (_Unsure, struct.error):
        return None


class _Walk:
    """The walk over one sequence value; positions are offsets into `data`."""

    def __init__(self, data: bytes, implicit: bool) -> None:
        self.data = data
        self.implicit = implicit
        self.pos = 0

    def items(self, start: int, end: int | None) -> bool:
        """Items from `start` to `end` (None: to the sequence delimiter); leaves `pos` after."""
        self.pos = start
        while end is None or self.pos < end:
            group, element, length = _TAG_LENGTH.unpack_from(self.data, self.pos)
            tag = group << 16 | element
            self.pos += 8
            if tag == _SEQUENCE_END and end is None:
                return False
            if tag != _ITEM:
                raise _Unsure
            item_end = None if length == _UNDEFINED else self._end(length)
            if self.elements(item_end):
                return True
        return self._at(end)

    def elements(self, end: int | None) -> bool:
        """Elements of one item up to `end` (None: to the item delimiter)."""
        while end is None or self.pos < end:
            group, element = _TAG.unpack_from(self.data, self.pos)
            tag = group << 16 | element
            if tag == _ITEM_END and end is None:
                self.pos += 8
                return False
            if group & 1:
                return True
            if self._element(tag):
                return True
        return self._at(end)

    def _element(self, tag: int) -> bool:
        """Step over one element's header and value; True if a private tag is inside."""
        vr, length = self._header(tag)
        nested = vr == "SQ" or (vr == "UN" and vr_of(tag) == "SQ")
        if vr == "UN" and nested:
            raise _Unsure  # pydicom would read it as a sequence in implicit VR
        if length == _UNDEFINED:
            if not nested:
                raise _Unsure
            return self.items(self.pos, None)
        value_end = self._end(length)
        found = nested and self.items(self.pos, value_end)
        self.pos = value_end
        return found

    def _header(self, tag: int) -> tuple[str | None, int]:
        if self.implicit:
            (length,) = _LONG_LENGTH.unpack_from(self.data, self.pos + 4)
            self.pos += 8
            return vr_of(tag), length
        vr = self.data[self.pos + 4:self.pos + 6]
        if vr in _LONG_VRS:
            (length,) = _LONG_LENGTH.unpack_from(self.data, self.pos + 8)
            self.pos += 12
        else:
            (length,) = _SHORT_LENGTH.unpack_from(self.data, self.pos + 6)
            self.pos += 8
        return vr.decode("latin_1"), length

    def _end(self, length: int) -> int:
        end = self.pos + length
        if end > len(self.data):
            raise _Unsure
        return end

    def _at(self, end: int | None) -> bool:
        if end is not None and self.pos != end:
            raise _Unsure
        return False
