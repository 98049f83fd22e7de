"""The profile's `destination.dicomweb`: a destination is DIMSE or DICOMweb, and its
credentials come from a file or an environment variable, never from the profile."""

from __future__ import annotations

from pathlib import Path

from runner.errors import Problem
from tests.unit.test_profile_validation import BASE, problems_for

DIMSE = """\
  ae_title: NEWVNA
  host: 10.30.0.9
  port: 104
"""


def with_destination(lines: str) -> str:
    assert DIMSE in BASE
    return BASE.replace(DIMSE, lines)


def messages(problems: list[Problem]) -> str:
    return "\n".join(str(p) for p in problems)


def test_a_dicomweb_destination_with_a_token_from_the_environment_is_valid(
        tmp_path: Path) -> None:
    text = with_destination("  dicomweb:\n    url: https://vna.example.org/dicom-web\n"
                            "    auth: {type: bearer, env: VNA_TOKEN}\n")
    assert problems_for(tmp_path, text) == []


def test_a_destination_with_neither_kind_is_refused_at_its_line(tmp_path: Path) -> None:
    problems = problems_for(tmp_path, with_destination(""))
    assert "ae_title, host and port (DIMSE), or its dicomweb url" in messages(problems)
    assert problems[0].line == BASE.splitlines().index("destination:") + 2  # its first key


def test_a_destination_with_both_kinds_is_refused_naming_dicomweb(tmp_path: Path) -> None:
    text = with_destination(DIMSE + "  dicomweb: {url: 'http://vna:8042/dicom-web'}\n")
    problems = problems_for(tmp_path, text)
    assert "either DIMSE (ae_title, host, port) or DICOMweb (dicomweb), not both" \
        in messages(problems)
    assert problems[0].line == text.splitlines().index(
        "  dicomweb: {url: 'http://vna:8042/dicom-web'}") + 1


def test_dicomweb_cannot_verify_by_storage_commitment(tmp_path: Path) -> None:
    text = with_destination("  dicomweb: {url: 'http://vna:8042/dicom-web'}\n"
                            "  verify: commitment\n")
    assert "verify instances or counts, not commitment" in messages(problems_for(tmp_path, text))


def test_credentials_need_exactly_one_source_and_none_in_the_url(tmp_path: Path) -> None:
    both = with_destination("  dicomweb:\n    url: http://vna/dicom-web\n"
                            "    auth: {type: basic, env: A, file: secret.txt}\n")
    (tmp_path / "secret.txt").write_text("user:password")
    assert "give the secret's `file` or its `env`" in messages(problems_for(tmp_path, both))
    in_url = with_destination("  dicomweb: {url: 'http://user:pw@vna/dicom-web'}\n")
    assert "dicomweb.url" in messages(problems_for(tmp_path, in_url))


def test_dimse_tls_files_are_refused_on_a_dicomweb_destination(tmp_path: Path) -> None:
    (tmp_path / "c.pem").write_text("x")
    text = with_destination("  dicomweb: {url: 'https://vna/dicom-web'}\n"
                            "  tls: {certificate: c.pem, key: c.pem}\n")
    assert "dicomweb.ca, dicomweb.certificate and dicomweb.key, not tls" in messages(
        problems_for(tmp_path, text))


def test_a_read_back_sample_is_refused_on_a_dicomweb_destination(tmp_path: Path) -> None:
    text = with_destination("  dicomweb: {url: 'https://vna/dicom-web'}\n"
                            "  verify_sample: 10\n")
    problems = problems_for(tmp_path, text)
    assert "verify_sample reads instances back by C-MOVE" in messages(problems)
    assert problems[0].line == text.splitlines().index("  verify_sample: 10") + 1
