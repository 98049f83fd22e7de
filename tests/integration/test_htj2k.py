"""HTJ2K end to end: instances a PACS holds in High-Throughput JPEG 2000 (lossless), encoded
for real by OpenJPH's `ojph_compress` (Debian's openjph-tools), retrieved by C-MOVE from a
Q/R SCP that sends them as held (Orthanc 1.10 and DCMTK 3.6.7 do not know the syntax), then
stored as received at a destination that accepts HTJ2K, and decoded losslessly (pylibjpeg's
OpenJPEG) for Orthanc, which does not."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from datetime import date
from io import BytesIO
from pathlib import Path

import duckdb
import numpy
import pytest
from pydicom import dcmread
from pydicom.dataset import FileDataset
from pydicom.encaps import encapsulate
from pydicom.uid import ExplicitVRLittleEndian, HTJ2KLossless

from runner.dicom.peer import Peer
from runner.execute.run import run_migration
from runner.plan.commands import build_plan
from runner.profile.load import load_profile
from runner.sim.destination import EmbeddedArchive
from runner.sim.generate import StudySpec, make_study
from runner.sim.qrscp import Behaviour, QRServer
from tests.integration.test_fidelity import files_of
from tests.peers import OrthancProcess, free_port
from tests.profiles import profile_data, write_profile

pytestmark = pytest.mark.peers


def htj2k(instance: FileDataset, work: Path) -> FileDataset:
    """`instance` (16-bit grey, unsigned) with its pixels encoded reversibly by OpenJPH."""
    stem = work / str(instance.SOPInstanceUID)
    header = f"P5\n{instance.Columns} {instance.Rows}\n{(1 << instance.BitsStored) - 1}\n"
    stem.with_suffix(".pgm").write_bytes(
        header.encode() + instance.pixel_array.astype(">u2").tobytes())
    subprocess.run(["ojph_compress", "-i", str(stem.with_suffix(".pgm")),
                    "-o", str(stem.with_suffix(".j2c")), "-reversible", "true"],
                   check=True, capture_output=True)
    instance.PixelData = encapsulate([stem.with_suffix(".j2c").read_bytes()])
    instance["PixelData"].VR = "OB"
    instance.file_meta.TransferSyntaxUID = HTJ2KLossless
    instance.set_original_encoding(False, True)  # explicit VR, as the syntax says
    return instance


class HoldsHTJ2K(Behaviour):
    """A PACS holding its images in HTJ2K lossless."""

    store_syntaxes = (HTJ2KLossless,)

    def __init__(self, work: Path) -> None:
        self.work = work

    def encoded(self, instance: FileDataset) -> FileDataset:
        return htj2k(instance, self.work)


def _migrate(tmp_path: Path, destination: Peer, listener_port: int, server: QRServer) -> None:
    data = profile_data(tmp_path, [("sim", Peer("SIMPACS", "127.0.0.1", server.port))],
                        destination, listener_port, retries={"retrieve_attempts": 1})
    loaded = load_profile(write_profile(tmp_path, data))
    summary = run_migration(loaded, build_plan(loaded, None), None, lambda _: None, False)
    assert summary.complete, summary.lines()


@pytest.fixture
def spec() -> StudySpec:
    return StudySpec("htj2k", "PID-H", "Doe^Jane", date(2018, 5, 6), "CT",
                     instances_per_series=2, bits_allocated=16)


def _source(tmp_path: Path, spec: StudySpec, listener_port: int) -> QRServer:
    work = tmp_path / "encoded"
    work.mkdir()
    return QRServer("SIMPACS", [spec], {"PACSMIG": ("127.0.0.1", listener_port)},
                    behaviour=HoldsHTJ2K(work)).start()


def test_htj2k_goes_as_held_to_a_destination_that_accepts_it(tmp_path: Path,
                                                             spec: StudySpec) -> None:
    listener_port = free_port()
    server = _source(tmp_path, spec, listener_port)
    archive = EmbeddedArchive("DEST", tmp_path / "archive", syntaxes=(HTJ2KLossless,)).start()
    try:
        _migrate(tmp_path, Peer("DEST", "127.0.0.1", archive.port), listener_port, server)
    finally:
        server.stop()
        archive.stop()
    expected = {str(ds.SOPInstanceUID): htj2k(ds, tmp_path / "encoded") for ds in
                make_study(spec)}
    assert sorted(archive.held) == sorted(expected)
    for uid, held in archive.held.items():
        arrived = dcmread(held.path)
        assert arrived.file_meta.TransferSyntaxUID == HTJ2KLossless
        assert arrived.PixelData == expected[uid].PixelData  # the codestream, byte for byte


def test_htj2k_is_decoded_losslessly_for_a_destination_that_does_not_know_it(
        tmp_path: Path, spec: StudySpec,
        orthanc_factory: Callable[..., OrthancProcess]) -> None:
    listener_port = free_port()
    server = _source(tmp_path, spec, listener_port)
    destination = orthanc_factory(aet="DEST")
    try:
        _migrate(tmp_path, destination.peer, listener_port, server)
    finally:
        server.stop()
    originals = {str(ds.SOPInstanceUID): ds.pixel_array for ds in make_study(spec)}
    arrived = {str(ds.SOPInstanceUID): ds for ds in
               (dcmread(BytesIO(raw)) for raw in files_of(destination))}
    assert sorted(arrived) == sorted(originals)
    for uid, ds in arrived.items():
        assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
        assert numpy.array_equal(ds.pixel_array, originals[uid])
    with duckdb.connect(str(tmp_path / "reports" / "ledger.duckdb"), read_only=True) as conn:
        sent = conn.execute("SELECT DISTINCT transcoded_from, transcoded_to FROM forwards "
                            "WHERE ok").fetchall()
    assert sent == [(HTJ2KLossless, ExplicitVRLittleEndian)]
