"""The source PACS's storage tiers: a local store with LRU push-off and nearline recall."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True, slots=True)
class StoreCounts:
    """What the store has done so far: recalls from nearline and push-offs."""

    recalls: int
    recalled_mb: float
    evictions: int
    recent_evictions: int
    used_mb: float


class LocalStore(Generic[K]):
    """A PACS local store holding studies by last access (least recently accessed first).

    Every study the store may be asked for is known with its size and acquisition day
    (`know`, or `arrive` for a new one). Accessing a study on the store refreshes its last
    access; accessing any other study recalls it from nearline: its size is added to the
    recall total, it is stored local, and when the store is then over its capacity the
    least recently accessed studies are pushed off until it is at or under the low-water
    mark. A pushed-off study acquired within `recent_days` of `today` counts as a recent
    eviction. Days are ordinals (`date.toordinal()`); every operation is amortised O(1).
    """

    def __init__(self, capacity_mb: float, low_water_mb: float, recent_days: int,
                 today: int) -> None:
        self.capacity_mb = capacity_mb
        self.low_water_mb = min(low_water_mb, capacity_mb)
        self.recent_days = recent_days
        self.today = today
        self._size: dict[K, float] = {}
        self._acquired: dict[K, int] = {}
        self._lru: OrderedDict[K, None] = OrderedDict()
        self._used = 0.0
        self._recalls = 0
        self._recalled = 0.0
        self._evictions = 0
        self._recent_evictions = 0

    def know(self, key: K, size_mb: float, acquired: int, local: bool = False) -> None:
        """Register a study; a local one joins the store as the most recently accessed,
        without pushing anything off (the store's content at the start)."""
        self._size[key] = size_mb
        self._acquired[key] = acquired
        if local and key not in self._lru:
            self._lru[key] = None
            self._used += size_mb

    def know_all(self, sizes: Mapping[K, float], acquired: Mapping[K, int],
                 local: Iterable[K]) -> None:
        """Register many studies at once; `local` ones (least recently accessed first) join
        the store as `know(..., local=True)` would, one after the other."""
        self._size.update(sizes)
        self._acquired.update(acquired)
        for key in local:
            if key not in self._lru:
                self._lru[key] = None
                self._used += self._size[key]

    def arrive(self, key: K, size_mb: float, acquired: int) -> None:
        """A new study is stored local (pushing older ones off if the store is full)."""
        self.know(key, size_mb, acquired, local=True)
        self._lru.move_to_end(key)
        self._push_off()

    def access(self, key: K) -> float:
        """Retrieve a study: the megabytes recalled from nearline (0.0 when it was local)."""
        lru = self._lru
        if key in lru:
            lru.move_to_end(key)
            return 0.0
        size = self._size[key]
        lru[key] = None
        self._used += size
        self._recalls += 1
        self._recalled += size
        self._push_off()
        return size

    def refresh(self, key: K) -> bool:
        """Re-date a study: refresh its last access if it is local (True), else nothing."""
        if key in self._lru:
            self._lru.move_to_end(key)
            return True
        return False

    def size_of(self, key: K) -> float:
        """The megabytes of a known study."""
        return self._size[key]

    def copy(self) -> LocalStore[K]:
        """An independent store in the same state (to run several scenarios from one start)."""
        twin: LocalStore[K] = LocalStore(self.capacity_mb, self.low_water_mb, self.recent_days,
                                         self.today)
        twin._size, twin._acquired = self._size.copy(), self._acquired.copy()
        twin._lru = self._lru.copy()
        twin._used, twin._recalls, twin._recalled = self._used, self._recalls, self._recalled
        twin._evictions, twin._recent_evictions = self._evictions, self._recent_evictions
        return twin

    def acquired(self) -> dict[K, int]:
        """Each known study's acquisition day."""
        return dict(self._acquired)

    def is_local(self, key: K) -> bool:
        """Whether the study is on the local store now."""
        return key in self._lru

    def counts(self) -> StoreCounts:
        """The totals so far."""
        return StoreCounts(self._recalls, self._recalled, self._evictions,
                           self._recent_evictions, self._used)

    def local_keys(self) -> list[K]:
        """The studies on the store, least recently accessed first."""
        return list(self._lru)

    def _push_off(self) -> None:
        """Down to the low-water mark, never pushing off the study just stored (the last)."""
        if self._used <= self.capacity_mb:
            return
        lru, recent_since = self._lru, self.today - self.recent_days
        while self._used > self.low_water_mb and len(lru) > 1:
            key, _ = lru.popitem(last=False)
            self._used -= self._size[key]
            self._evictions += 1
            if self._acquired[key] >= recent_since:
                self._recent_evictions += 1
