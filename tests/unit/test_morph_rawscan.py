"""The header-only scan of raw sequences agrees with pydicom's full parse, or says unsure."""

from __future__ import annotations

from io import BytesIO

from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset
from pydicom.filewriter import write_dataset
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag

from runner.morph.rawscan import sequence_has_private

SEQUENCE = 0x00081032
NESTED = 0x0040A730  # ContentSequence


@st.composite
def items(draw: st.DrawFn, depth: int = 0) -> Dataset:
    """A sequence item: plain elements, maybe a private block, maybe a nested sequence."""
    item = Dataset()
    item.is_undefined_length_sequence_item = draw(st.booleans())
    item.CodeValue = draw(st.text(alphabet="ABC123", min_size=1, max_size=9))
    if draw(st.booleans()):
        item.add_new(0x00420011, "OB", draw(st.binary(max_size=12)))  # EncapsulatedDocument
    if draw(st.booleans()):
        item.add_new(0x00190010, "LO", "ACME")
        item.add_new(0x00191001, "DS", "1.5")
    if depth < 2 and draw(st.booleans()):
        nested = draw(st.lists(items(depth + 1), max_size=2))
        item.add_new(NESTED, "SQ", Sequence(nested))
        item[NESTED].is_undefined_length = draw(st.booleans())
    return item


def _has_private(ds: Dataset) -> bool:
    for tag in sorted(ds.keys()):
        if BaseTag(tag).is_private:
            return True
        elem = ds[tag]
        if elem.VR == "SQ" and any(_has_private(item) for item in elem.value):
            return True
    return False


def _raw_sequence(sequence: list[Dataset], implicit: bool) -> RawDataElement:
    """Written and read back; of defined length, as pydicom parses the others while reading
    (nested sequences may have either)."""
    ds = Dataset()
    ds.add_new(SEQUENCE, "SQ", Sequence(sequence))
    out = DicomBytesIO()
    out.is_implicit_VR, out.is_little_endian = implicit, True
    write_dataset(out, ds)
    # read_dataset, not dcmread: a value "DICM" at byte 128 would pass for a preamble
    # (hypothesis found one)
    elem = read_dataset(BytesIO(out.getvalue()), implicit, True).get_item(SEQUENCE)
    assert isinstance(elem, RawDataElement)
    return elem


@settings(max_examples=300, deadline=None)
@given(sequence=st.lists(items(), min_size=1, max_size=3), implicit=st.booleans())
def test_scan_agrees_with_the_full_parse(sequence: list[Dataset], implicit: bool) -> None:
    raw = _raw_sequence(sequence, implicit)
    # Plain little-endian sequences, implicit or explicit VR: the scan always knows.
    assert sequence_has_private(raw) is any(_has_private(item) for item in sequence)


@settings(max_examples=500, deadline=None)
@given(data=st.binary(max_size=64), implicit=st.booleans())
def test_scan_of_garbage_never_raises(data: bytes, implicit: bool) -> None:
    raw = RawDataElement(BaseTag(SEQUENCE), "SQ", len(data), data, 0, implicit, True)
    assert sequence_has_private(raw) in (True, False, None)


def test_scan_of_big_endian_is_unsure() -> None:
    raw = RawDataElement(BaseTag(SEQUENCE), "SQ", 0, b"", 0, False, False)
    assert sequence_has_private(raw) is None


def test_scan_of_a_truncated_sequence_is_unsure() -> None:
    item = Dataset()
    item.CodeValue = "X"
    raw = _raw_sequence([item], implicit=False)
    truncated = raw._replace(value=(raw.value or b"")[:-2])
    assert sequence_has_private(raw) is False
    assert sequence_has_private(truncated) is None
