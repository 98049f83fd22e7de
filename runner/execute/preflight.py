"""`pacsmig check`: the pre-flight against the real peers, each failure with its likely cause.

Per source device: C-ECHO, a one-day C-FIND (the calling AE is accepted), and a C-MOVE of
one instance to the runner's own listener, started for it (the source knows the
listener's AE, host and port; the instance is answered with success and discarded). At the
destination: C-ECHO, a one-day C-FIND, and a C-STORE of one small test object followed by
an image-level C-FIND for it, or with `verify: commitment` (no C-FIND then) by a Storage
Commitment round trip (see TEST_PATIENT_ID; re-running `check` stores the same instance
again, so the destination keeps one such object). TLS is used wherever the
profile configures it, so a TLS mismatch shows up as a failed check.

The outcomes are data (CheckResult); `run` runs the cheap checks (echo and C-FIND) first.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

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
from runner.dicom.move import MoveOutcome, c_move
from runner.dicom.peer import DicomSettings, Peer
from runner.dicom.spool import Spool
from runner.dicom.status import StatusCategory, describe
from runner.dicom.store import StoreClient
from runner.errors import DicomError
from runner.execute.peers import destination_peer, device_peers, dicom_settings, listener_tls
from runner.execute.preflight_priority import priority_checks
from runner.execute.preflight_web import web_checks
from runner.execute.settlement.verifier import CommitmentWaiter
from runner.morph.loaded import LoadedProfile
from runner.profile.models import SiteProfile

TEST_PATIENT_ID = "PACSMIG-CHECK"
TEST_PATIENT_NAME = "PACSMIG^PREFLIGHT"
_SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
_MOVE_MSG_ID = 1
_SAMPLE_WINDOWS_DAYS = (1, 30, 365)
# Refusal details once the association stood (runner.dicom.ul.requestor ClientAssociation._lost).
_ABORTED_MID_OPERATION = frozenset({"the association was aborted",
                                    "the connection closed without a response"})


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One pre-flight check: what was tried, whether it passed, and (failed) cause and fix."""

    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        """The check as one console line."""
        return f"{'ok  ' if self.ok else 'FAIL'} {self.name}: {self.detail}"


@dataclass(frozen=True, slots=True)
class _Who:
    """The names a failure message needs."""

    label: str  # "source device old1 (OLDPACS@10.0.0.5:104)"
    side: str  # "source device old1" or "destination NEWVNA"
    calling_ae: str
    tls: bool


def run_checks(loaded: LoadedProfile, write: Callable[[str], None],
               move: bool = True, store: bool = True) -> list[CheckResult]:
    """Every check of the profile, written as it completes; `move`/`store` off: cheap only."""
    profile = loaded.profile
    settings = dicom_settings(profile)
    results: list[CheckResult] = []

    def record(result: CheckResult) -> CheckResult:
        write(result.line())
        results.append(result)
        return result

    for device_id, peer in device_peers(profile):
        who = _who(f"source device {device_id}", peer, profile)
        if not record(_echo(peer, who, settings)).ok:
            continue
        found = _one_day_find(peer, who, settings, "STUDY")
        if not record(found[0]).ok or not move:
            continue
        record(_move_check(profile, peer, who, settings))
    _destination_checks(profile, settings, record, store)
    if store:  # `pacsmig check`, not the run's start (which opens them itself)
        priority_checks(profile, settings, lambda *r: record(CheckResult(*r)).ok)
    return results


def cheap_check_failures(loaded: LoadedProfile) -> list[str]:
    """The reasons `run` must not start (echo and C-FIND at each peer), empty when none."""
    failures = run_checks(loaded, lambda _line: None, move=False, store=False)
    return [f"{r.name}: {r.detail}" for r in failures if not r.ok]


def _who(side: str, peer: Peer, profile: SiteProfile) -> _Who:
    return _Who(f"{side} ({peer})", side, profile.source.calling_ae_title, peer.tls is not None)


def _destination_checks(profile: SiteProfile, settings: DicomSettings,
                        record: Callable[[CheckResult], CheckResult], store: bool) -> None:
    if profile.destination.dicomweb is not None:  # QIDO-RS and STOW-RS, not C-ECHO
        return web_checks(profile, lambda *r: record(CheckResult(*r)).ok,
                          test_object(profile) if store else None)
    peer = destination_peer(profile)
    who = _who(f"destination {profile.destination.name}", peer, profile)
    if not record(_echo(peer, who, settings)).ok:
        return
    commitment = profile.destination.verify == "commitment"
    if not commitment and not record(_one_day_find(peer, who, settings, "STUDY")[0]).ok:
        return
    if store:
        record(_store_check(profile, peer, who, settings, query=not commitment))


# --- what a failed association means ---------------------------------------------------------


def association_advice(who: _Who, detail: str, category: StatusCategory) -> str:
    """A transport failure (no association, abort, timeout) with its likely cause and fix."""
    host = socket.gethostname()
    if "rejected the association (called AE" in detail:  # dcmqrscp says so for both
        return (f"{detail}: either the AE title of {who.side} in the profile is wrong, or "
                f"{who.side} rejected calling AE {who.calling_ae}: register "
                f"{who.calling_ae} (this host, {host}) on {who.side}")
    if "rejected the association" in detail:
        return (f"{detail}: {who.side} rejected calling AE {who.calling_ae}: register "
                f"{who.calling_ae} (this host, {host}) on {who.side}, and check the called "
                f"AE title in the profile")
    if "TLS" in detail:
        return (f"{detail}: the TLS set-up does not match: check the profile's tls "
                f"(certificate, key, ca) for {who.side} against the peer's")
    if category is StatusCategory.TIMEOUT:
        return (f"{detail}: nothing answered in time: check host and port of {who.side} "
                f"in the profile and firewalls between this host and it")
    if detail.startswith("cannot connect"):
        return (f"{detail}: nothing listens there: check host and port of {who.side} in "
                f"the profile, that it runs, and firewalls")
    tls_hint = ("; with TLS on, the peer may not speak TLS on this port" if who.tls
                else "; the peer may expect TLS on this port, or refuse calling AE "
                     f"{who.calling_ae}")
    return f"{detail}: the peer dropped the association{tls_hint}"


def _refused(what: str, who: _Who, outcome_status: int | None, detail: str,
             category: StatusCategory) -> str:
    if outcome_status is None and detail in _ABORTED_MID_OPERATION:
        return (f"{detail}: {who.side} accepted the association but dropped it when asked "
                f"for a {what}: it refuses {what} from {who.calling_ae}: allow "
                f"{who.calling_ae} to use {what} on {who.side}")
    if outcome_status is None:
        return association_advice(who, detail, category)
    return (f"{who.side} answered {describe(outcome_status)} to a {what} from "
            f"{who.calling_ae}: check that {who.calling_ae} may query it")


# --- the checks ---------------------------------------------------------------------------------


def _echo(peer: Peer, who: _Who, settings: DicomSettings) -> CheckResult:
    outcome = c_echo(peer, who.calling_ae, settings)
    name = f"C-ECHO {who.label}"
    if outcome.ok:
        return CheckResult(name, True, f"answered in {outcome.seconds * 1000:.0f} ms")
    if outcome.category.is_transport:
        return CheckResult(name, False, association_advice(who, outcome.detail,
                                                           outcome.category))
    return CheckResult(name, False, f"{outcome.detail}: {who.side} refuses C-ECHO from "
                                    f"{who.calling_ae}")


def _day_query(first: date, last: date) -> Dataset:
    query = Dataset()
    query.StudyDate = f"{first:%Y%m%d}-{last:%Y%m%d}"
    query.StudyInstanceUID = ""
    return query


def _one_day_find(peer: Peer, who: _Who, settings: DicomSettings,
                  level: str) -> tuple[CheckResult, FindOutcome]:
    today = date.today()
    outcome = c_find(peer, who.calling_ae, settings, level, _day_query(today, today))
    name = f"C-FIND {who.label} (studies of {today:%Y-%m-%d})"
    if outcome.ok:
        return CheckResult(name, True, f"{len(outcome.identifiers)} studies"), outcome
    detail = _refused("C-FIND", who, outcome.status, outcome.detail, outcome.category)
    return CheckResult(name, False, detail), outcome


def _sample_instance(peer: Peer, who: _Who,
                     settings: DicomSettings) -> tuple[str, str, str] | None:
    """(study, series, SOP instance UID) of one instance dated recently, None if none."""
    today = date.today()
    for days in _SAMPLE_WINDOWS_DAYS:
        studies = c_find(peer, who.calling_ae, settings, "STUDY",
                         _day_query(today - timedelta(days=days - 1), today))
        for study in studies.identifiers[:3]:
            found = _first_instance(peer, who, settings, str(study.get("StudyInstanceUID", "")))
            if found is not None:
                return found
    return None


def _first_instance(peer: Peer, who: _Who, settings: DicomSettings,
                    study_uid: str) -> tuple[str, str, str] | None:
    if not study_uid:
        return None
    query = Dataset()
    query.StudyInstanceUID = study_uid
    query.SeriesInstanceUID = ""
    query.SOPInstanceUID = ""
    found = c_find(peer, who.calling_ae, settings, "IMAGE", query)
    for ds in found.identifiers:
        series, sop = str(ds.get("SeriesInstanceUID", "")), str(ds.get("SOPInstanceUID", ""))
        if series and sop:
            return study_uid, series, sop
    return None


class _Catch:
    """The listener's callbacks for the move check: accept from the device, keep nothing."""

    def __init__(self, device_ae: str) -> None:
        self.device_ae = device_ae
        self.stores = 0
        self._lock = threading.Lock()

    def decide(self, incoming: IncomingStore) -> Verdict:
        with self._lock:
            self.stores += 1
        return Verdict.DISCARD

    def on_stored(self, _received: Received) -> None:
        """Never called: every store is discarded."""


def _move_check(profile: SiteProfile, peer: Peer, who: _Who,
                settings: DicomSettings) -> CheckResult:
    listener = profile.listener
    name = f"C-MOVE {who.label} to {listener.ae_title} (port {listener.port})"
    sample = _sample_instance(peer, who, settings)
    if sample is None:
        return CheckResult(name, False, f"no study dated within the last "
                                        f"{_SAMPLE_WINDOWS_DAYS[-1]} days found to move one "
                                        f"instance of: the move path is not proven")
    catch = _Catch(peer.ae_title)
    config = ListenerConfig(ae_title=listener.ae_title, allowed_aes=frozenset({peer.ae_title}),
                            host=listener.host, port=listener.port, settings=settings,
                            max_associations=2, tls=listener_tls(profile))
    spool = Spool(listener.spool_dir, int(listener.max_spool_gb * 1e9))
    try:
        with Listener(config, spool, ListenerCallbacks(catch.decide, catch.on_stored)):
            outcome = c_move(peer, who.calling_ae, settings, listener.ae_title, sample[0],
                             msg_id=_MOVE_MSG_ID, sop_instances=[(sample[1], sample[2])])
    except DicomError as error:
        return CheckResult(name, False, f"{error}: stop whatever holds the port (another "
                                        f"pacsmig run?) or change listener.port")
    return _judge_move(name, who, outcome, catch.stores, profile)


def _judge_move(name: str, who: _Who, outcome: MoveOutcome, stores: int,
                profile: SiteProfile) -> CheckResult:
    listener = profile.listener
    if outcome.ok and stores > 0:
        return CheckResult(name, True, f"one instance received in {outcome.seconds:.1f} s")
    if outcome.status is None:
        return CheckResult(name, False,
                           association_advice(who, outcome.detail, outcome.category))
    target = f"{listener.ae_title} at this host ({socket.gethostname()}), port {listener.port}"
    answer = describe(outcome.status)
    if outcome.category is StatusCategory.MOVE_DESTINATION_UNKNOWN:
        return CheckResult(name, False, f"{who.side} answered {answer} to a C-MOVE to "
                                        f"{listener.ae_title}: register {target} as a DICOM "
                                        f"node (move destination) on {who.side}")
    return CheckResult(name, False, f"{who.side} answered {answer} to a C-MOVE to "
                                    f"{listener.ae_title} and the listener received "
                                    f"{stores} instances: the source cannot open an "
                                    f"association to {target}: check the move destination "
                                    f"it has for {listener.ae_title} (host, port, TLS)")


def test_object(profile: SiteProfile) -> Dataset:
    """The one small instance the store check leaves at the destination (same UIDs each time)."""
    seed = [profile.site.id, profile.source.calling_ae_title]
    ds = Dataset()
    ds.SOPClassUID = _SECONDARY_CAPTURE
    ds.StudyInstanceUID = generate_uid(entropy_srcs=[*seed, "study"])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=[*seed, "series"])
    ds.SOPInstanceUID = generate_uid(entropy_srcs=[*seed, "instance"])
    ds.PatientID = TEST_PATIENT_ID
    ds.PatientName = TEST_PATIENT_NAME
    ds.StudyDescription = "pacsmig pre-flight check object"
    ds.Modality = "OT"
    ds.StudyDate = ds.SeriesDate = "19000101"
    ds.SeriesNumber = ds.InstanceNumber = 1
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows = ds.Columns = 8
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit, ds.PixelRepresentation = 7, 0
    ds.PixelData = bytes(64)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return ds


def _store_check(profile: SiteProfile, peer: Peer, who: _Who, settings: DicomSettings,
                 query: bool) -> CheckResult:
    ds = test_object(profile)
    name = f"C-STORE {who.label} (test object, PatientID {TEST_PATIENT_ID})"
    with StoreClient(peer, who.calling_ae, settings) as client:
        stored = client.store_dataset(ds)
    if not stored.ok:
        if stored.status is None:
            return CheckResult(name, False, association_advice(who, stored.detail,
                                                               stored.category))
        return CheckResult(name, False, f"{who.side} answered {describe(stored.status)} to "
                                        f"a C-STORE from {who.calling_ae}")
    if not query:
        return _commitment_check(profile, peer, who, settings, ds, name)
    found = _first_instance(peer, who, settings, str(ds.StudyInstanceUID))
    if found is None or found[2] != ds.SOPInstanceUID:
        return CheckResult(name, False, f"stored, but an image-level C-FIND does not find it: "
                                        f"{who.side} cannot verify by query; use verify: "
                                        f"commitment or counts")
    return CheckResult(name, True, "stored and found again by an image-level C-FIND")


_COMMITMENT_WAIT = 30.0  # seconds for the N-EVENT-REPORT of the check's one instance


def _commitment_check(profile: SiteProfile, peer: Peer, who: _Who, settings: DicomSettings,
                      ds: Dataset, name: str) -> CheckResult:
    """The Storage Commitment round trip for the stored test object (verify: commitment):
    the report may come on the request's association or to the listener, started for it."""
    from runner.dicom.commitment import request_commitment  # only when needed

    listener = profile.listener
    waiter = CommitmentWaiter()
    config = ListenerConfig(ae_title=listener.ae_title, allowed_aes=frozenset({peer.ae_title}),
                            host=listener.host, port=listener.port, settings=settings,
                            max_associations=2, tls=listener_tls(profile))
    spool = Spool(listener.spool_dir, int(listener.max_spool_gb * 1e9))
    refs = [(str(ds.SOPClassUID), str(ds.SOPInstanceUID))]
    try:
        with Listener(config, spool, ListenerCallbacks(_refuse_all, _ignore_stored,
                                                       on_commitment=waiter.deliver)):
            request = request_commitment(peer, who.calling_ae, settings, refs,
                                         wait_for_report=0.5)
            report = None
            if request.ok:
                report = request.report or waiter.wait(request.transaction_uid,
                                                       _COMMITMENT_WAIT)
    except DicomError as error:
        return CheckResult(name, False, f"stored; {error}: stop whatever holds the port or "
                                        f"change listener.port")
    if not request.ok:
        why = _refused("Storage Commitment", who, request.status, request.detail,
                       request.category)
        return CheckResult(name, False, (
            f"stored, but the commitment request failed: {why}; it also needs "
            f"{profile.listener.ae_title} (this host, port {profile.listener.port}) as a "
            f"known node to send the report to"))
    if report is None:
        return CheckResult(name, False, (
            f"stored, but no commitment report arrived within {_COMMITMENT_WAIT:.0f} s: "
            f"{who.side} must send it to {listener.ae_title} at this host "
            f"({socket.gethostname()}), port {listener.port}: check the AE it has for "
            f"{listener.ae_title}"))
    if str(ds.SOPInstanceUID) not in report.committed:
        return CheckResult(name, False, "stored, but the destination did not commit to it")
    return CheckResult(name, True, "stored and committed (Storage Commitment round trip)")


def _refuse_all(_incoming: IncomingStore) -> Verdict:
    return Verdict.REFUSE


def _ignore_stored(_received: Received) -> None:
    """Never called: every store is refused."""
