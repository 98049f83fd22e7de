"""The demo's simulated site: a legacy PACS of two devices in front of one store with a local
and a nearline tier (runner.sim.pacs; a device locks up past the limits the profile gives it), and
the embedded archive, started where the demo profile says."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, timedelta

from runner.dicom.peer import Peer
from runner.profile.models import Device, SiteProfile
from runner.sim.destination import EmbeddedArchive
from runner.sim.generate import StudySpec, synthetic_archive
from runner.sim.pacs import Lockup, SimArchive, SimDevice, study_mb
from runner.sim.qrscp import QRServer

RECENT_STUDIES = 8
PRIORS_PATIENT = "DEMO-PRIORS-7"  # the patient the demo's simulated RIS books part way
# A recall takes this long per MB (the demo's stand-in for a cloud archive's hours).
RECALL_SECONDS_PER_MB = 1.0


@dataclass
class DemoSite:
    """The simulated PACS (its store, devices and servers) and the archive, running."""

    archive: SimArchive
    devices: list[SimDevice]
    servers: list[QRServer]
    destination: EmbeddedArchive
    instances: int  # in the simulated PACS

    @classmethod
    def start(cls, profile: SiteProfile, studies: int, today: date) -> DemoSite:
        """`studies` studies in the simulated PACS, served where the profile's devices are;
        the archive where its destination is."""
        capacity_mb = profile.tiering.local_store_gb * 1000
        specs = demo_archive(studies, today, profile.redate.recent_days, capacity_mb)
        archive = SimArchive(specs, capacity_mb, profile.redate.recent_days, today,
                             RECALL_SECONDS_PER_MB)
        devices = [SimDevice(archive, _lockup(d)) for d in profile.source.devices]
        servers, destination = _start(profile, specs, devices)
        return cls(archive, devices, servers, destination,
                   sum(spec.instance_count for spec in specs))

    @property
    def lockups(self) -> int:
        """Lock-ups the devices went through."""
        return sum(d.lockups for d in self.devices)

    def stop(self) -> None:
        """Stop the devices' servers and the archive."""
        for server in self.servers:
            server.stop()
        self.destination.stop()


def _lockup(device: Device) -> Lockup | None:
    """The device's lock-up as the profile states its limits for the forecast (none stated:
    a device that does not lock up)."""
    limits = device.limits
    if limits.lockup_backlog_mb is None:
        return None
    minutes = limits.lockup_minutes if limits.lockup_minutes is not None else 1.0
    return Lockup(reboot_seconds=minutes * 60.0, backlog_mb=limits.lockup_backlog_mb,
                  loses_moves=True)


def _priors(count: int) -> set[int]:
    """The older studies that are PRIORS_PATIENT's: the three newest before the clinically
    recent ones (on the local store, so late in its oldest-first queue)."""
    return {count - 3, count - 2, count - 1} if count >= 6 else set()


def demo_archive(count: int, today: date, recent_days: int,
                 local_mb: float) -> list[StudySpec]:
    """`count` studies since 2012, the last few clinically recent; the newest are local, as
    many as the local store holds (`local_mb`), the others nearline."""
    older = synthetic_archive("demo", count - RECENT_STUDIES, date(2012, 1, 1),
                              today - timedelta(days=recent_days + 30),
                              modalities=("CT", "MR", "CR", "DX", "US", "MG"),
                              series_count=2, instances_per_series=3)
    recent = synthetic_archive("demo-recent", RECENT_STUDIES, today - timedelta(days=10), today,
                               modalities=("CT", "CR", "MR"), series_count=2,
                               instances_per_series=3)
    older = [replace(s, patient_id=PRIORS_PATIENT) if i in _priors(len(older)) else s
             for i, s in enumerate(older)]
    specs = [replace(s, rows=256, cols=256, bits_allocated=16) for s in older + recent]
    out: list[StudySpec] = []
    for spec in reversed(specs):
        local_mb -= study_mb(spec)
        out.append(spec if local_mb >= 0 else replace(spec, instance_availability="NEARLINE"))
    return out[::-1]


def _start(profile: SiteProfile, specs: list[StudySpec],
           devices: list[SimDevice]) -> tuple[list[QRServer], EmbeddedArchive]:
    listener = (profile.listener.host, profile.listener.port)
    moves = {profile.listener.ae_title: listener}
    servers = [QRServer(d.ae_title, specs, moves, behaviour=b, host=d.host, port=d.port).start()
               for d, b in zip(profile.source.devices, devices, strict=True)]
    dest = profile.destination
    if dest.ae_title is None or dest.port is None:
        raise ValueError("the demo's destination is an embedded DIMSE archive")
    archive = EmbeddedArchive(dest.ae_title, profile.reports.dir / "archive", dest.port,
                              {profile.source.calling_ae_title:
                               Peer(profile.listener.ae_title, *listener)}).start()
    return servers, archive
