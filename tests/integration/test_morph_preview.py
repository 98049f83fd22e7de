"""`pacsmig morph-preview` on real headers from a real source (Orthanc), masked, nothing moved."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest

from runner.dicom.peer import Peer
from runner.sim.generate import make_study, synthetic_archive, to_bytes
from tests.peers import OrthancProcess, free_port
from tests.profiles import profile_data, write_profile

pytestmark = pytest.mark.peers
ROOT = Path(__file__).parents[2]


def test_preview_counts_each_rule_on_real_headers_and_masks_identifiers(
        tmp_path: Path, orthanc_factory: Callable[..., OrthancProcess]) -> None:
    specs = synthetic_archive("preview", 6, date(2014, 1, 1), date(2020, 1, 1),
                              modalities=("CR", "CT"), instances_per_series=2)
    source = orthanc_factory(aet="OLDPACS")
    source.upload_all(to_bytes(ds) for s in specs for ds in make_study(s))
    (tmp_path / "ids.csv").write_text(f"from,to\n{specs[0].patient_id},9990001234\n")
    rules = [{"when": {"Modality": ["CR"]}, "set": {"InstitutionName": "Example Hospital"}},
             {"replace": {"tag": "AccessionNumber", "pattern": r"^(\d+)$", "with": r"EXH\1"}},
             {"map": {"tag": "PatientID", "table": "ids.csv", "missing": "fail"}}]
    profile = write_profile(tmp_path, profile_data(
        tmp_path, [("old", source.peer)], Peer("DEST", "127.0.0.1", 1), free_port(),
        morphing=rules))

    result = subprocess.run([sys.executable, "-m", "runner", "morph-preview", str(profile),
                             "--sample", "12"], cwd=ROOT, capture_output=True, text=True,
                            timeout=120, check=False)
    out = result.stdout
    assert result.returncode == 1, out + result.stderr  # unmapped patient IDs would fail
    counts = [int(n) for n in re.findall(r"changes (\d+) of 12 instances", out)]
    cr = sum(s.instance_count for s in specs if s.modality == "CR")
    assert counts == [cr, 12, 2]
    assert "Instances the rules would fail on: 10" in out
    assert "InstitutionName: 'Pacsmig General Hospital' -> 'Example Hospital'" in out
    for spec in specs:  # identifiers never in clear
        assert spec.patient_id not in out and spec.accession_number not in out
    assert source.study_count() == 6 and len(source.instances()) == 12
