"""Real DICOM peers for tests: Orthanc and dcmqrscp subprocesses, a pynetdicom SCP; loopback."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pynetdicom import _config, evt
from pynetdicom.events import EventHandlerType
from pynetdicom.transport import ThreadedAssociationServer

from runner.dicom.peer import DicomSettings, Peer
from runner.dicom.sop import STUDY_ROOT_FIND, VERIFICATION
from runner.sim.ae import make_ae

HOST = "127.0.0.1"
ORTHANC_BINARY = "/usr/sbin/Orthanc"
ORTHANC_PLUGINS = {"dicomweb": Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")}
DCMTK_BINARIES = ("dcmqrscp", "dcmqridx", "storescu", "storescp", "wlmscpfs")
DATA_MAKERS = ("ojph_compress",)  # OpenJPH (openjph-tools): real HTJ2K codestreams
STARTUP_TIMEOUT = 20.0


@contextmanager
def files_sent_as_bytes() -> Iterator[None]:
    """pynetdicom's `send_c_store(path)` sends the file's data set bytes as they are, without
    parsing them (damaged or not): for tests that feed the listener such files."""
    chunked = _config.STORE_SEND_CHUNKED_DATASET
    _config.STORE_SEND_CHUNKED_DATASET = True
    try:
        yield
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = chunked


def free_port() -> int:
    """A loopback TCP port that was free a moment ago (bind to port 0, read, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def orthanc_binary() -> str | None:
    """The Orthanc executable ($PACSMIG_ORTHANC, else the Debian one, else on PATH)."""
    chosen = os.environ.get("PACSMIG_ORTHANC")
    if chosen is not None:
        return chosen if os.access(chosen, os.X_OK) else None
    if os.access(ORTHANC_BINARY, os.X_OK):
        return ORTHANC_BINARY
    return shutil.which("Orthanc")


def orthanc_plugin(name: str) -> str:
    """The path of an Orthanc plugin from Debian (e.g. "dicomweb": orthanc-dicomweb)."""
    return str(ORTHANC_PLUGINS[name])


def missing_peer_binaries() -> list[str]:
    """Names of the peer programs the integration tests need that are not installed."""
    missing = [] if orthanc_binary() else ["Orthanc"]
    missing += [f"orthanc-{n}" for n, path in ORTHANC_PLUGINS.items() if not path.exists()]
    return missing + [name for name in (*DCMTK_BINARIES, *DATA_MAKERS)
                      if shutil.which(name) is None]


def peer_env() -> dict[str, str]:
    """The environment for peer processes: TCP_NODELAY=1 (read by DCMTK, so by Orthanc)."""
    return {**os.environ, "TCP_NODELAY": "1"}


def wait_for_port(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Wait until something listens on loopback `port`; fail early if `proc` died."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"peer exited with {proc.returncode}:\n{_tail(log)}")
        with socket.socket() as sock:
            if sock.connect_ex((HOST, port)) == 0:
                return
        time.sleep(0.02)
    raise RuntimeError(f"peer did not listen on port {port}:\n{_tail(log)}")


def terminate_process(proc: subprocess.Popen[bytes]) -> None:
    """Ask the process group `proc` leads to stop (SIGTERM); does not wait."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)


def kill_process(proc: subprocess.Popen[bytes]) -> None:
    """Kill the process group `proc` leads at once (a crash; test data is thrown away)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


def stop_process(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """Terminate the process group `proc` leads, then kill it if it lingers past `grace`."""
    terminate_process(proc)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def _tail(log: Path, lines: int = 20) -> str:
    if not log.exists():
        return ""
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def _spawn(args: list[str], cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            args,
            cwd=cwd,
            env=peer_env(),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so stop_process gets children
        )


@dataclass
class OrthancProcess:
    """An Orthanc server in `workdir`, DICOM and REST on free loopback ports.

    `modalities` are the AEs Orthanc knows (it can C-MOVE to them); `plugins` the plugin
    names it loads from /usr/share/orthanc/plugins (e.g. ("dicomweb",): DICOMweb at
    `dicomweb_url`); `extra_config` is merged last into the generated configuration (e.g.
    {"LimitFindResults": 10}).
    """

    workdir: Path
    aet: str = "ORTHANC"
    modalities: Mapping[str, Peer] = field(default_factory=dict)
    extra_config: Mapping[str, Any] = field(default_factory=dict)
    plugins: Sequence[str] = ()
    dicom_port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    _proc: subprocess.Popen[bytes] | None = None

    @property
    def peer(self) -> Peer:
        """Orthanc's DICOM side as a Peer."""
        return Peer(self.aet, HOST, self.dicom_port)

    @property
    def dicomweb_url(self) -> str:
        """The DICOMweb root (with plugins=("dicomweb",))."""
        return f"http://{HOST}:{self.http_port}/dicom-web"

    @property
    def log(self) -> Path:
        """Orthanc's log file."""
        return self.workdir / "orthanc.log"

    def config(self) -> dict[str, Any]:
        """The JSON configuration Orthanc is started with."""
        storage = str(self.workdir / "db")
        config: dict[str, Any] = {
            "Name": f"pacsmig-test-{self.aet}",
            "StorageDirectory": storage,
            "IndexDirectory": storage,
            # not all of /usr/share/orthanc/plugins: faster start, nothing implicit
            "Plugins": [orthanc_plugin(name) for name in self.plugins],
            "LuaScripts": [],
            "HttpServerEnabled": True,
            "HttpPort": self.http_port,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "DicomServerEnabled": True,
            "DicomAet": self.aet,
            "DicomPort": self.dicom_port,
            "DicomCheckCalledAet": True,
            "DicomAlwaysAllowEcho": True,
            "DicomAlwaysAllowStore": True,
            "DicomAlwaysAllowFind": True,
            "DicomAlwaysAllowMove": True,
            "DicomModalities": {
                name: [peer.ae_title, peer.host, peer.port]
                for name, peer in self.modalities.items()
            },
            "DicomScuTimeout": 10,
            "SaveJobs": False,
            "HttpThreadsCount": 4,
            "DicomThreadsCount": 4,
            "ConcurrentJobs": 2,
            "StableAge": 1,
        }
        if "dicomweb" in self.plugins:
            config["DicomWeb"] = {"Enable": True, "Root": "/dicom-web/"}
        config.update(self.extra_config)
        return config

    def start(self) -> OrthancProcess:
        """Write the configuration, start Orthanc and wait until its REST API answers."""
        binary = orthanc_binary()
        if binary is None:
            raise RuntimeError("Orthanc is not installed")
        self.workdir.mkdir(parents=True, exist_ok=True)
        config_path = self.workdir / "orthanc.json"
        config_path.write_text(json.dumps(self.config(), indent=2))
        self._proc = _spawn([binary, str(config_path)], self.workdir, self.log)
        self._wait_for_rest()
        wait_for_port(self.dicom_port, self._proc, self.log)
        return self

    def _wait_for_rest(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                raise RuntimeError(f"Orthanc exited with {code}:\n{_tail(self.log)}")
            try:
                self.rest_get("/system")
                return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"Orthanc REST did not answer:\n{_tail(self.log)}")

    def terminate(self) -> None:
        """Ask Orthanc to stop without waiting (it takes about 3 s): stop many at once."""
        if self._proc is not None:
            terminate_process(self._proc)

    def kill(self) -> None:
        """Kill Orthanc at once, as a crash would (a graceful stop takes about 3 s)."""
        if self._proc is not None:
            kill_process(self._proc)
            self._proc = None

    def stop(self) -> None:
        """Stop Orthanc (terminate, then kill)."""
        if self._proc is not None:
            stop_process(self._proc)
            self._proc = None

    def rest_get(self, path: str) -> Any:
        """GET `path` from the REST API; the decoded JSON answer."""
        return self._request(urllib.request.Request(self._url(path)))

    def rest_post(self, path: str, body: bytes | Mapping[str, Any] | list[Any]) -> Any:
        """POST `body` (raw bytes, or JSON) to `path`; the decoded JSON answer."""
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        return self._request(urllib.request.Request(self._url(path), data=data, method="POST"))

    def rest_delete(self, path: str) -> Any:
        """DELETE `path` through the REST API (e.g. a study, as a PACS administrator would)."""
        return self._request(urllib.request.Request(self._url(path), method="DELETE"))

    def upload(self, source: Path | bytes) -> str:
        """Store one DICOM file (a path or its bytes) through REST; Orthanc's instance id."""
        data = source.read_bytes() if isinstance(source, Path) else source
        answer = self.rest_post("/instances", data)
        instance_id: str = answer["ID"]
        return instance_id

    def upload_all(self, sources: Iterable[Path | bytes]) -> int:
        """Store every file of `sources`; how many were stored."""
        return sum(1 for source in sources if self.upload(source))

    def instances(self) -> list[str]:
        """The SOP Instance UIDs Orthanc holds, sorted."""
        expanded = self.rest_get("/instances?expand")
        return sorted(item["MainDicomTags"]["SOPInstanceUID"] for item in expanded)

    def study_count(self) -> int:
        """How many studies Orthanc holds."""
        return len(self.rest_get("/studies"))

    def _url(self, path: str) -> str:
        return f"http://{HOST}:{self.http_port}{path}"

    def _request(self, request: urllib.request.Request) -> Any:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"null")


@dataclass
class DcmqrscpProcess:
    """DCMTK's dcmqrscp serving one AE title from a database directory in `workdir`.

    `move_destinations` are the AEs it may C-MOVE to. Files are registered with dcmqridx
    (they stay where they are: keep them for the life of the process).
    """

    workdir: Path
    aet: str = "DCMQRSCP"
    move_destinations: Mapping[str, Peer] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    _proc: subprocess.Popen[bytes] | None = None

    @property
    def peer(self) -> Peer:
        """dcmqrscp's DICOM side as a Peer."""
        return Peer(self.aet, HOST, self.port)

    @property
    def database(self) -> Path:
        """The directory holding dcmqrscp's index."""
        return self.workdir / "db"

    @property
    def log(self) -> Path:
        """dcmqrscp's log file."""
        return self.workdir / "dcmqrscp.log"

    def config(self) -> str:
        """The dcmqrscp.cfg text this process runs with."""
        hosts = "\n".join(
            f"{name} = ({peer.ae_title}, {peer.host}, {peer.port})"
            for name, peer in self.move_destinations.items()
        )
        return (
            f"NetworkTCPPort = {self.port}\nMaxPDUSize = 16384\nMaxAssociations = 16\n"
            f"HostTable BEGIN\n{hosts}\nHostTable END\n"
            "VendorTable BEGIN\nVendorTable END\n"
            f"AETable BEGIN\n{self.aet} {self.database} RW (1000, 1024mb) ANY\nAETable END\n"
        )

    def start(self) -> DcmqrscpProcess:
        """Write the configuration and start dcmqrscp; wait until it listens."""
        self.database.mkdir(parents=True, exist_ok=True)
        config_path = self.workdir / "dcmqrscp.cfg"
        config_path.write_text(self.config())
        args = ["dcmqrscp", "--config", str(config_path), str(self.port)]
        self._proc = _spawn(args, self.workdir, self.log)
        wait_for_port(self.port, self._proc, self.log)
        return self

    def add_files(self, paths: Iterable[Path]) -> None:
        """Register DICOM files in the database with dcmqridx."""
        names = [str(path) for path in paths]
        if names:
            subprocess.run(
                ["dcmqridx", str(self.database), *names],
                check=True,
                env=peer_env(),
                capture_output=True,
            )

    def stop(self) -> None:
        """Stop dcmqrscp and its per-association children."""
        if self._proc is not None:
            stop_process(self._proc)
            self._proc = None


@dataclass
class WorklistProcess:
    """DCMTK's wlmscpfs: a Modality Worklist SCP answering from .wl files in `workdir`."""

    workdir: Path
    aet: str = "WORKLIST"
    port: int = field(default_factory=free_port)
    _proc: subprocess.Popen[bytes] | None = None

    @property
    def peer(self) -> Peer:
        """wlmscpfs as a Peer."""
        return Peer(self.aet, HOST, self.port)

    @property
    def folder(self) -> Path:
        """The worklist files of its AE title (wlmscpfs reads them at each query)."""
        return self.workdir / "worklists" / self.aet

    def start(self) -> WorklistProcess:
        """Start wlmscpfs; wait until it listens."""
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "lockfile").touch()
        args = ["wlmscpfs", "--data-files-path", str(self.workdir / "worklists"),
                str(self.port)]
        self._proc = _spawn(args, self.workdir, self.workdir / "wlmscpfs.log")
        wait_for_port(self.port, self._proc, self.workdir / "wlmscpfs.log")
        return self

    def add(self, name: str, entry: Dataset) -> None:
        """Write one worklist entry (a scheduled procedure step) as `name`.wl."""
        entry.file_meta = FileMetaDataset()
        entry.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        entry.file_meta.MediaStorageSOPClassUID = "1.2.276.0.7230010.3.1.0.1"
        entry.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        entry.save_as(self.folder / f"{name}.wl", enforce_file_format=True)

    def stop(self) -> None:
        """Stop wlmscpfs."""
        if self._proc is not None:
            stop_process(self._proc)
            self._proc = None


FindHandler = Callable[[Dataset], Iterator[tuple[int, Dataset | None]]]


@dataclass
class PynetdicomScp:
    """A C-ECHO/C-FIND SCP in this process (pynetdicom, AE from runner.sim.ae.make_ae).

    `on_find(identifier)` yields the (status, identifier) responses of each C-FIND.
    Every accepted socket's TCP_NODELAY value is recorded in `nodelay_seen`; `stop()`
    mid-test makes the device go down (the port then refuses connections, and a query on
    an association still open is aborted).
    """

    on_find: FindHandler
    aet: str = "PYSCP"
    settings: DicomSettings = field(default_factory=DicomSettings)
    nodelay_seen: list[int] = field(default_factory=list)
    finds: int = 0
    associations: set[int] = field(default_factory=set)  # ids of those C-FINDs came on
    _server: ThreadedAssociationServer | None = None

    @property
    def peer(self) -> Peer:
        """The SCP as a Peer."""
        assert self._server is not None, "start() first"
        port: int = self._server.server_address[1]
        return Peer(self.aet, HOST, port)

    def start(self) -> PynetdicomScp:
        """Listen on a free loopback port (in background threads)."""
        ae = make_ae(self.aet, self.settings)
        ae.add_supported_context(VERIFICATION)
        ae.add_supported_context(STUDY_ROOT_FIND)
        handlers: list[EventHandlerType] = [
            (evt.EVT_C_ECHO, self._echo),
            (evt.EVT_C_FIND, self._find),
        ]
        self._server = ae.start_server((HOST, 0), block=False, evt_handlers=handlers)
        return self

    def stop(self) -> None:
        """Stop listening and close the server socket."""
        if self._server is not None:
            self._server.shutdown()
            self._server = None

    def _record_nodelay(self, event: evt.Event) -> None:
        assoc_socket = event.assoc.dul.socket
        assert assoc_socket is not None and assoc_socket.socket is not None
        option = assoc_socket.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        self.nodelay_seen.append(option)

    def _echo(self, event: evt.Event) -> int:
        self._record_nodelay(event)
        return 0x0000

    def _find(self, event: evt.Event) -> Iterator[tuple[int, Dataset | None]]:
        if self._server is None:  # gone down: an association kept open dies with it
            event.assoc.abort()
            return
        self._record_nodelay(event)
        self.finds += 1
        self.associations.add(id(event.assoc))
        yield from self.on_find(event.identifier)


def date_range_matches(query: Dataset, candidate: Dataset) -> bool:
    """Whether `candidate`'s StudyDate matches the query's (single date or range)."""
    wanted = str(query.get("StudyDate", "") or "")
    if not wanted:
        return True
    first, _, last = wanted.partition("-") if "-" in wanted else (wanted, "", wanted)
    value = str(candidate.get("StudyDate", ""))
    return (not first or first <= value) and (not last or value <= last)
