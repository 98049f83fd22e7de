"""The morphing preview's counting, masking and sampling, on hand-made headers."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from pathlib import Path

import pytest
from pydicom.dataset import Dataset

from runner.dicom.peer import Peer
from runner.execute.morph_preview import image_query, spread
from runner.inventory.model import Study
from runner.morph import compile_rules
from runner.morph.preview import preview, rule_tags
from runner.plan.model import Phase, Plan, RedatePlan
from runner.profile.morphing import MorphRule
from runner.profile.tiers import Location


def header(sop: str, modality: str, patient_id: str) -> Dataset:
    ds = Dataset()
    ds.SOPInstanceUID = sop
    ds.Modality = modality
    ds.PatientID = patient_id
    ds.InstitutionName = "Old"
    return ds


RULES = compile_rules([
    MorphRule.model_validate({"when": {"Modality": ["CR"]}, "set": {"InstitutionName": "New"}}),
    MorphRule.model_validate({"copy": {"from": "PatientID", "to": "OtherPatientIDs"}}),
])


def fetch_from(answers: dict[str, list[Dataset]]):  # type: ignore[no-untyped-def]
    def fetch(study_uid: str, keys: Sequence[int]) -> list[Dataset]:
        return answers.get(study_uid, [])
    return fetch


def test_rule_tags_include_conditions_copy_sources_and_targets() -> None:
    assert rule_tags(RULES) == sorted({0x00080060, 0x00080080, 0x00100020, 0x00101000})


def test_each_rule_is_counted_and_identifiers_are_masked() -> None:
    answers = {"s1": [header("1.1", "CR", "PAT-SECRET"), header("1.2", "CT", "PAT-SECRET")]}
    result = preview(RULES, ["s1"], fetch_from(answers), sample=10, masked=True)
    assert (result.sampled, result.fired[0], result.fired[1]) == (2, 1, 2)
    text = "\n".join(result.lines())
    assert "PAT-SECRET" not in text and "<masked, 10 characters>" in text
    assert "InstitutionName: 'Old' -> 'New'" in text


def test_unmasked_preview_shows_values() -> None:
    answers = {"s1": [header("1.1", "CR", "PAT-1")]}
    text = "\n".join(preview(RULES, ["s1"], fetch_from(answers), 10, masked=False).lines())
    assert "OtherPatientIDs: '' -> 'PAT-1'" in text


def test_sample_limits_the_number_of_instances() -> None:
    answers = {f"s{i}": [header(f"1.{i}.{j}", "CT", "P") for j in range(5)] for i in range(4)}
    result = preview(RULES, list(answers), fetch_from(answers), sample=7, masked=True)
    assert (result.sampled, result.studies) == (7, 2)


def test_spread_takes_studies_evenly_across_the_plan() -> None:
    studies = tuple(Study(f"1.{i}", date(2010, 1, 1), "CT", 1, 1.0, Location.LOCAL)
                    for i in range(100))
    phase = Phase.of(Location.LOCAL, studies, ("d",) * 100)
    plan = Plan("s", "S", date(2026, 1, 1), "UTC", (phase,), (), (), (),
                RedatePlan(0, 1, None, (), 0.0), RULES, "d", "instances", "csv", ())
    assert spread(plan, 4) == ["1.0", "1.25", "1.50", "1.75"]


def test_image_query_asks_for_each_key_empty_and_skips_private_tags() -> None:
    query = image_query("1.2.3", [0x00080080, 0x00091001])
    assert query.StudyInstanceUID == "1.2.3"
    assert 0x00080080 in query and query[0x00080080].value in (None, "")
    assert 0x00091001 not in query


def test_rules_on_private_attributes_or_whole_groups_are_named_as_not_judged() -> None:
    rules = compile_rules([
        MorphRule.model_validate({"set": {"InstitutionName": "New"}}),
        MorphRule.model_validate({"remove_private": True}),
        MorphRule.model_validate({"delete": ["(0009,1001)"]}),
        MorphRule.model_validate({"remove_groups": ["6000"]}),
    ])
    answers = {"s1": [header("1.1", "CR", "P")]}
    result = preview(rules, ["s1"], fetch_from(answers), sample=10, masked=True)
    assert [index for index, _ in result.unjudged] == [1, 2, 3]
    text = "\n".join(result.lines())
    assert "Rules this preview cannot judge from C-FIND headers:" in text
    assert "  2. RemovePrivate: C-FIND returns no private attributes" in text
    assert "  3. a private attribute: C-FIND returns no private attributes" in text
    assert "C-GET, or C-MOVE to the listener" in text


def test_show_identifiers_turns_masking_off_for_a_local_preview(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from runner.dicom.echo import EchoOutcome
    from runner.dicom.find import FindOutcome
    from runner.dicom.status import StatusCategory
    from runner.execute import morph_preview
    from runner.morph.loaded import load_profile
    from tests.profiles import profile_data, write_profile

    data = profile_data(tmp_path, [("old1", Peer("OLDPACS", "127.0.0.1", 11112))],
                        Peer("NEWVNA", "127.0.0.1", 11113), 11114,
                        morphing=[{"copy": {"from": "PatientID", "to": "OtherPatientIDs"}}])
    loaded = load_profile(write_profile(tmp_path, data))
    monkeypatch.setattr(morph_preview, "c_echo", lambda *_a: EchoOutcome(
        True, StatusCategory.SUCCESS, "", 0.0))
    monkeypatch.setattr(morph_preview, "c_find", lambda *_a: FindOutcome(
        StatusCategory.SUCCESS, 0, "", [header("1.1", "CT", "PAT-SECRET")]))
    studies = (Study("1.0", date(2010, 1, 1), "CT", 1, 1.0, Location.LOCAL),)
    plan = Plan("s", "S", date(2026, 1, 1), "UTC",
                (Phase.of(Location.LOCAL, studies, ("old1",)),), (), (), (),
                RedatePlan(0, 1, None, (), 0.0), loaded.rules, "d", "instances", "csv", ())
    masked = "\n".join(morph_preview.morph_preview_command(loaded, plan, 5).lines())
    shown = "\n".join(morph_preview.morph_preview_command(loaded, plan, 5, True).lines())
    assert "PAT-SECRET" not in masked
    assert "PAT-SECRET" in shown and "--show-identifiers" in shown
