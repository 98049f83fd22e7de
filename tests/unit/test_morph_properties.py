"""Property tests: random datasets and values never make `apply` raise, a failed instance
is left exactly as it was, and a morphed instance can always be written and read back."""

from __future__ import annotations

import warnings
from io import BytesIO
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom import dcmread
from pydicom.dataset import Dataset

from runner.morph import MorphConfigError, RuleSet
from runner.morph.charset import FALLBACKS, CharsetFallback
from tests.data.morph.datasets import PATIENT_IDS, SPEC_RULES, cr_instance, encode, rules, with_raw

ELEMENTS = [(0x00080060, "CS"), (0x00080080, "LO"), (0x00080050, "SH"), (0x00100020, "LO"),
            (0x00100010, "PN"), (0x00101000, "LO"), (0x00080020, "DA"), (0x00280010, "US"),
            (0x00200011, "IS"), (0x00180050, "DS"), (0x00081030, "LO"), (0x00090010, "LO"),
            (0x00091001, "LO"), (0x00081032, "SQ"), (0x00080018, "UI"), (0x00200010, "SH")]
CHARSETS = [b"", b"ISO_IR 100", b"ISO_IR 192", b"ISO_IR 6", b"GB18030", b"\\ISO 2022 IR 87",
            b"ISO 2022 IR 6\\ISO 2022 IR 100", b"NONSENSE", b"\xff\xfe"]
EXTRA_RULES: list[dict[str, Any]] = [
    {"when": {"PatientName": {"matches": "^M"}}, "set": {"InstitutionName": "Hôpital 病院"}},
    {"copy": {"from": "SeriesNumber", "to": "Rows"}},
    {"copy": {"from": "StudyDescription", "to": "StudyID"}},
    {"replace": {"tag": "StudyDescription", "pattern": "(a+)", "with": r"<\1>"}},
    {"when": {"SliceThickness": 1, "StudyDate": {"exists": True}},
     "map": {"tag": "AccessionNumber", "table": str(PATIENT_IDS), "missing": "fail"}},
    {"remove_groups": ["0009"]},
]
_RULES = {f: rules(*SPEC_RULES, *EXTRA_RULES, charset_fallback=f) for f in FALLBACKS}

raw_values = st.one_of(
    st.binary(max_size=40),
    st.text(max_size=20).map(lambda t: t.encode("utf-8")),
    st.text(alphabet="ÀÉÖÜßàéöüÿ ^Mac1", max_size=20).map(lambda t: t.encode("latin-1")),
    st.sampled_from([b"CR", b"12345 ", b"PID001", b"Mueller^Hans", b"20190412", b"1",
                     b"\x01\x00", b"1.2.3\x00"]),
)


RawValues = list[tuple[int, str, bytes]]
instances = st.tuples(
    st.sampled_from(CHARSETS),
    st.lists(st.tuples(st.sampled_from(ELEMENTS), raw_values), max_size=10).map(
        lambda pairs: [(tag, vr, value) for (tag, vr), value in pairs]),
)


def _instance(charset: bytes, values: RawValues) -> Dataset:
    """An instance read from bytes, then given raw values as if they had been read too."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom decodes private creators as they are added
        ds = dcmread(BytesIO(encode(cr_instance())))
        with_raw(ds, 0x00080005, "CS", charset)
        for tag, vr, value in values:
            with_raw(ds, tag, vr, value)
    return ds


def _apply_quietly(ruleset: RuleSet, ds: Dataset) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom's complaints about the random input
        return ruleset.apply(ds)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instance=instances, fallback=st.sampled_from(FALLBACKS))
def test_random_instances_never_make_apply_raise(instance: tuple[bytes, RawValues],
                                                 fallback: CharsetFallback) -> None:
    ds = _instance(*instance)
    before = dict(ds._dict)
    result = _apply_quietly(_RULES[fallback], ds)
    assert result.ok or isinstance(result.failed, str)
    if not result.ok:
        assert dict(ds._dict) == before
        assert all(ds._dict[tag] is elem for tag, elem in before.items())
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            encode(ds)  # a morphed instance can always be written


@settings(max_examples=300, deadline=None)
@given(value=st.text(max_size=70), charset=st.sampled_from(["ISO_IR 192", "ISO_IR 100", None]),
       keyword=st.sampled_from(["InstitutionName", "PatientName", "StudyID", "StudyDate",
                                "Rows", "SliceThickness", "Modality", "StudyComments"]))
def test_any_value_set_is_refused_at_compile_failed_or_written_faithfully(
        value: str, charset: str | None, keyword: str) -> None:
    try:
        ruleset = rules({"set": {keyword: value}})
    except MorphConfigError:
        return
    ds = dcmread(BytesIO(encode(cr_instance(SpecificCharacterSet=charset))))
    result = ruleset.apply(ds)
    if result.failed is not None:
        assert "cannot be encoded" in result.failed
        return
    with warnings.catch_warnings():
        # pydicom counts maximum lengths in bytes; the standard (PS3.5 6.2) in characters.
        warnings.simplefilter("ignore")
        back = dcmread(BytesIO(encode(ds)))
    written = back[keyword].value
    expected = value.rstrip(" \x00")  # padding
    expected = expected if keyword == "StudyComments" else expected.lstrip(" ")
    if keyword in ("Rows", "SliceThickness") and expected:
        assert float(written) == float(expected)
    elif keyword == "PatientName":  # trailing empty components and groups may be omitted
        assert _name(str(written)) == _name(expected)
    else:
        assert str(written if written is not None else "") == expected


def _name(text: str) -> str:
    return "=".join(group.rstrip("^ ") for group in text.split("=")).rstrip("=")
