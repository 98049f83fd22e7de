"""The destination as the run uses it, whichever its kind: asked what it holds (C-FIND or
QIDO-RS), checked at the start (C-ECHO or a QIDO-RS request), named in messages (its URL,
credentials masked), and the profile's `destination.dicomweb` as runner.destinations'
plain values."""

from __future__ import annotations

from functools import cache

from runner.destinations.holdings import DimseHoldings, Holdings
from runner.destinations.qido import WebHoldings
from runner.destinations.web import (
    Credentials,
    SecretSource,
    WebService,
    open_client,
    read_credentials,
)
from runner.dicom.echo import c_echo
from runner.execute.peers import destination_peer, dicom_settings
from runner.profile.models import SiteProfile


def web_service(profile: SiteProfile) -> WebService | None:
    """The destination's DICOMweb service (None: it is a DICOM peer)."""
    web = profile.destination.dicomweb
    if web is None:
        return None
    auth = None if web.auth is None else SecretSource(web.auth.type, web.auth.file,
                                                      web.auth.env)
    return WebService(web.url, auth, web.certificate, web.key, web.ca, web.timeout,
                      int(web.max_request_mb * 1e6), web.max_instances_per_request)


@cache
def credentials(service: WebService) -> Credentials:
    """The service's credentials, read once per process (DicomError when unusable)."""
    return read_credentials(service.auth)


def holdings(profile: SiteProfile) -> Holdings:
    """How the destination is asked what it holds."""
    service = web_service(profile)
    if service is None:
        return DimseHoldings(destination_peer(profile), profile.source.calling_ae_title,
                             dicom_settings(profile))
    secrets = credentials(service)
    return WebHoldings(service, secrets, open_client(service, secrets))


def named(profile: SiteProfile) -> str:
    """The destination in messages: its name and its peer, or its URL (no credentials)."""
    service = web_service(profile)
    where = service.shown() if service is not None else str(destination_peer(profile))
    return f"{profile.destination.name} ({where})"


def answers(profile: SiteProfile) -> tuple[bool, str]:
    """Whether the destination answers now (C-ECHO; for DICOMweb a one-study QIDO-RS, which
    proves the URL, the TLS and the credentials), and how it answered."""
    service = web_service(profile)
    if service is None:
        echo = c_echo(destination_peer(profile), profile.source.calling_ae_title,
                      dicom_settings(profile))
        return echo.ok, f"C-ECHO: {echo.detail}"
    secrets = credentials(service)
    with open_client(service, secrets) as client:
        found = WebHoldings(service, secrets, client).count("1.2.3.4.5.6.7.8.9")
    if found.ok or found.count == 0:
        return True, f"QIDO-RS: answered in {found.seconds * 1000:.0f} ms"
    return False, f"QIDO-RS: {found.detail}"
