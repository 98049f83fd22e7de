"""Character sets: values read and written in the instance's declared character set,
legacy bytes that do not fit it handled by charset_fallback, never by crashing."""

from __future__ import annotations

import warnings
from io import BytesIO
from typing import Any

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag

from runner.morph.charset import CharsetFallback
from tests.data.morph.datasets import (
    add_private,
    cr_instance,
    encode,
    raw_bytes,
    reread,
    rules,
    tags_of,
    with_raw,
)

NAME = 0x00100010
INSTITUTION = 0x00080080
CHARSET = 0x00080005
DESCRIPTION = 0x00081030
# pydicom warns when it decodes or encodes lossily; the engine must never make it.
pytestmark = pytest.mark.filterwarnings("error")

LATIN1_NAME = "Müller^Heinz".encode("latin-1")  # even length, as DICOM values are


def _instance(charset: str | None, **values: Any) -> Dataset:
    """An instance read from bytes, declaring `charset` (None: no declaration)."""
    return reread(cr_instance(SpecificCharacterSet=charset, **values))


def _written(ds: Dataset) -> Dataset:
    return dcmread(BytesIO(encode(ds)))


def test_latin1_value_is_read_and_written_in_latin1() -> None:
    ds = _instance("ISO_IR 100", PatientName="Müller^Hans")
    result = rules({"replace": {"tag": "PatientName", "pattern": "^Müller",
                                "with": "Lüdenscheid"}}).apply(ds)
    assert result.ok and result.fired == (0,)
    assert raw_bytes(ds, NAME) == "Lüdenscheid^Hans".encode("latin-1")


def test_utf8_value_is_read_and_written_in_utf8() -> None:
    ds = _instance("ISO_IR 192", InstitutionName="Szpital Łódź")
    ruleset = rules({"when": {"InstitutionName": "Szpital Łódź"},
                     "set": {"InstitutionName": "Hôpital Saint-Éloi 病院"}})
    assert ruleset.apply(ds).ok
    assert raw_bytes(ds, INSTITUTION).rstrip(b" ") == "Hôpital Saint-Éloi 病院".encode()


def test_value_not_encodable_in_the_declared_charset_fails_and_changes_nothing() -> None:
    ds = _instance("ISO_IR 100")
    result = rules({"set": {"InstitutionName": "Szpital Łódź"}}).apply(ds)
    assert result.failed is not None and "ISO_IR 100" in result.failed
    assert ds.InstitutionName == "Old Clinic"


def test_non_ascii_value_without_declared_charset_fails_under_keep() -> None:
    ds = _instance(None)
    result = rules({"set": {"InstitutionName": "Hôpital"}}).apply(ds)
    assert result.failed is not None and "default repertoire" in result.failed
    assert CHARSET not in ds


@pytest.mark.parametrize("fallback", ["keep", "latin1", "utf8"])
def test_invalid_bytes_in_an_untouched_element_are_written_back_unchanged(
        fallback: CharsetFallback) -> None:
    ds = with_raw(_instance("ISO_IR 192"), NAME, "PN", LATIN1_NAME)
    result = rules({"set": {"InstitutionName": "Example Hospital"}},
                   charset_fallback=fallback).apply(ds)
    assert result.ok and result.changed_tags == {INSTITUTION}
    assert raw_bytes(ds, NAME) == LATIN1_NAME


def test_invalid_bytes_in_a_touched_element_fail_under_keep_naming_the_option() -> None:
    ds = with_raw(_instance("ISO_IR 192"), NAME, "PN", LATIN1_NAME)
    result = rules({"replace": {"tag": "PatientName", "pattern": "^M", "with": "m"}}).apply(ds)
    assert result.failed is not None
    assert "PatientName" in result.failed and "charset_fallback" in result.failed
    assert "Müller" not in result.failed


def test_invalid_bytes_in_a_condition_fail_under_keep() -> None:
    ds = with_raw(_instance("ISO_IR 192"), NAME, "PN", LATIN1_NAME)
    result = rules({"when": {"PatientName": {"matches": "^M"}},
                    "set": {"InstitutionName": "x"}}).apply(ds)
    assert result.failed is not None and result.failed_rule == 0


def test_latin1_fallback_reads_legacy_bytes_and_writes_the_declared_charset() -> None:
    ds = with_raw(_instance("ISO_IR 192"), NAME, "PN", LATIN1_NAME)
    result = rules({"replace": {"tag": "PatientName", "pattern": r"\^Heinz$",
                                "with": "^Heinz Jürgen"}}, charset_fallback="latin1").apply(ds)
    assert result.ok
    assert raw_bytes(ds, NAME).rstrip(b" ") == "Müller^Heinz Jürgen".encode()


def test_utf8_fallback_cannot_read_latin1_bytes() -> None:
    ds = with_raw(_instance("ISO_IR 100"), NAME, "PN", b"caf\xc3\xa9")
    with_raw(ds, DESCRIPTION, "LO", b"\xff\xfe")
    ruleset = rules({"copy": {"from": "StudyDescription", "to": "InstitutionName"}},
                    charset_fallback="utf8")
    # Latin-1 decodes any byte: ISO_IR 100 bytes are never invalid, so no fallback.
    assert ruleset.apply(ds).ok and ds.InstitutionName == "ÿþ"
    ds = with_raw(_instance("ISO_IR 192"), DESCRIPTION, "LO", b"\xff\xfe")
    result = ruleset.apply(ds)
    assert result.failed is not None and "nor as utf8" in result.failed


def test_latin1_fallback_declares_iso_ir_100_where_nothing_is_declared() -> None:
    ds = with_raw(_instance(None), NAME, "PN", LATIN1_NAME)
    ruleset = rules({"set": {"InstitutionName": "Hôpital"}}, charset_fallback="latin1")
    assert CHARSET in ruleset.touched_tags
    result = ruleset.apply(ds)
    assert result.ok and result.changed_tags == {INSTITUTION, CHARSET}
    back = _written(ds)
    assert back.SpecificCharacterSet == "ISO_IR 100"
    assert back.InstitutionName == "Hôpital" and str(back.PatientName) == "Müller^Heinz"
    assert raw_bytes(ds, NAME) == LATIN1_NAME


def test_utf8_fallback_declares_iso_ir_192_only_if_all_text_is_utf8() -> None:
    ruleset = rules({"set": {"InstitutionName": "Hôpital"}}, charset_fallback="utf8")
    ds = with_raw(_instance(None), NAME, "PN", "Zoë^Anna".encode())
    assert ruleset.apply(ds).ok and _written(ds).SpecificCharacterSet == "ISO_IR 192"
    assert str(_written(ds).PatientName) == "Zoë^Anna"
    ds = with_raw(_instance(None), NAME, "PN", LATIN1_NAME)
    result = ruleset.apply(ds)
    assert result.failed is not None and CHARSET not in ds


def test_utf8_fallback_checks_text_inside_sequences_before_declaring() -> None:
    ds = reread(add_private(cr_instance(SpecificCharacterSet=None)))
    item = ds.ProcedureCodeSequence[0]
    with_raw(item, 0x00080104, "LO", b"R\xf6ntgen")  # CodeMeaning, Latin-1
    result = rules({"set": {"InstitutionName": "Hôpital"}}, charset_fallback="utf8").apply(ds)
    assert result.failed is not None


def test_unknown_declared_charset_keeps_ascii_working_and_refuses_the_rest() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom's own complaint while making the fixture
        ds = _instance("ISO-IR 999")
    assert rules({"set": {"InstitutionName": "Plain"}}).apply(ds).ok
    result = rules({"set": {"InstitutionName": "Hôpital"}}, charset_fallback="latin1").apply(ds)
    assert result.failed is not None and "ISO-IR 999" in result.failed


def test_remove_private_keeps_nested_latin1_text_intact() -> None:
    ds = add_private(cr_instance())
    ds.ProcedureCodeSequence[0].CodeMeaning = "Röntgen Thorax"
    ds = reread(ds)
    assert rules({"remove_private": True}).apply(ds).ok
    item = _written(ds).ProcedureCodeSequence[0]
    assert item.CodeMeaning == "Röntgen Thorax"
    assert not any(t.is_private for t in map(BaseTag, tags_of(item)))


def test_iso_2022_japanese_value_is_compared_after_decoding() -> None:
    ds = _instance(None)
    ds.SpecificCharacterSet = ["", "ISO 2022 IR 87"]
    with_raw(ds, NAME, "PN", b"Yamada^Tarou=\x1b$B;3ED\x1b(B^\x1b$B#E<Y\x1b(B")
    ruleset = rules({"when": {"PatientName": {"matches": "^Yamada\\^Tarou=山田"}},
                     "set": {"InstitutionName": "Matched"}})
    assert ruleset.apply(ds).ok and ds.InstitutionName == "Matched"
