"""`pacsmig check` against real peers set up wrong in each way: each failure named with its fix."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from runner.dicom.peer import Peer
from runner.sim.generate import StudySpec, make_study, to_bytes, write_study
from tests.certs import make_certificates, openssl_available
from tests.peers import DcmqrscpProcess, OrthancProcess, free_port
from tests.profiles import profile_data, write_profile

ROOT = Path(__file__).parents[2]
pytestmark = pytest.mark.peers

TODAY_STUDY = StudySpec("preflight", "P1", "DOE^JANE", date.today(), "CT",
                        instances_per_series=2)


def pacsmig(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "runner", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, check=False)


@dataclass
class Site:
    source: OrthancProcess
    destination: OrthancProcess
    listener_port: int
    profile: Path


def make_site(tmp_path: Path, orthanc_factory: Callable[..., OrthancProcess], *,
              source_modalities: dict[str, Peer] | None = None,
              source_config: dict[str, Any] | None = None,
              destination_config: dict[str, Any] | None = None,
              destination_knows_listener: bool = False,
              **sections: object) -> Site:
    listener_port = free_port()
    listener = Peer("PACSMIG", "127.0.0.1", listener_port)
    modalities = {"pacsmig": listener} if source_modalities is None else source_modalities
    source = orthanc_factory(aet="OLDPACS", modalities=modalities,
                             extra_config=source_config or {})
    destination = orthanc_factory(
        aet="NEWVNA", extra_config=destination_config or {},
        modalities={"pacsmig": listener} if destination_knows_listener else {})
    for ds in make_study(TODAY_STUDY):
        source.upload(to_bytes(ds))
    data = profile_data(tmp_path, [("old1", source.peer)], destination.peer, listener_port,
                        **sections)
    return Site(source, destination, listener_port, write_profile(tmp_path, data))


def test_check_passes_on_a_site_set_up_right_and_leaves_one_test_object(
        tmp_path: Path, orthanc_factory: Callable[..., OrthancProcess]) -> None:
    site = make_site(tmp_path, orthanc_factory)
    result = pacsmig("check", str(site.profile))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAIL" not in result.stdout
    assert "C-MOVE source device old1" in result.stdout
    assert "one instance received" in result.stdout
    assert "stored and found again" in result.stdout
    assert len(site.destination.instances()) == 1  # the test object, nothing of the source
    again = pacsmig("check", str(site.profile))
    assert again.returncode == 0, again.stdout + again.stderr
    assert len(site.destination.instances()) == 1  # the same object, stored again


def test_move_destination_unknown_at_the_source_is_named_with_its_fix(
        tmp_path: Path, orthanc_factory: Callable[..., OrthancProcess]) -> None:
    site = make_site(tmp_path, orthanc_factory, source_modalities={})
    result = pacsmig("check", str(site.profile))
    assert result.returncode == 1, result.stdout + result.stderr
    line = next(x for x in result.stdout.splitlines() if x.startswith("FAIL C-MOVE"))
    assert "to a C-MOVE to PACSMIG" in line, line
    assert "0xA801 Move destination unknown" in line or "move destination it has" in line, line
    assert "checks failed" in result.stderr


def test_move_destination_with_a_wrong_port_says_the_source_cannot_reach_the_listener(
        tmp_path: Path, orthanc_factory: Callable[..., OrthancProcess]) -> None:
    closed = free_port()
    site = make_site(tmp_path, orthanc_factory,
                     source_modalities={"pacsmig": Peer("PACSMIG", "127.0.0.1", closed)})
    result = pacsmig("check", str(site.profile))
    assert result.returncode == 1, result.stdout + result.stderr
    line = next(x for x in result.stdout.splitlines() if x.startswith("FAIL C-MOVE"))
    assert "the source cannot open an association to PACSMIG" in line, line
    assert f"port {site.listener_port}" in line
    assert "check the move destination it has for PACSMIG" in line


def test_listener_port_taken_is_named(
        tmp_path: Path, orthanc_factory: Callable[..., OrthancProcess]) -> None:
    site = make_site(tmp_path, orthanc_factory)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", site.listener_port))
        holder.listen()
        result = pacsmig("check", str(site.profile))
    assert result.returncode == 1, result.stdout + result.stderr
    line = next(x for x in result.stdout.splitlines() if x.startswith("FAIL C-MOVE"))
    assert f"cannot listen on 127.0.0.1:{site.listener_port}" in line, line
    assert "change listener.port" in line


def test_destination_refusing_c_find_is_named_and_run_does_not_start(
        tmp_path: Path, orthanc_factory: Callable[..., OrthancProcess]) -> None:
    site = make_site(tmp_path, orthanc_factory,
                     destination_config={"DicomAlwaysAllowFind": False})
    result = pacsmig("check", str(site.profile))
    assert result.returncode == 1, result.stdout + result.stderr
    line = next(x for x in result.stdout.splitlines()
                if x.startswith("FAIL C-FIND destination"))
    assert "to a C-FIND from PACSMIG" in line or "refuses C-FIND from PACSMIG" in line, line
    run = pacsmig("run", str(site.profile))
    assert run.returncode == 1, run.stdout + run.stderr
    assert "C-FIND destination Test destination" in run.stderr
    assert "Migrating" not in run.stdout
    assert site.destination.instances() == []


def test_tls_configured_for_a_plain_source_is_named(
        tmp_path: Path, orthanc_factory: Callable[..., OrthancProcess]) -> None:
    if not openssl_available():
        pytest.skip("openssl is not installed")
    certs = make_certificates(tmp_path / "pki")
    tls = {"certificate": str(certs.client.certificate), "key": str(certs.client.key),
           "ca": str(certs.ca.certificate)}
    site = make_site(tmp_path, orthanc_factory)
    data = profile_data(tmp_path, [("old1", site.source.peer)], site.destination.peer,
                        site.listener_port)
    data["source"]["devices"][0]["tls"] = tls
    profile = write_profile(tmp_path, data, "tls.yaml")
    result = pacsmig("check", str(profile))
    assert result.returncode == 1, result.stdout + result.stderr
    line = next(x for x in result.stdout.splitlines() if x.startswith("FAIL C-ECHO source"))
    assert "TLS" in line and "tls" in line, line


@dataclass
class StrictDcmqrscp(DcmqrscpProcess):
    """dcmqrscp that accepts associations only from the AE titles in `peers`."""

    peers: tuple[str, ...] = ("SOMEONE",)

    def config(self) -> str:
        hosts = "\n".join(f"peer{i} = ({ae}, 127.0.0.1, 104)" for i, ae in enumerate(self.peers))
        names = ", ".join(f"peer{i}" for i in range(len(self.peers)))
        return (f"NetworkTCPPort = {self.port}\nMaxPDUSize = 16384\nMaxAssociations = 16\n"
                f"HostTable BEGIN\n{hosts}\nallowed = {names}\nHostTable END\n"
                "VendorTable BEGIN\nVendorTable END\n"
                f"AETable BEGIN\n{self.aet} {self.database} RW (1000, 1024mb) allowed\n"
                "AETable END\n")


def test_calling_ae_unknown_at_a_dcmtk_source_is_named_with_its_fix(
        tmp_path: Path, orthanc_factory: Callable[..., OrthancProcess],
        require_peers: None) -> None:
    workdir = tmp_path / "strict"
    workdir.mkdir()
    source = StrictDcmqrscp(workdir=workdir, aet="WFM1").start()
    try:
        files = write_study(tmp_path / "files", TODAY_STUDY)
        source.add_files(files)
        destination = orthanc_factory(aet="NEWVNA")
        data = profile_data(tmp_path, [("wfm1", source.peer)], destination.peer, free_port())
        profile = write_profile(tmp_path, data)
        result = pacsmig("check", str(profile))
        run = pacsmig("run", str(profile))
    finally:
        source.stop()
    assert result.returncode == 1, result.stdout + result.stderr
    line = next(x for x in result.stdout.splitlines() if x.startswith("FAIL C-ECHO source"))
    assert "rejected calling AE PACSMIG: register PACSMIG" in line, line
    assert "on source device wfm1" in line
    assert run.returncode == 1
    assert "rejected calling AE PACSMIG" in run.stderr
    assert "Migrating 0" not in run.stdout


def test_storage_commitment_round_trip_is_checked_when_verify_is_commitment(
        tmp_path: Path, orthanc_factory: Callable[..., OrthancProcess]) -> None:
    site = make_site(tmp_path, orthanc_factory, destination_knows_listener=True,
                     destination={"verify": "commitment"})
    result = pacsmig("check", str(site.profile))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "stored and committed (Storage Commitment round trip)" in result.stdout
    assert "C-FIND destination" not in result.stdout  # commitment: no query needed


def test_a_destination_that_cannot_report_commitment_to_the_listener_is_named(
        tmp_path: Path, orthanc_factory: Callable[..., OrthancProcess]) -> None:
    site = make_site(tmp_path, orthanc_factory, destination={"verify": "commitment"})
    result = pacsmig("check", str(site.profile))
    assert result.returncode == 1, result.stdout + result.stderr
    line = next(x for x in result.stdout.splitlines() if x.startswith("FAIL C-STORE"))
    assert "stored, but the commitment request failed" in line, line
    assert "PACSMIG (this host, port" in line and "known node" in line
