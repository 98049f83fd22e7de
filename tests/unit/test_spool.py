"""The spool folder: atomic UUID-named writes, the byte budget, ENOSPC, restart cleanup."""

from __future__ import annotations

import errno
import threading
import uuid
from pathlib import Path

import pytest

from runner.dicom import spool as spool_module
from runner.dicom.spool import Spool, SpoolFull


def test_write_stores_the_bytes_under_a_uuid_name_and_leaves_tmp_empty(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", max_bytes=1000)
    entry = spool.write(b"DICM-bytes")
    assert entry.path == tmp_path / "spool" / entry.name
    assert entry.path.read_bytes() == b"DICM-bytes"
    assert entry.size == 10
    assert uuid.UUID(entry.name.removesuffix(".dcm")).version == 4
    assert list(spool.tmp.iterdir()) == []
    assert spool.used_bytes == 10


def test_two_writes_of_the_same_bytes_get_different_names(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1000)
    assert spool.write(b"same").name != spool.write(b"same").name


def test_write_over_the_budget_raises_spool_full_and_writes_nothing(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=100)
    spool.write(b"x" * 60)
    with pytest.raises(SpoolFull):
        spool.write(b"y" * 41)
    assert spool.used_bytes == 60
    assert len(spool.existing()) == 1
    assert list(spool.tmp.iterdir()) == []


def test_full_flag_holds_until_the_spool_drains_below_the_resume_mark(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=100, resume_fraction=0.5)
    first = spool.write(b"a" * 30)
    second = spool.write(b"b" * 30)
    assert not spool.is_full
    with pytest.raises(SpoolFull):
        spool.write(b"c" * 50)
    assert spool.is_full
    spool.remove(first.name)  # 30 bytes left, below the mark of 50
    assert spool.used_bytes == 30
    assert not spool.is_full
    spool.remove(second.name)
    assert spool.used_bytes == 0


def test_full_flag_stays_while_above_the_resume_mark(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=100, resume_fraction=0.5)
    entries = [spool.write(b"z" * 20) for _ in range(4)]
    with pytest.raises(SpoolFull):
        spool.write(b"w" * 30)
    spool.remove(entries[0].name)  # 60 bytes left, mark is 50
    assert spool.is_full
    spool.remove(entries[1].name)  # 40 bytes left
    assert not spool.is_full


def test_disk_full_during_write_raises_spool_full_and_removes_the_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def half_then_enospc(path: Path, raw: bytes, over: bool = False) -> None:
        path.write_bytes(b"".join(raw)[: len(b"".join(raw)) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    spool = Spool(tmp_path, max_bytes=1000)
    monkeypatch.setattr(spool_module, "_write_flushed", half_then_enospc)
    with pytest.raises(SpoolFull):
        spool.write(b"q" * 100)
    assert list(spool.tmp.iterdir()) == []
    assert spool.existing() == []
    assert spool.used_bytes == 0
    assert spool.is_full


def test_other_write_errors_propagate_and_release_the_reservation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def permission_denied(path: Path, raw: bytes, over: bool = False) -> None:
        raise PermissionError(errno.EACCES, "denied")

    spool = Spool(tmp_path, max_bytes=1000)
    monkeypatch.setattr(spool_module, "_write_flushed", permission_denied)
    with pytest.raises(PermissionError):
        spool.write(b"q" * 100)
    assert spool.used_bytes == 0
    assert not spool.is_full


def test_restart_empties_leftover_temp_files_for_reuse_and_counts_existing_files(
    tmp_path: Path,
) -> None:
    spool = Spool(tmp_path, max_bytes=1000)
    kept = spool.write(b"k" * 25)
    half = spool.tmp / f"{uuid.uuid4().hex}.dcm"
    half.write_bytes(b"half a file")  # crash mid-write
    (spool.tmp / "stray.txt").write_text("not a spool file")
    (tmp_path / "notes.txt").write_text("not a spool file")

    restarted = Spool(tmp_path, max_bytes=1000)
    assert restarted.adopt_temp() == 1
    assert list(restarted.tmp.iterdir()) == [half]
    assert half.stat().st_size == 0
    assert restarted.existing() == [kept]
    assert (restarted.used_bytes, restarted.free_bytes) == (25, 0)
    inode = half.stat().st_ino
    assert restarted.write(b"n" * 30).path.stat().st_ino == inode  # reused, not created


def test_remove_frees_the_bytes_and_ignores_a_missing_file(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1000)
    entry = spool.write(b"r" * 40)
    spool.remove(entry.name)
    spool.remove(entry.name)
    assert not entry.path.exists()
    assert spool.used_bytes == 0


def test_remove_rejects_names_that_are_not_spool_files(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1000)
    with pytest.raises(ValueError):
        spool.remove("../../etc/passwd")


def test_concurrent_writes_never_exceed_the_budget(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1000)
    refused: list[int] = []

    def writer() -> None:
        for _ in range(20):
            try:
                spool.write(b"t" * 10)
            except SpoolFull:
                refused.append(1)

    threads = [threading.Thread(target=writer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert spool.used_bytes == 1000
    assert len(spool.existing()) == 100
    assert len(refused) == 60


def test_budget_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        Spool(tmp_path, max_bytes=0)


def test_a_removed_file_is_overwritten_by_the_next_write_instead_of_a_new_inode(
    tmp_path: Path,
) -> None:
    spool = Spool(tmp_path, max_bytes=10**6)
    first = spool.write(b"a" * 1000)
    inode = first.path.stat().st_ino
    spool.remove(first.name)
    assert not first.path.exists()

    smaller = spool.write_parts((b"head", b"b" * 500))

    assert smaller.name != first.name
    assert smaller.path.stat().st_ino == inode
    assert smaller.path.read_bytes() == b"head" + b"b" * 500
    assert list(spool.tmp.iterdir()) == []
    assert spool.used_bytes == smaller.size


def test_a_reused_file_may_grow_and_the_budget_follows(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=10**6)
    spool.remove(spool.write(b"a" * 100).name)

    bigger = spool.write(b"c" * 3000)

    assert bigger.path.read_bytes() == b"c" * 3000
    assert spool.used_bytes == 3000


def test_a_removed_file_leaves_the_used_count_and_waits_in_tmp_as_free_bytes(
    tmp_path: Path,
) -> None:
    spool = Spool(tmp_path, max_bytes=10**6)
    entry = spool.write(b"a" * 1000)
    spool.remove(entry.name)

    assert (spool.used_bytes, spool.free_bytes) == (0, 1000)
    assert spool.existing() == []
    assert (spool.used_bytes, spool.free_bytes) == (0, 1000)  # a rescan does not count them

    assert spool.adopt_temp() == 1  # a restart: the file is emptied and kept for reuse
    assert (spool.used_bytes, spool.free_bytes) == (0, 0)
    assert spool.write(b"d" * 10).path.read_bytes() == b"d" * 10


def test_no_file_is_deleted_while_removed_files_fit_in_the_budget(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=10**6)
    entries = [spool.write(b"x" * 600) for _ in range(200)]
    inodes = {entry.path.stat().st_ino for entry in entries}
    for entry in entries:
        spool.remove(entry.name)
    assert len(list(spool.tmp.iterdir())) == 200

    again = [spool.write(b"y" * 600) for _ in range(200)]

    assert {entry.path.stat().st_ino for entry in again} == inodes
    assert list(spool.tmp.iterdir()) == []


def test_a_write_that_needs_the_room_of_free_files_deletes_the_oldest(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1000)
    old, newer, newest = (spool.write(bytes([65 + i]) * 300) for i in range(3))
    for entry in (old, newer, newest):
        spool.remove(entry.name)  # 900 free bytes, none used

    big = spool.write(b"b" * 650)  # overwrites the newest; 650 + 600 > 1000: one must go

    assert big.path.read_bytes() == b"b" * 650
    assert [path.name for path in spool.tmp.iterdir()] == [newer.name]
    assert (spool.used_bytes, spool.free_bytes) == (650, 300)


def test_a_full_spool_resumes_when_removed_files_become_free_files(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=100, resume_fraction=0.5)
    entries = [spool.write(b"z" * 25) for _ in range(4)]
    with pytest.raises(SpoolFull):
        spool.write(b"w" * 25)
    for entry in entries:
        spool.remove(entry.name)  # kept as free files, not deleted

    assert not spool.is_full
    assert spool.free_bytes == 100
    assert spool.write(b"w" * 25).size == 25


def test_empty_free_gives_the_space_back_and_keeps_the_files(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=10**6)
    kept = spool.write(b"k" * 10)
    spare = spool.write(b"a" * 100)
    spool.remove(spare.name)

    assert spool.empty_free() == 1

    assert [(path.name, path.stat().st_size) for path in spool.tmp.iterdir()] == [
        (spare.name, 0)]
    assert (spool.used_bytes, spool.free_bytes) == (kept.size, 0)
    assert Spool(tmp_path, max_bytes=10**6).adopt_temp() == 1  # the next run reuses it


def test_a_write_refused_for_the_budget_deletes_no_free_file(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=100_000)
    kept = spool.write(b"k" * 98_000)
    spool.remove(spool.write(b"b" * 1500).name)  # a free file of 1500 bytes
    assert (spool.used_bytes, spool.free_bytes) == (98_000, 1500)

    with pytest.raises(SpoolFull):
        spool.write(b"c" * 5000)  # 98 000 + 5000 > 100 000, free files or not

    assert (spool.used_bytes, spool.free_bytes) == (98_000, 1500)  # nothing leaked
    assert spool.empty_free() == 1
    assert (spool.used_bytes, spool.free_bytes) == (kept.size, 0)
    assert [path.stat().st_size for path in spool.tmp.iterdir()] == [0]
