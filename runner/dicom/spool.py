"""The spool folder: received instances written atomically under UUID names, with a byte budget.

Durability choice: each instance is written to `root/tmp/`, flushed to the operating system
and renamed into `root/` (`os.replace`, atomic on one file system), but not fsync'ed. An
fsync per instance would turn every C-STORE into a disk-cache flush (an "fsync storm" that
caps the listener at the disk's flush rate). What this gives:

- a crash of the runner (the process) loses nothing that was renamed: the data sits in the
  kernel's page cache and reaches the disk in the background; a crash mid-write leaves only
  a file in `tmp/`, which `adopt_temp()` empties and reuses at the next start;
- a crash of the machine (power loss) may lose or truncate files renamed in the last seconds.
  That is acceptable because the spool is a cache, not the record: the instance is still in
  the source PACS, and "arrived" is only ever recorded from the destination's answer, so a
  lost spool file shows up as missing at verification and is retrieved again.

Files are named by uuid4, never by a DICOM attribute (UIDs come from outside).

Removed files are not deleted: they wait in `tmp/` for the next writes to overwrite (then
renamed into `root/` under a new name). Creating a file is slow on ext4 without a journal
when others were deleted in the last minutes: each new inode is searched past every
recently deleted one (1 minute, 5 once its inode table block is dirty again), and that
search is paid by every process creating files on that file system, a destination archive
on the same disk included (measured with perf while relaying: 11% of the runner's CPU and
9% of the destination Orthanc's in `__ext4_new_inode`), and by the next run on that disk
for minutes after. Overwriting a file of about the same size allocates nothing. So the
spool creates files only up to its high-water mark of files held at once, and deletes
none: at the end of a run `empty_free` cuts the free files to zero bytes (the space goes
back, the inodes stay), and the next run adopts them (`adopt_temp`).

The budget holds for what the spool occupies on disk: spooled files, writes under way and
the free files together stay within `max_bytes`; a write that needs the room of free files
deletes some (the oldest first). `used_bytes` and the full/resume marks count the spooled
files and the writes under way only: free files never hold the listener back. The counts
are kept incrementally under a lock (one `Spool` object is the only writer of its folder);
`existing()` rescans the folder and resets the count, for use at startup; `adopt_temp()`
takes what interrupted writes and earlier runs left in `tmp/` as free files.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import threading
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import xxhash

from runner.dicom.arena import Slot

SUFFIX = ".dcm"
_NAME = re.compile(r"^[0-9a-f]{32}\.dcm$")
_NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})
_IOV_MAX = 1024  # buffers one writev may take (Linux)
# After a refused write, the spool counts as full until it has drained below this fraction.
DEFAULT_RESUME_FRACTION = 0.9


class SpoolFull(Exception):
    """The spool has no room for an instance (byte budget reached or disk full)."""


@dataclass(frozen=True, slots=True)
class SpoolEntry:
    """One spooled file: its name in the spool folder, full path, size in bytes, and the
    content checksum of what was written (see `content_checksum`). An instance held in the
    memory spool instead (runner.dicom.arena) has its `slot` there, and no file."""

    name: str
    path: Path
    size: int
    checksum: str = field(default="", compare=False)  # of what was written ("" if unknown)
    slot: Slot | None = None


class Spool:
    """A folder of received instances with a byte budget; thread-safe."""

    def __init__(
        self, root: Path, max_bytes: int, resume_fraction: float = DEFAULT_RESUME_FRACTION
    ) -> None:
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be > 0: {max_bytes}")
        if not 0.0 < resume_fraction <= 1.0:
            raise ValueError(f"resume_fraction must be in (0, 1]: {resume_fraction}")
        self.root = root
        self.tmp = root / "tmp"
        self.max_bytes = max_bytes
        self._resume_bytes = int(max_bytes * resume_fraction)
        self._lock = threading.Lock()
        self._used = 0  # spooled files and writes under way
        self._full = False
        # Removed files kept in tmp/ for writes to overwrite: (path, size), oldest first.
        self._free: list[tuple[Path, int]] = []
        self._free_bytes = 0
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.existing()

    @property
    def used_bytes(self) -> int:
        """Bytes held by spooled files (and by writes under way); free files not counted."""
        with self._lock:
            return self._used

    @property
    def free_bytes(self) -> int:
        """Bytes held by removed files kept in tmp/ for writes to overwrite."""
        with self._lock:
            return self._free_bytes

    @property
    def is_full(self) -> bool:
        """True from a refused write until the spool has drained below the resume mark."""
        with self._lock:
            return self._full

    def write(self, raw: bytes) -> SpoolEntry:
        """Store `raw` under a new UUID name; raises SpoolFull when there is no room."""
        return self.write_parts((raw,))

    def write_parts(self, parts: Sequence[bytes | memoryview]) -> SpoolEntry:
        """Store the concatenation of `parts` (one write, no joining) under a new UUID name;
        raises SpoolFull when there is no room."""
        size = sum(len(part) for part in parts)
        free, evicted = self._reserve(size)
        for path, _ in evicted:
            path.unlink(missing_ok=True)
        name = f"{uuid.uuid4().hex}{SUFFIX}"
        temp = free[0] if free else self.tmp / name
        try:
            _write_flushed(temp, parts, over=free is not None)
            final = self.root / name
            os.replace(temp, final)
        except BaseException as error:
            self._release(size)  # the free file taken is gone too: its bytes were moved here
            temp.unlink(missing_ok=True)
            if isinstance(error, OSError) and error.errno in _NO_SPACE:
                self._set_full()
                raise SpoolFull(f"no space left for the spool in {self.root}") from error
            raise
        return SpoolEntry(name, final, size, content_checksum(parts))

    def remove(self, name: str) -> None:
        """Take the spooled file `name` out of the spool (no error if it is already gone).

        The file is kept in tmp/ for the next writes to overwrite (see the module docstring):
        its bytes leave `used_bytes` and stay within the budget as free bytes until then.
        """
        path = self._path_of(name)
        free = self.tmp / path.name
        try:
            size = path.stat().st_size
            os.replace(path, free)
        except FileNotFoundError:
            return
        with self._lock:
            self._free.append((free, size))
            self._free_bytes += size
            self._used = max(0, self._used - size)
            self._update_full()

    def empty_free(self) -> int:
        """Cut the free files to zero bytes (at the end of a run): their space goes back to
        the disk, their inodes stay in tmp/ for the next run to reuse; how many."""
        with self._lock:
            free, self._free = self._free, []
            self._free_bytes = 0
        for path, _ in free:
            with contextlib.suppress(FileNotFoundError):
                os.truncate(path, 0)
        return len(free)

    def adopt_temp(self) -> int:
        """At startup: what earlier runs (and interrupted writes) left in tmp/ becomes free
        files, cut to zero bytes (none of it is a spooled instance); anything else there is
        deleted. How many files were adopted."""
        with self._lock:
            self._free.clear()
            self._free_bytes = 0
        adopted: list[tuple[Path, int]] = []
        for leftover in sorted(self.tmp.iterdir()):
            if not leftover.is_file():
                continue
            if not _NAME.match(leftover.name):
                leftover.unlink(missing_ok=True)
                continue
            if leftover.stat().st_size:
                os.truncate(leftover, 0)
            adopted.append((leftover, 0))
        with self._lock:
            self._free = adopted
        return len(adopted)

    def existing(self) -> list[SpoolEntry]:
        """The spooled files now in the folder, sorted by name; resets the byte count.

        Meant for startup (no writes under way): the count becomes what the folder holds.
        """
        entries = [
            SpoolEntry(path.name, path, path.stat().st_size)
            for path in sorted(self.root.iterdir())
            if _NAME.match(path.name) and path.is_file()
        ]
        with self._lock:
            self._used = sum(entry.size for entry in entries)
            self._full = self._full or self._used >= self.max_bytes
        return entries

    def _path_of(self, name: str) -> Path:
        if not _NAME.match(name):
            raise ValueError(f"not a spool file name: {name!r}")
        return self.root / name

    def _reserve(self, size: int) -> tuple[tuple[Path, int] | None, list[tuple[Path, int]]]:
        """Count `size` bytes as used; the free file to overwrite (if any) and the free files
        to delete to make room. Raises SpoolFull when even without free files it would not
        fit (the free files are then left alone)."""
        with self._lock:
            if self._used + size > self.max_bytes:
                self._full = True
                raise SpoolFull(
                    f"spool budget reached: {self._used} + {size} > {self.max_bytes} bytes"
                )
            free = self._free.pop() if self._free else None  # newest: most likely cached
            self._free_bytes -= free[1] if free else 0
            evicted: list[tuple[Path, int]] = []
            while self._free and self._used + size + self._free_bytes > self.max_bytes:
                evicted.append(self._free.pop(0))
                self._free_bytes -= evicted[-1][1]
            self._used += size
            return free, evicted

    def _release(self, size: int) -> None:
        with self._lock:
            self._used = max(0, self._used - size)
            self._update_full()

    def _update_full(self) -> None:
        """Clear the full flag once the spooled bytes are at or below the resume mark
        (call with the lock held)."""
        if self._used <= self._resume_bytes:
            self._full = False

    def _set_full(self) -> None:
        with self._lock:
            self._full = True


def content_checksum(parts: Iterable[bytes | memoryview]) -> str:
    """The xxh3-64 checksum of the concatenation of `parts`, as 16 hex digits (10 GB/s)."""
    digest = xxhash.xxh3_64()
    for part in parts:
        digest.update(part)
    return digest.hexdigest()


def file_checksum(path: Path, chunk: int = 1 << 20) -> str | None:
    """The checksum of a spooled file's bytes, as `content_checksum`; None if unreadable."""
    digest = xxhash.xxh3_64()
    try:
        with path.open("rb") as handle:
            while block := handle.read(chunk):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()


def _write_flushed(path: Path, parts: Sequence[bytes | memoryview], over: bool = False) -> None:
    """Write `parts` to a new file at `path`, or `over` the existing file `path` (cut to the
    new size), straight to the OS (no fsync, see above)."""
    flags = os.O_WRONLY if over else os.O_WRONLY | os.O_CREAT | os.O_EXCL
    fd = os.open(path, flags, 0o600)
    try:
        if over:
            os.ftruncate(fd, sum(len(part) for part in parts))  # a no-op at the same size
        pending = [memoryview(part) for part in parts if part]
        while pending:
            written = os.writev(fd, pending[:_IOV_MAX])
            while pending and written >= len(pending[0]):
                written -= len(pending[0])
                pending.pop(0)
            if pending and written:
                pending[0] = pending[0][written:]
    finally:
        os.close(fd)
