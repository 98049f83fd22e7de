"""`pacsmig check`: the pre-flight names each go-live mistake with its fix, and exits 1.

Real peers set up wrong the way sites get them wrong: the old PACS does not know the
runner's calling AE, or knows the listener under a wrong port, or not at all; the profile
names a wrong AE title; the destination refuses the verification query.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from runner.dicom.peer import Peer
from runner.sim.generate import StudySpec, make_study, to_bytes
from tests.peers import OrthancProcess, free_port
from tests.profiles import profile_data, write_profile

pytestmark = pytest.mark.peers
ROOT = Path(__file__).parents[2]
LISTENER_AE = "PACSMIG"


def check(profile: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "runner", "check", str(profile)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)


def source_with_a_study(factory: Callable[..., OrthancProcess], listener: Peer | None,
                        **config: Any) -> OrthancProcess:
    modalities = {"pacsmig": listener} if listener is not None else {}
    source = factory(aet="OLDPACS", modalities=modalities, extra_config=config)
    spec = StudySpec(seed="check", patient_id="P1", patient_name="Check^Pre",
                     study_date=date.today(), modality="CT")
    source.upload_all(to_bytes(ds) for ds in make_study(spec))
    return source


def profile_for(tmp_path: Path, device: Peer, destination: Peer, listener_port: int,
                **sections: Any) -> Path:
    return write_profile(tmp_path, profile_data(tmp_path, [("old1", device)], destination,
                                                listener_port, **sections))


def test_a_well_set_up_site_passes_every_check(
        tmp_path: Path, orthanc_factory: Callable[..., OrthancProcess]) -> None:
    port = free_port()
    source = source_with_a_study(orthanc_factory, Peer(LISTENER_AE, "127.0.0.1", port))
    destination = orthanc_factory(aet="NEWVNA")
    result = check(profile_for(tmp_path, source.peer, destination.peer, port))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "C-MOVE of one instance to PACSMIG: the instance reached the runner's listener" \
        in result.stdout
    assert "FAIL" not in result.stdout and "every check passed" in result.stdout
    assert destination.instances() == []  # the check stores nothing at the destination


def test_a_source_that_does_not_know_the_listener_is_named_with_its_fix(
        tmp_path: Path, orthanc_factory: Callable[..., OrthancProcess]) -> None:
    port = free_port()
    source = source_with_a_study(orthanc_factory, None)
    destination = orthanc_factory(aet="NEWVNA")
    result = check(profile_for(tmp_path, source.peer, destination.peer, port))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAIL  source old1" in result.stdout
    # Orthanc answers 0xC000 for a move destination it does not know (others 0xA801)
    assert "0xC000 (unable to process) and nothing reached the listener" in result.stdout
    assert f"check that its DICOM nodes list PACSMIG at the host and port the runner " \
           f"listens on (port {port} of this machine)" in result.stdout


def test_a_source_with_a_wrong_port_for_the_listener_is_named_with_its_fix(
        tmp_path: Path, orthanc_factory: Callable[..., OrthancProcess]) -> None:
    port = free_port()
    source = source_with_a_study(orthanc_factory, Peer(LISTENER_AE, "127.0.0.1", free_port()))
    destination = orthanc_factory(aet="NEWVNA")
    result = check(profile_for(tmp_path, source.peer, destination.peer, port))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "nothing reached the listener" in result.stdout
    assert "OLDPACS could not deliver to PACSMIG: check that its DICOM nodes list PACSMIG " \
           f"at the host and port the runner listens on (port {port} of this machine)" \
        in result.stdout


def test_a_wrong_ae_title_in_the_profile_is_named_with_its_fix(
        tmp_path: Path, orthanc_factory: Callable[..., OrthancProcess]) -> None:
    port = free_port()
    source = source_with_a_study(orthanc_factory, Peer(LISTENER_AE, "127.0.0.1", port))
    destination = orthanc_factory(aet="NEWVNA")
    wrong = Peer("OLDPAX", source.peer.host, source.peer.port)
    result = check(profile_for(tmp_path, wrong, destination.peer, port))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "called AE title not recognized" in result.stdout
    assert "is not OLDPAX: check ae_title in the profile" in result.stdout


def test_a_source_refusing_queries_from_the_runner_is_named_with_its_fix(
        tmp_path: Path, orthanc_factory: Callable[..., OrthancProcess]) -> None:
    port = free_port()
    source = source_with_a_study(orthanc_factory, Peer(LISTENER_AE, "127.0.0.1", port),
                                 DicomAlwaysAllowFind=False)
    destination = orthanc_factory(aet="NEWVNA")
    # The runner queries as MIGRATE, which the old PACS does not know (it knows PACSMIG,
    # the listener, as a move destination only).
    result = check(profile_for(tmp_path, source.peer, destination.peer, port,
                               source={"calling_ae_title": "MIGRATE"}))
    assert result.returncode == 1, result.stdout + result.stderr
    failed = [line for line in result.stdout.splitlines() if line.startswith("FAIL")]
    assert failed and "C-FIND" in failed[0] and "source old1" in failed[0]
    assert "register MIGRATE (this machine) at OLDPACS" in result.stdout


def test_a_destination_refusing_the_verification_query_is_named_with_its_fix(
        tmp_path: Path, orthanc_factory: Callable[..., OrthancProcess]) -> None:
    port = free_port()
    source = source_with_a_study(orthanc_factory, Peer(LISTENER_AE, "127.0.0.1", port))
    destination = orthanc_factory(aet="NEWVNA", extra_config={"DicomAlwaysAllowFind": False})
    result = check(profile_for(tmp_path, source.peer, destination.peer, port))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "C-FIND (verification query)" in result.stdout
    assert "give PACSMIG query rights on it, or choose verify: commitment" in result.stdout


def test_nothing_listening_at_the_source_is_named_with_its_fix(
        tmp_path: Path, orthanc_factory: Callable[..., OrthancProcess]) -> None:
    destination = orthanc_factory(aet="NEWVNA")
    closed = Peer("OLDPACS", "127.0.0.1", free_port())
    result = check(profile_for(tmp_path, closed, destination.peer, free_port()))
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"nothing answers at 127.0.0.1:{closed.port}" in result.stdout
    assert "Traceback" not in result.stderr


def test_a_destination_refusing_verification_is_a_failure_with_one_reason_everywhere(
        tmp_path: Path, orthanc_factory: Callable[..., OrthancProcess]) -> None:
    port = free_port()
    source = source_with_a_study(orthanc_factory, Peer(LISTENER_AE, "127.0.0.1", port))
    destination = orthanc_factory(aet="NEWVNA", extra_config={"DicomAlwaysAllowFind": False})
    profile = profile_for(tmp_path, source.peer, destination.peer, port,
                          retries={"verify_attempts": 1, "backoff_seconds": 0})
    run = subprocess.run([sys.executable, "-m", "runner", "run", str(profile)], cwd=ROOT,
                         capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "0 of 1 studies verified, 0 incomplete, 1 failed" in run.stdout
    assert len(destination.instances()) == 1  # stored: only its verification was refused

    status = subprocess.run([sys.executable, "-m", "runner", "status", str(profile)], cwd=ROOT,
                            capture_output=True, text=True, timeout=60, check=False)
    assert "failed" in status.stdout
    assert "verification error: the destination did not answer the instances check" \
        in status.stdout
    report = subprocess.run([sys.executable, "-m", "runner", "report", str(profile)], cwd=ROOT,
                            capture_output=True, text=True, timeout=60, check=False)
    assert report.returncode == 1
    html = (tmp_path / "reports" / "signoff.html").read_text()
    assert "verification error: the destination did not answer the instances check" in html
