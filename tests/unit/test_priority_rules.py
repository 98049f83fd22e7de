"""The priority lane's pure core: which of a patient's studies a request moves, the IDs the
source holds the patient under, and one request kept once however often it is received."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from runner.plan.priority import (
    Candidate,
    PriorityRequest,
    PriorRules,
    Trigger,
    choose,
    patient_id_tables,
    source_ids,
)
from tests.data.morph.datasets import rules

NOW = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)


def request(**kw: object) -> PriorityRequest:
    values: dict[str, object] = {"trigger": Trigger.HL7, "patient_id": "P1",
                                 "received_at": NOW, "due": date(2026, 12, 6)}
    values.update(kw)
    return PriorityRequest(**values)  # type: ignore[arg-type]


STUDIES = [Candidate("ct-2025", date(2025, 3, 1), frozenset({"CT"}), frozenset({"CHEST"})),
           Candidate("mr-2024", date(2024, 1, 1), frozenset({"MR"}), frozenset({"HEAD"})),
           Candidate("ct-2010", date(2010, 5, 5), frozenset({"CT", "SR"}), frozenset()),
           Candidate("undated", None, frozenset({"CR"}), frozenset({"CHEST"}))]


def test_every_study_of_the_patient_most_recent_first_undated_last() -> None:
    assert choose(request(), STUDIES, PriorRules()) == [
        "ct-2025", "mr-2024", "ct-2010", "undated"]


def test_at_most_n_of_the_most_recent() -> None:
    assert choose(request(), STUDIES, PriorRules(max_studies=2)) == ["ct-2025", "mr-2024"]


def test_no_older_than_the_age_limit_counted_from_the_due_date() -> None:
    assert choose(request(), STUDIES, PriorRules(max_age_years=5)) == [
        "ct-2025", "mr-2024", "undated"]


def test_same_modality_keeps_studies_holding_that_modality_and_those_that_say_none() -> None:
    rules = PriorRules(same_modality=True)
    assert choose(request(modality="ct"), STUDIES, rules) == ["ct-2025", "ct-2010"]
    assert len(choose(request(modality=""), STUDIES, rules)) == 4  # the order says none


def test_same_body_part_keeps_studies_of_that_part_and_those_with_none_answered() -> None:
    rules = PriorRules(same_body_part=True)
    assert choose(request(body_part="CHEST"), STUDIES, rules) == [
        "ct-2025", "ct-2010", "undated"]


def test_the_new_pacs_id_maps_back_to_the_old_ids_through_the_lookup_tables() -> None:
    tables = [{"OLD-1": "NEW-1", "OLD-1B": "NEW-1", "OLD-2": "NEW-2"}]
    assert source_ids("NEW-1", tables) == ["NEW-1", "OLD-1", "OLD-1B"]
    assert source_ids("OLD-2", tables) == ["OLD-2"]


def test_the_same_request_received_twice_has_one_id_another_differs() -> None:
    first = request(reference="MSG-1")
    again = request(reference="MSG-1", received_at=datetime(2026, 12, 5, 10, tzinfo=UTC))
    assert first.request_id == again.request_id
    assert request(reference="MSG-2").request_id != first.request_id


def test_a_request_needs_a_patient_and_an_aware_time() -> None:
    with pytest.raises(ValueError, match="patient ID"):
        request(patient_id="  ")
    with pytest.raises(ValueError, match="timezone"):
        request(received_at=datetime(2026, 12, 5))


def test_the_tables_are_those_of_the_rules_that_map_patient_id(tmp_path: Path) -> None:
    ids = tmp_path / "ids.csv"
    ids.write_text("from,to\nOLD-1,NEW-1\n", encoding="utf-8")
    other = tmp_path / "inst.csv"
    other.write_text("from,to\nA,B\n", encoding="utf-8")
    compiled = rules({"map": {"tag": "PatientID", "table": str(ids)}},
                     {"map": {"tag": "InstitutionName", "table": str(other)}})
    tables = patient_id_tables(compiled)
    assert [dict(t) for t in tables] == [{"OLD-1": "NEW-1"}]
    assert source_ids("NEW-1", tables) == ["NEW-1", "OLD-1"]
