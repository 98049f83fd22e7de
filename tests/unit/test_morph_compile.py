"""Compiling morph rules: static VR checks, lookup tables, identity opt-in, descriptions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from runner.morph import MorphConfigError, compile_rules
from runner.profile.morphing import MorphRule
from tests.data.morph.datasets import PATIENT_IDS, SPEC_RULES, rules


def _refused(*specs: dict[str, Any], allow_uid_changes: bool = False) -> MorphConfigError:
    with pytest.raises(MorphConfigError) as caught:
        rules(*specs, allow_uid_changes=allow_uid_changes)
    return caught.value


def _table(tmp_path: Path, text: str | bytes) -> str:
    path = tmp_path / "ids.csv"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return str(path)


# --- VR checks of set values ---------------------------------------------------------------

@pytest.mark.parametrize(("name", "value", "reason"), [
    ("Rows", "abc", "not a whole number"),
    ("Rows", 70000, "outside the US range"),
    ("StudyDate", "2019-04-12", "a date YYYYMMDD"),
    ("StudyDate", "20190231", "not a calendar date"),
    ("StudyTime", "25", "a time HHMMSS"),
    ("ReferencedSOPClassUID", "1.2.abc", "a UID"),
    ("AccessionNumber", "X" * 17, "longer than 16 characters"),
    ("InstitutionName", "X" * 65, "longer than 64 characters"),
    ("Modality", "ct", "upper-case letters"),
    ("PatientAge", "45", "an age"),
    ("SliceThickness", "thin", "a decimal number"),
    ("SeriesNumber", "1.5", "a whole number"),
    ("InstitutionName", "line\nbreak", "control character"),
])
def test_set_value_invalid_for_the_vr_is_refused(name: str, value: object, reason: str) -> None:
    error = _refused({"set": {name: value}})
    assert reason in error.message and name in error.message
    assert error.rule_index == 0 and error.loc == ("morphing", 0, "set", name)


def test_set_with_too_many_values_for_the_multiplicity_is_refused() -> None:
    assert "multiplicity" in _refused({"set": {"Modality": ["CR", "DX"]}}).message


def test_set_on_a_sequence_or_binary_tag_is_refused() -> None:
    assert "VR SQ" in _refused({"set": {"ProcedureCodeSequence": "x"}}).message
    assert "VR OW" in _refused({"set": {"(7FE0,0010)": "x"}}).message.replace("OB or OW", "OW")


def test_valid_set_values_compile() -> None:
    ruleset = rules({"set": {"Rows": 512, "StudyDate": "20190412", "SliceThickness": 1.25,
                             "PatientName": "Doe^Jane", "ImageType": "DERIVED\\SECONDARY"}})
    assert ruleset.touched_tags == {0x00280010, 0x00080020, 0x00180050, 0x00100010,
                                    0x00080008}


def test_the_error_names_the_rule_index() -> None:
    error = _refused({"delete": ["OtherPatientIDs"]}, {"set": {"Rows": "x"}})
    assert error.rule_index == 1 and str(error).startswith("morphing[1]: ")


def test_character_set_is_not_a_rule_target() -> None:
    assert "charset_fallback" in _refused({"set": {"SpecificCharacterSet": "ISO_IR 192"}}).message


# --- identity ------------------------------------------------------------------------------

@pytest.mark.parametrize("spec", [
    {"replace": {"tag": "StudyInstanceUID", "pattern": "^1", "with": "2"}},
    {"map": {"tag": "SeriesInstanceUID", "table": str(PATIENT_IDS)}},
    {"copy": {"from": "StudyInstanceUID", "to": "SOPInstanceUID"}},
    {"set": {"StudyInstanceUID": "1.2.3"}},
])
def test_uid_change_without_opt_in_is_refused_and_explains_the_opt_in(
        spec: dict[str, Any]) -> None:
    assert "allow_uid_changes" in _refused(spec).message


def test_uid_change_with_opt_in_compiles_and_is_flagged() -> None:
    ruleset = rules({"replace": {"tag": "StudyInstanceUID", "pattern": "^1", "with": "2"}},
                    allow_uid_changes=True)
    assert ruleset.changes_identity
    assert not rules({"set": {"InstitutionName": "x"}}).changes_identity


def test_fixed_sop_instance_uid_is_refused_even_with_opt_in() -> None:
    error = _refused({"set": {"SOPInstanceUID": "1.2.3"}}, allow_uid_changes=True)
    assert "same identity" in error.message


@pytest.mark.parametrize("spec", [
    {"delete": ["SOPInstanceUID"]},
    {"remove_groups": ["0020"]},
    {"remove_groups": ["0008"]},
    {"remove_groups": ["0002"]},
])
def test_removing_identity_is_refused(spec: dict[str, Any]) -> None:
    _refused(spec, allow_uid_changes=True)


# --- regex, copy ---------------------------------------------------------------------------

def test_replacement_referring_to_a_missing_group_is_refused() -> None:
    error = _refused({"replace": {"tag": "AccessionNumber", "pattern": r"^(\d+)$",
                                  "with": r"EXH\2"}})
    assert error.loc == ("morphing", 0, "replace", "with")


def test_copy_onto_itself_is_refused() -> None:
    assert "onto itself" in _refused({"copy": {"from": "StudyID", "to": "StudyID"}}).message


def test_copy_from_a_sequence_is_refused() -> None:
    _refused({"copy": {"from": "ProcedureCodeSequence", "to": "StudyID"}})


def test_condition_comparing_a_sequence_is_refused_but_exists_is_fine() -> None:
    _refused({"when": {"ProcedureCodeSequence": "x"}, "delete": ["StudyID"]})
    rules({"when": {"ProcedureCodeSequence": {"exists": True}}, "delete": ["StudyID"]})


# --- lookup tables -------------------------------------------------------------------------

def test_table_with_conflicting_duplicate_names_both_lines(tmp_path: Path) -> None:
    table = _table(tmp_path, "from,to\nA,X\nB,Y\nA,Z\n")
    error = _refused({"map": {"tag": "PatientID", "table": table}})
    assert "line 4" in error.message and "line 2" in error.message and table in error.message
    assert "'A'" not in error.message  # table values may identify patients


def test_table_with_repeated_identical_rows_is_accepted(tmp_path: Path) -> None:
    table = _table(tmp_path, "from,to\nA,X\nA,X\n")
    assert "(1 entry)" in rules({"map": {"tag": "PatientID", "table": table}}).describe()[0]


@pytest.mark.parametrize(("text", "reason"), [
    ("source,target\nA,X\n", "header"),
    ("", "header"),
    ("from,to\nA,X,extra\n", "line 2: 3 columns"),
    (b"from,to\n\xff\xfe,X\n", "not UTF-8"),
])
def test_invalid_table_is_refused(tmp_path: Path, text: str | bytes, reason: str) -> None:
    error = _refused({"map": {"tag": "PatientID", "table": _table(tmp_path, text)}})
    assert reason in error.message and error.loc == ("morphing", 0, "map", "table")


def test_table_to_value_invalid_for_the_vr_is_refused(tmp_path: Path) -> None:
    table = _table(tmp_path, "from,to\nA,X\nB," + "Y" * 17 + "\n")
    error = _refused({"map": {"tag": "AccessionNumber", "table": table}})
    assert "line 3" in error.message and "longer than 16" in error.message


def test_table_with_bom_blank_lines_and_quotes_loads(tmp_path: Path) -> None:
    table = _table(tmp_path, '\ufefffrom,to\n\n"A, 1",X\n B , Y \n')
    ruleset = rules({"map": {"tag": "PatientID", "table": table}})
    assert "(2 entries)" in ruleset.describe()[0]


def test_table_removed_after_validation_is_a_config_error(tmp_path: Path) -> None:
    table = Path(_table(tmp_path, "from,to\nA,X\n"))
    model = MorphRule.model_validate({"map": {"tag": "PatientID", "table": str(table)}})
    table.unlink()
    with pytest.raises(MorphConfigError, match="cannot be read"):
        compile_rules([model])


# --- describe ------------------------------------------------------------------------------

def test_describe_reads_like_the_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(PATIENT_IDS.parent.parent.parent.parent)
    described = rules(*SPEC_RULES).describe()
    assert described == [
        "If Modality is CR or DX: set InstitutionName to 'Example Hospital'",
        r"Replace AccessionNumber matching ^(\d+)$ with EXH\1",
        "Map PatientID through tests/data/morph/patient-ids.csv (2 entries); "
        "keep the value when missing",
        "Delete OtherPatientIDs",
        "Remove all private tags",
    ]


def test_describe_other_forms() -> None:
    described = rules(
        {"when": {"StationName": {"exists": False}, "Modality": {"matches": "^C"}},
         "set": {"StationName": None, "Rows": 2}},
        {"copy": {"from": "AccessionNumber", "to": "StudyID"}},
        {"remove_groups": ["6000", "0009"]},
        {"delete": ["OtherPatientIDs", "(0008,0080)"]},
    ).describe()
    assert described == [
        "If StationName is absent or empty and Modality matches ^C: "
        "set StationName to empty and Rows to '2'",
        "Copy AccessionNumber to StudyID",
        "Remove groups 6000 and 0009",
        "Delete OtherPatientIDs and InstitutionName",
    ]


def test_compiling_twice_gives_equal_rule_sets() -> None:
    assert rules(*SPEC_RULES) == rules(*SPEC_RULES)
    assert rules(*SPEC_RULES) != rules(*SPEC_RULES[:4])
