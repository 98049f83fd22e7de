"""What the commands open of a site: its ledger, and its listener's configuration."""

from __future__ import annotations

from runner.dicom.listener import ListenerConfig
from runner.execute.peers import dicom_settings, listener_tls
from runner.ledger import LEDGER_FILENAME, Ledger
from runner.morph.loaded import LoadedProfile


def open_ledger(loaded: LoadedProfile) -> Ledger:
    """The site's ledger in `reports.dir`."""
    return Ledger.open(loaded.profile.reports.dir / LEDGER_FILENAME)


def listener_config(loaded: LoadedProfile) -> ListenerConfig:
    """The listener the profile describes, accepting associations from the devices (and the
    AE titles they store from) and the destination."""
    profile = loaded.profile
    # Devices store (each from its own AE titles); the destination only reports storage
    # commitment. Which store belongs to which retrieve is intake's `decide`.
    allowed = {ae for d in profile.source.devices for ae in d.storing_aes()}
    allowed |= {d.ae_title for d in profile.source.devices}
    if profile.destination.ae_title is not None:  # a DICOMweb destination reports nothing
        allowed.add(profile.destination.ae_title)
    return ListenerConfig(ae_title=profile.listener.ae_title, allowed_aes=frozenset(allowed),
                          host=profile.listener.host, port=profile.listener.port,
                          settings=dicom_settings(profile),
                          max_associations=profile.listener.max_associations,
                          tls=listener_tls(profile),
                          memory_wait=profile.listener.memory_wait_seconds)
