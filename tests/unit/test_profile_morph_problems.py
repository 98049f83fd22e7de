"""Every morphing value problem in one `validate`, with an unquoted date named as such."""

from __future__ import annotations

from pathlib import Path

from runner.morph.loaded import validate_profile
from tests.unit.test_profile_validation import BASE

RULES = """morphing:
  - set:
      StudyDate: 2020-01-01
      PatientAge: 12
  - set:
      Modality: "THIS IS MUCH TOO LONG FOR CS"
      InstitutionNamex: foo
  - set:
      AccessionNumber: "01234567890123456789"
"""


def test_every_morphing_value_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(BASE.replace("max_concurrent_retrieves: 4", "max_concurrent_retrieves: 0")
                    + RULES)
    problems = [str(p) for p in validate_profile(path)]
    expected = [
        ":37:18: morphing[0].set.StudyDate: 2020-01-01 is read by YAML as a date: quote it: "
        "DA is YYYYMMDD ('20200101')",
        ":38:19: morphing[0].set.PatientAge: PatientAge cannot be set to '12'",
        ":40:17: morphing[1].set.Modality: Modality cannot be set to 'THIS IS MUCH TOO LONG",
        ":41:7: morphing[1].set.InstitutionNamex: unknown DICOM keyword 'InstitutionNamex'",
        ":43:24: morphing[2].set.AccessionNumber: AccessionNumber cannot be set to",
        "throttles.standard.max_concurrent_retrieves: Input should be greater",
        "throttles.standard.min_concurrent_retrieves: min_concurrent_retrieves (2) is above",
    ]
    for text in expected:
        assert any(text in p for p in problems), (text, problems)
    assert len(problems) == len(expected), problems


def test_a_quoted_date_in_the_right_format_is_valid(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(BASE + "morphing:\n  - set:\n      StudyDate: '20200101'\n")
    assert validate_profile(path) == []
