"""The memory spool (cut-through): received instances held in one shared memory file for the
forwarding workers to read in place, within a byte budget; what does not fit goes to the
disk spool (runner.dicom.spool).

Why it is safe to hold an instance only in memory: in a migration the source PACS keeps
every instance until the destination has verified it, so the spool is a buffer, not the
record. A crash loses what was in memory; the ledger never records as sent what the
destination has not acknowledged, and the receipt of an instance held in memory names no
spool file (`IN_MEMORY`), so a resumed run retrieves it again.

The memory is one `memfd` (an anonymous file of the kernel's: nothing in /dev/shm to leak
when the runner is killed, gone with the last process that maps it). The listener writes
the fragments it received with one `pwritev` (the copy happens in the kernel, the GIL is
released); a forwarding worker maps the same file read-only (`ArenaHandle.view`, through
/proc/PID/fd, so workers started from the forkserver reach it too) and sends from the
mapping without a copy. Space is handed out first-fit from a list of free extents; freed
extents are merged with their neighbours.

When the memory is full, a writer may wait for room (`patience`): as long as forwarded
instances keep giving space back, the instance waits (and the source's association with it,
so a source faster than the destination is slowed to its pace instead of filling the disk
spool); once no space has come back for `patience` seconds, or after `WAIT_LIMIT` in all,
it goes to the disk spool. A destination that lags keeps the instances coming through
memory; one that stalls (down, refusing, retrying) makes them spill after the patience,
and the instances after them at once, until space comes back.
Measured (benchmarks/relay_vs_direct.py, 30 CT studies through a destination slower than
the source): 150 to 320 of 1,200 instances spilled without a wait, none with it.
"""

from __future__ import annotations

import bisect
import contextlib
import mmap
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from runner.profile import defaults

IN_MEMORY = "memory"  # the spool name a receipt gets while its instance is held in memory
_IOV_MAX = 1024  # buffers one pwritev may take (Linux)
# One instance may take at most this share of the memory: a few large multi-frame objects
# must not keep the many small ones of the same studies out.
LARGEST_SHARE = 0.25
WAIT_LIMIT = defaults.MEMORY_WAIT_LIMIT_SECONDS  # the longest wait for room in all


@dataclass(frozen=True, slots=True)
class Slot:
    """Where one instance lies in the memory spool: `size` bytes from `offset`."""

    offset: int
    size: int


@dataclass(frozen=True, slots=True)
class ArenaHandle:
    """How another process of the runner reaches the memory spool (picklable)."""

    pid: int
    fd: int
    size: int

    def view(self, slot: Slot) -> memoryview:
        """The bytes of `slot`, read in place (the mapping is made once per process)."""
        return _mapping(self)[slot.offset:slot.offset + slot.size]


@lru_cache(maxsize=4)
def _mapping(handle: ArenaHandle) -> memoryview:
    """The memory spool mapped read-only in this process (kept for the process's life)."""
    fd = os.open(f"/proc/{handle.pid}/fd/{handle.fd}", os.O_RDONLY)
    try:
        return memoryview(mmap.mmap(fd, handle.size, prot=mmap.PROT_READ))
    finally:
        os.close(fd)


class Arena:
    """A byte budget of shared memory for received instances; thread-safe.

    `write_parts` copies an instance in and gives its `Slot`, or None when it does not fit
    (the caller spools it to disk), after waiting for room while space comes back (see
    the module docstring); `free` gives the space back.
    """

    def __init__(self, capacity: int, name: str = "pacsmig-cut-through") -> None:
        if capacity <= 0:
            raise ValueError(f"capacity must be > 0: {capacity}")
        self.capacity = capacity
        self.fd = os.memfd_create(name, os.MFD_CLOEXEC)
        os.ftruncate(self.fd, capacity)  # pages are taken only when first written
        self.handle = ArenaHandle(os.getpid(), self.fd, capacity)
        self._map = mmap.mmap(self.fd, capacity, prot=mmap.PROT_READ)  # this process's view
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)  # notified whenever space comes back
        self._closed = False
        self._stalled = False  # a wait ended with no space back: none waits until some is
        self._free: list[tuple[int, int]] = [(0, capacity)]  # (offset, size), by offset
        self._held = 0
        self._largest = max(1, int(capacity * LARGEST_SHARE))

    @property
    def held_bytes(self) -> int:
        """Bytes of instances held now."""
        with self._lock:
            return self._held

    def write_parts(self, parts: Sequence[bytes | memoryview],
                    patience: float = 0.0) -> Slot | None:
        """Copy the concatenation of `parts` into the memory; its slot, or None when there
        is no room (or it is too large to hold in memory). Without room, wait for it while
        space comes back, until none has for `patience` seconds (or `WAIT_LIMIT`)."""
        size = sum(len(part) for part in parts)
        slot = self._allocate(size, patience)
        if slot is None:
            return None
        try:
            _pwrite_all(self.fd, parts, slot.offset)
        except BaseException:
            self.free(slot)
            raise
        return slot

    def view(self, slot: Slot) -> memoryview:
        """The bytes of `slot`, in place."""
        return memoryview(self._map)[slot.offset:slot.offset + slot.size]

    def free(self, slot: Slot) -> None:
        """Give the space of `slot` back."""
        if slot.size == 0:
            return
        with self._lock:
            index = bisect.bisect(self._free, (slot.offset, 0))
            start, end = slot.offset, slot.offset + slot.size
            if index < len(self._free) and self._free[index][0] == end:
                end += self._free.pop(index)[1]
            if index and sum(self._free[index - 1]) == start:
                index -= 1
                start = self._free.pop(index)[0]
            self._free.insert(index, (start, end - start))
            self._held -= slot.size
            self._stalled = False
            self._room.notify_all()

    def close(self) -> None:
        """Release the memory (the workers' mappings end with them; a view still held here
        keeps this process's mapping until it is dropped); writers waiting for room stop
        waiting (to the disk spool)."""
        with self._lock:
            self._closed = True
            self._room.notify_all()
        with contextlib.suppress(BufferError):
            self._map.close()
        os.close(self.fd)

    def _allocate(self, size: int, patience: float) -> Slot | None:
        if size > self._largest:
            return None
        if size == 0:
            return Slot(0, 0)
        limit = time.monotonic() + WAIT_LIMIT
        with self._lock:
            while not self._closed:
                slot = self._first_fit(size)
                if slot is not None:
                    return slot
                wait = min(patience, limit - time.monotonic())
                if wait <= 0 or self._stalled:
                    return None
                if not self._room.wait(wait):  # no space came back in `patience`: the
                    self._stalled = True  # destination stalls; to the disk spool, and the
                    return None  # next ones at once, until space comes back
        return None

    def _first_fit(self, size: int) -> Slot | None:
        """The first free extent that holds `size` bytes, taken (the lock held)."""
        for index, (offset, length) in enumerate(self._free):
            if length >= size:
                if length == size:
                    del self._free[index]
                else:
                    self._free[index] = (offset + size, length - size)
                self._held += size
                return Slot(offset, size)
        return None


def _pwrite_all(fd: int, parts: Sequence[bytes | memoryview], offset: int) -> None:
    """Write `parts` one after the other at `offset` (the kernel copies; GIL released)."""
    pending = [memoryview(part) for part in parts if part]
    while pending:
        written = os.pwritev(fd, pending[:_IOV_MAX], offset)
        if written <= 0:
            raise OSError("pwritev wrote nothing to the memory spool")
        offset += written
        while pending and written >= len(pending[0]):
            written -= len(pending[0])
            pending.pop(0)
        if pending and written:
            pending[0] = pending[0][written:]
