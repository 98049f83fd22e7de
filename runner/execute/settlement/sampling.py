"""Deep verification by sampling (`destination.verify_sample`): instances read back and compared.

`pacsmig verify` picks a sample of the instances stored at the destination (a count, or a
fraction; chosen by a hash of the site id and the SOP Instance UID, so the same ledger gives
the same sample), retrieves each from the destination and from the source into a listener
of its own (image-level C-MOVE), applies the profile's rules to the source's copy, and
compares: every attribute (the rules' changes included), and the pixel data, byte for byte
when both copies are in the same transfer syntax, else decoded (a transcoded instance).
Each result is an event of kind `sample_check` (UIDs and tags only); a disagreement makes
the command exit 1, and the report states the sample and its result.

Instances whose UIDs the rules change are left out of the sample (the destination holds them
under UIDs the C-MOVE would have to name from the ledger's mapping, not done here).
"""

from __future__ import annotations

import hashlib
import math
import tempfile
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy
from pydicom import Dataset, dcmread
from pydicom.tag import BaseTag

from runner.dicom.listener import (
    IncomingStore,
    Listener,
    ListenerCallbacks,
    ListenerConfig,
    Received,
    Verdict,
)
from runner.dicom.move import c_move
from runner.dicom.peer import DicomSettings, Peer
from runner.dicom.spool import Spool
from runner.execute.peers import destination_peer, device_peer, dicom_settings
from runner.ledger import EventKind, Ledger
from runner.morph.loaded import LoadedProfile

PIXEL_DATA = BaseTag(0x7FE00010)
# What a lossless transcode may change besides Pixel Data (decoded colour, planes).
_TRANSCODE_MAY_CHANGE = frozenset({0x00280004, 0x00280006})
_DIFFERENCES_KEPT = 10

_STORED = """
SELECT i.study_uid, i.series_uid, i.sop_instance_uid, s.device
FROM instances i JOIN studies s USING (study_uid)
WHERE i.state IN ('forwarded', 'verified') AND i.dest_sop_instance_uid IS NULL
"""


@dataclass(frozen=True, slots=True)
class Sampled:
    """One instance of the sample: where it is, at the source and the destination."""

    study_uid: str
    series_uid: str
    sop_instance_uid: str
    device: str


@dataclass(frozen=True, slots=True)
class SampleSummary:
    """How the sample went: how many compared, agreed, and could not be compared."""

    chosen: int
    agreed: int
    disagreed: int
    not_compared: int

    def lines(self) -> list[str]:
        """For a person."""
        if not self.chosen:
            return []
        return [f"Sample of {self.chosen:,} instances read back from the destination: "
                f"{self.agreed:,} as sent, {self.disagreed:,} different, "
                f"{self.not_compared:,} could not be compared"]


def choose(rows: Iterable[Sampled], sample: float, salt: str) -> list[Sampled]:
    """The sample: `sample` instances (a count when >= 1, else a fraction), those whose
    salted hash is lowest."""
    everything = sorted(rows, key=lambda r: hashlib.sha256(
        f"{salt}:{r.sop_instance_uid}".encode()).hexdigest())
    count = int(sample) if sample >= 1 else math.ceil(sample * len(everything))
    return everything[:count]


def compare(expected: Dataset, actual: Dataset, transcoded: bool) -> list[str]:
    """How `actual` (the destination's copy) differs from `expected` (the source's copy with
    the rules applied): tags missing, added or with other values, and the pixel data."""
    differences: list[str] = []
    ignore = {PIXEL_DATA} | (_TRANSCODE_MAY_CHANGE if transcoded else set())
    for tag in sorted(set(expected.keys()) | set(actual.keys())):
        if tag in ignore:
            continue
        if tag not in actual:
            differences.append(f"{tag} missing at the destination")
        elif tag not in expected:
            differences.append(f"{tag} added at the destination")
        elif expected[tag].value != actual[tag].value:
            differences.append(f"{tag} has another value at the destination")
    pixels = _pixel_difference(expected, actual, transcoded)
    return differences + ([pixels] if pixels else [])


def _pixel_difference(expected: Dataset, actual: Dataset, transcoded: bool) -> str | None:
    if (PIXEL_DATA in expected) != (PIXEL_DATA in actual):
        return "Pixel Data present on one side only"
    if PIXEL_DATA not in expected:
        return None
    if not transcoded:
        same = expected[PIXEL_DATA].value == actual[PIXEL_DATA].value
        return None if same else "Pixel Data bytes differ"
    try:
        same = bool(numpy.array_equal(expected.pixel_array, actual.pixel_array))
    except Exception as error:  # pydicom's pixel plugins raise many kinds
        return f"Pixel Data cannot be decoded for comparison: {error}"
    return None if same else "decoded Pixel Data differs"


@dataclass
class _Collector:
    """The listener's owner while sampling: keeps what the retrieve in progress asked for."""

    wanted: set[str] = field(default_factory=set)
    got: dict[str, Path] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def decide(self, incoming: IncomingStore) -> Verdict:
        with self.lock:
            return Verdict.STORE if incoming.sop_instance_uid in self.wanted else Verdict.REFUSE

    def on_stored(self, received: Received) -> None:
        with self.lock:
            self.got[received.header.sop_instance_uid] = received.entry.path

    def expect(self, uids: Iterable[str]) -> None:
        with self.lock:
            self.wanted, self.got = set(uids), {}


def sample_check(loaded: LoadedProfile, ledger: Ledger, listener_config: ListenerConfig,
                 write: Callable[[str], None]) -> SampleSummary:
    """Read the sample back from the destination and the source; record each comparison."""
    profile = loaded.profile
    sample = profile.destination.verify_sample
    if sample is None:
        return SampleSummary(0, 0, 0, 0)
    rows = [Sampled(*row) for row in ledger.query(_STORED)]
    chosen = choose(rows, sample, profile.site.id)
    transcoded = {row[0] for row in ledger.query(
        "SELECT DISTINCT sop_instance_uid FROM forwards WHERE ok AND transcoded_to IS NOT NULL")}
    settings = dicom_settings(profile)
    collector = _Collector()
    counts = [0, 0, 0]
    with tempfile.TemporaryDirectory(prefix="sample-", dir=profile.listener.spool_dir) as tmp, \
            Listener(listener_config, Spool(Path(tmp), max_bytes=2**40),
                     ListenerCallbacks(collector.decide, collector.on_stored)):
        fetch = _Fetcher(collector, profile.source.calling_ae_title, settings,
                         profile.listener.ae_title)
        for group in _by_device(chosen):
            theirs = fetch(destination_peer(profile), group)
            ours = fetch(device_peer(profile, group[0].device), group)
            for item in group:
                verdict = _judge(loaded, item, ours.get(item.sop_instance_uid),
                                 theirs.get(item.sop_instance_uid),
                                 item.sop_instance_uid in transcoded)
                counts[verdict[0]] += 1
                ledger.record_event(EventKind.SAMPLE_CHECK, study_uid=item.study_uid,
                                    detail=verdict[1])
    write(f"Compared a sample of {len(chosen):,} instances")
    return SampleSummary(len(chosen), *counts)


@dataclass(frozen=True, slots=True)
class _Fetcher:
    collector: _Collector
    calling_ae: str
    settings: DicomSettings
    listener_ae: str

    def __call__(self, peer: Peer, items: list[Sampled]) -> dict[str, Dataset]:
        """The instances `peer` sends back of `items` (image-level C-MOVE per study)."""
        out: dict[str, Dataset] = {}
        for study_uid in sorted({i.study_uid for i in items}):
            mine = [i for i in items if i.study_uid == study_uid]
            self.collector.expect(i.sop_instance_uid for i in mine)
            c_move(peer, self.calling_ae, self.settings, self.listener_ae, study_uid,
                   msg_id=1, sop_instances=[(i.series_uid, i.sop_instance_uid) for i in mine])
            with self.collector.lock:
                got = dict(self.collector.got)
            out.update({uid: dcmread(path) for uid, path in got.items()})
        return out


def _by_device(items: list[Sampled]) -> list[list[Sampled]]:
    groups: dict[str, list[Sampled]] = {}
    for item in items:
        groups.setdefault(item.device, []).append(item)
    return list(groups.values())


def _judge(loaded: LoadedProfile, item: Sampled, ours: Dataset | None,
           theirs: Dataset | None, transcoded: bool) -> tuple[int, dict[str, object]]:
    """0 agreed, 1 disagreed, 2 not compared; and the event's detail."""
    detail: dict[str, object] = {"sop_instance_uid": item.sop_instance_uid}
    if ours is None or theirs is None:
        side = "source" if ours is None else "destination"
        return 2, {**detail, "ok": None, "differences": [f"not read back from the {side}"]}
    result = loaded.rules.apply(ours)
    if not result.ok:
        return 2, {**detail, "ok": None, "differences": [f"rules failed: {result.failed}"]}
    differences = compare(ours, theirs, transcoded)
    detail.update(ok=not differences, differences=differences[:_DIFFERENCES_KEPT])
    return (0 if not differences else 1), detail
