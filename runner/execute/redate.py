"""Re-dating rounds and dead-time bookkeeping for the dispatcher.

Re-dating keeps clinically recent studies on the old PACS's local store: every
`redate.every_hours` each recent local study is retrieved to the listener, which discards it;
the retrieve refreshes the study's last access on the source. Re-dates go before migration
retrieves in a device's queue (so they are never starved) and pass the same throttle.

Each study has its own due time: a study re-dated `age` seconds ago (from the ledger, by an
earlier run) is due `every_hours` after that re-date, not at the start of this run; so a
restart, a `--limit` pilot or a later run re-dates only what is due. A round also starts
early, every study due at once, when the migration has recalled `volume_mb` into the local
store since the last round began (`recalled`: the MB of each nearline study retrieved; with
`inflow_mb_per_s`, what new studies and clinicians' reads are expected to bring in, counted
as time passes: the runner sees neither), so that recent studies are refreshed before
recalls push them off.

Which studies are recent is asked again at each round (`window`, a `RecentWindow` over the
census): the window slides with the date, so a study that has aged out of
`redate.recent_days` since the plan is no longer re-dated (as the forecast's model slides
its window). Studies that reach the source after the census are found by a C-FIND of the
days since (runner.execute.arrivals) and re-dated too: they are the newest of all, the
first a store turned over by recalls would push off were they left out.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Container, Mapping, Sequence
from datetime import date, timedelta

Arrivals = Callable[[], tuple[tuple[date, str], ...]]


class RecentWindow:
    """The census's local studies acquired within `days` of today (`today()`, the site's
    date), oldest first, and the local studies that reached the source since the census
    (`arrivals()`, found again by runner.execute.arrivals); asked again each round, worked
    out again when the day or the arrivals change."""

    def __init__(self, studies: Sequence[tuple[date, str]], days: int,
                 today: Callable[[], date], arrivals: Arrivals = tuple) -> None:
        ordered = sorted(studies)
        self.dates = [day for day, _ in ordered]
        self.uids = [uid for _, uid in ordered]
        self.known = frozenset(self.uids)
        self.days = days
        self.today = today
        self.arrivals = arrivals
        self._seen: tuple[date, tuple[tuple[date, str], ...]] | None = None
        self._recent: tuple[str, ...] = ()

    def __call__(self) -> tuple[str, ...]:
        today, arrived = self.today(), self.arrivals()
        if (today, arrived) != self._seen:
            self._seen = (today, arrived)
            since = today - timedelta(days=self.days)
            first = bisect_left(self.dates, since)
            late = sorted((day, uid) for day, uid in arrived
                          if day >= since and uid not in self.known)
            self._recent = tuple(self.uids[first:]) + tuple(uid for _, uid in late)
        return self._recent


class Redates:
    """The re-date rounds: which study is next, and when each study is due again.

    `ages` (seconds since each study's last re-date, from the ledger) delays a study
    re-dated recently; `now` is the monotonic clock at which those ages were taken.
    """

    def __init__(self, study_uids: Sequence[str], every_seconds: float,
                 ages: Mapping[str, float] | None = None, now: float = 0.0,
                 volume_mb: float | None = None,
                 window: Callable[[], tuple[str, ...]] | None = None,
                 on_round: Callable[[], None] = lambda: None,
                 inflow_mb_per_s: float = 0.0) -> None:
        self.study_uids = tuple(study_uids)
        self.on_round = on_round  # told when a round begins (the arrivals' look)
        self.window = window  # the recent studies now (None: `study_uids` for good)
        self.every = every_seconds
        self.volume_mb = volume_mb
        self.recalled_mb = 0.0  # since the last round began
        self.inflow = inflow_mb_per_s if volume_mb is not None else 0.0
        self.accrued_at = now  # the expected inflow is counted up to here
        self.early = 0  # rounds started by recalled volume
        ages = ages or {}
        self.due = {uid: now + every_seconds - ages[uid] if uid in ages else 0.0
                    for uid in self.study_uids}
        self.queue: deque[str] = deque()
        self.rounds = 0
        self.done = 0
        self.failed = 0

    @property
    def next_round(self) -> float:
        """When the next study is due (monotonic seconds), or when the expected inflow will
        have filled the volume, if sooner; 0.0 with no study to re-date."""
        due = min(self.due.values(), default=0.0)
        if self.inflow > 0 and self.volume_mb is not None and self.study_uids:
            full = self.accrued_at + max(0.0, self.volume_mb - self.recalled_mb) / self.inflow
            return min(due, full)
        return due

    def refill(self, now: float, busy: Container[str]) -> bool:
        """Queue every study that is due once the last round is through; True if any."""
        self._accrue(now)  # also while a round is queued: `next_round` moves on with it
        if self.queue:
            return False
        if self.window is not None:
            self._slide(self.window())
        due = [uid for uid in self.study_uids if self.due[uid] <= now and uid not in busy]
        if not due:
            return False
        self.queue.extend(due)
        for uid in due:
            self.due[uid] = now + self.every
        self.rounds += 1
        self.recalled_mb = 0.0
        self.on_round()
        return True

    def _slide(self, recent: tuple[str, ...]) -> None:
        """The recent studies are now `recent`: the others leave, a new one is due now."""
        if recent == self.study_uids:
            return
        self.due = {uid: self.due.get(uid, 0.0) for uid in recent}
        self.study_uids = recent

    def recalled(self, megabytes: float, now: float) -> None:
        """A nearline study of `megabytes` was retrieved (recalled into the local store): past
        `volume_mb` since the last round, every study is due now."""
        if self.volume_mb is None or not self.study_uids:
            return
        self.recalled_mb += megabytes
        self._accrue(now)

    def _accrue(self, now: float) -> None:
        """Count the expected inflow up to `now`; past `volume_mb`, every study is due now."""
        if now > self.accrued_at:
            self.recalled_mb += self.inflow * (now - self.accrued_at)
            self.accrued_at = now
        if self.volume_mb is not None and self.study_uids \
                and self.recalled_mb >= self.volume_mb:
            self.recalled_mb = 0.0
            self.early += 1
            for uid in self.study_uids:
                self.due[uid] = min(self.due[uid], now)

    def peek(self) -> str | None:
        """The next study to re-date, if a round is under way."""
        return self.queue[0] if self.queue else None

    def pop(self) -> str:
        """Take the study `peek` returned."""
        return self.queue.popleft()

    def finished(self, _study_uid: str, ok: bool) -> None:
        """A re-date retrieve ended."""
        if ok:
            self.done += 1
        else:
            self.failed += 1


class DeadTime:
    """Periods with studies waiting for a retrieve and none in flight."""

    def __init__(self) -> None:
        self.since: float | None = None
        self.total = 0.0
        self.last_span = 0.0

    def update(self, dead: bool, now: float) -> str | None:
        """Note the state at `now`; "start" or "end" when a dead period starts or ends."""
        if dead and self.since is None:
            self.since = now
            return "start"
        if not dead and self.since is not None:
            self.last_span = now - self.since
            self.total += self.last_span
            self.since = None
            return "end"
        return None
