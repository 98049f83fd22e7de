"""The split path (runner.dicom.split) against pydicom: a morphed instance re-encoded around
its Pixel Data is byte for byte what pydicom writes for the same morph of the whole file.

Each case builds a Part-10 file (the runner's own file meta, then a data set pydicom
encodes element by element, so group lengths put in the dataset stay in the file), applies
the same rules to `split_instance(raw).dataset` and to `dcmread(raw)`, and compares
`encode_split` with `write_dataset` in the file's transfer syntax. Whether `encode_split`
copied elements from the file or fell back to `_encode_whole` is checked too.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from io import BytesIO
from pathlib import Path
from typing import Any, cast

import pytest
from pydicom import dcmread
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset
from pydicom.filewriter import write_data_element, write_dataset
from pydicom.tag import BaseTag
from pydicom.uid import UID

from runner.dicom import split as split_module
from runner.dicom.part10 import file_meta
from runner.dicom.split import SplitInstance, encode_split, split_instance
from runner.dicom.status import StatusCategory
from runner.dicom.store import StoreClient, StoreOutcome
from runner.dicom.ul import datasets
from runner.execute.sending.prepare import Job, forward_once
from runner.execute.sending.seam import ForwardItem
from runner.morph import CharsetFallback, MorphResult, RuleSet, compile_rules
from runner.profile.morphing import MorphRule

pytestmark = pytest.mark.filterwarnings("error")

EXPLICIT_LE = "1.2.840.10008.1.2.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_BE = "1.2.840.10008.1.2.2"
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
DEFLATED = "1.2.840.10008.1.2.1.99"
NATIVE_SYNTAXES = [EXPLICIT_LE, IMPLICIT_LE, EXPLICIT_BE]
CT_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
SOP_UID = "1.2.826.0.1.3680043.8.498.77"
STUDY_UID = "1.2.826.0.1.3680043.8.498.7"
PIXEL_DATA = 0x7FE00010
TAIL_CREATOR, TAIL_PRIVATE = 0x7FE10010, 0x7FE11010
PADDING = 0xFFFCFFFC  # DataSetTrailingPadding
ITEM, ITEM_END, SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
PROCEDURE_CODES = 0x00081032  # ProcedureCodeSequence
REFERENCED_IMAGES = 0x00081140  # ReferencedImageSequence

Spec = dict[str, Any]


def rules(*specs: Spec, allow_uid_changes: bool = False,
          charset_fallback: CharsetFallback = "keep") -> RuleSet:
    """Rules written as the profile's YAML would parse, compiled."""
    return compile_rules([MorphRule.model_validate(spec) for spec in specs],
                         allow_uid_changes=allow_uid_changes, charset_fallback=charset_fallback)


# --- building files --------------------------------------------------------------------------

def _item(**values: Any) -> Dataset:
    item = Dataset()
    for keyword, value in values.items():
        setattr(item, keyword, value)
    return item


def instance(syntax: str, *, pixels: str = "native", undefined: bool = True,
             charset: str | None = "ISO_IR 100") -> Dataset:
    """A CT instance with sequences of defined and undefined length, private blocks, Pixel
    Data (`native`, `encapsulated` or `none`) and, after it, a private 7FE1 block and
    Data Set Trailing Padding. `undefined`: ProcedureCodeSequence, its nested sequence and
    their items have undefined length (pydicom writes defined lengths by default)."""
    ds = Dataset()
    if charset is not None:
        ds.SpecificCharacterSet = charset
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = CT_STORAGE
    ds.SOPInstanceUID = SOP_UID
    ds.StudyDate = "20240102"
    ds.AccessionNumber = "A-1001"
    ds.Modality = "CT"
    ds.InstitutionName = "Old Clinic"
    ds.StudyDescription = "CHEST"
    ds.add_new(0x00090010, "LO", "ACME 1.0")
    ds.add_new(0x00091001, "LO", "vendor secret")
    ds.PatientName = "Müller^Anna"
    ds.PatientID = "PID-0042"
    ds.StudyInstanceUID = STUDY_UID
    ds.SeriesInstanceUID = STUDY_UID + ".1"
    ds.SeriesNumber = "3"
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows, ds.Columns = 2, 2
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0

    # Always defined length: a defined-length item holding a nested sequence.
    study = _item(ReferencedSOPClassUID="1.2.840.10008.3.1.2.3.1",
                  ReferencedSOPInstanceUID=STUDY_UID)
    study.ReferencedSeriesSequence = [_item(SeriesInstanceUID=STUDY_UID + ".1")]
    ds.ReferencedStudySequence = [study]
    # A nested sequence and a private block inside an item.
    modifier = _item(CodeValue="M1", CodingSchemeDesignator="99ACME", CodeMeaning="Modifier")
    code = _item(CodeValue="CT123", CodingSchemeDesignator="99ACME", CodeMeaning="Chest CT")
    code.add_new(0x00110010, "LO", "ACME 2.0")
    code.add_new(0x00111002, "SH", "nested")
    code.ModifierCodeSequence = [modifier, _item(CodeValue="M2")]
    ds.ProcedureCodeSequence = [code, _item(CodeValue="CT124")]
    if undefined:
        ds["ProcedureCodeSequence"].is_undefined_length = True
        code["ModifierCodeSequence"].is_undefined_length = True
        for item in (code, modifier, ds.ProcedureCodeSequence[1]):
            item.is_undefined_length_sequence_item = True

    little = UID(syntax).is_little_endian
    if pixels == "native":
        ds.PixelData = struct.pack("<4H" if little else ">4H", 1, 2, 3, 4)
        ds["PixelData"].VR = "OW"
    elif pixels == "encapsulated":
        ds.NumberOfFrames = 2
        frames = [b"\xff\xd8first frame\xff\xd9", b"\xff\xd8second\xff\xd9"]
        ds.PixelData = encapsulate(frames, fragments_per_frame=2, has_bot=True)
        ds["PixelData"].VR = "OB"
        ds["PixelData"].is_undefined_length = True
    ds.add_new(TAIL_CREATOR, "LO", "ACME PIXEL")
    ds.add_new(TAIL_PRIVATE, "LO", "tail value")
    ds.add_new(PADDING, "OB", b"\0" * 6)
    return ds


def encoded(ds: Dataset, syntax: str) -> bytes:
    """The elements of `ds`, each written by pydicom, in tag order; unlike write_dataset,
    group lengths in `ds` are written too."""
    uid = UID(syntax)
    out = DicomBytesIO()
    out.is_little_endian, out.is_implicit_VR = uid.is_little_endian, uid.is_implicit_VR
    charset = ds.get("SpecificCharacterSet")
    for tag in sorted(ds.keys()):
        write_data_element(out, ds.get_item(tag), charset)
    return out.getvalue()


def part10(ds: Dataset, syntax: str) -> bytes:
    """A Part-10 file as the spool holds it: the runner's file meta, then the data set."""
    return file_meta(CT_STORAGE, SOP_UID, syntax) + encoded(ds, syntax)


def with_group_lengths(ds: Dataset, syntax: str) -> Dataset:
    """`ds` with a group length element (gggg,0000) for each of its groups above 0006."""
    tags = sorted(ds.keys())
    for group in sorted({tag >> 16 for tag in tags if tag >> 16 > 6}):
        members = [ds.get_item(tag) for tag in tags if tag >> 16 == group]
        length = len(encoded(Dataset({BaseTag(e.tag): e for e in members}), syntax))
        ds.add_new(group << 16, "UL", length)
    return ds


def set_raw(ds: Dataset, tag: int, vr: str, value: bytes, syntax: str,
            length: int | None = None) -> None:
    """Put an element into `ds` as raw bytes, as if read from a file. Straight into the
    dict: Dataset.__setitem__ converts raw private elements."""
    uid = UID(syntax)
    ds._dict[BaseTag(tag)] = RawDataElement(BaseTag(tag), vr, len(value) if length is None
                                            else length, value, 0, uid.is_implicit_VR,
                                            uid.is_little_endian)


def header(tag: int, length: int, little: bool) -> bytes:
    """An item or delimiter header."""
    return struct.pack("<HHL" if little else ">HHL", tag >> 16, tag & 0xFFFF, length)


def item_bytes(elements: bytes, little: bool, undefined: bool, delimiter: int = 0) -> bytes:
    """A sequence item around encoded elements (`delimiter`: the item delimiter's length)."""
    if not undefined:
        return header(ITEM, len(elements), little) + elements
    return header(ITEM, 0xFFFFFFFF, little) + elements + header(ITEM_END, delimiter, little)


def code_item(syntax: str, *, group_length: bool = False) -> bytes:
    """The encoded elements of a code item, with a group length (0008,0000) if asked."""
    item = _item(CodeValue="CT123", CodingSchemeDesignator="99ACME")
    if group_length:
        item.add_new(0x00080000, "UL", 0)  # never checked by pydicom
    return encoded(item, syntax)


# --- the two encoders ------------------------------------------------------------------------

def by_pydicom(raw: bytes, ruleset: RuleSet) -> tuple[bytes, MorphResult]:
    """The whole file read and morphed by pydicom, its data set written in its syntax."""
    ds = dcmread(BytesIO(raw))
    result = ruleset.apply(ds)
    syntax = UID(ds.file_meta.TransferSyntaxUID)
    out = DicomBytesIO()
    out.is_little_endian, out.is_implicit_VR = syntax.is_little_endian, syntax.is_implicit_VR
    write_dataset(out, ds)
    return out.getvalue(), result


def by_split(raw: bytes, ruleset: RuleSet) -> tuple[bytes, MorphResult]:
    """The split path: header morphed, Pixel Data carried as a view of the file."""
    split = split_instance(raw)
    assert split is not None
    result = ruleset.apply(split.dataset)
    parts = encode_split(split, result.changed_tags)
    assert len(parts) == 3
    pixel = parts[1]
    assert isinstance(pixel, memoryview) and pixel.obj is raw  # carried, not copied
    assert bytes(pixel) == raw[split.pixel_start:split.pixel_end]
    return b"".join(parts), result


@pytest.fixture
def whole(monkeypatch: pytest.MonkeyPatch) -> list[SplitInstance]:
    """The instances encode_split gave to `_encode_whole` (pydicom writes everything)."""
    calls: list[SplitInstance] = []
    original = split_module._encode_whole

    def recorded(split: SplitInstance) -> list[bytes | memoryview]:
        calls.append(split)
        return original(split)

    monkeypatch.setattr(split_module, "_encode_whole", recorded)
    return calls


def assert_same(raw: bytes, *specs: Spec, fallback: CharsetFallback = "keep") -> bytes:
    """The split path gives pydicom's bytes for these rules (which must change something);
    returns them."""
    ruleset = rules(*specs, allow_uid_changes=True, charset_fallback=fallback)
    expected, whole_result = by_pydicom(raw, ruleset)
    actual, split_result = by_split(raw, ruleset)
    assert whole_result.ok and split_result.ok
    assert split_result.fired, "the case must fire a rule"
    assert split_result.changed_tags == whole_result.changed_tags
    assert actual == expected
    return actual


# --- rules of every kind, in every encoding ---------------------------------------------------

RULES: dict[str, list[Spec]] = {
    "set-existing-longer": [{"set": {"InstitutionName": "A Much Longer Institution Name"}}],
    "set-existing-shorter": [{"set": {"PatientName": "X", "AccessionNumber": "9"}}],
    "set-non-ascii": [{"set": {"StudyDescription": "Thorax ä"}}],
    "set-new": [{"set": {"StationName": "CT01", "OperatorsName": "Doe^John"}}],
    "set-empty": [{"set": {"InstitutionName": None}}],
    "set-number": [{"set": {"Columns": 512}}],
    "delete": [{"delete": ["StudyDescription", "ReferencedStudySequence"]}],
    "delete-undefined-length-sequence": [{"delete": ["ProcedureCodeSequence"]}],
    "copy": [{"copy": {"from": "PatientID", "to": "OtherPatientIDs"}}],
    "replace": [{"replace": {"tag": "AccessionNumber", "pattern": "^A-", "with": "EXT-"}}],
    "remove-private": [{"remove_private": True}],  # top level, in items, after Pixel Data
    "remove-group": [{"remove_groups": ["0009"]}],
    "set-after-pixel-data": [{"set": {"(7FE1,1010)": "a longer value after the pixels"}}],
    "delete-after-pixel-data": [{"delete": ["DataSetTrailingPadding", "(7FE1,1010)"]}],
    "several": [
        {"when": {"Modality": "CT"}, "set": {"InstitutionName": "Example Hospital"}},
        {"delete": ["StudyDescription"]},
        {"copy": {"from": "AccessionNumber", "to": "StudyID"}},
        {"remove_private": True},
    ],
}
ENCODINGS = {
    "explicit-le": (EXPLICIT_LE, "native"),
    "implicit-le": (IMPLICIT_LE, "native"),
    "explicit-be": (EXPLICIT_BE, "native"),
    "jpeg-encapsulated": (JPEG_BASELINE, "encapsulated"),
}
# In implicit VR a private element's VR is unknown (UN): no rule can write it.
CASES = [(encoding, rule) for encoding in ENCODINGS for rule in RULES
         if (encoding, rule) != ("implicit-le", "set-after-pixel-data")]


@pytest.mark.parametrize("encoding,rule", CASES)
def test_split_gives_the_bytes_pydicom_writes(encoding: str, rule: str,
                                              whole: list[SplitInstance]) -> None:
    syntax, pixels = ENCODINGS[encoding]
    assert_same(part10(instance(syntax, pixels=pixels), syntax), *RULES[rule])
    assert not whole


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_defined_lengths_throughout(encoding: str, whole: list[SplitInstance]) -> None:
    syntax, pixels = ENCODINGS[encoding]
    raw = part10(instance(syntax, pixels=pixels, undefined=False), syntax)
    split = split_instance(raw)
    assert split is not None and b"\xff\xff\xff\xff" not in raw[:split.pixel_start]
    assert_same(raw, *RULES["several"])
    assert not whole


@pytest.mark.parametrize("undefined", [False, True], ids=["defined", "undefined"])
@pytest.mark.parametrize("encoding", ENCODINGS)
def test_the_dataset_is_what_pydicom_reads_from_the_same_bytes(encoding: str,
                                                               undefined: bool) -> None:
    """The split's Dataset, made from the walk's spans, holds the elements pydicom's reader
    makes of the bytes around Pixel Data: raw ones as pydicom's raw ones, sequences of
    undefined length parsed, and the same encodings."""
    syntax, pixels = ENCODINGS[encoding]
    uid = UID(syntax)
    raw = part10(instance(syntax, pixels=pixels, undefined=undefined), syntax)
    split = split_instance(raw)
    assert split is not None and split.head_spans is not None
    read = read_dataset(BytesIO(raw[split.meta.dataset_offset:split.pixel_start]),
                        uid.is_implicit_VR, uid.is_little_endian)
    read._dict.update(read_dataset(BytesIO(raw[split.pixel_end:]), uid.is_implicit_VR,
                                   uid.is_little_endian)._dict)

    tags = list(read.keys())
    assert list(split.dataset.keys()) == tags
    for tag in tags:
        mine, theirs = split.dataset._dict[tag], read._dict[tag]
        assert type(mine) is type(theirs), f"{tag:08X}"
        if isinstance(theirs, RawDataElement):
            assert isinstance(mine, RawDataElement)
            assert mine._replace(value_tell=0) == theirs._replace(value_tell=0), f"{tag:08X}"
        assert split.dataset[tag] == read[tag], f"{tag:08X}"
    assert split.dataset.original_encoding == (uid.is_implicit_VR, uid.is_little_endian)
    assert split.dataset.original_character_set == read.original_character_set


def test_private_elements_cannot_be_written_in_implicit_vr() -> None:
    raw = part10(instance(IMPLICIT_LE), IMPLICIT_LE)
    ruleset = rules(*RULES["set-after-pixel-data"])
    split = split_instance(raw)
    assert split is not None
    failed = ruleset.apply(split.dataset).failed
    assert failed is not None and "VR UN" in failed
    assert by_pydicom(raw, ruleset)[1].failed == failed


def test_the_instances_hold_what_the_cases_need() -> None:
    """Undefined lengths where asked, Pixel Data of both kinds, elements after it."""
    ds = dcmread(BytesIO(part10(instance(EXPLICIT_LE), EXPLICIT_LE)))
    assert ds["ProcedureCodeSequence"].is_undefined_length
    assert ds.ProcedureCodeSequence[0].is_undefined_length_sequence_item
    assert ds.ProcedureCodeSequence[0]["ModifierCodeSequence"].is_undefined_length
    assert not ds["ReferencedStudySequence"].is_undefined_length
    assert [tag for tag in sorted(ds.keys()) if tag > PIXEL_DATA] == [TAIL_CREATOR,
                                                                     TAIL_PRIVATE, PADDING]
    jpeg = split_instance(part10(instance(JPEG_BASELINE, pixels="encapsulated"),
                                 JPEG_BASELINE))
    assert jpeg is not None
    pixel = bytes(jpeg.pixel_element)
    assert pixel[8:12] == b"\xff\xff\xff\xff" and pixel.endswith(header(SEQUENCE_END, 0, True))
    items = pixel.count(header(ITEM, 0, True)[:4])
    assert items == 5  # the basic offset table and two fragments per frame


def test_a_changed_element_after_pixel_data_goes_after_it() -> None:
    """Rules cannot create an element after Pixel Data (no standard tag there takes text or
    numbers; a private one absent from the instance has no known VR), but one the caller
    adds is encoded after the pixels, where pydicom puts it."""
    raw = part10(instance(EXPLICIT_LE), EXPLICIT_LE)
    assert not rules({"set": {"(7FE1,1020)": "new"}}).apply(dcmread(BytesIO(raw))).ok
    for syntax in NATIVE_SYNTAXES:
        raw = part10(instance(syntax), syntax)
        split = split_instance(raw)
        assert split is not None
        split.dataset.add_new(0x7FE11020, "LO", "added after the pixels")
        ds = dcmread(BytesIO(raw))
        ds.add_new(0x7FE11020, "LO", "added after the pixels")
        uid = UID(syntax)
        out = DicomBytesIO()
        out.is_little_endian, out.is_implicit_VR = uid.is_little_endian, uid.is_implicit_VR
        write_dataset(out, ds)
        parts = encode_split(split, frozenset({0x7FE11020}))
        assert b"added after the pixels" in parts[2]
        assert b"".join(parts) == out.getvalue()


# --- group lengths -----------------------------------------------------------------------------

@pytest.mark.parametrize("encoding", ENCODINGS)
def test_group_lengths_are_dropped_as_pydicom_drops_them(
        encoding: str, whole: list[SplitInstance]) -> None:
    syntax, pixels = ENCODINGS[encoding]
    raw = part10(with_group_lengths(instance(syntax, pixels=pixels), syntax), syntax)
    split = split_instance(raw)
    assert split is not None
    assert {0x00080000, 0x00090000, 0x7FE00000, 0x7FE10000} <= set(split.dataset.keys())
    out = assert_same(raw, *RULES["set-existing-longer"])
    assert not whole
    back = dcmread(BytesIO(file_meta(CT_STORAGE, SOP_UID, syntax) + out))
    assert not [tag for tag in sorted(back.keys()) if tag & 0xFFFF == 0]


# --- sequences pydicom writes again ------------------------------------------------------------
# pydicom parses an undefined-length sequence as it reads it, and encodes its items again as
# it writes: group lengths in them are left out, elements sorted, delimiters given length 0.
# A defined-length sequence it keeps raw, and writes back as read.

def _code_sequence(syntax: str, case: str) -> tuple[bytes, bool]:
    """ProcedureCodeSequence items for `case`, and whether the sequence is undefined."""
    little = UID(syntax).is_little_endian
    plain = code_item(syntax)
    if case == "group-length-in-undefined-length-item":
        return item_bytes(code_item(syntax, group_length=True), little, True), True
    if case == "group-length-in-defined-length-item":
        return item_bytes(code_item(syntax, group_length=True), little, False), True
    if case == "group-length-in-defined-length-sequence":
        return item_bytes(code_item(syntax, group_length=True), little, True), False
    if case == "elements-out-of-order":
        first = encoded(_item(CodeValue="CT123"), syntax)
        second = encoded(_item(CodingSchemeDesignator="99ACME"), syntax)
        return item_bytes(second + first, little, True), True
    if case == "item-delimiter-with-a-length":
        return item_bytes(plain, little, True, delimiter=4), True
    assert case == "plain"
    return item_bytes(plain, little, True) + item_bytes(plain, little, False), True


SEQUENCE_CASES = {  # case: whether encode_split leaves it to pydicom
    "plain": False,
    "group-length-in-undefined-length-item": True,
    "group-length-in-defined-length-item": True,
    "group-length-in-defined-length-sequence": False,
    "elements-out-of-order": True,
    "item-delimiter-with-a-length": True,
}


@pytest.mark.parametrize("case", SEQUENCE_CASES)
@pytest.mark.parametrize("syntax", NATIVE_SYNTAXES)
def test_items_pydicom_writes_differently_are_left_to_it(
        syntax: str, case: str, whole: list[SplitInstance]) -> None:
    items, undefined = _code_sequence(syntax, case)
    ds = instance(syntax)
    set_raw(ds, PROCEDURE_CODES, "SQ", items, syntax, 0xFFFFFFFF if undefined else None)
    raw = part10(ds, syntax)
    assert raw.count(b"CT123") == 1 + (case == "plain")
    assert_same(raw, *RULES["set-existing-longer"])
    assert len(whole) == SEQUENCE_CASES[case]


@pytest.mark.parametrize("syntax", NATIVE_SYNTAXES)
def test_a_sequence_delimiter_with_a_length_is_left_to_pydicom(
        syntax: str, whole: list[SplitInstance]) -> None:
    little = UID(syntax).is_little_endian
    ds = instance(syntax)
    items = item_bytes(code_item(syntax), little, True)
    set_raw(ds, PROCEDURE_CODES, "SQ", items, syntax, 0xFFFFFFFF)
    raw = part10(ds, syntax)
    delimited = items + header(SEQUENCE_END, 0, little)
    assert raw.count(delimited) == 1
    raw = raw.replace(delimited, items + header(SEQUENCE_END, 2, little))
    assert_same(raw, *RULES["set-existing-longer"])
    assert len(whole) == 1


@pytest.mark.parametrize("group_length", [False, True], ids=["plain", "group-length"])
def test_a_private_sequence_in_implicit_vr(group_length: bool,
                                           whole: list[SplitInstance]) -> None:
    """Implicit VR, a private tag: pydicom takes an undefined-length value that starts with
    an item for a sequence."""
    items = item_bytes(code_item(IMPLICIT_LE, group_length=group_length), True, True)
    ds = instance(IMPLICIT_LE)
    set_raw(ds, 0x00091002, "SQ", items, IMPLICIT_LE, 0xFFFFFFFF)
    raw = part10(ds, IMPLICIT_LE)
    assert_same(raw, *RULES["set-existing-longer"])
    assert len(whole) == group_length


@pytest.mark.parametrize("elements", [
    code_item(IMPLICIT_LE),
    # Read as explicit VR, these bytes are two elements: (0009,1010) "\x08\0" of length 0
    # and (0009,1011) LO of length 0.
    struct.pack("<HHL", 0x0009, 0x1010, 8) + struct.pack("<HH2sH", 0x0009, 0x1011, b"LO", 0),
], ids=["code-item", "explicit-lookalike"])
def test_an_implicit_vr_item_in_explicit_vr_is_left_to_pydicom(
        elements: bytes, whole: list[SplitInstance]) -> None:
    """Items of an undefined-length sequence may be implicit VR in an explicit VR data set:
    pydicom reads them so (the first element has no VR), and writes them in explicit VR."""
    ds = instance(EXPLICIT_LE)
    set_raw(ds, PROCEDURE_CODES, "SQ", item_bytes(elements, True, True), EXPLICIT_LE,
            0xFFFFFFFF)
    raw = part10(ds, EXPLICIT_LE)
    assert dcmread(BytesIO(raw)).ProcedureCodeSequence[0].original_encoding == (True, True)
    assert_same(raw, *RULES["set-existing-longer"])
    assert len(whole) == 1


def test_an_undefined_length_value_pydicom_keeps_raw(whole: list[SplitInstance]) -> None:
    """Explicit VR OB of undefined length: pydicom reads it raw, up to the first sequence
    delimiter tag. Fragments are stepped over; an undefined-length item (whose nesting
    pydicom would not follow) is left to pydicom."""
    fragments = item_bytes(b"\x01\x02", True, False) + item_bytes(b"", True, False)
    nested = item_bytes(code_item(EXPLICIT_LE), True, True)
    for value, fallback in ((fragments, 0), (nested, 1)):
        ds = instance(EXPLICIT_LE)
        set_raw(ds, 0x00091003, "OB", value, EXPLICIT_LE, 0xFFFFFFFF)
        assert_same(part10(ds, EXPLICIT_LE), *RULES["set-existing-longer"])
        assert len(whole) == fallback


def test_an_undefined_length_un_element_is_left_to_pydicom(
        whole: list[SplitInstance]) -> None:
    """Explicit VR, an undefined-length UN (implicit VR inside): pydicom reads it as a
    sequence and writes it as SQ in explicit VR; the walk leaves it to `_encode_whole`."""
    item = _item(ReferencedSOPClassUID=CT_STORAGE, ReferencedSOPInstanceUID=SOP_UID + ".9")
    ds = instance(EXPLICIT_LE)
    items = item_bytes(encoded(item, IMPLICIT_LE), True, True)
    set_raw(ds, REFERENCED_IMAGES, "UN", items, EXPLICIT_LE, 0xFFFFFFFF)
    raw = part10(ds, EXPLICIT_LE)
    out = assert_same(raw, *RULES["several"])
    assert len(whole) == 1
    assert b"\x08\x00\x40\x11SQ" in out


@pytest.mark.parametrize("charset,text", [
    ("ISO_IR 100", "vendor é  "),
    ("ISO_IR 192", "vendor é   "),
    ("ISO_IR 192", "vendor\0\0"),
], ids=["latin1-spaces", "utf8-spaces", "utf8-nul"])
def test_the_fallback_writes_untouched_elements_as_read(
        charset: str, text: str, whole: list[SplitInstance]) -> None:
    """`_encode_whole` writes untouched elements (private ones before and after Pixel Data
    included) as they were read, like pydicom; converted, they would lose their padding."""
    ds = instance(EXPLICIT_LE, charset=charset)
    items = item_bytes(encoded(_item(ReferencedSOPClassUID=CT_STORAGE), IMPLICIT_LE),
                       True, True)
    set_raw(ds, REFERENCED_IMAGES, "UN", items, EXPLICIT_LE, 0xFFFFFFFF)
    value = text.encode("utf-8" if charset == "ISO_IR 192" else "latin-1")
    for tag in (0x00091001, TAIL_PRIVATE):
        set_raw(ds, tag, "LO", value, EXPLICIT_LE)
    raw = part10(ds, EXPLICIT_LE)
    out = assert_same(raw, {"set": {"InstitutionName": "Example Hospital"}})
    assert len(whole) == 1
    assert len(value) % 2 == 0 and out.count(struct.pack("<H", len(value)) + value) == 2


@pytest.mark.parametrize("fallback", [False, True], ids=["copied", "whole"])
def test_a_declared_fallback_character_set(fallback: bool,
                                           whole: list[SplitInstance]) -> None:
    """No SpecificCharacterSet, a non-ASCII value set with charset_fallback latin1: the
    rules declare ISO_IR 100, and the instance's bytes are taken to be in it."""
    ds = instance(EXPLICIT_LE, charset=None)
    if fallback:
        items = item_bytes(encoded(_item(ReferencedSOPClassUID=CT_STORAGE), IMPLICIT_LE),
                           True, True)
        set_raw(ds, REFERENCED_IMAGES, "UN", items, EXPLICIT_LE, 0xFFFFFFFF)
    raw = part10(ds, EXPLICIT_LE)
    out = assert_same(raw, {"set": {"InstitutionName": "Klinik Süd"}}, fallback="latin1")
    assert len(whole) == fallback
    assert b"ISO_IR 100" in out and "Klinik Süd".encode("latin-1") in out


# --- what is not split, and rules that read Pixel Data ------------------------------------------

@pytest.mark.parametrize("rule", RULES)
def test_deflated_file_is_inflated_split_morphed_and_deflated_again(
        rule: str, whole: list[SplitInstance]) -> None:
    """The data set sent is deflated, of even length, and inflates to pydicom's bytes."""
    raw = file_meta(CT_STORAGE, SOP_UID, DEFLATED) + \
        datasets.deflate(encoded(instance(EXPLICIT_LE), EXPLICIT_LE))
    ruleset = rules(*RULES[rule], allow_uid_changes=True)
    expected, _ = by_pydicom(raw, ruleset)  # pydicom inflates; written as Explicit VR LE
    split = split_instance(raw)
    assert split is not None
    result = ruleset.apply(split.dataset)
    assert result.fired
    [sent] = encode_split(split, result.changed_tags)
    assert len(sent) % 2 == 0
    assert datasets.inflate(sent) == expected
    assert not whole


@pytest.mark.parametrize("syntax", NATIVE_SYNTAXES)
def test_files_without_pixel_data_are_not_split(syntax: str) -> None:
    assert split_instance(part10(instance(syntax, pixels="none"), syntax)) is None
    assert split_instance(file_meta(CT_STORAGE, SOP_UID, syntax)) is None


@pytest.mark.parametrize("spec", [
    {"when": {"PixelData": {"exists": True}}, "set": {"InstitutionName": "X"}},
    {"delete": ["PixelData"]},
    {"remove_groups": ["7FE0"]},
], ids=["condition", "delete", "remove-group"])
def test_rules_naming_pixel_data_read_it(spec: Spec) -> None:
    assert rules(spec).reads_pixel_data


@pytest.mark.parametrize("rule", RULES)
def test_other_rules_do_not_read_pixel_data(rule: str) -> None:
    assert not rules(*RULES[rule]).reads_pixel_data


# --- the forwarder -----------------------------------------------------------------------------

class RecordingClient:
    """Records `store_parts` calls; the other ways of storing must not be used."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str, bytes]] = []

    def store_parts(self, sop_class_uid: str, sop_instance_uid: str, transfer_syntax: str,
                    parts: Sequence[bytes | memoryview]) -> StoreOutcome:
        self.calls.append((sop_class_uid, sop_instance_uid, transfer_syntax,
                           b"".join(parts)))
        return StoreOutcome(sop_instance_uid, StatusCategory.SUCCESS, 0, "stored", 0.0, False)

    def store_file(self, *_args: object) -> StoreOutcome:
        raise AssertionError("an instance a rule changed must not be sent as received")

    def store_dataset(self, *_args: object) -> StoreOutcome:
        raise AssertionError("the split path must not have pydicom encode the instance")


@pytest.mark.parametrize("encoding", ["explicit-le", "jpeg-encapsulated"])
def test_forward_once_sends_the_split_bytes(encoding: str, tmp_path: Path) -> None:
    syntax, pixels = ENCODINGS[encoding]
    raw = part10(instance(syntax, pixels=pixels), syntax)
    path = tmp_path / "instance.dcm"
    path.write_bytes(raw)
    ruleset = rules(*RULES["several"])
    expected, _ = by_pydicom(raw, ruleset)
    client = RecordingClient()
    item = ForwardItem(SOP_UID, STUDY_UID, CT_STORAGE, syntax, path, "instance.dcm")
    attempt = forward_once(cast(StoreClient, client), Job(ruleset), item)
    assert attempt.ok, attempt.detail
    assert client.calls == [(CT_STORAGE, SOP_UID, syntax, expected)]
