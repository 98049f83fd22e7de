"""The capability matrix asked of the live peers (for `plan`, which gets it from the CLI):
the SOP classes of the source's studies (SOP Classes in Study from the inventory, else an
image-level C-FIND of a sample of studies), and what the destination accepts of each, by
association negotiation only."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from pydicom import Dataset

from runner.dicom.find import c_find
from runner.dicom.listener import ACCEPTED_TRANSFER_SYNTAXES
from runner.dicom.probe import accepted_syntaxes
from runner.dicom.transcode import can_write, is_losslessly_decodable
from runner.execute.peers import destination_peer, device_peer, dicom_settings
from runner.inventory.model import Inventory, Study
from runner.plan.capabilities import capability_matrix, matrix_json
from runner.profile.models import SiteProfile

SAMPLED_STUDIES = 20  # studies asked instance by instance when the source gave no classes


def live_capabilities(profile: SiteProfile,
                      inventory: Inventory) -> tuple[list[str], dict[str, Any]]:
    """Lines for a person, and the `capabilities` key of `plan --json`."""
    if profile.destination.dicomweb is not None:
        return (["", "Capability matrix: none for a DICOMweb destination (nothing to negotiate:"
                 " its STOW-RS answer says per instance what it refuses)"],
                {"destination": profile.destination.dicomweb.url, "classes": []})
    studies_by_class, sampled = _classes(profile, inventory.studies)
    probed = [str(s) for s in ACCEPTED_TRANSFER_SYNTAXES]
    dest = destination_peer(profile)
    outcome = accepted_syntaxes(dest, profile.source.calling_ae_title, dicom_settings(profile),
                                sorted(studies_by_class), probed) if studies_by_class else None
    document: dict[str, Any] = {"destination": str(dest), "sampled_studies": sampled,
                                "probed_syntaxes": probed, "classes": []}
    lines = ["", f"Capability matrix: SOP classes in the inventory, against what {dest} "
                 "accepts (association negotiation, nothing sent):"]
    if sampled:
        lines.append(f"  ({sampled} studies without SOP Classes in Study asked instance by "
                     "instance)")
    if outcome is None:
        return [*lines, "  no SOP class known: the source answered none"], document
    if outcome.problem is not None:
        document["problem"] = outcome.problem
        return [*lines, f"  {outcome.problem}"], document
    rows = capability_matrix(studies_by_class, outcome.accepted, probed)
    lossless = frozenset(s for s in probed if is_losslessly_decodable(s))
    writable = frozenset(s for s in probed if can_write(s))
    document["classes"] = matrix_json(rows)
    return [*lines, *(f"  {row.describe(lossless, writable)}" for row in rows)], document


def _classes(profile: SiteProfile, studies: Sequence[Study]) -> tuple[Counter[str], int]:
    counts: Counter[str] = Counter()
    unknown = []
    for study in studies:
        counts.update(set(study.sop_classes))
        if not study.sop_classes:
            unknown.append(study)
    sample = unknown[:SAMPLED_STUDIES]
    for study in sample:
        counts.update(_instance_classes(profile, study))
    return counts, len(sample)


def _instance_classes(profile: SiteProfile, study: Study) -> set[str]:
    """The SOP classes of one study's instances (image-level C-FIND at its device)."""
    device = study.device or profile.source.devices[0].id
    query = Dataset()
    query.StudyInstanceUID = study.study_uid
    query.SeriesInstanceUID = ""
    query.SOPInstanceUID = ""
    query.SOPClassUID = ""
    found = c_find(device_peer(profile, device), profile.source.calling_ae_title,
                   dicom_settings(profile), "IMAGE", query)
    return {str(ds.SOPClassUID) for ds in found.identifiers if ds.get("SOPClassUID")}
