"""The migration listener against real senders: DCMTK storescu/echoscu, and pynetdicom SCUs."""

from __future__ import annotations

import logging
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pytest
from pydicom import Dataset, dcmread
from pydicom.encaps import encapsulate
from pydicom.uid import (
    HEVCM10P51,
    HEVCMP51,
    HTJ2K,
    MPEG2MPML,
    MPEG4HP41,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    HTJ2KLossless,
    HTJ2KLosslessRPCL,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLosslessSV1,
    JPEGLSNearLossless,
    RLELossless,
)

import runner.dicom.store  # noqa: F401 - switches on chunked file sends (raw bytes on the wire)
from runner.dicom.listener import (
    IncomingStore,
    Listener,
    ListenerCallbacks,
    ListenerConfig,
    Received,
    Rejection,
    Verdict,
)
from runner.dicom.peer import DicomSettings
from runner.dicom.spool import Spool
from runner.dicom.ul.acceptor import TurnedAway
from runner.errors import DicomError
from runner.sim.ae import make_ae
from runner.sim.generate import StudySpec, make_study, write_study
from tests.peers import HOST, files_sent_as_bytes, peer_env

pytestmark = pytest.mark.peers

LISTENER_AE = "MIGRATE"
SOURCE_AE = "SOURCE"
SETTINGS = DicomSettings(acse_timeout=5, dimse_timeout=10, network_timeout=10)
PATIENT_NAME = "Zebedee^Quentin"


@dataclass
class Recorder:
    """The listener's owner in these tests: a verdict rule, and everything it was told."""

    verdict: Callable[[IncomingStore], Verdict] = lambda _header: Verdict.STORE
    asked: list[IncomingStore] = field(default_factory=list)
    stored: list[Received] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    turned_away: list[TurnedAway] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def decide(self, header: IncomingStore) -> Verdict:
        with self.lock:
            self.asked.append(header)
        return self.verdict(header)

    def callbacks(self) -> ListenerCallbacks:
        return ListenerCallbacks(self.decide, self.stored.append, self.rejected.append,
                                 on_turned_away=self.turned_away.append)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def spool(tmp_path: Path) -> Spool:
    return Spool(tmp_path / "spool", max_bytes=10**9)


@pytest.fixture
def listener(spool: Spool, recorder: Recorder) -> Iterator[Listener]:
    config = ListenerConfig(LISTENER_AE, frozenset({SOURCE_AE}), settings=SETTINGS)
    with Listener(config, spool, recorder.callbacks()) as started:
        yield started


def spec(seed: str, modality: str = "CT", instances: int = 1) -> StudySpec:
    return StudySpec(
        seed, "PID-123", PATIENT_NAME, date(2021, 3, 4), modality, instances_per_series=instances
    )


def storescu(
    port: int,
    *files: Path,
    options: tuple[str, ...] = (),
    calling: str = SOURCE_AE,
    called: str = LISTENER_AE,
) -> subprocess.CompletedProcess[str]:
    args = ["storescu", "-aet", calling, "-aec", called, *options, HOST, str(port)]
    return subprocess.run(
        [*args, *map(str, files)], env=peer_env(), capture_output=True, text=True, timeout=30
    )


def dataset_bytes(raw: bytes) -> bytes:
    """A Part-10 file's bytes after its file meta (the dataset as sent on the wire)."""
    meta_length = int.from_bytes(raw[140:144], "little")
    return raw[144 + meta_length :]


def send_pynetdicom(port: int, source: Dataset | Path, **kwargs: object) -> int | None:
    """One C-STORE from a pynetdicom SCU; the status code, None if there was none."""
    ae = make_ae(SOURCE_AE, SETTINGS)
    if isinstance(source, Path):
        meta = dcmread(source, stop_before_pixels=True).file_meta
        sop_class, syntax = meta.MediaStorageSOPClassUID, meta.TransferSyntaxUID
    else:
        sop_class, syntax = source.SOPClassUID, source.file_meta.TransferSyntaxUID
    ae.add_requested_context(sop_class, [syntax])
    assoc = ae.associate(HOST, port, ae_title=LISTENER_AE)
    assert assoc.is_established
    try:
        with files_sent_as_bytes():
            status = assoc.send_c_store(source, **kwargs)
        return int(status.Status) if "Status" in status else None
    finally:
        assoc.release()


def test_storescu_instances_of_several_sop_classes_are_spooled_with_their_headers(
    listener: Listener, recorder: Recorder, tmp_path: Path
) -> None:
    specs = [spec(f"classes-{m}", m, instances=2) for m in ("CT", "MR", "CR", "US")]
    files = [path for s in specs for path in write_study(tmp_path / "src", s)]

    result = storescu(listener.port, *files)

    assert result.returncode == 0, result.stderr
    by_uid = {r.header.sop_instance_uid: r for r in recorder.stored}
    assert len(by_uid) == 8
    for path in files:
        source = dcmread(path)
        received = by_uid[source.SOPInstanceUID]
        header = received.header
        assert header.sop_class_uid == source.SOPClassUID
        assert header.study_uid == source.StudyInstanceUID
        assert header.series_uid == source.SeriesInstanceUID
        assert header.calling_ae == SOURCE_AE
        assert header.move_originator_ae is None and header.move_originator_msg_id is None
        spooled = received.entry.path.read_bytes()
        assert dataset_bytes(spooled) == dataset_bytes(path.read_bytes())
        assert dcmread(received.entry.path).file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
        assert received.entry.size == header.size == received.entry.path.stat().st_size
    assert {r.header.sop_class_uid for r in recorder.stored} == {
        "1.2.840.10008.5.1.4.1.1.2",
        "1.2.840.10008.5.1.4.1.1.4",
        "1.2.840.10008.5.1.4.1.1.1",
        "1.2.840.10008.5.1.4.1.1.6.1",
    }
    assert recorder.rejected == []


def _dcmtk_compressed(tool: list[str]) -> Callable[[Path, Path], None]:
    def make(source: Path, target: Path) -> None:
        subprocess.run([*tool, str(source), str(target)], check=True, capture_output=True)

    return make


def _deflated(source: Path, target: Path) -> None:
    ds = dcmread(source)
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    ds.save_as(target, enforce_file_format=True)


def _opaque(syntax: str) -> Callable[[Path, Path], None]:
    """A file whose codestream is opaque bytes: the listener never decodes pixels."""
    def convert(source: Path, target: Path) -> None:
        ds = dcmread(source)
        ds.file_meta.TransferSyntaxUID = syntax
        ds.PixelData = encapsulate([b"\xff\x4f\xff\x51opaque-codestream"])
        ds["PixelData"].VR = "OB"
        ds.save_as(target, enforce_file_format=True)
    return convert


_jpeg2000_without_a_codec = _opaque(JPEG2000Lossless)


@pytest.mark.parametrize("syntax", [HTJ2KLossless, HTJ2KLosslessRPCL, HTJ2K, MPEG2MPML,
                                    MPEG4HP41, HEVCMP51, HEVCM10P51, JPEGLSNearLossless,
                                    JPEGExtended12Bit])
def test_instances_in_newer_and_video_syntaxes_are_spooled_as_sent(
    listener: Listener, recorder: Recorder, tmp_path: Path, syntax: str
) -> None:
    [plain] = write_study(tmp_path / "src", spec(f"syntax-{syntax}"))
    encoded = tmp_path / "encoded.dcm"
    _opaque(syntax)(plain, encoded)

    assert send_pynetdicom(listener.port, encoded) == 0x0000

    [received] = recorder.stored
    assert received.header.transfer_syntax == syntax
    assert dataset_bytes(received.entry.path.read_bytes()) == dataset_bytes(encoded.read_bytes())


COMPRESSED = [
    pytest.param(_dcmtk_compressed(["dcmcjpeg"]), "-xs", JPEGLosslessSV1, id="jpeg-lossless"),
    pytest.param(_dcmtk_compressed(["dcmcjpeg", "+eb"]), "-xy", JPEGBaseline8Bit, id="jpeg-base"),
    pytest.param(_dcmtk_compressed(["dcmcrle"]), "-xr", RLELossless, id="rle"),
    pytest.param(_deflated, "-xd", DeflatedExplicitVRLittleEndian, id="deflated"),
    pytest.param(_jpeg2000_without_a_codec, "-xv", JPEG2000Lossless, id="jpeg2000"),
]


@pytest.mark.parametrize(("convert", "option", "syntax"), COMPRESSED)
def test_compressed_instances_are_spooled_byte_identical_in_their_transfer_syntax(
    listener: Listener,
    recorder: Recorder,
    tmp_path: Path,
    convert: Callable[[Path, Path], None],
    option: str,
    syntax: str,
) -> None:
    [plain] = write_study(tmp_path / "src", spec(f"compressed-{option}"))
    compressed = tmp_path / "compressed.dcm"
    convert(plain, compressed)
    assert dcmread(compressed).file_meta.TransferSyntaxUID == syntax

    result = storescu(listener.port, compressed, options=(option,))

    assert result.returncode == 0, result.stderr
    [received] = recorder.stored
    assert received.header.transfer_syntax == syntax
    spooled = received.entry.path.read_bytes()
    assert dataset_bytes(spooled) == dataset_bytes(compressed.read_bytes())
    assert dcmread(received.entry.path).file_meta.TransferSyntaxUID == syntax


def test_association_from_a_calling_ae_not_allowed_is_rejected_and_logged_without_patient_data(
    listener: Listener, recorder: Recorder, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    [path] = write_study(tmp_path / "src", spec("stranger"))
    caplog.set_level(logging.INFO)

    result = storescu(listener.port, path, calling="STRANGER")

    assert result.returncode != 0
    assert "Association Rejected" in result.stderr or "rejected" in result.stderr.lower()
    assert recorder.asked == [] and recorder.stored == []
    assert listener.spool.existing() == []
    assert "refused an association from STRANGER" in caplog.text
    assert [(t.calling_ae, t.reason) for t in recorder.turned_away] == [
        ("STRANGER", "association refused: calling AE title is not in the listener's allow-list")]
    assert "Zebedee" not in caplog.text and "PID-123" not in caplog.text


def test_association_called_with_another_ae_title_is_rejected(
    listener: Listener, recorder: Recorder, tmp_path: Path
) -> None:
    [path] = write_study(tmp_path / "src", spec("wrong-called"))

    result = storescu(listener.port, path, called="SOMEONE_ELSE")

    assert result.returncode != 0
    assert recorder.stored == []


def test_instance_no_retrieve_asked_for_is_refused_with_0124_and_not_spooled(
    listener: Listener, recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    wanted, unwanted = make_study(spec("refuse", instances=2))
    recorder.verdict = lambda h: (
        Verdict.STORE if h.sop_instance_uid == wanted.SOPInstanceUID else Verdict.REFUSE
    )

    assert send_pynetdicom(listener.port, unwanted) == 0x0124
    assert send_pynetdicom(listener.port, wanted) == 0x0000

    assert [r.header.sop_instance_uid for r in recorder.stored] == [wanted.SOPInstanceUID]
    assert [(r.sop_instance_uid, r.status) for r in recorder.rejected] == [
        (unwanted.SOPInstanceUID, 0x0124)
    ]
    assert len(listener.spool.existing()) == 1
    assert "Zebedee" not in caplog.text


def test_discarded_instance_is_answered_success_and_nothing_is_kept(
    listener: Listener, recorder: Recorder
) -> None:
    [instance] = make_study(spec("discard"))
    recorder.verdict = lambda _h: Verdict.DISCARD

    assert send_pynetdicom(listener.port, instance) == 0x0000

    assert len(recorder.asked) == 1
    assert recorder.stored == [] and recorder.rejected == []
    assert listener.spool.existing() == [] and listener.spool.used_bytes == 0


def test_full_spool_answers_out_of_resources_and_raises_the_back_pressure_flag(
    tmp_path: Path, recorder: Recorder
) -> None:
    first, second = make_study(spec("full", instances=2))
    small = Spool(tmp_path / "small", max_bytes=6000)  # one 64x64 instance is about 5 kB
    config = ListenerConfig(LISTENER_AE, frozenset({SOURCE_AE}), settings=SETTINGS)
    with Listener(config, small, recorder.callbacks()) as listener:
        assert send_pynetdicom(listener.port, first) == 0x0000
        assert not listener.spool_full
        assert send_pynetdicom(listener.port, second) == 0xA700
        assert listener.spool_full
        assert [r.status for r in recorder.rejected] == [0xA700]

        small.remove(recorder.stored[0].entry.name)
        assert not listener.spool_full
        assert send_pynetdicom(listener.port, second) == 0x0000
    assert [r.header.sop_instance_uid for r in recorder.stored] == [
        first.SOPInstanceUID,
        second.SOPInstanceUID,
    ]


def _garbage_body(path: Path) -> None:
    raw = path.read_bytes()
    meta_end = len(raw) - len(dataset_bytes(raw))
    path.write_bytes(raw[:meta_end] + b"\x08\x00\x16\x00UI\xff\xff" + b"\x01" * 40)


def _without_study_uid(path: Path) -> None:
    ds = dcmread(path)
    del ds.StudyInstanceUID
    ds.save_as(path, enforce_file_format=True)


@pytest.mark.parametrize("damage", [_garbage_body, _without_study_uid], ids=["garbage", "no-study"])
def test_malformed_dataset_is_answered_c000_and_the_listener_keeps_serving(
    listener: Listener, recorder: Recorder, tmp_path: Path, damage: Callable[[Path], None]
) -> None:
    bad, good = write_study(tmp_path / "src", spec("malformed", instances=2))
    damage(bad)

    assert send_pynetdicom(listener.port, bad) == 0xC000
    assert send_pynetdicom(listener.port, good) == 0x0000

    [rejection] = recorder.rejected
    assert rejection.status == 0xC000 and rejection.reason
    assert [r.header.sop_instance_uid for r in recorder.stored] == [dcmread(good).SOPInstanceUID]


def test_move_originator_title_and_message_id_reach_decide(
    listener: Listener, recorder: Recorder
) -> None:
    [instance] = make_study(spec("originator"))

    status = send_pynetdicom(
        listener.port, instance, originator_aet=LISTENER_AE, originator_id=4242
    )

    assert status == 0x0000
    [header] = recorder.asked
    assert header.move_originator_ae == LISTENER_AE
    assert header.move_originator_msg_id == 4242


def test_failing_callback_is_answered_processing_failure_and_leaves_no_orphan(
    spool: Spool, tmp_path: Path
) -> None:
    def broken(_received: Received) -> None:
        raise RuntimeError("ledger queue closed")

    rejected: list[Rejection] = []
    callbacks = ListenerCallbacks(lambda _h: Verdict.STORE, broken, rejected.append)
    config = ListenerConfig(LISTENER_AE, frozenset({SOURCE_AE}), settings=SETTINGS)
    [instance] = make_study(spec("broken-callback"))
    with Listener(config, spool, callbacks) as listener:
        assert send_pynetdicom(listener.port, instance) == 0x0110
    assert spool.existing() == []
    assert [r.status for r in rejected] == [0x0110]


def test_listener_answers_c_echo(listener: Listener) -> None:
    result = subprocess.run(
        ["echoscu", "-aet", SOURCE_AE, "-aec", LISTENER_AE, HOST, str(listener.port)],
        env=peer_env(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr


def test_port_already_in_use_raises_dicom_error(
    listener: Listener, spool: Spool, recorder: Recorder
) -> None:
    config = ListenerConfig(
        LISTENER_AE, frozenset({SOURCE_AE}), port=listener.port, settings=SETTINGS
    )
    with pytest.raises(DicomError, match="cannot listen"):
        Listener(config, spool, recorder.callbacks()).start()


def test_listener_config_refuses_an_empty_allow_list() -> None:
    with pytest.raises(ValueError, match="allowed"):
        ListenerConfig(LISTENER_AE, frozenset())


def test_header_of_explicit_vr_instance_is_parsed_without_pixel_data(
    listener: Listener, recorder: Recorder
) -> None:
    [instance] = make_study(spec("explicit"))
    instance.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian

    assert send_pynetdicom(listener.port, instance) == 0x0000

    [received] = recorder.stored
    assert received.header.transfer_syntax == ExplicitVRLittleEndian
    assert received.header.study_uid == instance.StudyInstanceUID


SIEMENS_CSA_NON_IMAGE = "1.3.12.2.1107.5.9.1"  # private: not in any standard list
GE_PRIVATE_3D_MODEL = "1.2.840.113619.4.26"


def private_instance(seed: str, sop_class: str) -> Dataset:
    """A non-image object of a private SOP class, as vendors store beside their images."""
    [ds] = make_study(spec(seed))
    for keyword in ("PixelData", "Rows", "Columns", "BitsAllocated", "BitsStored", "HighBit",
                    "PixelRepresentation", "SamplesPerPixel", "PhotometricInterpretation"):
        if keyword in ds:
            delattr(ds, keyword)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = sop_class
    block = ds.private_block(0x0029, "SIEMENS CSA NON-IMAGE", create=True)
    block.add_new(0x10, "OB", b"SV10\x04\x03\x02\x01" + bytes(120))
    return ds


@pytest.mark.parametrize("sop_class", [SIEMENS_CSA_NON_IMAGE, GE_PRIVATE_3D_MODEL])
def test_instance_of_a_private_sop_class_is_accepted_and_spooled_as_received(
    listener: Listener, recorder: Recorder, sop_class: str
) -> None:
    instance = private_instance(f"private-{sop_class}", sop_class)

    assert send_pynetdicom(listener.port, instance) == 0x0000

    [received] = recorder.stored
    assert received.header.sop_class_uid == sop_class
    assert received.header.sop_instance_uid == instance.SOPInstanceUID
    spooled = dcmread(received.entry.path)
    assert spooled.file_meta.MediaStorageSOPClassUID == sop_class
    assert spooled[0x0029, 0x1010].value == instance[0x0029, 0x1010].value
    assert recorder.rejected == []


def test_a_context_in_a_transfer_syntax_the_listener_cannot_read_is_refused_and_reported(
    listener: Listener, recorder: Recorder
) -> None:
    """A private transfer syntax: its encoding is unknown, so no header could be read."""
    ae = make_ae(SOURCE_AE, SETTINGS)
    ae.add_requested_context("1.2.840.10008.5.1.4.1.1.2", ["1.2.826.0.1.3680043.99.1"])
    ae.add_requested_context("1.2.840.10008.5.1.4.1.1.2", [ExplicitVRLittleEndian])
    assoc = ae.associate(HOST, listener.port, ae_title=LISTENER_AE)
    assert assoc.is_established
    assoc.release()

    assert [(t.calling_ae, t.reason) for t in recorder.turned_away] == [
        (SOURCE_AE, "presentation context refused (none of its transfer syntaxes accepted): "
                    "1.2.840.10008.5.1.4.1.1.2 in 1.2.826.0.1.3680043.99.1")]
