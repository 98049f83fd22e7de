"""Shared fixtures: real DICOM peers (Orthanc, dcmqrscp) and the policy for missing ones.

A test that needs Orthanc or DCMTK is marked `@pytest.mark.peers` (or uses a factory
fixture). When the programs are not installed such a test is skipped locally, but fails
when CI=true: in CI a skipped integration test would hide a broken setup.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.peers import DcmqrscpProcess, OrthancProcess, PynetdicomScp, missing_peer_binaries

# Every ledger closed in the suite (here and in the runs it starts) checks that the status the
# writer keeps equals the reconciliation view (runner.ledger.study_status).
os.environ.setdefault("PACSMIG_CHECK_STATE", "1")


def in_ci() -> bool:
    """Whether the tests run in CI (CI=true), where missing peers are a failure."""
    return os.environ.get("CI", "").strip().lower() == "true"


def require_peer_binaries() -> None:
    """Skip the running test when a peer program is missing; fail instead under CI=true."""
    missing = missing_peer_binaries()
    if not missing:
        return
    message = f"DICOM peers not installed: {', '.join(missing)} (run `make peers`)"
    if in_ci():
        pytest.fail(f"CI=true and {message}", pytrace=False)
    pytest.skip(message)


def require_openssl() -> None:
    """Skip the running test when the `openssl` command is missing; fail under CI=true."""
    if shutil.which("openssl") is not None:
        return
    message = "the openssl command is not installed (apt-get install openssl)"
    if in_ci():
        pytest.fail(f"CI=true and {message}", pytrace=False)
    pytest.skip(message)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Apply the peers policy to every test marked `peers`, the TLS policy to `tls`."""
    if item.get_closest_marker("peers") is not None:
        require_peer_binaries()
    if item.get_closest_marker("tls") is not None:
        require_openssl()


@pytest.fixture
def require_peers() -> None:
    """The peers policy as a fixture, for tests that start peers without the marker."""
    require_peer_binaries()


@pytest.fixture
def orthanc_factory(
    require_peers: None, tmp_path: Path
) -> Iterator[Callable[..., OrthancProcess]]:
    """Start as many Orthancs as the test needs: `orthanc_factory(aet="SRC", modalities=...)`.

    Keyword arguments go to OrthancProcess; every Orthanc is stopped after the test.
    """
    started: list[OrthancProcess] = []

    def start(**kwargs: Any) -> OrthancProcess:
        workdir = tmp_path / f"orthanc-{len(started)}"
        orthanc = OrthancProcess(workdir=workdir, **kwargs)
        started.append(orthanc)
        return orthanc.start()

    yield start
    for orthanc in started:
        orthanc.kill()  # its data is the test's to throw away; a graceful stop takes ~3 s


@pytest.fixture
def dcmqrscp_factory(
    require_peers: None, tmp_path: Path
) -> Iterator[Callable[..., DcmqrscpProcess]]:
    """Start as many dcmqrscp servers as the test needs: `dcmqrscp_factory(aet="QR")`.

    Keyword arguments go to DcmqrscpProcess; every server is stopped after the test.
    """
    started: list[DcmqrscpProcess] = []

    def start(**kwargs: Any) -> DcmqrscpProcess:
        workdir = tmp_path / f"dcmqrscp-{len(started)}"
        workdir.mkdir(parents=True, exist_ok=True)
        server = DcmqrscpProcess(workdir=workdir, **kwargs)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def pynetdicom_scp_factory() -> Iterator[Callable[..., PynetdicomScp]]:
    """Start in-process C-FIND SCPs: `pynetdicom_scp_factory(on_find=handler, aet="A")`.

    Needs no external program (no peers policy); every SCP is stopped after the test.
    """
    started: list[PynetdicomScp] = []

    def start(**kwargs: Any) -> PynetdicomScp:
        scp = PynetdicomScp(**kwargs)
        started.append(scp)
        return scp.start()

    yield start
    for scp in started:
        scp.stop()
