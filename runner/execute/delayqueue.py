"""Retries with backoff: a thread-safe queue whose items become available at a given time,
and the waits between attempts."""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Backoff:
    """Waits between attempts: `first` seconds, doubling, at most `most`."""

    first: float
    most: float

    def after(self, attempt: int) -> float:
        """The wait before attempt number `attempt + 1` (attempt counts from 1)."""
        return float(min(self.most, self.first * 2.0 ** max(0, attempt - 1)))


class DelayQueue(Generic[T]):
    """Items come out in order of readiness; `get` waits until one is ready or the queue closes."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, T]] = []
        self._counter = itertools.count()
        self._cond = threading.Condition()
        self._closed = False
        self._busy = 0

    def put(self, item: T, delay: float = 0.0) -> None:
        """Add `item`, available after `delay` seconds."""
        with self._cond:
            heapq.heappush(self._heap, (time.monotonic() + delay, next(self._counter), item))
            self._cond.notify()

    def get(self) -> T | None:
        """The next ready item (the caller then owes `done()`), or None once closed."""
        with self._cond:
            while not self._closed:
                if self._heap:
                    ready_at = self._heap[0][0]
                    wait = ready_at - time.monotonic()
                    if wait <= 0:
                        self._busy += 1
                        return heapq.heappop(self._heap)[2]
                    self._cond.wait(wait)
                else:
                    self._cond.wait()
            return None

    def take_ready(self) -> T | None:
        """The next item if one is ready now (the caller then owes `done()`), else None."""
        with self._cond:
            if self._closed or not self._heap or self._heap[0][0] > time.monotonic():
                return None
            self._busy += 1
            return heapq.heappop(self._heap)[2]

    def done(self) -> None:
        """The item last taken by this worker is dealt with."""
        with self._cond:
            self._busy -= 1
            self._cond.notify_all()

    def idle(self) -> bool:
        """Nothing queued and nothing being worked on."""
        with self._cond:
            return not self._heap and self._busy == 0

    def __len__(self) -> int:
        with self._cond:
            return len(self._heap) + self._busy

    def close(self) -> None:
        """Wake every waiting `get` with None; queued items stay for `drain`."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def drain(self) -> list[T]:
        """Take every queued item out (ready or not), in order of readiness."""
        with self._cond:
            heap, self._heap = self._heap, []
        return [item for _, _, item in sorted(heap)]
