"""Studies that reached the source since the census, for re-dating: a C-FIND of the days
from the census to today, on a thread of its own, when a re-date round begins and every so
often between rounds during a run.

A migration of months runs while the old PACS goes on storing new studies on its local
store. They are clinically the most recent of all, and the first a store turned over by the
migration's recalls would push off were they left out of the re-date rounds (the census
knows only what was there when it was taken). The finder asks the source (the census's own
date-window C-FIND, one-day windows, no sweep) for studies dated from the census's day on,
keeps the local ones, and hands them to the re-date window (runner.execute.redate). A source
that does not answer keeps the last answer; the next look asks again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import date

from runner.errors import DicomError
from runner.inventory.model import Study
from runner.profile.tiers import Location

# Find the studies dated from the first date to the second, at the source.
FindSince = Callable[[date, date], Sequence[Study]]

MIN_SECONDS = 0.5  # between looks, however often re-date rounds come
MAX_SECONDS = 1800.0


class ArrivalsFinder:
    """Looks for new local studies every `every_seconds` (clamped) until `stop`."""

    def __init__(self, find: FindSince, since: date, today: Callable[[], date],
                 every_seconds: float) -> None:
        self.find = find
        self.since = since
        self.today = today
        self.every = min(max(every_seconds, MIN_SECONDS), MAX_SECONDS)
        self.found: tuple[tuple[date, str], ...] = ()
        self.looks = 0
        self.failures = 0
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def __call__(self) -> tuple[tuple[date, str], ...]:
        """The local arrivals found by the latest look (date, Study Instance UID)."""
        return self.found

    def look(self) -> None:
        """Ask the source now."""
        self.looks += 1
        try:
            studies = self.find(self.since, self.today())
        except DicomError:
            self.failures += 1
            return
        self.found = tuple(sorted((s.study_date, s.study_uid) for s in studies
                                  if s.study_date is not None
                                  and s.location is Location.LOCAL))

    def start(self) -> None:
        """Look every so often on a daemon thread."""
        self._thread = threading.Thread(target=self._run, name="arrivals", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop looking (a look under way ends on its own)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)

    def wake(self) -> None:
        """Look now (a re-date round began: its arrivals join the next round)."""
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.every)
            self._wake.clear()
            if not self._stop.is_set():
                self.look()
