"""Migrations into Orthanc over DICOMweb (its plugin): STOW-RS to send, QIDO-RS to verify,
with a proxy in front that plays a cloud service's refusals (401, 413, 503)."""

from __future__ import annotations

import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pytest
from pydicom.dataset import FileDataset
from pydicom.uid import ExplicitVRLittleEndian, RLELossless

from runner.dicom.peer import Peer
from runner.sim.generate import StudySpec, make_study, synthetic_archive, to_bytes
from tests.certs import Certificates, make_certificates
from tests.integration.test_conflicts import _events as conflict_events
from tests.integration.test_conflicts import _preload as preload_conflicts
from tests.integration.test_conflicts import _specs as conflict_specs
from tests.peers import OrthancProcess, free_port
from tests.profiles import profile_data, write_profile
from tests.webproxy import Faults, WebProxy

ROOT = Path(__file__).parents[2]
TOKEN = "s3cr3t-t0ken-for-the-tests"
pytestmark = pytest.mark.peers


@dataclass
class WebSite:
    source: OrthancProcess
    destination: OrthancProcess
    proxy: WebProxy
    profile: Path
    reports: Path

    def pacsmig(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.command(*args), cwd=ROOT, capture_output=True, text=True,
                              timeout=300, check=False, env={**_env(), "DEST_TOKEN": TOKEN})

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "runner", *args, str(self.profile)]

    def statuses(self) -> list[tuple[str, int, int, str]]:
        with duckdb.connect(str(self.reports / "ledger.duckdb"), read_only=True) as conn:
            return conn.execute(
                "SELECT study_uid, received_instances, destination_instances, status "
                "FROM reconciliation ORDER BY study_uid").fetchall()


def _env() -> dict[str, str]:
    import os
    return dict(os.environ)


@pytest.fixture
def web_site(tmp_path: Path, orthanc_factory: Callable[..., OrthancProcess],
             request: pytest.FixtureRequest) -> Iterator[Callable[..., WebSite]]:
    proxies: list[WebProxy] = []

    def make(specs: list[StudySpec], faults: Faults | None = None,
             web: dict[str, Any] | None = None, compress: str | None = None,
             tls: ssl.SSLContext | None = None, **sections: Any) -> WebSite:
        listener_port = free_port()
        listener = Peer("PACSMIG", "127.0.0.1", listener_port)
        source = orthanc_factory(aet="OLDPACS", modalities={"pacsmig": listener})
        destination = orthanc_factory(aet="NEWVNA", plugins=("dicomweb",))
        for spec in specs:
            source.upload_all(to_bytes(_compressed(ds, compress)) for ds in make_study(spec))
        proxy = WebProxy(destination.dicomweb_url, faults or Faults(token=TOKEN), tls).start()
        proxies.append(proxy)
        data = profile_data(tmp_path, [("old1", source.peer)], destination.peer, listener_port,
                            **sections)
        dicomweb = {"url": proxy.url, "auth": {"type": "bearer", "env": "DEST_TOKEN"},
                    "timeout": 30, **(web or {})}
        data["destination"] = {"name": "Cloud VNA", "dicomweb": dicomweb,
                               "max_associations": 2,
                               "verify": data["destination"].get("verify", "instances"),
                               **sections.get("destination", {})}
        return WebSite(source, destination, proxy, write_profile(tmp_path, data),
                       tmp_path / "reports")

    yield make
    for proxy in proxies:
        proxy.stop()


def _compressed(ds: FileDataset, syntax: str | None) -> FileDataset:
    if syntax is not None:
        ds.compress(syntax, generate_instance_uid=False)
    return ds


def _specs(count: int, instances: int = 3) -> list[StudySpec]:
    return synthetic_archive("web", count, date(2012, 1, 1), date(2020, 1, 1),
                             series_count=1, instances_per_series=instances)


def test_full_migration_over_dicomweb_is_verified_by_qido_and_a_rerun_moves_nothing(
        web_site: Callable[..., WebSite]) -> None:
    site = web_site(_specs(3), morphing=[{"set": {"InstitutionName": "Cloud Hospital"}}])
    first = site.pacsmig("run")
    assert first.returncode == 0, first.stdout + first.stderr
    assert sorted(site.destination.instances()) == sorted(site.source.instances())
    assert [row[1:] for row in site.statuses()] == [(3, 3, "verified")] * 3
    checks = [s for s in site.proxy.seen if s.method == "GET" and "/instances" in s.path
              and "includefield=00080080" in s.path]  # the morphed value, checked by QIDO
    assert len(checks) >= 3
    posts = len(site.proxy.posts())
    second = site.pacsmig("run")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "Migrating 0 of the plan's 3 studies" in second.stdout
    assert len(site.proxy.posts()) == posts


def test_counts_verification_asks_qido_for_the_study_count(
        web_site: Callable[..., WebSite]) -> None:
    site = web_site(_specs(2), destination={"verify": "counts"})
    result = site.pacsmig("run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert [row[3] for row in site.statuses()] == ["verified"] * 2
    assert any("NumberOfStudyRelatedInstances" in s.path or "00201208" in s.path
               for s in site.proxy.seen)


def test_a_request_refused_as_too_large_is_split_until_it_fits(
        web_site: Callable[..., WebSite]) -> None:
    site = web_site(_specs(1, instances=6), faults=Faults(token=TOKEN, max_body=12_000),
                    web={"max_instances_per_request": 6})
    result = site.pacsmig("run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(site.destination.instances()) == 6
    statuses = [s.status for s in site.proxy.posts()]
    assert 413 in statuses and statuses.count(200) >= 2, statuses


def test_a_refused_token_stops_the_run_with_exit_1_and_a_clear_message(
        web_site: Callable[..., WebSite], tmp_path: Path) -> None:
    site = web_site(_specs(2), faults=Faults(token="another-token"))
    result = site.pacsmig("run")
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout + result.stderr
    assert "Cloud VNA" in out and "401" in out and "dicomweb.auth" in out
    assert TOKEN not in out
    assert site.destination.instances() == []


def test_a_credential_that_cannot_be_read_stops_the_run_naming_where_it_was_looked_for(
        web_site: Callable[..., WebSite]) -> None:
    site = web_site(_specs(1), web={"auth": {"type": "bearer", "env": "PACSMIG_TEST_UNSET"}})
    result = site.pacsmig("run")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "environment variable PACSMIG_TEST_UNSET is not set" in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_a_token_refused_mid_run_stops_the_run_with_exit_1(
        web_site: Callable[..., WebSite]) -> None:
    faults = Faults(token=TOKEN)
    faults.scripted.append((401, {}))  # the first STOW-RS: the token was revoked
    site = web_site(_specs(2), faults=faults)
    result = site.pacsmig("run")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Stopped: destination Cloud VNA" in result.stdout
    assert "refused the credentials: HTTP 401" in result.stdout
    assert "environment variable DEST_TOKEN" in result.stdout
    assert TOKEN not in result.stdout + result.stderr


def test_503_with_retry_after_is_honoured_before_the_request_goes_again(
        web_site: Callable[..., WebSite]) -> None:
    faults = Faults(token=TOKEN)
    faults.scripted.append((503, {"Retry-After": "1"}))
    site = web_site(_specs(1), faults=faults, destination={"max_associations": 1})
    result = site.pacsmig("run")
    assert result.returncode == 0, result.stdout + result.stderr
    posts = site.proxy.posts()
    assert posts[0].status == 503 and posts[1].status == 200
    assert posts[1].at - posts[0].at >= 1.0
    assert len(site.destination.instances()) == 3


def test_an_instance_in_a_syntax_the_service_refuses_is_sent_again_transcoded_losslessly(
        web_site: Callable[..., WebSite]) -> None:
    site = web_site(_specs(1, instances=2), faults=Faults(token=TOKEN, refuse_syntax=RLELossless),
                    web={"max_instances_per_request": 1}, compress=RLELossless)
    result = site.pacsmig("run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(site.destination.instances()) == 2
    assert [s.status for s in site.proxy.posts()].count(409) == 2
    with duckdb.connect(str(site.reports / "ledger.duckdb"), read_only=True) as conn:
        rows = conn.execute("SELECT transcoded_from, transcoded_to FROM forwards "
                            "WHERE ok").fetchall()
    assert rows == [(RLELossless, ExplicitVRLittleEndian)] * 2


def test_conflicts_at_a_dicomweb_destination_are_found_by_qido_and_quarantined(
        web_site: Callable[..., WebSite]) -> None:
    specs = conflict_specs()
    site = web_site(specs, retries={"retrieve_attempts": 1, "backoff_seconds": 0.1})
    a_conflict, d_conflict, _ = preload_conflicts(site.destination, specs)
    result = site.pacsmig("run")
    assert result.returncode == 1, result.stdout
    statuses = {row[0]: row[3] for row in site.statuses()}
    assert [statuses[s.study_uid] for s in specs] == ["failed", "failed", "verified", "failed"]
    kinds = sorted((e["kind"], e["sop_instance_uid"] or "") for e in conflict_events(
        site.reports))
    assert kinds == sorted([("series", a_conflict), ("patient", ""), ("study", d_conflict)])


def test_after_a_crash_mid_request_what_the_service_holds_is_not_sent_again(
        web_site: Callable[..., WebSite]) -> None:
    faults = Faults(token=TOKEN, hang=threading.Event())
    site = web_site(_specs(1), faults=faults, destination={"max_associations": 1},
                    web={"max_instances_per_request": 1})  # the hung request holds one
    runner = subprocess.Popen(site.command("run"), cwd=ROOT, env={**_env(), "DEST_TOKEN": TOKEN},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert faults.hang.wait(60), "no STOW-RS request came"
        time.sleep(0.5)  # the ledger commits its receipts every 200 ms
    finally:
        runner.kill()
        runner.wait(30)
    stored_before = len(site.destination.instances())
    faults.hang = None
    faults.release.set()
    posted_before = sum(site.proxy.arrived)
    result = site.pacsmig("run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(site.destination.instances()) == 3
    assert 1 <= stored_before < 3
    assert posted_before == stored_before
    assert sum(site.proxy.arrived) == 3  # what the service held was not sent again


def test_a_lost_ledger_is_rebuilt_from_a_dicomweb_destination_by_qido(
        web_site: Callable[..., WebSite]) -> None:
    site = web_site(_specs(2))
    assert site.pacsmig("run").returncode == 0
    for leftover in site.reports.glob("ledger.duckdb*"):
        leftover.rename(leftover.with_name("damaged-" + leftover.name))
    site.destination.rest_delete(f"/instances/{site.destination.rest_get('/instances')[0]}")
    rebuilt = site.pacsmig("verify", "--rebuild")
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    assert "1 studies complete (verified), 1 partly there, 0 absent" in rebuilt.stdout
    rerun = site.pacsmig("run")
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert sorted(site.destination.instances()) == sorted(site.source.instances())


def test_no_credential_appears_in_any_output_ledger_or_report(
        web_site: Callable[..., WebSite], tmp_path: Path) -> None:
    site = web_site(_specs(1))
    outputs = [site.pacsmig("run"), site.pacsmig("status"), site.pacsmig("check"),
               site.pacsmig("report"), site.pacsmig("verify")]
    assert [o.returncode for o in outputs] == [0, 0, 1, 0, 0], outputs  # check: no recent
    assert "ok   QIDO-RS destination Cloud VNA" in outputs[2].stdout  # study to C-MOVE
    assert "ok   STOW-RS destination Cloud VNA" in outputs[2].stdout
    signoff = (site.reports / "signoff.html").read_text()
    assert f"Cloud VNA ({site.proxy.url})" in signoff
    assert "QIDO-RS of each study&#x27;s instances" in signoff or \
        "QIDO-RS of each study's instances" in signoff
    for output in outputs:
        assert TOKEN not in output.stdout + output.stderr
    written = [p for p in tmp_path.rglob("*") if p.is_file()
               and "orthanc" not in p.parts[len(tmp_path.parts)]]
    assert any(p.name == "ledger.duckdb" for p in written)
    for path in written:
        assert TOKEN.encode() not in path.read_bytes(), path


def _https(certs: Certificates) -> ssl.SSLContext:
    """The service's side: the server certificate, clients verified against the CA."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH,
                                         cafile=str(certs.ca.certificate))
    context.load_cert_chain(str(certs.server.certificate), str(certs.server.key))
    context.verify_mode = ssl.CERT_REQUIRED
    return context


@pytest.mark.tls
def test_a_service_behind_mutual_tls_takes_the_migration_with_the_profiles_certificates(
        web_site: Callable[..., WebSite], tmp_path: Path) -> None:
    certs = make_certificates(tmp_path / "certs")
    files = {"ca": str(certs.ca.certificate), "certificate": str(certs.client.certificate),
             "key": str(certs.client.key)}
    site = web_site(_specs(1), tls=_https(certs), web=files)
    result = site.pacsmig("run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(site.destination.instances()) == 3


@pytest.mark.tls
def test_a_service_whose_certificate_the_ca_does_not_sign_stops_the_run_at_its_start(
        web_site: Callable[..., WebSite], tmp_path: Path) -> None:
    certs = make_certificates(tmp_path / "certs")
    files = {"ca": str(certs.rogue_ca.certificate),
             "certificate": str(certs.client.certificate), "key": str(certs.client.key)}
    site = web_site(_specs(1), tls=_https(certs), web=files)
    result = site.pacsmig("run")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "CERTIFICATE_VERIFY_FAILED" in result.stdout + result.stderr
    assert site.destination.instances() == []
