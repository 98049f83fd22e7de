"""One instance while rules run on it: reads see earlier rules' edits, and the edits are kept
aside until every rule has succeeded, then committed to the dataset in one go.

Reading never converts an element in the dataset: raw (undecoded) elements are decoded here,
strictly, and stay raw, so the bytes of every element no rule changes are written back as
they were read. Elements read with `defer_size` are the exception: pydicom converts them on
first read.
"""

from __future__ import annotations

import struct
from typing import Any, cast

from pydicom.charset import convert_encodings
from pydicom.dataelem import DataElement, RawDataElement, convert_raw_data_element
from pydicom.dataset import Dataset
from pydicom.errors import BytesLengthException
from pydicom.multival import MultiValue

from runner.dicomdict import describe_tag, vr_of
from runner.morph.charset import (
    FALLBACK_TERMS,
    CharsetFallback,
    Codec,
    codec_for,
    fallback_codec,
    fallback_decode,
)
from runner.morph.errors import InstanceFailure
from runner.morph.vr import (
    ASCII_VRS,
    CHARSET_VRS,
    NUMBER_VRS,
    TEXT_VRS,
    VALUE_VRS,
    count_problem,
    element_value,
    number_text,
    split_values,
    value_problem,
)

CHARSET_TAG = 0x00080005
Element = DataElement | RawDataElement
# What pydicom raises on malformed bytes (a truncated sequence, a number of the wrong length);
# the bytes are in memory, so OSError here means "no tag where one should be".
_CONVERSION_ERRORS = (ValueError, TypeError, KeyError, IndexError, EOFError, OverflowError,
                      NotImplementedError, OSError, struct.error, BytesLengthException)


class InstanceView:
    """A dataset plus the edits rules have made to it so far."""

    def __init__(self, ds: Dataset, fallback: CharsetFallback) -> None:
        self.ds = ds
        self.fallback = fallback
        self.edits: dict[int, DataElement | None] = {}
        self._codec: Codec | None = None
        self._declared = False  # a fallback character set was declared
        self._edited_again: set[int] = set()  # tags whose later edit may undo an earlier one

    # --- reading --------------------------------------------------------------------------

    def element(self, tag: int) -> Element | None:
        """The element as rules see it now (None when absent or deleted)."""
        if tag in self.edits:
            return self.edits[tag]
        # The dataset's own dict: `get_item` would first turn `tag` into a Tag (3x slower).
        elem = cast("dict[int, Element]", self.ds._dict).get(tag)
        if isinstance(elem, RawDataElement) and elem.value is None and elem.length:
            elem = self.ds.get_item(tag)  # a deferred value: let pydicom read it
        return elem

    def elements(self) -> list[tuple[int, Element]]:
        """Every element present now, with its tag (one pass over the dataset).

        The tags are the dataset's own BaseTag keys: looking them up again is an identity
        match, where an int would call BaseTag.__eq__ (Python code) on every lookup.
        """
        edits = self.edits
        present: list[tuple[int, Element]] = []
        for tag, elem in cast("dict[int, Element]", self.ds._dict).items():
            current = edits.get(tag, elem)
            if isinstance(current, RawDataElement) and current.value is None:
                current = self.element(tag)  # deferred: read it
            if current is not None:
                present.append((tag, current))
        added = [(t, e) for t, e in edits.items() if e is not None and t not in self.ds._dict]
        return present + added

    def vr(self, tag: int) -> str | None:
        """The VR of the element present now, or None when it is absent."""
        elem = self.element(tag)
        return None if elem is None else element_vr(elem)

    def values(self, tag: int) -> tuple[str, ...] | None:
        """The element's values as text (None when absent); InstanceFailure if unreadable."""
        elem = self.element(tag)
        if elem is None:
            return None
        if isinstance(elem, RawDataElement):
            return self._raw_values(elem)
        return self._element_values(elem)

    def has_value(self, tag: int) -> bool:
        """Whether the element is present with a value that is not empty or only padding."""
        elem = self.element(tag)
        if elem is None:
            return False
        if isinstance(elem, RawDataElement):
            return bool(elem.value and elem.value.strip(b" \x00"))
        return not elem.is_empty and (not isinstance(elem.value, str) or
                                      bool(elem.value.strip(" \x00")))

    @property
    def codec(self) -> Codec:
        """The character set the instance declares now."""
        if self._codec is None:
            self._codec = codec_for(self._charset_terms())
        return self._codec

    def _charset_terms(self) -> tuple[str, ...]:
        elem = self.element(CHARSET_TAG)
        value: Any = None if elem is None else elem.value
        if isinstance(value, bytes):
            value = value.decode("latin_1")
        if value is not None and not isinstance(value, str):
            value = "\\".join(str(v) for v in value)
        if not value or not value.strip(" \x00\\"):
            return ()
        return tuple(term.strip(" \x00") for term in value.split("\\"))

    def _raw_values(self, raw: RawDataElement) -> tuple[str, ...]:
        vr = element_vr(raw)
        if vr in TEXT_VRS:
            return split_values(vr, self.decode(raw.tag, vr, raw.value or b""))
        return self._element_values(self.convert(raw))

    def _element_values(self, elem: DataElement) -> tuple[str, ...]:
        vr = element_vr(elem)
        if vr not in VALUE_VRS:
            raise InstanceFailure(
                f"{describe_tag(elem.tag)} has VR {vr}: its value cannot be read as text")
        value = elem.value
        items = [] if value is None or value == "" else (
            list(value) if isinstance(value, MultiValue | list | tuple) else [value])
        if vr in NUMBER_VRS:
            return tuple(number_text(v) for v in items)
        texts = [self.decode(elem.tag, vr, v) if isinstance(v, bytes) else str(v)
                 for v in items]
        return split_values(vr, "\\".join(texts))

    def decode(self, tag: int, vr: str, data: bytes) -> str:
        """Bytes of a text element as text, strictly; InstanceFailure when they cannot be."""
        if vr in ASCII_VRS:
            return data.decode("latin_1")
        text = self.codec.decode(data)
        if text is None:
            text = fallback_decode(self.fallback, data)
        if text is None:
            hint = ("; charset_fallback latin1 or utf8 would read it" if self.fallback == "keep"
                    else f", nor as {self.fallback}")
            raise InstanceFailure(f"{describe_tag(tag)} is not valid text in "
                                  f"{self.codec.name}{hint}")
        return text

    def convert(self, raw: RawDataElement) -> DataElement:
        """A raw element converted by pydicom, without storing it in the dataset."""
        # The encoding only matters for sequence items: the one pydicom itself would use.
        encoding = (self.ds.original_character_set or self.ds._character_set
                    if element_vr(raw) == "SQ" else None)
        try:
            return convert_raw_data_element(raw, encoding=encoding, ds=self.ds)
        except _CONVERSION_ERRORS as exc:
            raise InstanceFailure(f"{describe_tag(raw.tag)} cannot be read: {exc}") from None

    # --- editing --------------------------------------------------------------------------

    def put(self, tag: int, vr: str, values: tuple[str, ...]) -> bool:
        """Give the element these values (checked for `vr`); False when nothing changes."""
        for value in values:
            problem = value_problem(vr, value)
            if problem:
                raise InstanceFailure(f"{describe_tag(tag)} cannot be set: {problem}")
        problem = count_problem(tag, len(values))
        if problem:
            raise InstanceFailure(f"{describe_tag(tag)} cannot be set: {problem}")
        if self._current(tag) == (vr, values):
            return False
        if vr in CHARSET_VRS:
            self._ensure_encodable(tag, values)
        self._edit(tag, DataElement(tag, vr, element_value(vr, values)))
        return True

    def remove(self, tag: int) -> bool:
        """Delete the element; False when it is absent."""
        if self.element(tag) is None:
            return False
        self._edit(tag, None)
        return True

    def substitute(self, elem: DataElement) -> None:
        """Replace an element by a new one built elsewhere (a cleaned sequence)."""
        self._edit(int(elem.tag), elem)

    def _edit(self, tag: int, elem: DataElement | None) -> None:
        if tag in self.edits:
            self._edited_again.add(tag)
        self.edits[tag] = elem

    def _current(self, tag: int) -> tuple[str, tuple[str, ...]] | None:
        vr = self.vr(tag)
        try:
            values = self.values(tag)
        except InstanceFailure:
            return None
        return None if vr is None or values is None else (vr, values)

    def _ensure_encodable(self, tag: int, values: tuple[str, ...]) -> None:
        text = "\\".join(values)
        if self.codec.can_encode(text):
            return
        if self._may_declare(text):
            fallback = self.fallback
            self.edits[CHARSET_TAG] = DataElement(CHARSET_TAG, "CS", FALLBACK_TERMS[fallback])
            self._codec = fallback_codec(fallback)
            self._declared = True
            return
        raise InstanceFailure(
            f"the new value of {describe_tag(tag)} cannot be encoded in {self.codec.name}")

    def _may_declare(self, text: str) -> bool:
        """A fallback character set may be declared where none is: the instance's own
        bytes are then taken to be in it (latin1 reads any bytes; utf8 is checked)."""
        if self.fallback == "keep" or self.codec.declares_beyond_ascii:
            return False
        if not fallback_codec(self.fallback).can_encode(text):
            return False
        return self.fallback == "latin1" or self._all_text_is_utf8(self.ds)

    def _all_text_is_utf8(self, ds: Dataset) -> bool:
        for tag in ds.keys():  # noqa: SIM118 - iterating a Dataset converts its elements
            elem = ds.get_item(tag)
            vr = element_vr(elem)
            if isinstance(elem, RawDataElement) and vr in CHARSET_VRS:
                if fallback_decode("utf8", elem.value or b"") is None:
                    return False
            elif vr == "SQ":
                sequence = self.convert(elem) if isinstance(elem, RawDataElement) else elem
                if not all(self._all_text_is_utf8(item) for item in sequence.value):
                    return False
        return True

    def commit(self) -> frozenset[int]:
        """Write the edits into the dataset; the tags whose values really changed.

        An edit made once differs from the original (edits that change nothing are not
        made); a tag edited again may be back where it started, so it is compared.
        """
        original = InstanceView(self.ds, self.fallback)
        effective = {tag: elem for tag, elem in self.edits.items()
                     if tag not in self._edited_again
                     or not self._unchanged(original, tag, elem)}
        for tag, elem in effective.items():
            if elem is None:
                del self.ds[tag]
            else:
                self.ds[tag] = elem
        if self._declared and CHARSET_TAG in effective:
            self._relabel_original_bytes()
        return frozenset(effective)

    def _relabel_original_bytes(self) -> None:
        """Tell pydicom the instance's bytes are in the newly declared character set (the
        fallback's premise), so it writes untouched raw elements as they are instead of
        decoding them with the old declaration and re-encoding them."""
        implicit, little = self.ds.original_encoding
        terms = FALLBACK_TERMS[self.fallback]
        self.ds.set_original_encoding(implicit, little, convert_encodings(terms))

    def _unchanged(self, original: InstanceView, tag: int, elem: DataElement | None) -> bool:
        if elem is None:
            return original.element(tag) is None
        if original.vr(tag) != elem.VR or elem.VR not in VALUE_VRS:
            return False
        try:
            return original.values(tag) == self._element_values(elem)
        except InstanceFailure:
            return False


def element_vr(elem: Element) -> str:
    """An element's VR, looked up in the dictionary for implicit-VR raw elements."""
    return str(elem.VR or vr_of(int(elem.tag)) or "UN")
