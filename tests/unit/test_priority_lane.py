"""The priority lane in a run, with a real ledger and a source stubbed at the finder: what it
does with each study a request chose, a request received twice, a patient ID that would
match others, a source that does not answer, and the ledger's account of it all."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from runner.execute.delayqueue import Backoff
from runner.execute.priority.finder import PatientStudies
from runner.execute.priority.lane import PriorityLane, RequestRefused
from runner.execute.state import RetryPolicy, RunState
from runner.execute.work import Stage, StudyWork
from runner.inventory.model import Study
from runner.ledger import (
    CensusStudy,
    CensusTaken,
    Ledger,
    PriorAction,
    RetrievePurpose,
    StudyPlanned,
    VerificationMethod,
)
from runner.ledger.priority_queries import priority_summary, request_rows
from runner.plan.priority import PriorityRequest, PriorRules, Trigger
from runner.profile.tiers import Location


def study(uid: str, year: int = 2020) -> Study:
    return Study(uid, date(year, 1, 1), "CT", 2, 1.0, Location.LOCAL, "dev", "P1")


class StubFinder:
    """The source's answers for the patient, or a failure."""

    def __init__(self, studies: Sequence[Study], ok: bool = True) -> None:
        self.studies, self.ok, self.asked = list(studies), ok, 0

    def find(self, patient_ids: Sequence[str], issuer: str = "",
             body_parts: bool = False) -> PatientStudies:
        self.asked += 1
        if not self.ok:
            return PatientStudies(False, "association refused")
        return PatientStudies(True, "stub", tuple(self.studies))


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with Ledger.open(tmp_path / "ledger.duckdb") as opened:
        opened.start_run(profile_path="p", profile_sha256="0", runner_version="t",
                         command="run")
        yield opened


def lane_for(ledger: Ledger, works: list[StudyWork], finder: StubFinder) -> PriorityLane:
    state = RunState(works, ["local"], ["dev"], ledger, RetryPolicy(3, Backoff(1, 1)))
    return PriorityLane(state, ledger, finder, PriorRules(), [])  # type: ignore[arg-type]


def request(reference: str = "MSG-1", patient: str = "P1") -> PriorityRequest:
    return PriorityRequest(Trigger.HL7, patient, datetime.now(UTC),
                           due=date.today() + timedelta(days=1), reference=reference,
                           event="ORM^O01")


def plan(ledger: Ledger, studies: Sequence[Study], excluded: Sequence[Study] = ()) -> None:
    ledger.upsert_studies(StudyPlanned.from_study(s, phase_index=0, order_index=i)
                          for i, s in enumerate(studies))
    ledger.record(CensusTaken(command="run", method="c-find", origin="t", of_source=True,
                              queries=1, complete=False, studies=tuple(
                                  CensusStudy(study_uid=s.study_uid, study_date=s.study_date,
                                              raw_date="", modality="CT", tier=Location.LOCAL,
                                              device="dev", instances=2,
                                              disposition="excluded", reason="modality")
                                  for s in excluded)))


def test_each_chosen_study_is_queued_left_as_it_is_or_added_as_it_stands(
        ledger: Ledger) -> None:
    queued, flying, failed = study("queued"), study("flying"), study("failed")
    done, excluded, new = study("done"), study("excluded"), study("new", 2026)
    plan(ledger, [queued, flying, failed, done], [excluded])
    ledger.record_study_status("done", "done")  # type: ignore[arg-type]
    works = [StudyWork(s, 0, i, "dev", 2) for i, s in enumerate([queued, flying, failed])]
    works[1].stage, works[2].stage = Stage.RETRIEVING, Stage.FAILED
    lane = lane_for(ledger, works, StubFinder([queued, flying, failed, done, excluded, new]))
    assert lane.submit(request())
    actions = dict(lane.resolve(request(), request().request_id))
    assert actions == {"queued": PriorAction.QUEUED, "flying": PriorAction.UNDER_WAY,
                       "failed": PriorAction.GIVEN_UP, "done": PriorAction.VERIFIED,
                       "excluded": PriorAction.EXCLUDED, "new": PriorAction.ADDED}
    queues = lane.state.queues
    assert queues.peek("dev", {"dev"}) in {"new", "queued"}
    assert lane.state.tally.total == 4 and "new" in lane.state.works
    ledger.flush()
    assert ledger.query("SELECT planned_instances FROM studies WHERE study_uid = 'new'") \
        == [(2,)]
    assert ledger.query("SELECT disposition FROM census_studies WHERE study_uid = 'new'") \
        == [("planned",)]


def test_a_request_received_again_is_kept_and_served_once(ledger: Ledger) -> None:
    lane = lane_for(ledger, [], StubFinder([]))
    assert lane.submit(request())
    assert not lane.submit(request())  # the interface engine resent it
    assert lane.inbox.qsize() == 1
    assert ledger.query("SELECT count(*), min(patient_id) FROM priority_requests") == [
        (1, "P1")]


def test_a_patient_id_with_wildcards_is_refused_and_nothing_is_kept(ledger: Ledger) -> None:
    lane = lane_for(ledger, [], StubFinder([]))
    with pytest.raises(RequestRefused, match="wildcard"):
        lane.submit(request(patient="P*"))
    assert ledger.query("SELECT count(*) FROM priority_requests") == [(0,)]


def test_a_source_that_does_not_answer_leaves_the_request_open_with_its_patient(
        ledger: Ledger) -> None:
    finder = StubFinder([], ok=False)
    lane = lane_for(ledger, [], finder)
    lane.submit(request())
    assert lane.resolve(request(), request().request_id) == []
    ledger.flush()
    assert ledger.query("SELECT resolved_at, patient_id FROM priority_requests") == [
        (None, "P1")]
    assert ledger.query("SELECT count(*) FROM events WHERE kind = 'priority_lookup_failed'"
                        ) == [(1,)]
    assert len(lane._later) == 1  # asked again later


def test_the_ledger_counts_requests_and_the_latency_to_retrieve_and_verified(
        ledger: Ledger) -> None:
    prior = study("prior")
    plan(ledger, [prior])
    lane = lane_for(ledger, [StudyWork(prior, 0, 0, "dev", 2)], StubFinder([prior]))
    lane.submit(request())
    lane.resolve(request(), request().request_id)
    ledger.record_retrieve_started(study_uid="prior", device="dev",
                                   purpose=RetrievePurpose.MIGRATE)
    ledger.record_verification(study_uid="prior", method=VerificationMethod.IMAGE_FIND,
                               expected=2, found=2, ok=True)
    ledger.flush()
    [row] = request_rows(ledger)
    assert (row.outcome, row.chosen, row.to_move, row.verified) == ("resolved", 1, 1, 1)
    assert row.served and row.patient_masked == "**"  # short IDs are hidden whole
    assert 0 <= row.first_retrieve_s <= row.verified_s < 60  # type: ignore[operator]
    summary = priority_summary([row])
    assert (summary.requests, summary.served, summary.by_trigger) == (1, 1, (("hl7", 1),))
    assert ledger.query("SELECT patient_id FROM priority_requests") == [(None,)]
