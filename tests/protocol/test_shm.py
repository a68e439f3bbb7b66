"""Shared-memory tables (relate.protocol.shm): one file mapped by several processes, its lock,
and the files of one parent."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path

import pytest

from relate.protocol import shm


def test_two_maps_of_one_file_see_each_other(tmp_path: Path) -> None:
    path = tmp_path / "relate-test-1"
    one, two = shm.SharedInts(path, 4), shm.SharedInts(path, 4)
    assert list(one.ints) == [0, 0, 0, 0]  # a new file is zeros
    one.ints[2] = -(2**63)
    two.ints[3] = 2**63 - 1
    assert list(two.ints) == [0, 0, -(2**63), 2**63 - 1]
    assert list(one.ints) == list(two.ints)
    two.zero()
    assert list(one.ints) == [0, 0, 0, 0]
    one.close()
    two.close()
    assert path.stat().st_size == 32


def test_a_smaller_file_grows_and_a_larger_one_keeps_its_contents(tmp_path: Path) -> None:
    path = tmp_path / "relate-test-1"
    small = shm.SharedInts(path, 2)
    small.ints[1] = 5
    large = shm.SharedInts(path, 8)
    assert list(large.ints) == [0, 5, 0, 0, 0, 0, 0, 0]
    again = shm.SharedInts(path, 2)
    assert list(again.ints) == [0, 5]
    for table in (small, large, again):
        table.close()


def test_the_lock_excludes_another_process(tmp_path: Path) -> None:
    path = tmp_path / "relate-test-1"
    table = shm.SharedInts(path, 1)
    probe = ("import fcntl, sys\n"
             "f = open(sys.argv[1], 'rb')\n"
             "try:\n    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)\nexcept BlockingIOError:\n    sys.exit(3)\n")
    with table.locked() as ints:
        ints[0] = 1
        held = subprocess.run([sys.executable, "-c", probe, str(path)])
    free = subprocess.run([sys.executable, "-c", probe, str(path)])
    assert (held.returncode, free.returncode) == (3, 0)
    table.close()


def test_the_lock_is_released_when_the_block_fails(tmp_path: Path) -> None:
    table = shm.SharedInts(tmp_path / "relate-test-1", 1)
    with pytest.raises(RuntimeError), table.locked():
        raise RuntimeError("boom")
    with open(table.path, "rb") as f:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)  # would raise BlockingIOError if still held
    table.close()


def test_a_parent_removes_its_own_files_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shm, "shared_dir", lambda: tmp_path)
    mine = [shm.shared_file(kind, 4242) for kind in ("workers", "recent", "limits")]
    others = [shm.shared_file("workers", 42420), tmp_path / "relate-notes-4242.txt", tmp_path / "other-4242"]
    for path in mine + others:
        path.write_bytes(b"")
    shm.remove_files_of(4242)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in others)


def test_shared_files_are_named_after_the_parent() -> None:
    path = shm.shared_file("workers", os.getpid())
    assert path.name == f"relate-workers-{os.getpid()}"
    assert path.parent == shm.shared_dir()


def _dead_pid() -> int:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    return gone.pid


def test_sweep_removes_the_files_of_dead_parents_only(tmp_path: Path) -> None:
    dead, live = _dead_pid(), os.getpid()
    stale = [tmp_path / f"relate-{kind}-{dead}" for kind in ("workers", "recent", "limits")]
    kept = [tmp_path / f"relate-workers-{live}", tmp_path / f"relate-limits-{live}",
            tmp_path / "relate-workers-1",  # init, or someone else's process: alive either way
            tmp_path / f"relate-notes-{dead}.txt", tmp_path / f"other-{dead}"]  # not ours
    for path in stale + kept:
        path.write_bytes(b"\0" * 16)
    assert sorted(shm.sweep(tmp_path)) == sorted(stale)
    assert sorted(tmp_path.iterdir()) == sorted(kept)
    assert shm.sweep(tmp_path) == []
