"""reconciliation.csv names each study's Accession Number as the old PACS answered it and as
the rules make it (masked unless `mask_identifiers: false`), Orthanc -> runner -> Orthanc;
the "after" column agrees with what the destination holds."""

from __future__ import annotations

import csv
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest

from runner.morph.accession import masked
from runner.sim.generate import synthetic_archive
from tests.integration.test_migration import make_site
from tests.peers import OrthancProcess

pytestmark = pytest.mark.peers

RULE = [{"replace": {"tag": "AccessionNumber", "pattern": r"^(\d+)$", "with": r"EXH\1"}}]


@pytest.mark.parametrize("mask", [True, False])
def test_the_reconciliation_names_the_accession_before_and_after_the_rules(
        tmp_path: Path, orthanc_factory: Callable[..., OrthancProcess], mask: bool) -> None:
    specs = synthetic_archive("accession", 3, date(2014, 1, 1), date(2020, 1, 1),
                              series_count=1, instances_per_series=2)
    site = make_site(tmp_path, orthanc_factory, specs, morphing=RULE,
                     reports={"dir": str(tmp_path / "reports"), "mask_identifiers": mask})
    assert site.pacsmig("run").returncode == 0
    assert site.pacsmig("report").returncode == 0

    with (site.reports / "reconciliation.csv").open(newline="") as handle:
        rows = {row["study_uid"]: row for row in csv.DictReader(handle)}
    shown = masked if mask else (lambda value: value)
    held = {tags["StudyInstanceUID"]: tags["AccessionNumber"] for tags in
            (site.destination.rest_get(f"/studies/{study}")["MainDicomTags"]
             for study in site.destination.rest_get("/studies"))}
    for spec in specs:
        row = rows[spec.study_uid]
        assert row["accession_before"] == shown(spec.accession_number)
        assert row["accession_after"] == shown(f"EXH{spec.accession_number}")
        assert row["accession_after"] == shown(held[spec.study_uid])  # as sent
    csv_text = (site.reports / "reconciliation.csv").read_text()
    assert all((spec.accession_number in csv_text) is not mask for spec in specs)
    if not mask:  # recorded in clear; a report asked to mask masks them all the same
        profile = site.profile.read_text()
        assert "mask_identifiers: false" in profile
        site.profile.write_text(profile.replace("mask_identifiers: false",
                                                "mask_identifiers: true"))
        assert site.pacsmig("report").returncode == 0
        csv_text = (site.reports / "reconciliation.csv").read_text()
        assert not any(spec.accession_number in csv_text for spec in specs)
        assert masked(f"EXH{specs[0].accession_number}") in csv_text
