"""The pre-flight checks of a DICOMweb destination: a QIDO-RS request (the URL, the TLS
and the credentials), then a STOW-RS of the one test object and a QIDO-RS for it."""

from __future__ import annotations

import io
from collections.abc import Callable

from pydicom import Dataset
from pydicom.filewriter import dcmwrite

from runner.destinations.qido import WebHoldings
from runner.destinations.stow import StowPart, Whole, stow
from runner.destinations.web import WebService, open_client
from runner.errors import DicomError
from runner.execute.destination import answers, credentials, named, web_service
from runner.profile.models import SiteProfile

Record = Callable[[str, bool, str], bool]  # name, ok, detail -> ok


def web_checks(profile: SiteProfile, record: Record, test_object: Dataset | None) -> None:
    """QIDO-RS at the destination; with `test_object`, its STOW-RS and a QIDO-RS for it."""
    service = web_service(profile)
    assert service is not None, "a DICOMweb destination"
    name = f"QIDO-RS destination {named(profile)}"
    try:
        ok, detail = answers(profile)
    except DicomError as error:  # the credentials cannot be read
        ok, detail = False, str(error)
    detail = detail.removeprefix("QIDO-RS: ")
    if not record(name, ok, detail if ok else _advice(detail)) or test_object is None:
        return
    stored, detail = _store_and_find(service, test_object)
    record(f"STOW-RS destination {named(profile)} (test object)", stored, detail)


def _store_and_find(service: WebService, ds: Dataset) -> tuple[bool, str]:
    secrets = credentials(service)
    out = io.BytesIO()
    dcmwrite(out, ds, enforce_file_format=True)
    encoded = out.getvalue()
    part = StowPart(str(ds.SOPInstanceUID), len(encoded), lambda: [encoded])
    with open_client(service, secrets) as client:
        answer = stow(client, service, secrets, [part])
        said = answer.of(part.sop_instance_uid)
        if answer.whole is not Whole.ANSWERED or not said.ok:
            return False, f"the service refused the test object: {said.detail}"
        found = WebHoldings(service, secrets, client).present(str(ds.StudyInstanceUID))
    if part.sop_instance_uid not in found.sop_uids:
        return False, (f"stored, but QIDO-RS does not find it ({found.detail}): the service "
                       "cannot verify by query; use verify: counts")
    return True, "stored and found again by QIDO-RS"


def _advice(detail: str) -> str:
    if "401" in detail or "403" in detail:
        return f"{detail}: check destination.dicomweb.auth (token or user:password)"
    return f"{detail}: check destination.dicomweb.url, the network and the TLS files"
