"""The simulated legacy PACS: storage tiers, recalls, LRU push-off and device lock-ups.

One `SimArchive` is the PACS's store, shared by its devices: studies are local or nearline
(the tier model of runner.tiering), a retrieve of a nearline study waits for its recall
(time scaled for the demo) and pushes the least recently accessed studies off the local
store. Each `SimDevice` is one DICOM device in front of it (a Workflow Manager, a DAS): it
locks up when pushed too hard, refusing or stalling every retrieve until it is "rebooted"
`reboot_seconds` later: past a concurrency, or as the forecast's device model has it
(runner.tiering.simulate), when the MB asked of it and not yet delivered would pass its
backlog limit, with the overload's share as probability (seeded). The counters are what a
test measures.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Literal

from runner.inventory.model import DEFAULT_MB_PER_INSTANCE
from runner.sim.generate import StudySpec
from runner.sim.qrscp import Behaviour, MoveDirective
from runner.tiering.model import LocalStore, StoreCounts

# Bytes per instance of a study, as generated (rows x cols x bytes per pixel + header).
_HEADER_BYTES = 2048


def study_mb(spec: StudySpec) -> float:
    """The size of a generated study in MB (pixels plus a typical header per instance)."""
    pixel_bytes = spec.rows * spec.cols * max(1, spec.bits_allocated // 8)
    return spec.instance_count * (pixel_bytes + _HEADER_BYTES) / 1e6


def planned_mb(spec: StudySpec) -> float:
    """The study's size as the runner plans it from a C-FIND count (instances x 0.5 MB)."""
    return spec.instance_count * DEFAULT_MB_PER_INSTANCE


class SimArchive:
    """The PACS's store: which studies are local, recalls and push-offs (thread-safe)."""

    def __init__(self, specs: Sequence[StudySpec], capacity_mb: float, recent_days: int,
                 today: date, recall_seconds_per_mb: float = 0.0,
                 low_water_fraction: float = 0.9) -> None:
        self.store: LocalStore[str] = LocalStore(capacity_mb, capacity_mb * low_water_fraction,
                                                 recent_days, today.toordinal())
        self.recall_seconds_per_mb = recall_seconds_per_mb
        self.lock = threading.Lock()
        self.recalled: set[str] = set()
        for spec in sorted(specs, key=lambda s: (s.study_date, s.study_uid)):
            local = spec.instance_availability != "NEARLINE"
            self.store.know(spec.study_uid, study_mb(spec), spec.study_date.toordinal(), local)

    def acquired(self) -> dict[str, int]:
        """Each known study's acquisition day (an ordinal)."""
        with self.lock:
            return self.store.acquired()

    def is_local(self, spec: StudySpec) -> bool:
        """Whether the study is on the local store now."""
        with self.lock:
            return self.store.is_local(spec.study_uid)

    def retrieve(self, spec: StudySpec) -> float:
        """A retrieve of the study: the seconds its recall takes (0 when it was local)."""
        with self.lock:
            recalled = self.store.access(spec.study_uid)
            if recalled:
                self.recalled.add(spec.study_uid)
        return recalled * self.recall_seconds_per_mb

    def recalled_studies(self) -> int:
        """How many different studies were recalled (a study recalled twice counts once)."""
        with self.lock:
            return len(self.recalled)

    def counts(self) -> StoreCounts:
        """Recalls, recalled MB, push-offs and recent push-offs so far."""
        with self.lock:
            return self.store.counts()


@dataclass
class Lockup:
    """When a device locks up, and for how long: past `max_concurrency` retrieves at once,
    or when a retrieve would take the MB asked and not yet delivered past `backlog_mb`
    (counted in the MB the runner plans with, `planned_mb`: a profile's limits are written
    in those, so the forecast and the simulated device see the same load)."""

    reboot_seconds: float
    max_concurrency: int | None = None
    backlog_mb: float | None = None
    mode: Literal["refuse", "stall"] = "refuse"
    seed: int = 0
    loses_moves: bool = False  # the moves under way fail too (as the forecast's model has it)

    def overload(self, in_flight: int, backlog_mb: float, asked_mb: float) -> float:
        """The chance that one more retrieve (of `asked_mb`) locks the device up."""
        if self.max_concurrency is not None and in_flight > self.max_concurrency:
            return 1.0
        if self.backlog_mb is None or in_flight <= 1:
            return 0.0
        return max(0.0, (backlog_mb + asked_mb) / self.backlog_mb - 1.0)


class SimDevice(Behaviour):
    """One DICOM device in front of the archive, which may lock up."""

    def __init__(self, archive: SimArchive, lockup: Lockup | None = None) -> None:
        self.archive = archive
        self.lockup = lockup
        self.lock = threading.Lock()
        self.in_flight = 0
        self.locked_until = 0.0
        self.lockups = 0
        self.moves = 0
        self.asked: Counter[str] = Counter()  # studies being sent, by UID
        self.backlog_mb = 0.0
        self.rng = random.Random(lockup.seed if lockup else 0)

    def availability(self, spec: StudySpec) -> str:
        return "ONLINE" if self.archive.is_local(spec) else "NEARLINE"

    def locked(self) -> bool:
        """Whether the device is locked up now."""
        return time.monotonic() < self.locked_until

    def before_move(self, spec: StudySpec) -> MoveDirective:
        with self.lock:
            self.in_flight += 1
            self.moves += 1
            trouble = self._trouble(planned_mb(spec))
            if trouble is None:
                self.asked[spec.study_uid] += 1
                self.backlog_mb += planned_mb(spec)
        if trouble is not None:
            return trouble
        return MoveDirective(delay_seconds=self.archive.retrieve(spec))

    def after_move(self, spec: StudySpec, sent: int) -> None:
        with self.lock:
            self.in_flight -= 1
            if self.asked[spec.study_uid] > 0:
                self.asked[spec.study_uid] -= 1
                self.backlog_mb -= planned_mb(spec)

    def echo_status(self) -> int:
        return 0x0110 if self.locked() else 0x0000  # processing failure while locked up

    def broken(self) -> bool:
        # a lock-up that loses the moves under way: they fail with it
        return self.lockup is not None and self.lockup.loses_moves and self.locked()

    def _trouble(self, asked_mb: float) -> MoveDirective | None:
        """Lock up when pushed too hard; while locked, refuse or stall (called locked)."""
        if self.lockup is None:
            return None
        now = time.monotonic()
        chance = self.lockup.overload(self.in_flight, self.backlog_mb, asked_mb)
        if now >= self.locked_until and chance > 0 and self.rng.random() < chance:
            self.locked_until = now + self.lockup.reboot_seconds
            self.lockups += 1
        if now >= self.locked_until:
            return None
        if self.lockup.mode == "stall":
            return MoveDirective(stall=True)
        return MoveDirective(status=0xA701)  # out of resources: unable to start sub-operations


class SimClinic:
    """The hospital around the simulated PACS, as the forecast's model has it
    (runner.tiering.clinical): new studies stored local and clinicians reading, each at a
    steady rate per day of 86,400 s (here: real seconds from `start`). A read opens a recent
    study (acquired within `recent_days`, new ones included) or, `prior_share` of the time,
    an older prior, chosen as the model chooses (same seed, same order of draws), and recalls
    it when it is not local. New studies are known to the store only, unless `serve` makes
    each one a study the PACS serves (found by C-FIND, retrieved by C-MOVE)."""

    def __init__(self, archive: SimArchive, today: date, new_per_day: float, new_mb: float,
                 reads_per_day: float, prior_share: float, seed: int = 0,
                 serve: Callable[[int], str] | None = None) -> None:
        self.archive = archive
        self.serve = serve  # makes arrival n a study the PACS serves; its UID
        self.today = today.toordinal()
        self.new_mb = new_mb
        self.prior_share = prior_share
        self.rng = random.Random(seed)
        self.every = {kind: 86400.0 / rate for kind, rate in
                      (("arrival", new_per_day), ("read", reads_per_day)) if rate > 0}
        since = self.today - archive.store.recent_days
        dated = sorted((day, uid) for uid, day in archive.acquired().items())
        self.priors = [uid for day, uid in dated if day < since]
        self.recent = [uid for day, uid in dated if day >= since]
        self.arrivals = 0
        self.reads = 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="sim-clinic", daemon=True)

    def start(self) -> SimClinic:
        """Start the hospital's activity now."""
        self.thread.start()
        return self

    def stop(self) -> None:
        """Stop it (and wait for the thread, if it was started)."""
        self.stopping.set()
        if self.thread.ident is not None:
            self.thread.join(5.0)

    def _run(self) -> None:
        begin = time.monotonic()
        due = dict(self.every)  # seconds since begin of each activity's next time
        while due:
            kind = min(due, key=lambda k: (due[k], k != "arrival"))  # arrivals first on a tie
            if self.stopping.wait(max(0.0, begin + due[kind] - time.monotonic())):
                return
            self._arrive() if kind == "arrival" else self._read()
            due[kind] += self.every[kind]

    def _arrive(self) -> None:
        self.arrivals += 1
        uid = self.serve(self.arrivals) if self.serve else f"sim-clinic-new-{self.arrivals}"
        with self.archive.lock:
            self.archive.store.arrive(uid, self.new_mb, self.today)
        self.recent.append(uid)

    def _read(self) -> None:
        rng = self.rng
        if self.priors and rng.random() < self.prior_share:
            uid = self.priors[rng.randrange(len(self.priors))]
        elif self.recent:
            uid = self.recent[rng.randrange(len(self.recent))]
        else:
            return
        self.reads += 1
        with self.archive.lock:
            self.archive.store.access(uid)
