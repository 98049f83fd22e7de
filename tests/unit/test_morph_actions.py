"""Each morph action and condition form, applied to generated instances."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag

from tests.data.morph.datasets import (
    PATIENT_IDS,
    add_private,
    cr_instance,
    reread,
    rules,
    tags_of,
)

pytestmark = pytest.mark.filterwarnings("error")


def _table(tmp_path: Path, text: str) -> str:
    path = tmp_path / "table.csv"
    path.write_text(text, encoding="utf-8")
    return str(path)


# --- set ---------------------------------------------------------------------------------

def test_set_writes_value_and_reports_the_tag() -> None:
    ds = cr_instance()
    result = rules({"set": {"InstitutionName": "Example Hospital"}}).apply(ds)
    assert ds.InstitutionName == "Example Hospital"
    assert result.fired == (0,)
    assert result.changed_tags == {0x00080080}


def test_set_null_leaves_an_empty_element() -> None:
    ds = cr_instance()
    rules({"set": {"InstitutionName": None}}).apply(ds)
    assert "InstitutionName" in ds and ds.InstitutionName == ""


def test_set_creates_an_absent_element_with_its_dictionary_vr() -> None:
    ds = cr_instance(InstitutionName=None)
    rules({"set": {"InstitutionName": "New", "Columns": 512}}).apply(ds)
    assert ds["InstitutionName"].VR == "LO" and ds.InstitutionName == "New"
    assert ds["Columns"].VR == "US" and ds.Columns == 512


def test_set_to_the_value_already_there_does_not_fire() -> None:
    ds = cr_instance(InstitutionName="Same")
    result = rules({"set": {"InstitutionName": "Same"}}).apply(ds)
    assert result.fired == () and result.changed_tags == frozenset()


def test_set_list_gives_several_values() -> None:
    ds = cr_instance()
    rules({"set": {"ImageType": ["DERIVED", "SECONDARY"]}}).apply(ds)
    assert list(ds.ImageType) == ["DERIVED", "SECONDARY"]


def test_set_accepts_tag_forms_as_well_as_keywords() -> None:
    ds = cr_instance()
    rules({"set": {"(0008,0080)": "Parenthesised"}}).apply(ds)
    assert ds.InstitutionName == "Parenthesised"
    rules({"set": {"00081040": "Plain"}}).apply(ds)
    assert ds.InstitutionalDepartmentName == "Plain"


# --- delete ------------------------------------------------------------------------------

def test_delete_removes_keywords_and_tags() -> None:
    ds = cr_instance()
    result = rules({"delete": ["OtherPatientIDs", "(0008,0080)"]}).apply(ds)
    assert "OtherPatientIDs" not in ds and "InstitutionName" not in ds
    assert result.changed_tags == {0x00101000, 0x00080080}


def test_delete_of_an_absent_element_does_not_fire() -> None:
    ds = cr_instance(OtherPatientIDs=None)
    assert rules({"delete": ["OtherPatientIDs"]}).apply(ds).fired == ()


# --- replace -----------------------------------------------------------------------------

def test_replace_uses_regex_groups() -> None:
    ds = cr_instance(AccessionNumber="123456")
    rules({"replace": {"tag": "AccessionNumber", "pattern": r"^(\d+)$",
                       "with": r"EXH\1"}}).apply(ds)
    assert ds.AccessionNumber == "EXH123456"


def test_replace_leaves_values_that_do_not_match() -> None:
    ds = cr_instance(AccessionNumber="A-17")
    result = rules({"replace": {"tag": "AccessionNumber", "pattern": r"^(\d+)$",
                                "with": r"EXH\1"}}).apply(ds)
    assert ds.AccessionNumber == "A-17" and result.fired == ()


def test_replace_rewrites_every_match_in_every_value() -> None:
    ds = cr_instance()
    ds.OtherPatientIDs = ["A-1-2", "B-3"]
    rules({"replace": {"tag": "OtherPatientIDs", "pattern": "-", "with": "_"}}).apply(ds)
    assert list(ds.OtherPatientIDs) == ["A_1_2", "B_3"]


def test_replace_with_named_group() -> None:
    ds = cr_instance(PatientName="Doe^Jane")
    rules({"replace": {"tag": "PatientName", "pattern": r"^(?P<family>\w+)\^(?P<given>\w+)$",
                       "with": r"\g<given>^\g<family>"}}).apply(ds)
    assert str(ds.PatientName) == "Jane^Doe"


def test_replace_result_too_long_for_the_vr_fails_the_instance_unchanged() -> None:
    ds = cr_instance(AccessionNumber="1234567890")
    result = rules({"replace": {"tag": "AccessionNumber", "pattern": r"^(\d+)$",
                                "with": r"\1\1"}}).apply(ds)
    assert result.failed is not None and "longer than 16" in result.failed
    assert result.failed_rule == 0
    assert ds.AccessionNumber == "1234567890"


# --- map ---------------------------------------------------------------------------------

def test_map_looks_values_up_in_the_table() -> None:
    ds = cr_instance(PatientID="PID002")
    result = rules({"map": {"tag": "PatientID", "table": str(PATIENT_IDS)}}).apply(ds)
    assert ds.PatientID == "NEW002" and result.fired == (0,)


def test_map_missing_keep_leaves_the_value() -> None:
    ds = cr_instance(PatientID="UNLISTED")
    result = rules({"map": {"tag": "PatientID", "table": str(PATIENT_IDS),
                            "missing": "keep"}}).apply(ds)
    assert ds.PatientID == "UNLISTED" and result.ok and result.fired == ()


def test_map_missing_blank_empties_the_value() -> None:
    ds = cr_instance(PatientID="UNLISTED")
    rules({"map": {"tag": "PatientID", "table": str(PATIENT_IDS), "missing": "blank"}}).apply(ds)
    assert ds.PatientID == ""


def test_map_missing_fail_fails_without_quoting_the_value() -> None:
    ds = cr_instance(PatientID="UNLISTED")
    result = rules({"map": {"tag": "PatientID", "table": str(PATIENT_IDS),
                            "missing": "fail"}}).apply(ds)
    assert result.failed is not None and "PatientID" in result.failed
    assert "UNLISTED" not in result.failed
    assert ds.PatientID == "UNLISTED"


def test_map_strips_padding_before_lookup(tmp_path: Path) -> None:
    ds = reread(cr_instance(PatientID="PID001 "))
    rules({"map": {"tag": "PatientID", "table": _table(tmp_path, "from,to\nPID001,X\n")}}).apply(ds)
    assert ds.PatientID == "X"


# --- copy --------------------------------------------------------------------------------

def test_copy_gives_the_target_the_source_values() -> None:
    ds = cr_instance(AccessionNumber="ACC1", StudyID=None)
    result = rules({"copy": {"from": "AccessionNumber", "to": "StudyID"}}).apply(ds)
    assert ds.StudyID == "ACC1" and result.changed_tags == {0x00200010}


def test_copy_from_an_absent_source_does_nothing() -> None:
    ds = cr_instance(AccessionNumber=None, StudyID="KEEP")
    result = rules({"copy": {"from": "AccessionNumber", "to": "StudyID"}}).apply(ds)
    assert ds.StudyID == "KEEP" and result.fired == ()


def test_copy_into_a_number_vr_converts_and_checks() -> None:
    ds = cr_instance(SeriesNumber="12")
    rules({"copy": {"from": "SeriesNumber", "to": "Columns"}}).apply(ds)
    assert ds.Columns == 12
    ds.SeriesNumber = "70000"
    result = rules({"copy": {"from": "SeriesNumber", "to": "Columns"}}).apply(ds)
    assert result.failed is not None and "outside the US range" in result.failed


# --- remove_private, remove_groups -----------------------------------------------------------

@pytest.mark.parametrize("from_file", [False, True])
def test_remove_private_removes_private_tags_at_every_depth(from_file: bool) -> None:
    ds = add_private(cr_instance())
    ds = reread(ds) if from_file else ds
    result = rules({"remove_private": True}).apply(ds)
    assert not any(t.is_private for t in map(BaseTag, tags_of(ds)))
    item = ds.ProcedureCodeSequence[0]
    assert not any(t.is_private for t in map(BaseTag, tags_of(item))) and item.CodeValue == "XR123"
    assert {0x00090010, 0x00091001, 0x00081032} <= result.changed_tags


def test_remove_private_without_private_tags_does_not_fire() -> None:
    ds = reread(cr_instance())
    ds.ProcedureCodeSequence = [Dataset()]
    assert rules({"remove_private": True}).apply(ds).fired == ()


def test_remove_groups_removes_whole_groups() -> None:
    ds = add_private(cr_instance())
    ds.add_new(0x60000010, "US", 4)
    rules({"remove_groups": ["6000", "0009"]}).apply(ds)
    assert not any(t.group in (0x6000, 0x0009) for t in map(BaseTag, tags_of(ds)))
    assert "Modality" in ds


# --- conditions --------------------------------------------------------------------------

@pytest.mark.parametrize(("when", "holds"), [
    ({"Modality": "CR"}, True),
    ({"Modality": ["DX", "CR"]}, True),
    ({"Modality": ["CT", "MR"]}, False),
    ({"Modality": {"matches": "^C"}}, True),
    ({"Modality": {"matches": "^R"}}, False),
    ({"Modality": {"matches": "R"}}, True),  # re.search, not fullmatch
    ({"InstitutionName": {"exists": True}}, True),
    ({"InstitutionName": {"exists": False}}, False),
    ({"StationName": {"exists": False}}, True),
    ({"StationName": ""}, True),
    ({"(0008,0060)": "CR"}, True),
    ({"Modality": "CR", "PatientID": "OTHER"}, False),
    ({"Modality": "CR", "PatientID": "PID001"}, True),
    ({"SeriesNumber": 1}, True),
    ({"Rows": 4}, True),
])
def test_condition_forms(when: dict[str, object], holds: bool) -> None:
    ds = cr_instance()
    result = rules({"when": when, "set": {"InstitutionName": "Changed"}}).apply(ds)
    assert (ds.InstitutionName == "Changed") is holds
    assert result.fired == ((0,) if holds else ())


def test_condition_strips_padding_of_raw_values() -> None:
    ds = reread(cr_instance(Modality="CR "))
    rules({"when": {"Modality": "CR"}, "set": {"InstitutionName": "Changed"}}).apply(ds)
    assert ds.InstitutionName == "Changed"


def test_condition_on_multi_valued_element_holds_if_any_value_matches() -> None:
    ds = cr_instance()
    ds.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    rules({"when": {"ImageType": "LOCALIZER"}, "set": {"InstitutionName": "Scout"}}).apply(ds)
    assert ds.InstitutionName == "Scout"


def test_condition_compares_ds_values_as_numbers() -> None:
    ds = cr_instance()
    ds.SliceThickness = "1.50"
    rules({"when": {"SliceThickness": 1.5}, "set": {"InstitutionName": "Thin"}}).apply(ds)
    assert ds.InstitutionName == "Thin"


def test_empty_element_does_not_exist() -> None:
    ds = cr_instance(InstitutionName="")
    rules({"when": {"InstitutionName": {"exists": False}},
           "set": {"InstitutionName": "Filled"}}).apply(ds)
    assert ds.InstitutionName == "Filled"


# --- order ---------------------------------------------------------------------------------

def test_later_rule_sees_earlier_rule_result() -> None:
    ds = cr_instance(Modality="CR", AccessionNumber="77")
    result = rules(
        {"replace": {"tag": "AccessionNumber", "pattern": r"^(\d+)$", "with": r"EXH\1"}},
        {"when": {"AccessionNumber": {"matches": "^EXH"}}, "set": {"StudyID": "migrated"}},
        {"copy": {"from": "StudyID", "to": "StationName"}},
        {"delete": ["StudyID"]},
    ).apply(ds)
    assert ds.AccessionNumber == "EXH77" and ds.StationName == "migrated"
    assert "StudyID" not in ds
    assert result.fired == (0, 1, 2, 3)
    assert 0x00200010 not in result.changed_tags  # created then deleted: no net change


def test_failure_leaves_the_dataset_untouched_even_after_earlier_rules() -> None:
    ds = cr_instance(PatientID="UNLISTED")
    result = rules(
        {"set": {"InstitutionName": "Example Hospital"}},
        {"map": {"tag": "PatientID", "table": str(PATIENT_IDS), "missing": "fail"}},
    ).apply(ds)
    assert result.failed_rule == 1 and result.fired == (0,)
    assert ds.InstitutionName == "Old Clinic"


def test_empty_rule_set_changes_nothing() -> None:
    ds = cr_instance()
    result = rules().apply(ds)
    assert rules().is_empty and result.ok and result.fired == ()


# --- private tags by number ------------------------------------------------------------------

def test_set_on_a_present_private_tag_keeps_its_vr() -> None:
    ds = reread(add_private(cr_instance()))
    result = rules({"set": {"(0009,1001)": "replaced"}}).apply(ds)
    assert result.ok and ds[0x00091001].VR == "LO" and ds[0x00091001].value == "replaced"


def test_set_on_an_absent_private_tag_fails_the_instance() -> None:
    result = rules({"set": {"(0009,1001)": "x"}}).apply(cr_instance())
    assert result.failed is not None and "VR is unknown" in result.failed


def test_delete_removes_a_sequence_attribute() -> None:
    from pydicom.dataset import Dataset as _Dataset
    from pydicom.sequence import Sequence as _Sequence

    from runner.morph import compile_rules as _compile
    from runner.profile.morphing import MorphRule as _Rule

    ds = _Dataset()
    ds.PatientID = "P1"
    item = _Dataset()
    item.PatientID = "OLD-1"
    ds.OtherPatientIDsSequence = _Sequence([item])
    rules = _compile([_Rule.model_validate({"delete": ["OtherPatientIDsSequence"]})])
    result = rules.apply(ds)
    assert result.ok and "OtherPatientIDsSequence" not in ds and ds.PatientID == "P1"
