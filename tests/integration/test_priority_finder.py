"""The priority lane's look-up at the source (a study-level C-FIND by Patient ID, answered by
an in-process SCP): the exact patient only, the request's issuer for its own ID, and the IDs
the rules map it back to asked too."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from pydicom import Dataset

from runner.dicom.peer import DicomSettings
from runner.execute.priority.finder import PatientFinder
from tests.peers import PynetdicomScp

SETTINGS = DicomSettings(acse_timeout=5, dimse_timeout=5, network_timeout=5,
                         connection_timeout=2)
# (PatientID, IssuerOfPatientID, StudyInstanceUID) the source holds
HELD = [("NEW-1", "RIS", "1.1"), ("NEW-1", "OTHER", "1.2"), ("OLD-1", "OLDPACS", "1.3"),
        ("NEW-10", "RIS", "1.4")]


def on_find(query: Dataset) -> Iterator[tuple[int, Dataset | None]]:
    """Matches as a lax PACS does: PatientID as a prefix, the issuer ignored."""
    asked = str(query.get("PatientID", ""))
    for patient, issuer, uid in HELD:
        if patient.startswith(asked):
            ds = Dataset()
            ds.QueryRetrieveLevel = "STUDY"
            ds.PatientID, ds.IssuerOfPatientID, ds.StudyInstanceUID = patient, issuer, uid
            ds.StudyDate, ds.ModalitiesInStudy = "20240101", "CT"
            ds.NumberOfStudyRelatedInstances = 1
            yield 0xFF00, ds
    yield 0x0000, None


def test_the_patient_exactly_of_the_requests_issuer_and_the_ids_mapped_back(
        pynetdicom_scp_factory: Callable[..., PynetdicomScp]) -> None:
    scp = pynetdicom_scp_factory(on_find=on_find, aet="OLDPACS")
    finder = PatientFinder([("old1", scp.peer)], "PACSMIG", SETTINGS)
    found = finder.find(["NEW-1", "OLD-1"], issuer="RIS")
    assert found.ok
    # NEW-10 (a prefix match) and NEW-1 of another issuer are other patients; OLD-1 is
    # this patient under the old PACS's ID, of the old PACS's issuer
    assert sorted(s.study_uid for s in found.studies) == ["1.1", "1.3"]


def test_a_source_that_does_not_answer_is_a_failed_look_up(
        pynetdicom_scp_factory: Callable[..., PynetdicomScp]) -> None:
    scp = pynetdicom_scp_factory(on_find=on_find, aet="OLDPACS")
    peer = scp.peer
    scp.stop()
    found = PatientFinder([("old1", peer)], "PACSMIG", SETTINGS).find(["NEW-1"])
    assert not found.ok and "old1" in found.detail
