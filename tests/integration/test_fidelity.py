"""Every object as it was: private SOP classes and every transfer syntax, Orthanc -> Orthanc.

Each object kind is its own study at the source (made with pydicom, converted with DCMTK);
the run must leave each at the destination with the source's SOP class, SOP Instance UID,
transfer syntax and pixel bytes, and with the rules applied where rules are given.
"""

from __future__ import annotations

import json
import subprocess
import urllib.request
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from html import escape
from io import BytesIO
from pathlib import Path
from typing import Any

import duckdb
import numpy
import pytest
from pydicom import Dataset, dcmread
from pydicom.encaps import encapsulate
from pydicom.uid import (
    HEVCMP51,
    MPEG2MPML,
    MPEG4HP41,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLosslessSV1,
    JPEGLSLossless,
    RLELossless,
)

from runner.dicom.peer import Peer
from runner.profile.load import load_profile
from runner.sim.generate import StudySpec, make_study
from tests.integration.test_migration import Site
from tests.peers import OrthancProcess, free_port, peer_env
from tests.profiles import profile_data, write_profile

pytestmark = pytest.mark.peers

SIEMENS_CSA_NON_IMAGE = "1.3.12.2.1107.5.9.1"
UNKNOWN_CLASSES = {"UnknownSopClassAccepted": True}
PIXEL_DATA = 0x7FE00010


def _spec(kind: str, modality: str = "CT") -> StudySpec:
    return StudySpec(f"fidelity-{kind}", f"PID-{kind}", "Doe^Jane", date(2016, 5, 6), modality,
                     bits_allocated=16 if modality == "CT" else 8)


def _plain(kind: str, directory: Path, modality: str = "CT") -> Path:
    [ds] = make_study(_spec(kind, modality))
    path = directory / f"{kind}.plain.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def _dcmtk(*tool: str) -> Callable[[Path, Path], None]:
    def convert(source: Path, target: Path) -> None:
        subprocess.run([*tool, str(source), str(target)], check=True, capture_output=True,
                       env=peer_env())
    return convert


def _private(source: Path, target: Path) -> None:
    """A Siemens CSA non-image object: a private SOP class, no pixel data."""
    ds = dcmread(source)
    for keyword in ("PixelData", "Rows", "Columns", "BitsAllocated", "BitsStored", "HighBit",
                    "PixelRepresentation", "SamplesPerPixel", "PhotometricInterpretation"):
        delattr(ds, keyword)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = SIEMENS_CSA_NON_IMAGE
    block = ds.private_block(0x0029, "SIEMENS CSA NON-IMAGE", create=True)
    block.add_new(0x10, "OB", b"SV10\x04\x03\x02\x01" + bytes(120))
    ds.save_as(target, enforce_file_format=True)


def _opaque(syntax: str) -> Callable[[Path, Path], None]:
    """Encapsulated pixel data whose codestream is opaque bytes (no codec needed anywhere)."""
    def convert(source: Path, target: Path) -> None:
        ds = dcmread(source)
        ds.file_meta.TransferSyntaxUID = syntax
        ds.PixelData = encapsulate([b"\xff\x4f\xff\x51opaque-codestream-" + bytes(64)])
        ds["PixelData"].VR = "OB"
        ds.save_as(target, enforce_file_format=True)
    return convert


def _implicit(source: Path, target: Path) -> None:
    _dcmtk("dcmconv", "+ti")(source, target)


KINDS: dict[str, tuple[Callable[[Path, Path], None], str]] = {
    "private-csa": (_private, ExplicitVRLittleEndian),
    "deflated": (_dcmtk("dcmconv", "+td"), DeflatedExplicitVRLittleEndian),
    "big-endian": (_dcmtk("dcmconv", "+tb"), ExplicitVRBigEndian),
    "implicit": (_implicit, ImplicitVRLittleEndian),
    "jpeg-lossless": (_dcmtk("dcmcjpeg"), JPEGLosslessSV1),
    "jpeg-ls": (_dcmtk("dcmcjpls"), JPEGLSLossless),
    "rle": (_dcmtk("dcmcrle"), RLELossless),
    "jpeg2000": (_opaque(JPEG2000Lossless), JPEG2000Lossless),
    "mpeg4": (_opaque(MPEG4HP41), MPEG4HP41),
    "mpeg2": (_opaque(MPEG2MPML), MPEG2MPML),
    "hevc": (_opaque(HEVCMP51), HEVCMP51),
    "jpeg-baseline": (_dcmtk("dcmcjpeg", "+eb"), JPEGBaseline8Bit),
}


# HTJ2K is not among these: Orthanc 1.10, the source here, cannot send it ("Unsupported transfer
# syntax"); tests/integration/test_htj2k.py carries it end to end from a Q/R SCP that can.


def make_objects(directory: Path, kinds: dict[str, tuple[Callable[[Path, Path], None], str]]
                 ) -> dict[str, Path]:
    """One file per kind, converted by its tool; checked to be in the expected syntax."""
    directory.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    for kind, (convert, syntax) in kinds.items():
        target = directory / f"{kind}.dcm"
        convert(_plain(kind, directory), target)
        assert dcmread(target).file_meta.TransferSyntaxUID == syntax, kind
        out[kind] = target
    return out


@dataclass(frozen=True)
class Held:
    """What a PACS holds of one instance, as its file says."""

    sop_class: str
    transfer_syntax: str
    pixels: bytes | None
    dataset: Dataset


def files_of(orthanc: OrthancProcess) -> list[bytes]:
    """Every file Orthanc holds, as it stored it."""
    out: list[bytes] = []
    for item in orthanc.rest_get("/instances"):
        url = f"http://127.0.0.1:{orthanc.http_port}/instances/{item}/file"
        with urllib.request.urlopen(url, timeout=30) as response:
            out.append(response.read())
    return out


def held(orthanc: OrthancProcess) -> dict[str, Held]:
    out: dict[str, Held] = {}
    for raw in files_of(orthanc):
        ds = dcmread(BytesIO(raw))
        pixels = ds[PIXEL_DATA].value if PIXEL_DATA in ds else None
        out[str(ds.SOPInstanceUID)] = Held(str(ds.SOPClassUID),
                                           str(ds.file_meta.TransferSyntaxUID), pixels, ds)
    return out


def fidelity_site(tmp_path: Path, orthanc_factory: Callable[..., OrthancProcess],
                  files: list[Path], source_config: dict[str, Any] | None = None,
                  destination_config: dict[str, Any] | None = None,
                  **sections: object) -> Site:
    listener_port = free_port()
    listener = Peer("PACSMIG", "127.0.0.1", listener_port)
    source = orthanc_factory(aet="OLDPACS", modalities={"pacsmig": listener},
                             extra_config={**UNKNOWN_CLASSES, **(source_config or {})})
    destination = orthanc_factory(aet="NEWVNA", modalities={"pacsmig": listener},
                                  extra_config={**UNKNOWN_CLASSES, **(destination_config or {})})
    for path in files:
        source.upload(path)
    data = profile_data(tmp_path, [("old1", source.peer)], destination.peer, listener_port,
                        **sections)
    return Site(source, destination, write_profile(tmp_path, data), [], tmp_path / "reports")


def assert_same_objects(source: dict[str, Held], destination: dict[str, Held]) -> None:
    assert sorted(destination) == sorted(source)
    for uid, original in source.items():
        arrived = destination[uid]
        assert arrived.sop_class == original.sop_class, uid
        assert arrived.transfer_syntax == original.transfer_syntax, uid
        assert arrived.pixels == original.pixels, uid


def test_every_kind_of_object_arrives_as_it_was_held(
        tmp_path: Path, orthanc_factory: Callable[..., OrthancProcess]) -> None:
    files = make_objects(tmp_path / "objects", KINDS)
    site = fidelity_site(tmp_path, orthanc_factory, list(files.values()))
    source = held(site.source)
    assert {h.sop_class for h in source.values()} >= {SIEMENS_CSA_NON_IMAGE}

    result = site.pacsmig("run")

    assert result.returncode == 0, result.stdout + result.stderr
    assert_same_objects(source, held(site.destination))
    assert {row[4] for row in site.reconciliation()} == {"verified"}


RULE = [{"set": {"InstitutionName": "Example Hospital"}},
        {"replace": {"tag": "AccessionNumber", "pattern": "^(.*)$", "with": r"EXH\1"}}]


DEFLATED_MORE = {f"deflated-{n}": KINDS["deflated"] for n in range(6)}


def unpadded_deflate_length(path_bytes: bytes) -> int:
    """The length of the raw deflate stream of a deflated file's data set, without padding."""
    meta_end = 144 + int.from_bytes(path_bytes[140:144], "little")
    packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    inflated = zlib.decompress(path_bytes[meta_end:], -zlib.MAX_WBITS)
    return len(packer.compress(inflated) + packer.flush())


def test_rules_apply_to_every_kind_of_object_and_a_deflated_one_stays_deflated(
        tmp_path: Path, orthanc_factory: Callable[..., OrthancProcess]) -> None:
    files = make_objects(tmp_path / "objects", {**KINDS, **DEFLATED_MORE})
    site = fidelity_site(tmp_path, orthanc_factory, list(files.values()), morphing=RULE)
    source = held(site.source)

    result = site.pacsmig("run")

    assert result.returncode == 0, result.stdout + result.stderr
    destination = held(site.destination)
    assert_same_objects(source, destination)
    for uid, arrived in destination.items():
        assert arrived.dataset.InstitutionName == "Example Hospital", uid
        assert str(arrived.dataset.AccessionNumber).startswith("EXH"), uid
        assert arrived.dataset.PatientID == source[uid].dataset.PatientID
    with duckdb.connect(str(site.reports / "ledger.duckdb"), read_only=True) as conn:
        quarantined = conn.execute("SELECT count(*) FROM quarantines").fetchone()
    assert quarantined == (0,)
    deflated = [raw for raw in files_of(site.destination)
                if dcmread(BytesIO(raw)).file_meta.TransferSyntaxUID.is_deflated]
    assert len(deflated) == 7
    # the rules made deflate streams of odd length (sent padded to even, PS3.5 A.5)
    assert any(unpadded_deflate_length(raw) % 2 for raw in deflated)
    assert all((len(raw) - 144 - int.from_bytes(raw[140:144], "little")) % 2 == 0
               for raw in deflated)

    report = site.pacsmig("report")
    assert report.returncode == 0, report.stdout + report.stderr
    html = (site.reports / "signoff.html").read_text()
    changes = html[html.index("What changed in the data"):]
    rules_part = changes[changes.index("Morphing rules"):changes.index("Transcodes")]
    for words in load_profile(site.profile).profile.rules().describe():
        row = rules_part[rules_part.index(escape(words)):]
        assert row[:row.index("</tr>")].endswith(f"<td class=\"num\">{len(files)}</td>"), words


def test_a_retrieve_failed_by_the_runners_own_listener_says_so_next_to_the_sources_status(
        tmp_path: Path, orthanc_factory: Callable[..., OrthancProcess]) -> None:
    """A PACS whose Q/R title differs from the title it stores under (OLDPACS): the
    listener refuses its associations, the source fails the C-MOVE, and the ledger and
    report name the listener's refusal, not only the source's status."""
    files = make_objects(tmp_path / "objects", {"plain": KINDS["implicit"]})
    site = fidelity_site(tmp_path, orthanc_factory, list(files.values()),
                         source_config={"DicomCheckCalledAet": False},
                         retries={"retrieve_attempts": 1, "backoff_seconds": 0.1})
    profile = site.profile.read_text().replace("ae_title: OLDPACS", "ae_title: OLDPACS_QR")
    site.profile.write_text(profile)

    result = site.pacsmig("run")

    assert result.returncode == 1
    expected = ("the runner's listener association refused: calling AE title is not in the "
                "listener's allow-list (from OLDPACS)")
    with duckdb.connect(str(site.reports / "ledger.duckdb"), read_only=True) as conn:
        [(reason,)] = conn.execute("SELECT reason FROM studies").fetchall()
        details = [row[0] for row in conn.execute("SELECT detail FROM retrieves").fetchall()]
        events = conn.execute("SELECT count(*) FROM events WHERE kind = 'listener_refused'"
                              ).fetchone()
    assert "OLDPACS_QR" in reason and "answered 0x" in reason, reason  # the source's status
    assert expected in reason
    assert details and all(expected in detail for detail in details)
    assert events is not None and events[0] >= 1
    report = site.pacsmig("report")
    assert report.returncode in (0, 1), report.stderr
    assert "allow-list (from OLDPACS)" in (site.reports / "signoff.html").read_text()


def _j2k_lossless(source: Path, target: Path) -> None:
    ds = dcmread(source)
    ds.compress(JPEG2000Lossless, encoding_plugin="pylibjpeg", generate_instance_uid=False)
    ds.save_as(target, enforce_file_format=True)


UNCOMPRESSED_ONLY = {"AcceptedTransferSyntaxes": [ExplicitVRLittleEndian,
                                                  ImplicitVRLittleEndian]}
TRANSCODED = {"deflated", "big-endian", "jpeg-lossless", "jpeg-ls", "rle", "j2k-lossless"}
NOT_LOSSLESS = {"jpeg-baseline", "mpeg4"}


def decoded(ds: Dataset) -> Any:
    return ds.pixel_array if PIXEL_DATA in ds else None


def test_a_destination_refusing_a_syntax_gets_a_lossless_transcode_or_an_exception(
        tmp_path: Path, orthanc_factory: Callable[..., OrthancProcess]) -> None:
    kinds = {kind: KINDS[kind] for kind in
             ("private-csa", "implicit", *sorted(TRANSCODED - {"j2k-lossless"}),
              *sorted(NOT_LOSSLESS))}
    kinds["j2k-lossless"] = (_j2k_lossless, JPEG2000Lossless)
    files = make_objects(tmp_path / "objects", kinds)
    site = fidelity_site(tmp_path, orthanc_factory, list(files.values()),
                         destination_config=UNCOMPRESSED_ONLY, morphing=RULE,
                         retries={"store_attempts": 2, "backoff_seconds": 0.1,
                                  "retrieve_attempts": 1},
                         destination={"verify_sample": 100})
    source = held(site.source)
    uid_of = {kind: str(dcmread(path).SOPInstanceUID) for kind, path in files.items()}

    result = site.pacsmig("run")

    assert result.returncode == 1, result.stdout + result.stderr  # the lossy two
    destination = held(site.destination)
    assert sorted(destination) == sorted(uid_of[k] for k in kinds if k not in NOT_LOSSLESS)
    for kind, uid in uid_of.items():
        if kind in NOT_LOSSLESS:
            continue
        original, arrived = source[uid], destination[uid]
        assert arrived.sop_class == original.sop_class, kind
        assert arrived.dataset.InstitutionName == "Example Hospital", kind
        assert arrived.transfer_syntax in (ExplicitVRLittleEndian, ImplicitVRLittleEndian)
        if kind in ("private-csa", "implicit"):
            assert arrived.transfer_syntax == original.transfer_syntax, kind  # as held
            assert arrived.pixels == original.pixels, kind
        else:
            assert numpy.array_equal(decoded(arrived.dataset), decoded(original.dataset)), kind
        untouched = {e.tag for e in original.dataset} - {PIXEL_DATA, 0x00080080, 0x00080050}
        for tag in untouched:
            if tag in arrived.dataset and tag >> 16 != 0x0028:
                assert arrived.dataset[tag].value == original.dataset[tag].value, (kind, tag)
        assert not (untouched - {e.tag for e in arrived.dataset}), kind

    with duckdb.connect(str(site.reports / "ledger.duckdb"), read_only=True) as conn:
        transcodes = conn.execute(
            "SELECT sop_instance_uid, transcoded_from, transcoded_to, transcode_reason "
            "FROM forwards WHERE ok AND transcoded_to IS NOT NULL").fetchall()
        quarantined = dict(conn.execute(
            "SELECT sop_instance_uid, reason FROM quarantines").fetchall())
    by_uid = {uid: (source_syntax, sent, why) for uid, source_syntax, sent, why in transcodes}
    assert sorted(by_uid) == sorted(uid_of[k] for k in TRANSCODED)
    for kind in TRANSCODED:
        source_syntax, sent, why = by_uid[uid_of[kind]]
        assert source_syntax == source[uid_of[kind]].transfer_syntax
        assert sent == destination[uid_of[kind]].transfer_syntax
        assert "the destination does not accept" in why
    assert sorted(quarantined) == sorted(uid_of[k] for k in NOT_LOSSLESS)
    assert all("cannot be sent losslessly" in reason and "cannot be transcoded without loss"
               in reason for reason in quarantined.values())

    report = site.pacsmig("report")
    assert report.returncode in (0, 1), report.stderr
    html = (site.reports / "signoff.html").read_text()
    changes = html[html.index("What changed in the data"):html.index("Exceptions:")]
    assert "6 instances were stored in another transfer syntax" in changes
    for name in ("RLE Lossless", "JPEG-LS Lossless Image Compression", "Explicit VR Big Endian",
                 "Deflated Explicit VR Little Endian", "JPEG 2000 Image Compression (Lossless "
                 "Only)", "Explicit VR Little Endian"):
        assert name in changes, name
    assert f"1 private SOP class carried: {SIEMENS_CSA_NON_IMAGE}" in changes
    assert f"{SIEMENS_CSA_NON_IMAGE} (private)" in changes

    # read back: the transcoded ones compare by decoded pixels, the others byte for byte
    sampled = site.pacsmig("verify")
    assert "Sample of 8 instances read back from the destination: 8 as sent" in \
        sampled.stdout, sampled.stdout + sampled.stderr


@pytest.mark.parametrize("only", [JPEGLSLossless, RLELossless])
def test_a_destination_taking_only_a_lossless_compression_gets_it_with_the_same_pixels(
        tmp_path: Path, orthanc_factory: Callable[..., OrthancProcess], only: str) -> None:
    kinds = {kind: KINDS[kind] for kind in ("implicit", "big-endian", "jpeg-lossless", "rle",
                                             "jpeg-ls", "private-csa")}
    files = make_objects(tmp_path / "objects", kinds)
    site = fidelity_site(tmp_path, orthanc_factory, list(files.values()),
                         destination_config={"AcceptedTransferSyntaxes": [only]},
                         retries={"store_attempts": 1, "retrieve_attempts": 1})
    source = held(site.source)

    result = site.pacsmig("run")

    assert result.returncode == 0, result.stdout + result.stderr
    destination = held(site.destination)
    assert sorted(destination) == sorted(source)
    for uid, original in source.items():
        arrived = destination[uid]
        assert arrived.transfer_syntax == only, original.transfer_syntax
        assert arrived.sop_class == original.sop_class
        assert numpy.array_equal(decoded(arrived.dataset), decoded(original.dataset))
        assert arrived.dataset.get("PhotometricInterpretation") == \
            original.dataset.get("PhotometricInterpretation")
    with duckdb.connect(str(site.reports / "ledger.duckdb"), read_only=True) as conn:
        sent = dict(conn.execute("SELECT sop_instance_uid, transcoded_to FROM forwards "
                                 "WHERE ok").fetchall())
    assert sent == {uid: None if original.transfer_syntax == only else only
                    for uid, original in source.items()}


def test_plan_shows_the_capability_matrix_of_the_destination_and_sends_nothing(
        tmp_path: Path, orthanc_factory: Callable[..., OrthancProcess]) -> None:
    files = make_objects(tmp_path / "objects", {k: KINDS[k] for k in ("private-csa", "rle")})
    site = fidelity_site(tmp_path, orthanc_factory, list(files.values()),
                         destination_config={**UNCOMPRESSED_ONLY,
                                             "UnknownSopClassAccepted": False})
    out = tmp_path / "plan.json"

    result = site.pacsmig("plan", "--json", str(out))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "Capability matrix" in result.stdout
    assert f"{SIEMENS_CSA_NON_IMAGE} (private): 1 study; REFUSED by the destination" \
        in result.stdout
    assert "CT Image Storage: 1 study; accepted in 2 of" in result.stdout
    assert "RLE Lossless" in result.stdout and "transcoded losslessly" in result.stdout
    assert "JPEG Baseline (Process 1)" in result.stdout and "exceptions" in result.stdout
    matrix = json.loads(out.read_text())["capabilities"]
    by_class = {row["sop_class"]: row for row in matrix["classes"]}
    assert by_class[SIEMENS_CSA_NON_IMAGE]["verdict"] == "refused"
    assert by_class[SIEMENS_CSA_NON_IMAGE]["private"] is True
    assert sorted(by_class["1.2.840.10008.5.1.4.1.1.2"]["accepted_syntaxes"]) == sorted(
        UNCOMPRESSED_ONLY["AcceptedTransferSyntaxes"])
    assert site.destination.instances() == []  # a dry run: nothing moved, nothing stored
