"""The memory spool (runner.dicom.arena): instances in and out of one shared memory file."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time

import pytest

from runner.dicom import arena as arena_module
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


def _free_later(arena: Arena, slots: list[Slot], every: float) -> threading.Thread:
    """A forwarder giving the slots back one by one, `every` seconds apart."""
    def give_back() -> None:
        for slot in slots:
            time.sleep(every)
            arena.free(slot)
    thread = threading.Thread(target=give_back)
    thread.start()
    return thread


def test_a_full_memory_waits_for_room_while_space_keeps_coming_back() -> None:
    arena = Arena(8000)
    held = [arena.write_parts((bytes([n]) * 1000,)) for n in range(8)]
    assert all(held)
    # one slot back every 0.2 s: each within the 0.5 s patience, 0.6 s in all
    forwarder = _free_later(arena, [held[7], held[0], held[1]], 0.2)  # type: ignore[list-item]
    started = time.monotonic()
    slot = arena.write_parts((b"w" * 2000,), patience=0.5)  # needs two adjacent slots back
    waited = time.monotonic() - started
    forwarder.join()
    assert slot == Slot(0, 2000) and bytes(arena.view(slot)) == b"w" * 2000
    assert 0.3 < waited < 2.0


def test_when_no_space_comes_back_the_instance_goes_to_the_spool_after_the_patience() -> None:
    arena = Arena(4000)
    assert all(arena.write_parts((b"x" * 1000,)) for _ in range(4))
    started = time.monotonic()
    assert arena.write_parts((b"y" * 1000,)) is None  # no patience: at once
    assert time.monotonic() - started < 0.1
    started = time.monotonic()
    assert arena.write_parts((b"y" * 1000,), patience=0.3) is None
    assert 0.25 < time.monotonic() - started < 2.0


def test_once_a_wait_found_the_destination_stalled_the_next_instances_spill_at_once(
        ) -> None:
    arena = Arena(4000)
    held = [arena.write_parts((b"x" * 1000,)) for _ in range(4)]
    assert arena.write_parts((b"y" * 1000,), patience=0.3) is None  # waited, nothing back
    started = time.monotonic()
    assert arena.write_parts((b"y" * 1000,), patience=0.3) is None
    assert time.monotonic() - started < 0.1  # not another wait while nothing comes back
    arena.free(held[0])  # type: ignore[arg-type]
    assert arena.write_parts((b"y" * 1000,), patience=0.3) is not None  # full again
    forwarder = _free_later(arena, [held[2]], 0.15)  # type: ignore[list-item]
    started = time.monotonic()
    slot = arena.write_parts((b"z" * 1000,), patience=0.3)  # space came back: waits again
    waited = time.monotonic() - started
    forwarder.join()
    assert slot is not None and 0.1 <= waited < 1.0


def test_space_coming_back_too_small_keeps_an_instance_waiting_only_up_to_the_limit(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(arena_module, "WAIT_LIMIT", 0.6)
    arena = Arena(8000)
    held = [arena.write_parts((bytes([n]) * 1000,)) for n in range(8)]
    # slots 0 and 2 come back, 0.1 s apart, then are taken again: never two adjacent
    def churn() -> None:
        for _ in range(12):
            for index in (0, 2):
                time.sleep(0.05)
                arena.free(held[index])  # type: ignore[arg-type]
                held[index] = arena.write_parts((b"s" * 1000,))
    thread = threading.Thread(target=churn)
    thread.start()
    started = time.monotonic()
    slot = arena.write_parts((b"big" * 600,), patience=0.5)  # 1,800 bytes: needs two
    waited = time.monotonic() - started
    thread.join()
    assert slot is None and 0.5 < waited < 1.0


def test_closing_the_memory_ends_a_wait_for_room() -> None:
    arena = Arena(4000)
    assert all(arena.write_parts((b"x" * 1000,)) for _ in range(4))
    closer = threading.Timer(0.2, arena.close)
    closer.start()
    started = time.monotonic()
    assert arena.write_parts((b"y" * 1000,), patience=5.0) is None
    assert time.monotonic() - started < 2.0
    closer.join()
