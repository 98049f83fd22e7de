"""StoreClient against real destinations: Orthanc, DCMTK storescp, and the runner's listener."""

from __future__ import annotations

import subprocess
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from io import BytesIO
from pathlib import Path

import pytest
from pydicom import Dataset, dcmread
from pydicom.uid import DeflatedExplicitVRLittleEndian, JPEGLosslessSV1, RLELossless
from pynetdicom import StoragePresentationContexts, evt

from runner.dicom.listener import (
    IncomingStore,
    Listener,
    ListenerCallbacks,
    ListenerConfig,
    Verdict,
)
from runner.dicom.peer import DicomSettings, Peer
from runner.dicom.spool import Spool, SpoolEntry
from runner.dicom.status import StatusCategory
from runner.dicom.store import StoreClient, StoreOutcome
from runner.sim.ae import make_ae
from runner.sim.generate import StudySpec, make_study, write_study
from tests.conftest import require_peer_binaries
from tests.peers import HOST, OrthancProcess, free_port, peer_env, stop_process, wait_for_port

pytestmark = pytest.mark.peers

CALLING_AE = "MIGRATE"
SETTINGS = DicomSettings(acse_timeout=5, dimse_timeout=10, network_timeout=10)
CT = "1.2.840.10008.5.1.4.1.1.2"
EXPLICIT = "1.2.840.10008.1.2.1"


def spec(seed: str, instances: int = 1) -> StudySpec:
    return StudySpec(
        seed, "PID-55", "Store^Stella", date(2020, 2, 3), "CT", instances_per_series=instances
    )


def dataset_bytes(raw: bytes) -> bytes:
    """A Part-10 file's bytes after its file meta."""
    meta_length = int.from_bytes(raw[140:144], "little")
    return raw[144 + meta_length :]


def spooled(spool: Spool, path: Path) -> SpoolEntry:
    """`path` written into the spool, as the listener would have."""
    return spool.write(path.read_bytes())


def converted(source: Path, target: Path, syntax: str) -> Path:
    """`source` in transfer syntax `syntax` (DCMTK for JPEG and RLE, pydicom for deflate)."""
    if syntax == JPEGLosslessSV1:
        subprocess.run(["dcmcjpeg", str(source), str(target)], check=True, capture_output=True)
    elif syntax == RLELossless:
        subprocess.run(["dcmcrle", str(source), str(target)], check=True, capture_output=True)
    else:
        ds = dcmread(source)
        ds.file_meta.TransferSyntaxUID = syntax
        ds.save_as(target, enforce_file_format=True)
    return target


def store_entry(client: StoreClient, entry: SpoolEntry) -> StoreOutcome:
    meta = dcmread(entry.path, stop_before_pixels=True).file_meta
    return client.store_file(
        entry.path, str(meta.MediaStorageSOPClassUID), str(meta.TransferSyntaxUID)
    )


def orthanc_file(orthanc: OrthancProcess, sop_uid: str) -> bytes:
    """The file Orthanc stored for `sop_uid` (REST /instances/{id}/file)."""
    [found] = orthanc.rest_post("/tools/lookup", sop_uid.encode())
    url = f"http://{HOST}:{orthanc.http_port}/instances/{found['ID']}/file"
    with urllib.request.urlopen(url, timeout=30) as response:
        data: bytes = response.read()
        return data


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrthancProcess]:
    require_peer_binaries()
    server = OrthancProcess(workdir=tmp_path_factory.mktemp("store-orthanc"), aet="DEST")
    try:
        yield server.start()
    finally:
        server.kill()  # its data is the tests' to throw away: a graceful stop takes ~3 s


@pytest.fixture
def spool(tmp_path: Path) -> Spool:
    return Spool(tmp_path / "spool", max_bytes=10**9)


@dataclass
class Storescp:
    """DCMTK storescp writing what it receives, bit-preserving, into `output`."""

    output: Path
    port: int
    accept_all: bool
    proc: subprocess.Popen[bytes] | None = None

    @property
    def peer(self) -> Peer:
        return Peer("STORESCP", HOST, self.port)

    def start(self) -> Storescp:
        self.output.mkdir(parents=True, exist_ok=True)
        args = ["storescp", "-aet", "STORESCP", "+B", "-od", str(self.output)]
        args += ["+xa"] if self.accept_all else []
        log = self.output.parent / f"storescp-{self.port}.log"
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [*args, str(self.port)],
                env=peer_env(),
                stdout=out,
                stderr=out,
                start_new_session=True,
            )
        wait_for_port(self.port, self.proc, log)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None

    def received(self) -> dict[str, Path]:
        """Files received so far, by SOP Instance UID."""
        return {
            str(dcmread(p, stop_before_pixels=True).SOPInstanceUID): p
            for p in self.output.iterdir()
            if p.is_file()
        }


@pytest.fixture
def storescp_factory(tmp_path: Path) -> Iterator[Callable[..., Storescp]]:
    require_peer_binaries()
    started: list[Storescp] = []

    def start(accept_all: bool = True, port: int | None = None) -> Storescp:
        server = Storescp(tmp_path / f"received-{len(started)}", port or free_port(), accept_all)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


def test_spooled_files_reach_orthanc_byte_for_byte_in_their_transfer_syntax(
    orthanc: OrthancProcess, spool: Spool, tmp_path: Path
) -> None:
    plain, for_jpeg, for_rle = write_study(tmp_path / "src", spec("bytes", instances=3))
    files = [
        plain,
        converted(for_jpeg, tmp_path / "jpeg.dcm", JPEGLosslessSV1),
        converted(for_rle, tmp_path / "rle.dcm", RLELossless),
    ]
    entries = [spooled(spool, path) for path in files]

    with StoreClient(orthanc.peer, CALLING_AE, SETTINGS) as client:
        outcomes = [store_entry(client, entry) for entry in entries]

    assert [o.category for o in outcomes] == [StatusCategory.SUCCESS] * 3, outcomes
    assert all(o.status == 0 and not o.transient for o in outcomes)
    for entry, outcome in zip(entries, outcomes, strict=True):
        source = dcmread(entry.path, stop_before_pixels=True)
        assert outcome.sop_instance_uid == source.SOPInstanceUID
        stored = orthanc_file(orthanc, outcome.sop_instance_uid)
        assert dcmread(BytesIO(stored)).file_meta.TransferSyntaxUID == (
            source.file_meta.TransferSyntaxUID
        )
        assert dataset_bytes(stored) == dataset_bytes(entry.path.read_bytes())


def test_many_instances_go_over_one_association(
    orthanc: OrthancProcess, spool: Spool, tmp_path: Path
) -> None:
    files = write_study(tmp_path / "src", spec("one-association", instances=25))

    with StoreClient(orthanc.peer, CALLING_AE, SETTINGS) as client:
        outcomes = [client.store_file(path, CT, EXPLICIT) for path in files]
        assert client.associations_opened == 1

    assert all(o.ok for o in outcomes)
    assert {o.sop_instance_uid for o in outcomes} <= set(orthanc.instances())


def test_hundreds_of_stores_on_one_association_lose_no_response(
    storescp_factory: Callable[..., Storescp], tmp_path: Path
) -> None:
    """pynetdicom's reactor can take a C-STORE response meant for the sender (about one in
    200 on loopback, more under load); the client's guarded queue must prevent that."""
    files = write_study(tmp_path / "src", spec("no-lost-response", instances=300))
    server = storescp_factory()
    impatient = DicomSettings(acse_timeout=5, dimse_timeout=2, network_timeout=10)

    with StoreClient(server.peer, CALLING_AE, impatient) as client:
        outcomes = [client.store_file(path, CT, EXPLICIT) for path in files]
        opened = client.associations_opened

    assert [o.detail for o in outcomes if not o.ok] == []
    assert opened == 1


def test_morphed_dataset_is_stored_with_its_new_values(orthanc: OrthancProcess) -> None:
    [ds] = make_study(spec("morphed"))
    ds.AccessionNumber = "MORPHED-0001"
    ds.InstitutionName = "New Trust"

    with StoreClient(orthanc.peer, CALLING_AE, SETTINGS) as client:
        outcome = client.store_dataset(ds)

    assert outcome.ok and outcome.sop_instance_uid == ds.SOPInstanceUID
    stored = dcmread(BytesIO(orthanc_file(orthanc, ds.SOPInstanceUID)))
    assert stored.AccessionNumber == "MORPHED-0001"
    assert stored.InstitutionName == "New Trust"


def test_store_client_reopens_the_association_after_orthanc_restarts(
    orthanc_factory: Callable[..., OrthancProcess], tmp_path: Path
) -> None:
    before, after = write_study(tmp_path / "src", spec("restart", instances=2))
    server = orthanc_factory(aet="DEST")
    # Orthanc's graceful stop waits for open associations: an idle one ends after 1 s here.
    idle_soon = DicomSettings(acse_timeout=5, dimse_timeout=10, network_timeout=1)

    with StoreClient(server.peer, CALLING_AE, idle_soon) as client:
        assert client.store_file(before, CT, EXPLICIT).ok
        server.stop()
        server.start()
        outcome = client.store_file(after, CT, EXPLICIT)
        opened = client.associations_opened

    assert outcome.ok, outcome.detail
    assert opened == 2
    assert set(server.instances()) == {
        dcmread(before).SOPInstanceUID,
        dcmread(after).SOPInstanceUID,
    }


def test_instances_needing_new_contexts_renegotiate_and_arrive_bit_exact(
    storescp_factory: Callable[..., Storescp], spool: Spool, tmp_path: Path
) -> None:
    plain, for_jpeg, for_deflate = write_study(tmp_path / "src", spec("renegotiate", 3))
    jpeg = converted(for_jpeg, tmp_path / "jpeg.dcm", JPEGLosslessSV1)
    deflated = converted(for_deflate, tmp_path / "deflated.dcm", DeflatedExplicitVRLittleEndian)
    sent = [(plain, EXPLICIT), (jpeg, JPEGLosslessSV1), (deflated, DeflatedExplicitVRLittleEndian)]
    server = storescp_factory(accept_all=True)  # bit-preserving: writes what it received

    with StoreClient(server.peer, CALLING_AE, SETTINGS) as client:
        outcomes = [client.store_file(path, CT, syntax) for path, syntax in sent]
        again = client.store_file(plain, CT, EXPLICIT)  # all three contexts are now open
        opened = client.associations_opened

    assert all(o.ok for o in [*outcomes, again]), outcomes
    assert opened == 3
    received = server.received()
    for path, syntax in sent:
        copy = received[str(dcmread(path).SOPInstanceUID)]
        assert dcmread(copy).file_meta.TransferSyntaxUID == syntax
        assert dataset_bytes(copy.read_bytes()) == dataset_bytes(path.read_bytes())


def test_transfer_syntax_the_destination_refuses_is_a_permanent_failure(
    storescp_factory: Callable[..., Storescp], tmp_path: Path
) -> None:
    plain, other = write_study(tmp_path / "src", spec("refused-syntax", instances=2))
    jpeg = converted(other, tmp_path / "jpeg.dcm", JPEGLosslessSV1)
    server = storescp_factory(accept_all=False)  # uncompressed only

    with StoreClient(server.peer, CALLING_AE, SETTINGS) as client:
        refused = client.store_file(jpeg, CT, JPEGLosslessSV1)
        stored = client.store_file(plain, CT, EXPLICIT)

    assert refused.category is StatusCategory.FAILURE
    assert not refused.transient and refused.status is None
    assert "JPEG" in refused.detail
    assert stored.ok


def test_closed_port_is_a_transient_no_association(tmp_path: Path) -> None:
    [path] = write_study(tmp_path / "src", spec("closed"))

    with StoreClient(Peer("NOBODY", HOST, free_port()), CALLING_AE, SETTINGS) as client:
        outcome = client.store_file(path, CT, EXPLICIT)

    assert outcome.category is StatusCategory.NO_ASSOCIATION
    assert outcome.transient and not outcome.ok
    assert outcome.sop_instance_uid == dcmread(path).SOPInstanceUID


def test_destination_that_went_away_is_transient_and_the_next_store_recovers(
    storescp_factory: Callable[..., Storescp], tmp_path: Path
) -> None:
    first, second, third = write_study(tmp_path / "src", spec("went-away", instances=3))
    server = storescp_factory()

    with StoreClient(server.peer, CALLING_AE, SETTINGS) as client:
        assert client.store_file(first, CT, EXPLICIT).ok
        server.stop()
        gone = client.store_file(second, CT, EXPLICIT)
        server.start()
        back = client.store_file(third, CT, EXPLICIT)

    assert gone.transient and gone.category.is_transport
    assert back.ok, back.detail


def test_file_whose_meta_disagrees_is_a_permanent_failure_without_any_association(
    tmp_path: Path,
) -> None:
    [path] = write_study(tmp_path / "src", spec("disagrees"))

    with StoreClient(Peer("NOBODY", HOST, free_port()), CALLING_AE, SETTINGS) as client:
        outcome = client.store_file(path, CT, JPEGLosslessSV1)
        missing = client.store_file(tmp_path / "gone.dcm", CT, EXPLICIT)
        assert client.associations_opened == 0

    assert outcome.category is StatusCategory.FAILURE and not outcome.transient
    assert missing.category is StatusCategory.FAILURE and not missing.transient


def _listener(tmp_path: Path, verdict: Verdict, max_bytes: int) -> Listener:
    callbacks = ListenerCallbacks(lambda _h: verdict, lambda _r: None)
    config = ListenerConfig("LISTENER", frozenset({CALLING_AE}), settings=SETTINGS)
    return Listener(config, Spool(tmp_path / "dest-spool", max_bytes), callbacks)


@pytest.mark.parametrize(
    ("verdict", "max_bytes", "status", "category", "transient"),
    [
        (Verdict.STORE, 100, 0xA700, StatusCategory.OUT_OF_RESOURCES, True),
        (Verdict.REFUSE, 10**9, 0x0124, StatusCategory.FAILURE, False),
        (Verdict.DISCARD, 10**9, 0x0000, StatusCategory.SUCCESS, False),
    ],
)
def test_destination_answers_are_sorted_into_transient_and_permanent(
    tmp_path: Path,
    verdict: Verdict,
    max_bytes: int,
    status: int,
    category: StatusCategory,
    transient: bool,
) -> None:
    [path] = write_study(tmp_path / "src", spec(f"answers-{status}"))

    with _listener(tmp_path, verdict, max_bytes) as listener:
        peer = Peer("LISTENER", HOST, listener.port)
        with StoreClient(peer, CALLING_AE, SETTINGS) as client:
            outcome = client.store_file(path, CT, EXPLICIT)

    assert (outcome.status, outcome.category, outcome.transient) == (status, category, transient)


@pytest.fixture(scope="module")
def scripted_server() -> Iterator[tuple[Peer, list[int | str]]]:
    """A pynetdicom Storage SCP answering each C-STORE with the next reply of its script:
    a status code, or "abort" to abort the association instead (0x0000 when it runs out)."""
    script: list[int | str] = []

    def handle(event: evt.Event) -> int:
        reply = script.pop(0) if script else 0x0000
        if reply == "abort":
            event.assoc.abort()
            return 0x0000
        return int(reply)

    ae = make_ae("SCRIPTED", SETTINGS)
    ae.supported_contexts = StoragePresentationContexts
    server = ae.start_server((HOST, 0), block=False, evt_handlers=[(evt.EVT_C_STORE, handle)])
    yield Peer("SCRIPTED", HOST, server.server_address[1]), script
    server.shutdown()


@pytest.fixture
def scripted_scp(
    scripted_server: tuple[Peer, list[int | str]],
) -> Callable[[list[int | str]], Peer]:
    """Give the scripted SCP its replies for this test; its peer."""
    peer, script = scripted_server

    def start(replies: list[int | str]) -> Peer:
        script[:] = replies
        return peer

    return start


@pytest.mark.parametrize(
    ("reply", "category", "transient", "ok"),
    [
        (0xB000, StatusCategory.WARNING, False, True),
        (0xB007, StatusCategory.WARNING, False, True),
        (0xA701, StatusCategory.OUT_OF_RESOURCES, True, False),
        (0xA900, StatusCategory.FAILURE, False, False),
        (0xC001, StatusCategory.UNABLE_TO_PROCESS, False, False),
    ],
)
def test_store_statuses_map_to_categories(
    scripted_scp: Callable[[list[int | str]], Peer],
    tmp_path: Path,
    reply: int,
    category: StatusCategory,
    transient: bool,
    ok: bool,
) -> None:
    [path] = write_study(tmp_path / "src", spec(f"status-{reply}"))

    with StoreClient(scripted_scp([reply]), CALLING_AE, SETTINGS) as client:
        outcome = client.store_file(path, CT, EXPLICIT)

    assert (outcome.status, outcome.category, outcome.transient, outcome.ok) == (
        reply,
        category,
        transient,
        ok,
    )


def test_association_aborted_during_a_store_is_transient_and_the_next_store_reopens(
    scripted_scp: Callable[[list[int | str]], Peer], tmp_path: Path
) -> None:
    first, second = write_study(tmp_path / "src", spec("aborted", instances=2))
    peer = scripted_scp(["abort", 0x0000])

    with StoreClient(peer, CALLING_AE, SETTINGS) as client:
        lost = client.store_file(first, CT, EXPLICIT)
        again = client.store_file(second, CT, EXPLICIT)
        opened = client.associations_opened

    assert lost.category is StatusCategory.ABORTED and lost.transient and lost.status is None
    assert again.ok, again.detail
    assert opened == 2


def test_store_lost_on_a_reused_association_is_retried_once_on_a_fresh_one(
    scripted_scp: Callable[[list[int | str]], Peer], tmp_path: Path
) -> None:
    first, second = write_study(tmp_path / "src", spec("retried", instances=2))
    peer = scripted_scp([0x0000, "abort", 0x0000])

    with StoreClient(peer, CALLING_AE, SETTINGS) as client:
        assert client.store_file(first, CT, EXPLICIT).ok
        retried = client.store_file(second, CT, EXPLICIT)
        opened = client.associations_opened

    assert retried.ok and retried.status == 0x0000, retried.detail
    assert opened == 2


def test_decide_sees_the_store_client_calling_ae(tmp_path: Path) -> None:
    seen: list[IncomingStore] = []

    def decide(header: IncomingStore) -> Verdict:
        seen.append(header)
        return Verdict.DISCARD

    callbacks = ListenerCallbacks(decide, lambda _r: None)
    config = ListenerConfig("LISTENER", frozenset({CALLING_AE}), settings=SETTINGS)
    [path] = write_study(tmp_path / "src", spec("calling"))
    with Listener(config, Spool(tmp_path / "s", 10**9), callbacks) as listener:
        peer = Peer("LISTENER", HOST, listener.port)
        with StoreClient(peer, CALLING_AE, SETTINGS) as client:
            assert client.store_file(path, CT, EXPLICIT).ok
    assert [h.calling_ae for h in seen] == [CALLING_AE]


def test_dataset_without_file_meta_is_misuse(orthanc: OrthancProcess) -> None:
    ds = Dataset()
    ds.SOPClassUID = CT
    ds.SOPInstanceUID = "1.2.3"
    with StoreClient(orthanc.peer, CALLING_AE, SETTINGS) as client, pytest.raises(ValueError):
        client.store_dataset(ds)
