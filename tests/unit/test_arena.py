"""The memory spool (runner.dicom.arena): instances in and out of one shared memory file."""

from __future__ import annotations

import multiprocessing
import os

import pytest

from runner.dicom.arena import Arena, ArenaHandle, Slot


def test_an_instance_written_in_parts_reads_back_whole_in_place() -> None:
    arena = Arena(1 << 20)
    slot = arena.write_parts((b"DICM", memoryview(b"-header-"), b"pixels" * 100))
    assert slot is not None
    assert bytes(arena.view(slot)) == b"DICM-header-" + b"pixels" * 100
    assert arena.held_bytes == slot.size == 12 + 600


def test_what_does_not_fit_is_refused_not_partly_written() -> None:
    arena = Arena(4000)
    first = arena.write_parts((b"a" * 900,))
    second = arena.write_parts((b"b" * 900,))
    assert first is not None and second is not None
    assert arena.write_parts((b"c" * 1001,)) is None  # over a quarter of the memory
    assert arena.write_parts((b"c" * 900,)) is not None
    assert arena.write_parts((b"d" * 900,)) is not None
    assert arena.write_parts((b"e" * 900,)) is None  # 400 bytes left
    assert bytes(arena.view(first)) == b"a" * 900


def test_freed_space_is_merged_with_its_neighbours_and_taken_again() -> None:
    arena = Arena(4000)
    slots = [arena.write_parts((bytes([n]) * 1000,)) for n in range(4)]
    assert all(slots) and arena.write_parts((b"x",)) is None
    # free the middle two in the order that needs merging on both sides
    arena.free(slots[2])  # type: ignore[arg-type]
    arena.free(slots[1])  # type: ignore[arg-type]
    assert arena.held_bytes == 2000
    assert arena._free == [(1000, 2000)]  # one extent, not two
    again = arena.write_parts((b"y" * 1000, b"z" * 0))
    assert again == Slot(1000, 1000)
    arena.free(slots[0])  # type: ignore[arg-type]
    arena.free(slots[3])  # type: ignore[arg-type]
    arena.free(again)
    assert arena._free == [(0, 4000)] and arena.held_bytes == 0


def _read_in_child(handle: ArenaHandle, slot: Slot, out: multiprocessing.Queue[bytes]) -> None:
    out.put(bytes(handle.view(slot)))


@pytest.mark.parametrize("method", ["fork", "forkserver"])
def test_another_process_reads_the_bytes_through_the_handle(method: str) -> None:
    arena = Arena(1 << 16)
    slot = arena.write_parts((b"held for a worker", os.urandom(3000)))
    assert slot is not None
    context = multiprocessing.get_context(method)
    out: multiprocessing.Queue[bytes] = context.Queue()
    child = context.Process(target=_read_in_child, args=(arena.handle, slot, out))
    child.start()
    try:
        assert out.get(timeout=20) == bytes(arena.view(slot))
    finally:
        child.join(10)
    assert child.exitcode == 0


def test_an_empty_instance_takes_no_space() -> None:
    arena = Arena(100)
    slot = arena.write_parts((b"",))
    assert slot == Slot(0, 0) and bytes(arena.view(slot)) == b""
    arena.free(slot)
    assert arena.held_bytes == 0 and arena._free == [(0, 100)]
