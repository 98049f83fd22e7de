"""A migration run in-process with mutual TLS on the listener and on the destination.

The source (runner.sim.qrscp) answers C-FIND/C-MOVE on plain TCP but sends its C-MOVE
sub-operations to the listener over TLS with a client certificate; the destination is the
embedded archive serving mutual TLS only. Instances arriving and being verified proves the
runner's C-STORE and C-FIND to the destination and the listener's intake all ran over TLS.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from pynetdicom.events import Event

import runner.execute.run as run_module
from runner.commands.census import build_plan
from runner.dicom.listener import ListenerConfig
from runner.dicom.peer import Peer
from runner.dicom.tls import client_context, server_context
from runner.execute.run import run_migration
from runner.morph.loaded import LoadedProfile, load_profile
from runner.sim.destination import EmbeddedArchive
from runner.sim.generate import synthetic_archive
from runner.sim.qrscp import QRServer
from tests.certs import Certificates, make_certificates
from tests.peers import HOST, free_port
from tests.profiles import profile_data, write_profile

pytestmark = pytest.mark.tls  # fails, not skips, under CI=true without openssl
STUDIES, PER_SERIES = 3, 2


@dataclasses.dataclass
class TlsMovesQRServer(QRServer):
    """The simulated source, sending its C-MOVE sub-operations over TLS (mutual)."""

    tls_args: tuple[Any, str] | None = None

    def _on_move(self, event: Event) -> Iterator[Any]:
        moves = super()._on_move(event)
        destination = next(moves)
        if isinstance(destination, tuple) and len(destination) == 2 and destination[0]:
            destination = (*destination, {"tls_args": self.tls_args})
        yield destination
        yield from moves


@pytest.fixture
def certs(tmp_path: Path) -> Certificates:
    return make_certificates(tmp_path / "certs")


@pytest.fixture
def listener_port() -> int:
    return free_port()


@pytest.fixture
def source(certs: Certificates, listener_port: int) -> Iterator[QRServer]:
    specs = synthetic_archive("tls", STUDIES, date(2015, 1, 1), date(2020, 1, 1),
                              instances_per_series=PER_SERIES)
    server = TlsMovesQRServer("SIMSRC", specs, {"PACSMIG": (HOST, listener_port)},
                              tls_args=(client_context(certs.client_tls()), HOST)).start()
    yield server
    server.stop()


@pytest.fixture
def archive(certs: Certificates, tmp_path: Path) -> Iterator[EmbeddedArchive]:
    archive = EmbeddedArchive("DEST", tmp_path / "archive").start()
    assert archive._server is not None
    # TLS from the next accepted connection on (none came yet): mutual TLS only
    archive._server.ssl_context = server_context(certs.server_tls(require_client_certificate=True))
    yield archive
    archive.stop()


def tls_section(certificate: Path, key: Path, ca: Path, **more: object) -> dict[str, object]:
    return {"certificate": str(certificate), "key": str(key), "ca": str(ca), **more}


def test_migration_with_mutual_tls_on_listener_and_destination(
        tmp_path: Path, certs: Certificates, source: QRServer, archive: EmbeddedArchive,
        listener_port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The listener's TLS comes from the profile alone: the source's sub-operations arrive
    only if the running listener serves mutual TLS (a plain listener fails every handshake)."""
    client = tls_section(certs.client.certificate, certs.client.key, certs.ca.certificate)
    server = tls_section(certs.server.certificate, certs.server.key, certs.ca.certificate,
                         require_client_certificate=True)
    data = profile_data(tmp_path, [("sim", Peer("SIMSRC", HOST, source.port))],
                        Peer("DEST", HOST, archive.port), listener_port,
                        listener={"tls": server}, destination={"tls": client})
    loaded = load_profile(write_profile(tmp_path, data))
    configs = _recorded_listener_configs(monkeypatch)
    summary = run_migration(loaded, build_plan(loaded, None), None, lambda _: None, False)
    assert summary.complete, summary.lines()
    assert [c.tls for c in configs] == [certs.server_tls(require_client_certificate=True)]
    expected = sum(s.instance_count for s in source.studies)
    assert expected >= STUDIES * PER_SERIES
    assert archive.instance_count() == expected
    assert summary.forwarded == expected


def _recorded_listener_configs(monkeypatch: pytest.MonkeyPatch) -> list[ListenerConfig]:
    """Every listener configuration run.py makes from the profile, recorded, not changed."""
    original = run_module.listener_config
    made: list[ListenerConfig] = []

    def recorded(loaded: LoadedProfile) -> ListenerConfig:
        made.append(original(loaded))
        return made[-1]

    monkeypatch.setattr(run_module, "listener_config", recorded)
    return made
