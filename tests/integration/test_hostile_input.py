"""Hostile DICOM at the listener: UIDs and IDs built to escape the spool never name a file,
and malformed datasets are answered with a failure while the listener keeps serving.

Real pynetdicom SCUs talk to the real `Listener` on loopback. Datasets are sent as raw
bytes (a Part-10 file streamed by pynetdicom's chunked send), so what arrives is exactly
the damaged encoding, not what pydicom would repair on writing.
"""

from __future__ import annotations

import re
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from io import BytesIO
from pathlib import Path

import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomFileLike
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian
from pynetdicom.association import Association

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
from runner.execute.run import RunSummary
from runner.sim.ae import make_ae
from runner.sim.generate import synthetic_archive
from tests.fakes import FussyArchive
from tests.integration.test_source_faults import Site
from tests.misbehaving import Fault, FaultKind, first_attempt
from tests.peers import files_sent_as_bytes

LISTENER_AE = "PACSMIG"
SOURCE_AE = "OLDPACS"
CT = "1.2.840.10008.5.1.4.1.1.2"
SETTINGS = DicomSettings(acse_timeout=5, dimse_timeout=10, network_timeout=10)
GOOD_UID = "1.2.826.0.1.3680043.8.498.77"
SPOOL_NAME = re.compile(r"^[0-9a-f]{32}\.dcm$")
pytestmark = pytest.mark.filterwarnings("ignore:Invalid value for VR UI:UserWarning")


@dataclass
class Storing:
    """The listener's owner: stores everything it is offered, remembers what it was told."""

    stored: list[Received] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def decide(self, _incoming: IncomingStore) -> Verdict:
        return Verdict.STORE

    def on_stored(self, received: Received) -> None:
        with self.lock:
            self.stored.append(received)

    def on_rejected(self, rejection: Rejection) -> None:
        with self.lock:
            self.rejected.append(rejection)


@pytest.fixture
def owner() -> Storing:
    return Storing()


@pytest.fixture
def spool_dir(tmp_path: Path) -> Path:
    return tmp_path / "deep" / "inside" / "spool"


@pytest.fixture
def listener(spool_dir: Path, owner: Storing) -> Iterator[Listener]:
    config = ListenerConfig(LISTENER_AE, frozenset({SOURCE_AE}), settings=SETTINGS)
    callbacks = ListenerCallbacks(owner.decide, owner.on_stored, owner.on_rejected)
    with Listener(config, Spool(spool_dir, 10**9), callbacks) as started:
        yield started


@pytest.fixture
def association(listener: Listener) -> Iterator[Association]:
    assoc = open_to(listener)
    yield assoc
    if assoc.is_established:
        assoc.release()


def open_to(listener: Listener) -> Association:
    ae = make_ae(SOURCE_AE, SETTINGS)
    ae.add_requested_context(CT, [ExplicitVRLittleEndian])
    assoc = ae.associate("127.0.0.1", listener.port, ae_title=LISTENER_AE)
    assert assoc.is_established
    return assoc


# ---- raw explicit VR little endian encoding ---------------------------------------------

_LONG_VRS = {b"OB", b"OW", b"OF", b"SQ", b"UT", b"UN", b"UC", b"UR", b"OD", b"OL", b"OV"}


def element(tag: int, vr: bytes, value: bytes, length: int | None = None) -> bytes:
    """One element as bytes; `length` overrides the true value length (to lie about it)."""
    size = len(value) if length is None else length
    head = struct.pack("<HH", tag >> 16, tag & 0xFFFF) + vr
    if vr in _LONG_VRS or len(vr) != 2:
        return head + b"\0\0" + struct.pack("<I", size) + value
    return head + struct.pack("<H", size & 0xFFFF) + value


def ui(value: str) -> bytes:
    raw = value.encode("latin-1")
    return raw + b"\0" * (len(raw) % 2)


def header(sop_uid: str = GOOD_UID, study: str = "1.2.3.4", series: str = "1.2.3.4.5",
           charset: bytes | None = None, name: bytes | None = None) -> bytes:
    """A small CT dataset (in tag order) with the four identifying UIDs."""
    parts = []
    if charset is not None:
        parts.append(element(0x00080005, b"CS", charset + b" " * (len(charset) % 2)))
    parts += [element(0x00080016, b"UI", ui(CT)), element(0x00080018, b"UI", ui(sop_uid)),
              element(0x00080060, b"CS", b"CT")]
    if name is not None:
        parts.append(element(0x00100010, b"PN", name + b" " * (len(name) % 2)))
    parts += [element(0x0020000D, b"UI", ui(study)), element(0x0020000E, b"UI", ui(series))]
    return b"".join(parts)


def part10(sop_uid: str, dataset: bytes) -> bytes:
    """A Part-10 file: valid file meta naming `sop_uid`, then `dataset` as it is."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CT
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    buffer = BytesIO()
    buffer.write(b"\0" * 128 + b"DICM")
    out = DicomFileLike(buffer)
    out.is_little_endian, out.is_implicit_VR = True, False
    write_file_meta_info(out, meta, enforce_standard=True)
    return buffer.getvalue() + dataset


def send(assoc: Association, tmp_path: Path, sop_uid: str, dataset: bytes) -> int | None:
    """C-STORE the raw `dataset` on `assoc`; the status, None when there was none."""
    path = tmp_path / "outgoing.dcm"
    path.write_bytes(part10(sop_uid, dataset))
    with files_sent_as_bytes():
        status: Dataset = assoc.send_c_store(path)
    return int(status.Status) if "Status" in status else None


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


# ---- path separators and dot-dots in UIDs and IDs -----------------------------------------

HOSTILE = [
    "../../../../escaped",
    "..",
    "/tmp/pacsmig-escaped",
    "..\\..\\..\\escaped-win",
    "1.2.3/../../../escaped",
    "spool/../../escaped\0",
    "~/.ssh/authorized_keys",
]


@pytest.mark.parametrize("hostile", HOSTILE)
def test_uids_and_ids_with_path_separators_never_name_a_file_outside_the_spool(
        listener: Listener, association: Association, owner: Storing, tmp_path: Path,
        spool_dir: Path, hostile: str) -> None:
    before = files_under(tmp_path)
    # a backslash splits a value in DICOM: the request's UID cannot carry one, the rest can
    sop = GOOD_UID if "\\" in hostile else hostile
    dataset = header(sop_uid=sop, study=hostile, series=hostile, name=hostile.encode())
    status = send(association, tmp_path, sop, dataset)
    assert status == 0x0000  # stored as received: UIDs are data, never paths
    after = files_under(tmp_path) - before - {tmp_path / "outgoing.dcm"}
    assert [p.parent for p in after] == [spool_dir], after
    [new] = after
    assert SPOOL_NAME.match(new.name)
    assert new.read_bytes().endswith(dataset)  # byte for byte, nothing rewritten
    assert not list((spool_dir / "tmp").iterdir())
    assert not Path("/tmp/pacsmig-escaped").exists()
    [received] = owner.stored
    assert received.header.sop_instance_uid == sop.strip("\0 ")
    assert received.entry.path == new


# ---- malformed datasets ---------------------------------------------------------------------

def _truncated() -> bytes:
    return header()[:30]


MALFORMED = {
    "length_beyond_the_end": element(0x00080016, b"UI", ui(CT))
    + element(0x00080018, b"UI", b"1.2.3", length=0xFFF0),
    "undefined_length_on_a_uid": element(0x00080016, b"UI", ui(CT))
    + element(0x00080018, b"UI", ui(GOOD_UID), length=0xFFFFFFFF),
    "truncated_in_an_element": _truncated(),
    "unknown_vr": element(0x00080016, b"UI", ui(CT)) + element(0x00080018, b"ZZ", ui(GOOD_UID)),
    "uid_as_sequence": element(0x00080016, b"UI", ui(CT))
    + element(0x00080018, b"SQ", b"\xfe\xff\x00\xe0\x04\x00\x00\x00junk"),
    "tags_out_of_order_no_uid": element(0x0020000D, b"UI", ui("1.2")) + element(
        0x00080016, b"UI", ui(CT)),
    "no_sop_instance_uid": element(0x00080016, b"UI", ui(CT))
    + element(0x0020000D, b"UI", ui("1.2")) + element(0x0020000E, b"UI", ui("1.2.3")),
    "sop_uid_differs_from_the_request": header(sop_uid="1.2.826.0.1.3680043.8.498.78"),
    "random_bytes": bytes((i * 97 + 13) % 256 for i in range(512)),
    "empty": b"",
}


def test_malformed_datasets_are_answered_failure_and_the_listener_keeps_serving(
        listener: Listener, association: Association, owner: Storing, tmp_path: Path,
        spool_dir: Path) -> None:
    statuses = {name: send(association, tmp_path, GOOD_UID, raw)
                for name, raw in MALFORMED.items()}
    assert statuses == dict.fromkeys(MALFORMED, 0xC000), statuses
    assert len(owner.rejected) == len(MALFORMED)
    assert all(r.status == 0xC000 and r.reason for r in owner.rejected)
    assert not owner.stored and not list(spool_dir.glob("*.dcm"))
    # the same association still works, and so does a new one
    assert send(association, tmp_path, GOOD_UID, header()) == 0x0000
    association.release()
    again = open_to(listener)
    try:
        assert send(again, tmp_path, "1.2.826.0.1.3680043.8.498.79",
                    header(sop_uid="1.2.826.0.1.3680043.8.498.79")) == 0x0000
    finally:
        again.release()
    assert len(owner.stored) == 2 and len(list(spool_dir.glob("*.dcm"))) == 2


@pytest.mark.parametrize("charset, name", [
    (b"ISO_IR 999", b"M\xfcller^J\xfcrgen"),
    (b"ISO_IR 192", b"\xff\xfe\xc3(\x80"),  # not UTF-8 at all
    (b"ISO 2022 IR 87", b"\x1b$B\xff\xff\x1b(B"),  # escape into a charset, then garbage
    (b"\\\\\\", b"\x00\x00"),
])
def test_bad_character_set_is_stored_byte_for_byte_never_decoded(
        listener: Listener, association: Association, owner: Storing, tmp_path: Path,
        charset: bytes, name: bytes) -> None:
    dataset = header(charset=charset, name=name)
    assert send(association, tmp_path, GOOD_UID, dataset) == 0x0000
    [received] = owner.stored
    assert received.entry.path.read_bytes().endswith(dataset)
    assert received.header.study_uid == "1.2.3.4"


# ---- during a run: the engine stores only what it asked for ---------------------------------

def test_during_a_run_unsolicited_and_hostile_instances_are_refused_and_recorded(
        tmp_path: Path) -> None:
    specs = synthetic_archive("hostile-run", 3, date(2015, 1, 1), date(2019, 1, 1))
    victim = str(specs[0].study_uid)
    destination = FussyArchive(ae_title="NEWVNA").start()
    # the victim's first retrieve hangs for 3 s: the run is surely under way meanwhile
    site = Site(tmp_path, specs, destination,
                first_attempt({victim: Fault(FaultKind.SILENT, seconds=3)}))
    outcome: list[RunSummary] = []
    runner = threading.Thread(target=lambda: outcome.append(site.run()[0]), daemon=True)
    try:
        runner.start()
        deadline = time.monotonic() + 20
        while not site.source.asked("C-MOVE") and time.monotonic() < deadline:
            time.sleep(0.05)
        before = files_under(tmp_path)
        ae = make_ae("BADPACS", SETTINGS)  # the source's own AE title: allowed to associate
        ae.add_requested_context(CT, [ExplicitVRLittleEndian])
        assoc = ae.associate("127.0.0.1", site.listener_port, ae_title=LISTENER_AE)
        assert assoc.is_established
        try:
            unsolicited = send(assoc, tmp_path, GOOD_UID, header(study="1.2.3.999"))
            hostile = send(assoc, tmp_path, "1.2.3", header(sop_uid="1.2.3", study="../../x",
                                                            series="/etc"))
        finally:
            assoc.release()
        runner.join(timeout=60)
    finally:
        site.stop()
        destination.stop()
    assert (unsolicited, hostile) == (0x0124, 0x0124)
    [summary] = outcome
    site.assert_all_verified_exactly_once(summary)
    assert summary.refused == 2
    refused = site.ledger("SELECT detail->>'status', detail->>'calling_ae' FROM events "
                          "WHERE kind = 'store_refused'")
    assert refused == [("292", "BADPACS")] * 2  # 0x0124
    new = files_under(tmp_path) - before - {tmp_path / "outgoing.dcm"}
    emptied = tmp_path / "spool" / "tmp"  # files kept, empty, for the next run to overwrite
    assert all(p.parent == tmp_path / "spool" or tmp_path / "reports" in p.parents
               or (p.parent == emptied and p.stat().st_size == 0) for p in new), new


def test_during_a_run_a_study_in_flight_takes_instances_only_from_the_device_asked(
        tmp_path: Path) -> None:
    specs = synthetic_archive("attribution-run", 2, date(2015, 1, 1), date(2019, 1, 1))
    victim = str(specs[0].study_uid)
    destination = FussyArchive(ae_title="NEWVNA").start()
    site = Site(tmp_path, specs, destination,
                first_attempt({victim: Fault(FaultKind.SILENT, seconds=3)}))
    outcome: list[RunSummary] = []
    runner = threading.Thread(target=lambda: outcome.append(site.run()[0]), daemon=True)
    statuses: dict[str, int | None] = {}
    try:
        runner.start()
        deadline = time.monotonic() + 20
        while not site.source.asked("C-MOVE") and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # the victim's retrieve is in flight (its first try hangs 3 s)
        # The destination may associate (it reports storage commitment), not store.
        for name, calling, originator in (("destination", "NEWVNA", None),
                                          ("other originator", "BADPACS", "INTRUDER")):
            ae = make_ae(calling, SETTINGS)
            ae.add_requested_context(CT, [ExplicitVRLittleEndian])
            assoc = ae.associate("127.0.0.1", site.listener_port, ae_title=LISTENER_AE)
            assert assoc.is_established, name
            try:
                uid = f"1.2.826.0.1.3680043.8.498.9{len(statuses)}"
                path = tmp_path / "outgoing.dcm"
                path.write_bytes(part10(uid, header(sop_uid=uid, study=victim)))
                with files_sent_as_bytes():
                    answer = assoc.send_c_store(path, originator_aet=originator,
                                                originator_id=1 if originator else None)
                statuses[name] = int(answer.Status) if "Status" in answer else None
            finally:
                assoc.release()
        runner.join(timeout=60)
    finally:
        site.stop()
        destination.stop()
    assert statuses == {"destination": 0x0124, "other originator": 0x0124}
    [summary] = outcome
    site.assert_all_verified_exactly_once(summary)  # nothing foreign reached the destination
