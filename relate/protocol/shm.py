"""Tables in shared memory between the worker processes of one parent: the API's gunicorn
workers, a protocol daemon's workers (Network__Workers).

Invariants:
- A table is a file named relate-<kind>-<parent pid> (`shared_file`), in /dev/shm, or the
  temporary directory when /dev/shm is not writable. A daemon removes its files when it
  exits (relate.daemon); the API's last worker out removes its table (relate.protocol.balance);
  files left by a parent killed outright are removed by the next daemon or API to start
  (`sweep`).
- Every process maps the file itself, sees it as 64-bit integers, and changes it under an
  exclusive flock on its own open file. An open file is never shared across fork: a flock
  belongs to the open file, so a parent's inherited descriptor would hold its lock in the child.
- Integers are 8-byte aligned and written whole: a reader never sees half a write.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import mmap
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger("relate.protocol.shm")

NAME = re.compile(r"relate-[a-z]+-(\d+)")  # what shared_file names


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def shared_dir() -> Path:
    shm = Path("/dev/shm")
    return shm if shm.is_dir() and os.access(shm, os.W_OK) else Path(tempfile.gettempdir())


def shared_file(kind: str, parent_pid: int) -> Path:
    """Where the workers of `parent_pid` share `kind` (a table mapped by each)."""
    return shared_dir() / f"relate-{kind}-{parent_pid}"


def _files(directory: Path) -> Iterator[tuple[Path, int]]:
    """The shared files in `directory`, with the pid they are named after."""
    try:
        entries = list(directory.iterdir())
    except OSError:
        return
    for path in entries:
        match = NAME.fullmatch(path.name)
        if match:
            yield path, int(match.group(1))


def remove_files_of(parent_pid: int) -> None:
    """Remove every table the workers of `parent_pid` shared (the parent does, as it exits)."""
    for path, pid in _files(shared_dir()):
        if pid == parent_pid:
            path.unlink(missing_ok=True)


def sweep(directory: Path | None = None) -> list[Path]:
    """Remove the tables of parents that are gone (killed outright, they never removed theirs);
    the paths removed. A daemon and the API call it as they start.

    A live parent's files stay. So does the file of a dead parent whose pid an unrelated
    process has taken since: nothing here can tell it from a live parent's, and it is only a
    file in memory; a sweep after that process has ended removes it. A daemon that has been
    given a dead daemon's pid (a container's pid 1, restarted) removes that one's files
    itself (relate.daemon). Pids are those of this pid namespace: a directory shared between
    containers is not supported (their parents' pids, and so the file names, could be the same).
    """
    removed = []
    for path, pid in _files(directory or shared_dir()):
        if not alive(pid):
            with contextlib.suppress(OSError):  # removed already, or another user's
                path.unlink()
                removed.append(path)
                log.info("removed %s: process %d, whose workers shared it, is gone", path, pid)
    return removed


class SharedInts:
    """`count` 64-bit integers in the file at `path` (created with zeros), mapped into this process."""

    def __init__(self, path: Path, count: int):
        self.path = path
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            if os.fstat(fd).st_size < count * 8:
                os.ftruncate(fd, count * 8)
            self._map = mmap.mmap(fd, count * 8)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd  # for flock; kept open until close()
        self.ints = memoryview(self._map).cast("q")

    @contextlib.contextmanager
    def locked(self) -> Iterator[memoryview]:
        """Hold the file's exclusive lock (against every other process and open file)."""
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            yield self.ints
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def zero(self) -> None:
        """Set every integer to 0 (under the lock)."""
        with self.locked():
            self._map[:] = bytes(len(self._map))

    def close(self) -> None:
        self.ints.release()
        self._map.close()
        os.close(self._fd)
