"""The plan over a census: every study planned or excluded with its reason, undated studies
in view, the exclusion list, and the census in the plan's text and JSON (pure, no network)."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest

from runner.errors import InventoryError
from runner.inventory.exclusions import read_exclusions
from runner.inventory.model import Census, Inventory, Study
from runner.morph.loaded import profile_rules
from runner.plan.compile import compile_plan
from runner.plan.explain import explain, plan_json
from runner.plan.model import ExclusionReason, Plan
from runner.profile.models import SiteProfile
from runner.profile.tiers import Location
from tests.unit.test_forecast import profile

TODAY = date(2026, 12, 4)


def study(uid: str, day: date | None, modality: str = "CT",
          location: Location = Location.LOCAL, raw: str = "") -> Study:
    return Study(uid, day, modality, 4, None, location, raw_date=raw)


SOURCE = (
    study("1.1", date(2010, 5, 5)), study("1.2", None), study("1.3", None, raw="2011"),
    study("1.4", date(1995, 1, 1)), study("1.5", date(2030, 1, 1)),
    study("1.6", date(2012, 1, 1), modality="US"), study("1.7", date(2011, 3, 3)),
    study("1.8", None, location=Location.NEARLINE),
)


def plan_of(site: SiteProfile, exclusions: dict[str, str] | None = None) -> Plan:
    census = Census("C-FIND test", queries=7)
    return compile_plan(site, Inventory(SOURCE, "test", census=census), TODAY, exclusions,
                        rules=profile_rules(site))


def inventory_profile(**inventory: Any) -> SiteProfile:
    base = profile()
    data = base.model_dump(by_alias=True)
    data["source"]["inventory"] = {"from": date(2000, 1, 1), "to": date(2026, 12, 4),
                                   **inventory}
    return SiteProfile.model_validate(data)


def test_every_study_of_the_census_is_planned_or_excluded_with_its_reason() -> None:
    plan = plan_of(inventory_profile(modalities=["CT"]), {"1.7": "test patient"})
    planned = {s.study_uid for p in plan.phases for s in p.studies}
    excluded = {e.study.study_uid: e for e in plan.excluded}
    assert planned | set(excluded) == {s.study_uid for s in SOURCE}
    assert not planned & set(excluded)
    assert plan.source_studies == len(SOURCE)
    assert excluded["1.4"].reason is ExclusionReason.OUTSIDE_WINDOW
    assert "before the inventory's 'from'" in excluded["1.4"].detail
    assert "after the inventory's 'to'" in excluded["1.5"].detail
    assert excluded["1.6"].reason is ExclusionReason.MODALITY and "US" in excluded["1.6"].detail
    assert (excluded["1.7"].reason, excluded["1.7"].detail) == (ExclusionReason.LISTED,
                                                                "test patient")


def test_undated_studies_are_planned_after_the_dated_ones_of_their_tier() -> None:
    plan = plan_of(inventory_profile())
    local = next(p for p in plan.phases if p.tier is Location.LOCAL)
    assert [s.study_uid for s in local.studies] == ["1.1", "1.7", "1.6", "1.2", "1.3"]
    assert (local.undated, plan.undated) == (2, 3)
    assert local.date_span == (date(2010, 5, 5), date(2012, 1, 1))


def test_undated_studies_can_be_excluded_by_the_profile() -> None:
    plan = plan_of(inventory_profile(undated="exclude"))
    undated = [e for e in plan.excluded if e.reason is ExclusionReason.UNDATED]
    assert sorted(e.study.study_uid for e in undated) == ["1.2", "1.3", "1.8"]
    assert plan.undated == 0
    assert "'2011'" in next(e.detail for e in undated if e.study.study_uid == "1.3")


def test_the_plan_says_what_the_source_holds_in_text_and_json() -> None:
    plan = plan_of(inventory_profile())
    text = "\n".join(explain(plan))
    assert "The source holds 8 studies / 32 instances -> planned 6 (3 without a usable " \
           "date), excluded 2" in text
    assert "excluded: 2 outside the inventory window" in text
    census = plan_json(plan)["census"]
    assert (census["studies"], census["planned"], census["excluded"]) == (8, 6, 2)
    assert census["excluded_by_reason"] == {"outside the inventory window": 2}
    assert census["undated_planned"] == 3 and census["complete"]
    assert [p["undated"] for p in plan_json(plan)["phases"]] == [2, 1]


def test_an_incomplete_census_is_said_in_the_plan() -> None:
    census = Census("C-FIND", queries=3, complete=False, gaps=("2010-01-01: refused",))
    site = inventory_profile()
    plan = compile_plan(site, Inventory(SOURCE, "t", census=census), TODAY,
                        rules=profile_rules(site))
    assert any("INCOMPLETE" in line for line in explain(plan))
    assert plan_json(plan)["census"]["gaps"] == ["2010-01-01: refused"]


def test_exclusion_list_reads_uids_and_reasons(tmp_path: Path) -> None:
    path = tmp_path / "excluded.csv"
    path.write_text("StudyInstanceUID,Reason\n1.2.3,QA phantom\n1.2.4,\n\n")
    assert read_exclusions(path) == {"1.2.3": "QA phantom", "1.2.4": ""}
    path.write_text("StudyInstanceUID\n1.2.5\n")
    assert read_exclusions(path) == {"1.2.5": ""}


@pytest.mark.parametrize(("text", "where", "fragment"), [
    ("UID,Reason\n1.2.3,x\n", (1, 1), "header must be"),
    ("StudyInstanceUID,Reason\n1.2.3,x,y\n", (2, 1), "at most 2 fields"),
    ("StudyInstanceUID,Reason\n,why\n", (2, 1), "empty StudyInstanceUID"),
])
def test_a_bad_exclusion_list_names_its_line(tmp_path: Path, text: str,
                                             where: tuple[int, int], fragment: str) -> None:
    path = tmp_path / "excluded.csv"
    path.write_text(text)
    with pytest.raises(InventoryError) as caught:
        read_exclusions(path)
    [problem] = caught.value.problems
    assert (problem.line, problem.column) == where and fragment in problem.message
