"""`pacsmig morph-preview`: fetch a sample of real headers by C-FIND and show what the rules do."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset

from runner.dicom.echo import c_echo
from runner.dicom.find import c_find
from runner.dicom.peer import DicomSettings, Peer
from runner.errors import DicomError
from runner.execute.peers import device_peers, dicom_settings
from runner.morph.loaded import LoadedProfile
from runner.morph.preview import Preview, preview
from runner.plan.model import Plan

_ALWAYS = (0x00080016, 0x00080018, 0x0020000E)  # SOP Class, SOP Instance, Series Instance


def morph_preview_command(loaded: LoadedProfile, plan: Plan, sample: int,
                          show_identifiers: bool = False) -> Preview:
    """Preview the profile's rules on about `sample` instances from the source (identifying
    values masked when `mask_identifiers`, unless `show_identifiers`)."""
    profile = loaded.profile
    settings = dicom_settings(profile)
    peer = _healthy_device(device_peers(profile), profile.source.calling_ae_title, settings)

    def fetch(study_uid: str, keys: Sequence[int]) -> list[Dataset]:
        found = c_find(peer, profile.source.calling_ae_title, settings, "IMAGE",
                       image_query(study_uid, keys))
        return list(found.identifiers)

    return preview(loaded.rules, spread(plan, sample), fetch, sample,
                   profile.reports.mask_identifiers and not show_identifiers)


def spread(plan: Plan, count: int) -> list[str]:
    """Up to `count` study UIDs taken evenly across the whole plan (every phase, every year)."""
    uids = [s.study_uid for phase in plan.phases for s in phase.studies]
    if len(uids) <= count:
        return uids
    step = len(uids) / count
    return [uids[int(i * step)] for i in range(count)]


def image_query(study_uid: str, keys: Sequence[int]) -> Dataset:
    """An IMAGE-level identifier asking for `keys` of every instance of a study."""
    query = Dataset()
    query.StudyInstanceUID = study_uid
    for tag in (*_ALWAYS, *keys):
        if tag >> 16 & 1 or tag in query:
            continue  # private attributes cannot be matched by C-FIND
        query.add_new(tag, dictionary_VR(tag), None)
    return query


def _healthy_device(peers: Sequence[tuple[str, Peer]], calling_ae: str,
                    settings: DicomSettings) -> Peer:
    for _, peer in peers:
        if c_echo(peer, calling_ae, settings).ok:
            return peer
    names = ", ".join(str(p) for _, p in peers)
    raise DicomError(f"no source device answers C-ECHO ({names})")


def preview_lines(result: Preview, write: Callable[[str], object]) -> None:
    """Print the preview."""
    for line in result.lines():
        write(line)
