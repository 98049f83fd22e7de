"""Conflicts at the destination, compared: series per instance, Patient ID per study."""

from __future__ import annotations

from runner.execute.conflicts import (
    PATIENT_ID,
    SERIES_UID,
    STUDY_UID,
    ConflictCheck,
    conflicts_elsewhere,
    find_conflicts,
)

BOTH = ConflictCheck(compare_patient=True, compare_series=True)


def held(series: str, patient: str = "P1") -> dict[int, str]:
    return {SERIES_UID: series, PATIENT_ID: patient}


def test_what_the_destination_holds_as_the_source_does_is_no_conflict() -> None:
    source = {"1": held("S1"), "2": held("S1")}
    assert find_conflicts(BOTH, source, {"1": held("S1")}) == []


def test_an_instance_in_another_series_is_a_conflict_naming_both_series() -> None:
    [conflict] = find_conflicts(BOTH, {"1": held("S1")}, {"1": held("S9")})
    assert (conflict.sop_instance_uid, conflict.kind) == ("1", "series")
    assert "series S9, the source in series S1" in conflict.describe()


def test_the_study_under_another_patient_is_a_conflict_without_the_ids() -> None:
    [conflict] = find_conflicts(BOTH, {"1": held("S1", "P1")}, {"2": held("S1", "P2")})
    assert conflict.kind == "patient" and conflict.sop_instance_uid is None
    assert "P1" not in conflict.describe() and "P2" not in conflict.describe()


def test_comparisons_the_rules_make_meaningless_are_left_out() -> None:
    neither = ConflictCheck(compare_patient=False, compare_series=False)
    assert find_conflicts(neither, {"1": held("S1", "P1")}, {"1": held("S9", "P2")}) == []


def test_an_instance_held_in_another_study_is_a_conflict_that_cannot_be_skipped() -> None:
    elsewhere = {"1": {STUDY_UID: "ST9"}, "2": {STUDY_UID: "ST1"}}
    [conflict] = conflicts_elsewhere(BOTH, "ST1", elsewhere)
    assert (conflict.sop_instance_uid, conflict.kind) == ("1", "study")
    assert "in study ST9, the source in study ST1" in conflict.describe()
    assert not conflict.skippable
    assert find_conflicts(BOTH, {"1": held("S1")}, {"1": held("S9")})[0].skippable


def test_instances_elsewhere_are_not_compared_when_the_rules_give_new_uids() -> None:
    new_uids = ConflictCheck(compare_patient=True, compare_series=False)
    assert conflicts_elsewhere(new_uids, "ST1", {"1": {STUDY_UID: "ST9"}}) == []
