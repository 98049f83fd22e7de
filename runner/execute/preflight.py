"""`pacsmig check`: the pre-flight a consultant runs before go-live, against the real peers.

Per source device: C-ECHO; a study-level C-FIND of one day (the old PACS accepts the
runner's calling AE for queries); a C-MOVE of one instance to the runner's own listener,
started for it, which keeps nothing (the old PACS knows the listener's AE title, host and
port). At the destination: C-ECHO, a study-level C-FIND (the verification query is
answered), the storage presentation context of that instance accepted (negotiation only:
nothing is stored), and a Storage Commitment round trip when the profile verifies by it.
Every failure says what happened and its likely cause and fix; nothing is written to the
ledger or the destination.
"""

from __future__ import annotations

import threading
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from datetime import date, timedelta

from pydicom import Dataset

from runner.dicom.echo import c_echo
from runner.dicom.find import FindOutcome, c_find
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
from runner.dicom.refusal import Refusal
from runner.dicom.spool import Spool
from runner.dicom.status import StatusCategory, describe_status
from runner.dicom.ul.requestor import LITTLE_ENDIAN_SYNTAXES, ClientAssociation, Proposal
from runner.errors import DicomError
from runner.inventory.windows import Window
from runner.profile.load import LoadedProfile
from runner.profile.models import SiteProfile
from runner.profile.peers import destination_peer, device_peers, dicom_settings, listener_tls

# How far back the probe instance is looked for: today, the last week, month, year, ten.
_LOOKBACK_DAYS = (0, 7, 31, 366, 3660)
_MOVE_WAIT = 10.0  # seconds an instance may take to arrive after the C-MOVE answered


@dataclass(frozen=True, slots=True)
class Finding:
    """One check: what was checked, whether it passed, what happened, and the likely fix."""

    what: str
    ok: bool
    detail: str
    fix: str = ""

    def lines(self) -> list[str]:
        """The finding for a person: a line, and the fix on the next when it failed."""
        lines = [f"{'ok  ' if self.ok else 'FAIL'}  {self.what}: {self.detail}"]
        if not self.ok and self.fix:
            lines.append(f"      fix: {self.fix}")
        return lines


@dataclass(frozen=True, slots=True)
class Probe:
    """One instance of the source to move: its study, series, SOP class and instance."""

    study_uid: str
    series_uid: str
    sop_class_uid: str
    sop_uid: str


def preflight(loaded: LoadedProfile) -> Iterator[Finding]:
    """Every check, in order; a device that does not answer C-ECHO is not asked more."""
    profile = loaded.profile
    settings = dicom_settings(profile)
    probe: Probe | None = None
    for device_id, peer in device_peers(profile):
        device_probe = yield from _device(profile, device_id, peer, settings)
        probe = probe or device_probe
    yield from _destination(profile, settings, probe)


def _device(profile: SiteProfile, device_id: str, peer: Peer,
            settings: DicomSettings) -> Generator[Finding, None, Probe | None]:
    """The device's checks; returns the instance it moved, if it did."""
    calling = profile.source.calling_ae_title
    name = f"source {device_id} ({peer})"
    echo = c_echo(peer, calling, settings)
    yield _association_finding(f"{name} C-ECHO", echo.category, echo.detail, calling, peer)
    if not echo.category.is_ok:
        return None
    day = _study_find(peer, calling, settings, Window(date.today(), date.today()))
    yield _find_finding(f"{name} C-FIND (study level, one day)", day, calling, peer)
    if not day.ok:
        return None
    probe = _probe(peer, calling, settings)
    if probe is None:
        yield Finding(f"{name} C-MOVE", False, "no instance found to move in the last ten "
                      "years, so the move destination could not be checked",
                      "run `pacsmig check` again once the source holds a study")
        return None
    yield _move_finding(profile, device_id, peer, settings, probe)
    return probe


def _association_finding(what: str, category: StatusCategory, detail: str, calling: str,
                         peer: Peer) -> Finding:
    if category.is_ok:
        return Finding(what, True, "answered")
    return Finding(what, False, detail, _association_fix(detail, calling, peer))


def _association_fix(detail: str, calling: str, peer: Peer) -> str:
    if "calling AE title not recognized" in detail:
        return (f"register {calling} (this machine) at {peer.ae_title}: it does not know the "
                "runner's calling AE title")
    if "called AE title not recognized" in detail:
        return f"{peer.host}:{peer.port} is not {peer.ae_title}: check ae_title in the profile"
    if "TLS" in detail:
        return "check the tls section of the profile against the peer's certificates"
    if "aborted" in detail:
        return (f"{peer.ae_title} ended the association at once: it may not know or not allow "
                f"{calling}; register {calling} (this machine) at {peer.ae_title} with the "
                "rights it needs (echo, query, retrieve or store)")
    if "cannot connect" in detail or "timed out" in detail:
        return f"nothing answers at {peer.host}:{peer.port}: check host, port and firewall"
    return f"ask the administrator of {peer.ae_title} why it refuses {calling}"


def _study_find(peer: Peer, calling: str, settings: DicomSettings,
                window: Window) -> FindOutcome:
    query = Dataset()
    query.StudyInstanceUID = ""
    query.StudyDate = window.dicom_range()
    return c_find(peer, calling, settings, "STUDY", query)


def _find_finding(what: str, found: FindOutcome, calling: str, peer: Peer) -> Finding:
    if found.ok:
        return Finding(what, True, f"answered {len(found.identifiers)} studies")
    if found.category.is_transport:
        return Finding(what, False, found.detail, _association_fix(found.detail, calling, peer))
    return Finding(what, False, f"answered {describe_status(found.status)}",
                   f"{peer.ae_title} accepts the association but refuses queries from "
                   f"{calling}: give {calling} query rights on it")


def _probe(peer: Peer, calling: str, settings: DicomSettings) -> Probe | None:
    """One instance of a recent study, found by C-FIND study, series and image level."""
    today = date.today()
    for days in _LOOKBACK_DAYS:
        found = _study_find(peer, calling, settings, Window(today - timedelta(days=days), today))
        uids = [str(ds.get("StudyInstanceUID", "")) for ds in found.identifiers]
        for study_uid in (uid for uid in uids if uid):
            probe = _instance_of(peer, calling, settings, study_uid)
            if probe is not None:
                return probe
    return None


def _instance_of(peer: Peer, calling: str, settings: DicomSettings,
                 study_uid: str) -> Probe | None:
    query = Dataset()
    query.StudyInstanceUID = study_uid
    query.SeriesInstanceUID = ""
    query.SOPInstanceUID = ""
    query.SOPClassUID = ""
    found = c_find(peer, calling, settings, "IMAGE", query)
    for ds in found.identifiers:
        series, sop = str(ds.get("SeriesInstanceUID", "")), str(ds.get("SOPInstanceUID", ""))
        if series and sop:
            return Probe(study_uid, series, str(ds.get("SOPClassUID", "") or ""), sop)
    return None


class _Catcher:
    """The listener's owner during the check: keeps nothing, notes the probe's arrival."""

    def __init__(self, probe: Probe, storing: frozenset[str]) -> None:
        self.probe = probe
        self.storing = storing
        self.arrived = threading.Event()
        self.from_ae = ""

    def decide(self, incoming: IncomingStore) -> Verdict:
        if incoming.sop_instance_uid != self.probe.sop_uid:
            return Verdict.REFUSE
        self.from_ae = incoming.calling_ae
        self.arrived.set()
        return Verdict.DISCARD

    def on_stored(self, _received: Received) -> None:
        return None


def _move_finding(profile: SiteProfile, device_id: str, peer: Peer, settings: DicomSettings,
                  probe: Probe) -> Finding:
    listener_ae = profile.listener.ae_title
    what = f"source {device_id} ({peer}) C-MOVE of one instance to {listener_ae}"
    device = next(d for d in profile.source.devices if d.id == device_id)
    catcher = _Catcher(probe, device.storing_aes())
    allowed = frozenset(device.storing_aes() | {device.ae_title})
    config = ListenerConfig(listener_ae, allowed, profile.listener.host, profile.listener.port,
                            settings, 4, listener_tls(profile))
    listener = Listener(config, Spool(profile.listener.spool_dir / "check", 10**8),
                        ListenerCallbacks(catcher.decide, catcher.on_stored))
    try:
        listener.start()
    except DicomError as error:
        return Finding(what, False, str(error),
                       "is a `pacsmig run` already listening? stop it, or free the port")
    try:
        outcome = c_move(peer, profile.source.calling_ae_title, settings, listener_ae,
                         probe.study_uid, msg_id=1,
                         sop_instances=[(probe.series_uid, probe.sop_uid)])
        arrived = catcher.arrived.wait(_MOVE_WAIT if outcome.category.is_ok else 1.0)
    finally:
        listener.stop()
    return _moved(what, profile, peer, outcome.status, outcome.category, outcome.detail,
                  arrived, catcher)


def _moved(what: str, profile: SiteProfile, peer: Peer, status: int | None,
           category: StatusCategory, detail: str, arrived: bool, catcher: _Catcher) -> Finding:
    listener = profile.listener
    where = f"port {listener.port} of this machine"
    if arrived and catcher.from_ae not in catcher.storing:
        return Finding(what, False, f"the instance came from AE {catcher.from_ae}",
                       f"add store_ae_titles: [{catcher.from_ae}] to this device in the "
                       "profile: the runner keeps instances only from the AEs it expects")
    if arrived:
        return Finding(what, True, "the instance reached the runner's listener")
    if category is StatusCategory.MOVE_DESTINATION_UNKNOWN:
        return Finding(what, False, f"{peer.ae_title} answered {describe_status(status)}",
                       f"add {listener.ae_title} ({where}) to the DICOM nodes of "
                       f"{peer.ae_title}")
    if category.is_transport:
        return Finding(what, False, detail, _association_fix(detail, "the runner", peer))
    return Finding(what, False, f"{peer.ae_title} answered {describe_status(status)} and "
                   "nothing reached the listener",
                   f"{peer.ae_title} could not deliver to {listener.ae_title}: check that its "
                   f"DICOM nodes list {listener.ae_title} at the host and port the runner "
                   f"listens on ({where}), and that nothing blocks the connection (an archive "
                   f"that does not know {listener.ae_title} at all answers this way too)")


def _destination(profile: SiteProfile, settings: DicomSettings,
                 probe: Probe | None) -> Iterator[Finding]:
    peer = destination_peer(profile)
    calling = profile.source.calling_ae_title
    name = f"destination {profile.destination.name} ({peer})"
    echo = c_echo(peer, calling, settings)
    yield _association_finding(f"{name} C-ECHO", echo.category, echo.detail, calling, peer)
    if not echo.category.is_ok:
        return
    query = Dataset()
    query.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.1"  # a study no archive holds
    query.NumberOfStudyRelatedInstances = ""
    found = c_find(peer, calling, settings, "STUDY", query)
    finding = _find_finding(f"{name} C-FIND (verification query)", found, calling, peer)
    yield finding if found.ok else Finding(
        finding.what, False, finding.detail,
        "the runner verifies every study by C-FIND at the destination: give "
        f"{calling} query rights on it, or choose verify: commitment")
    if probe is not None and probe.sop_class_uid:
        yield _storage_finding(name, peer, calling, settings, probe)
    if profile.destination.verify == "commitment":
        yield _commitment_finding(name, peer, calling, settings)


def _storage_finding(name: str, peer: Peer, calling: str, settings: DicomSettings,
                     probe: Probe) -> Finding:
    what = f"{name} accepts storage of {probe.sop_class_uid}"
    assoc = ClientAssociation.open(peer, calling, settings,
                                   [Proposal(probe.sop_class_uid, LITTLE_ENDIAN_SYNTAXES)])
    if isinstance(assoc, Refusal):
        return Finding(what, False, assoc.detail, _association_fix(assoc.detail, calling, peer))
    accepted = assoc.context_for(probe.sop_class_uid, None) is not None
    assoc.release()
    if accepted:
        return Finding(what, True, "accepted (negotiated only: nothing was stored)")
    return Finding(what, False, "the storage context was refused",
                   f"allow {calling} to store this SOP class at the destination")


def _commitment_finding(name: str, peer: Peer, calling: str,
                        settings: DicomSettings) -> Finding:
    from runner.dicom.commitment import request_commitment

    what = f"{name} Storage Commitment"
    request = request_commitment(peer, calling, settings,
                                 [("1.2.840.10008.5.1.4.1.1.7",
                                   "1.2.826.0.1.3680043.8.498.2")], wait_for_report=2.0)
    if request.ok:
        return Finding(what, True, "the N-ACTION was accepted")
    return Finding(what, False, request.detail,
                   f"enable Storage Commitment for {calling} at the destination, or choose "
                   "verify: instances")
