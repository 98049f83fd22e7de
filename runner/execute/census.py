"""The plan's census as a ledger fact: every study the source holds, planned or excluded."""

from __future__ import annotations

from collections.abc import Iterator

from runner.inventory.model import Study
from runner.ledger import CensusStudy, CensusTaken
from runner.morph.accession import Accessions
from runner.plan.model import Plan


def census_fact(plan: Plan, command: str, run_id: str | None, accessions: Accessions,
                delta: tuple[int, int, int] | None = None) -> CensusTaken:
    """The census `plan` was compiled from, for the ledger (`delta`: new, changed and gone
    studies, as `sync` found them; `accessions`: how accession numbers are written)."""
    census = plan.census
    new, changed, gone = delta if delta is not None else (None, None, None)
    return CensusTaken(run_id=run_id, command=command, method=census.method,
                       origin=plan.inventory_origin, of_source=census.of_source,
                       queries=census.queries, complete=census.complete, since=census.since,
                       cap=census.cap, gaps=census.gaps,
                       studies=tuple(_studies(plan, accessions)),
                       new_studies=new, changed_studies=changed, gone_studies=gone)


def _studies(plan: Plan, accessions: Accessions) -> Iterator[CensusStudy]:
    for phase in plan.phases:
        for study, device in zip(phase.studies, phase.devices, strict=True):
            yield _row(study, device, "planned", None, None, accessions)
    for excluded in plan.excluded:
        yield _row(excluded.study, excluded.study.device, "excluded", excluded.reason.value,
                   excluded.detail, accessions)


def _row(study: Study, device: str | None, disposition: str, reason: str | None,
         detail: str | None, accessions: Accessions) -> CensusStudy:
    before, after = accessions.before_after(study.study_uid, study.accession,
                                            study.patient_id, study.study_date, study.modality)
    return CensusStudy(study_uid=study.study_uid, study_date=study.study_date,
                       raw_date=study.raw_date, modality=study.modality, tier=study.location,
                       device=device, instances=study.instances, disposition=disposition,
                       reason=reason, detail=detail, accession=before, accession_after=after)
