"""The peers policy of tests/conftest.py: missing peers skip locally and fail under CI=true."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[2]

NEEDS_PEERS = """
import pytest

@pytest.mark.peers
def test_marked():
    pass

def test_factory(orthanc_factory):
    pass

def test_plain():
    pass
"""


@pytest.fixture
def suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A tiny test suite using the real conftest, with Orthanc made to look uninstalled."""
    pytester.makeconftest("from tests.conftest import *  # noqa: F403\n")
    pytester.makeini("[pytest]\nmarkers =\n    peers: needs real DICOM peers\n")
    pytester.makepyfile(NEEDS_PEERS)
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    monkeypatch.setenv("PACSMIG_ORTHANC", str(pytester.path / "no-such-orthanc"))
    return pytester


def test_missing_peers_skip_locally(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CI", raising=False)
    result = suite.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, skipped=2)


def test_missing_peers_fail_under_ci(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", "true")
    result = suite.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=2)  # pytest.fail at setup: the run fails
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*CI=true and DICOM peers not installed: Orthanc*"])
