"""Live progress of a run: one status line on a terminal, plain log lines otherwise.

The rate is what the listener received over the last RATE_WINDOW seconds, and the ETA is
shown only once it has settled: measured over at least SETTLE_SECONDS, with at least one
study settled (before that, the first retrieves' recalls and association set-up would
make any ETA a guess)."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from runner.execute.work import Stage, StudyWork


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The numbers a progress line shows."""

    done: int
    total: int
    done_mb: float
    total_mb: float
    phases: tuple[tuple[str, int, int], ...]  # tier, settled, studies
    rate: float  # MB/s received over the last RATE_WINDOW seconds
    settled: bool  # whether the rate is steady enough to forecast from
    in_flight: dict[str, int]
    failed: int

    def line(self) -> str:
        """The progress as one line of text."""
        rate = self.rate
        left_mb = max(self.total_mb - self.done_mb, 0.0)
        eta = _duration(left_mb / rate) if rate > 0 and self.settled else "when the rate settles"
        phases = " ".join(f"{tier} {d}/{n}" for tier, d, n in self.phases)
        flight = " ".join(f"{dev}:{n}" for dev, n in sorted(self.in_flight.items()))
        failed = f", {self.failed} given up" if self.failed else ""
        return (f"studies {self.done:,}/{self.total:,} ({phases}){failed}; "
                f"{self.done_mb / 1000:,.2f}/{self.total_mb / 1000:,.2f} GB; "
                f"{rate:,.1f} MB/s; ETA {eta}; in flight {flight or '-'}")


RATE_WINDOW = 600.0
SETTLE_SECONDS = 60.0


class Tally:
    """Where the studies of a run stand, kept up to date as each settles (O(1) per study)."""

    def __init__(self, works: list[StudyWork], tiers: list[str]) -> None:
        self.tiers = tiers
        self.total = len(works)
        self.total_mb = sum(w.megabytes for w in works)
        self.phase_total = [0] * len(tiers)
        for work in works:
            self.phase_total[work.phase] += 1
        self.phase_done = [0] * len(tiers)
        self.done = 0
        self.done_mb = 0.0
        self.failed = 0
        self._received: deque[tuple[float, float]] = deque()  # (monotonic time, MB received)

    @property
    def open(self) -> int:
        """Studies not yet verified nor given up."""
        return self.total - self.done

    def add(self, work: StudyWork) -> None:
        """A study joins the run (the priority lane found it after the plan was made)."""
        self.total += 1
        self.total_mb += work.megabytes
        while work.phase >= len(self.phase_total):  # a plan without phases: one for it
            self.tiers.append("priority")
            self.phase_total.append(0)
            self.phase_done.append(0)
        self.phase_total[work.phase] += 1

    def settle(self, work: StudyWork) -> None:
        """A study of the run is verified or given up (call once per study)."""
        self.done += 1
        self.done_mb += work.megabytes
        self.phase_done[work.phase] += 1
        if work.stage is not Stage.VERIFIED:
            self.failed += 1

    def snapshot(self, received_bytes: int, started: float,
                 in_flight: dict[str, int]) -> Snapshot:
        """The numbers for a progress line."""
        phases = tuple((tier, self.phase_done[i], self.phase_total[i])
                       for i, tier in enumerate(self.tiers) if self.phase_total[i])
        now = time.monotonic()
        rate = self._rate(now, received_bytes / 1e6, started)
        settled = now - started >= SETTLE_SECONDS and self.done > 0
        return Snapshot(self.done, self.total, self.done_mb, self.total_mb, phases, rate,
                        settled, in_flight, self.failed)

    def _rate(self, now: float, received_mb: float, started: float) -> float:
        """MB/s over the last RATE_WINDOW seconds (since `started` while the run is young)."""
        samples = self._received
        if not samples:
            samples.append((started, 0.0))
        samples.append((now, received_mb))
        while len(samples) > 2 and now - samples[1][0] >= RATE_WINDOW:
            samples.popleft()
        then, then_mb = samples[0]
        return (received_mb - then_mb) / (now - then) if now > then else 0.0


def _duration(seconds: float) -> str:
    minutes = int(seconds // 60)
    if minutes >= 60 * 48:
        return f"{minutes // 1440} d"
    if minutes >= 60:
        return f"{minutes // 60} h {minutes % 60:02d} min"
    return f"{minutes} min {int(seconds % 60):02d} s"


class ProgressPrinter:
    """Shows snapshots: redrawn in place on a terminal (1/s), a log line every `every` s."""

    def __init__(self, write: Callable[[str], None], is_tty: bool, every: float = 10.0) -> None:
        self.write = write
        self.is_tty = is_tty
        self.every = 1.0 if is_tty else every
        self.last = 0.0

    def show(self, make: Callable[[], Snapshot], force: bool = False) -> None:
        """Print a snapshot if it is time (or `force`)."""
        now = time.monotonic()
        if not force and now - self.last < self.every:
            return
        self.last = now
        line = make().line()
        self.write(f"\r\x1b[2K{line}" if self.is_tty and not force else line)
