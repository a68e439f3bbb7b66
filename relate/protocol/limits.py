"""Connection limits counted across the workers of one daemon (Network__Workers).

A daemon of one process counts its sessions in the process (relate.protocol.server,
relate.imapd.authcmds). With several workers every session counts toward the same limits,
whichever worker serves it: Network__MaxConnections, Network__MaxConnectionsPerIp and
Imap__MaxConnectionsPerUser. The balance table's counts (relate.protocol.balance) will not do:
they include connections being refused and are published after an accept, so two workers
could both take the last place. These counts are exact.

Invariants:
- The counts are a table in shared memory (relate.protocol.shm, relate-limits-<daemon pid>)
  that every worker maps: entries of (key, one count per worker), the key a 64-bit hash of
  what is counted (`key_of`), probed linearly from it for at most PROBES entries. Key 0 is
  a free entry. An entry whose counts are all 0 is a tombstone: a look-up goes on past it,
  an insert may take it over, and it becomes free once the entry after it is free.
- A limit is checked and the session counted in one step under the table's lock (`locked`),
  so no two workers take the last place. Nothing in that step waits on I/O: no greenlet
  switch happens while the lock is held.
- A worker changes only its own column (its index among the daemon's workers, from the
  supervisor), and never takes it below 0. When a worker dies, the supervisor zeroes its
  column (`forget_worker`) before the next worker takes that index: the sessions of a
  killed worker, gone with it, stop counting at once.
- A key the table has no room for is not counted: the client is admitted as if that limit
  were not there, and a warning is logged at most once a minute. A full table never refuses
  anyone.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

from relate.config import Settings
from relate.protocol import shm

log = logging.getLogger("relate.protocol.limits")

PROBES = 32  # entries a look-up tries from a key's home
FULL_WARNING_INTERVAL = 60.0  # seconds between warnings that the table is full


# Keys are hashed with a secret drawn once per daemon (this module is imported before the
# workers are forked, so they share it): a client that picks its addresses cannot aim them at
# the entries around another client's or a user's key to crowd it out of the table.
_HASH_KEY = os.urandom(16)


def key_of(what: str) -> int:
    """The table key counting `what`: never 0 (a free entry). Distinct strings collide with a
    chance of one in 2**64."""
    digest = hashlib.blake2b(what.encode(), digest_size=8, key=_HASH_KEY).digest()
    return int.from_bytes(digest, "little", signed=True) or 1


ALL = key_of("all sessions")  # Network__MaxConnections


def client_key(client: str) -> int:
    """Network__MaxConnectionsPerIp: `client` is relate.protocol.server.limit_key's."""
    return key_of(f"ip {client}")


def user_key(user_id: int) -> int:
    """Imap__MaxConnectionsPerUser."""
    return key_of(f"imap-user {user_id}")


def table_slots(max_connections: int) -> int:
    """Entries for a daemon admitting `max_connections` sessions: each counts under at most two
    keys besides ALL (its client, its user), so the table stays at most half full, up to
    16,384 sessions (65,536 entries, the most it has)."""
    slots = 1 << 10
    while slots < 4 * max_connections and slots < 1 << 16:
        slots <<= 1
    return slots


class SharedCounts:
    """Counts by key, each the sum over the workers of one daemon; this worker's in `column`."""

    def __init__(self, path: Path, workers: int, column: int, slots: int):
        if not 0 <= column < workers:
            raise ValueError(f"column {column} of {workers} workers")
        self.path = path
        self.column = column
        self._width = 1 + workers  # key, then one count per worker
        self._size = slots * self._width  # integers in the table
        self._shared = shm.SharedInts(path, self._size)
        self._ints = self._shared.ints
        self._quiet_until = 0.0  # no warning that the table is full before this (monotonic)
        self._full = False  # add() found no room: warn once the lock is let go

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """The lock every worker's reads and writes of the table hold. Nothing under it does
        I/O or lets another greenlet run (the warning of a full table waits for its release)."""
        with self._shared.locked():
            yield
        if self._full:
            self._full = False
            self._warn_full()

    def _find(self, key: int) -> int | None:
        """Where `key`'s entry starts; None when it has none."""
        ints, width, size = self._ints, self._width, self._size
        at = (key % (size // width)) * width
        for _ in range(PROBES):
            found = ints[at]
            if found == key:
                return at
            if found == 0:
                return None
            at = (at + width) % size
        return None

    def _insert(self, key: int) -> int | None:
        """A new entry for `key` (which has none), in the first free entry or tombstone from
        its home; None when there is none within PROBES."""
        ints, width, size = self._ints, self._width, self._size
        at = (key % (size // width)) * width
        for _ in range(PROBES):
            if ints[at] == 0 or not any(ints[at + 1:at + width]):
                ints[at] = key  # its counts are 0 already
                return at
            at = (at + width) % size
        return None

    def _free_before(self, at: int) -> None:
        """The entry at `at` is free: so are the tombstones right before it."""
        ints, width, size = self._ints, self._width, self._size
        at = (at - width) % size
        while ints[at] != 0 and not any(ints[at + 1:at + width]):
            ints[at] = 0
            at = (at - width) % size

    def count(self, key: int) -> int:
        """Sessions counted under `key` by every worker (hold the lock)."""
        at = self._find(key)
        return 0 if at is None else sum(self._ints[at + 1:at + self._width])

    def add(self, key: int) -> bool:
        """Count one more under `key` for this worker (hold the lock); False when the table has
        no room for it (it is not counted: see the module invariants)."""
        at = self._find(key)
        if at is None:
            at = self._insert(key)
            if at is None:
                self._full = True
                return False
        self._ints[at + 1 + self.column] += 1
        return True

    def remove(self, key: int) -> None:
        """Count one less under `key` for this worker, unless it counts none (hold the lock)."""
        at = self._find(key)
        if at is None or self._ints[at + 1 + self.column] <= 0:
            return
        self._ints[at + 1 + self.column] -= 1
        if not any(self._ints[at + 1:at + self._width]) and self._ints[(at + self._width) % self._size] == 0:
            self._ints[at] = 0
            self._free_before(at)

    def clear_column(self, column: int) -> None:
        """Forget every count of worker `column` (which is gone)."""
        ints, width, size = self._ints, self._width, self._size
        with self.locked():
            ints[1 + column:size:width] = memoryview(bytes(8 * (size // width))).cast("q")
            for at in range(0, size, width):
                if ints[at] == 0:
                    self._free_before(at)

    def _warn_full(self) -> None:
        now = time.monotonic()
        if now >= self._quiet_until:
            self._quiet_until = now + FULL_WARNING_INTERVAL
            log.warning("the connection counts shared by this daemon's workers have no room for a client "
                        "(%d entries, %s): it is admitted as if its limit were not there", self._size // self._width,
                        self.path)

    def close(self) -> None:
        self._shared.close()


def limits_path(daemon_pid: int) -> Path:
    return shm.shared_file("limits", daemon_pid)


def open_counts(daemon_pid: int, settings: Settings, column: int) -> SharedCounts:
    """The counts of the workers of daemon `daemon_pid`, as worker `column` sees them."""
    return SharedCounts(limits_path(daemon_pid), settings.workers, column, table_slots(settings.max_connections))


_shared: SharedCounts | None = None


def share(daemon_pid: int, settings: Settings, column: int) -> None:
    """Count this worker's sessions with the other workers of daemon `daemon_pid` (relate.daemon
    calls it in each worker, before the worker's listeners are built). When the table cannot
    be opened, this worker counts in the process alone, and says so."""
    global _shared
    try:
        _shared = open_counts(daemon_pid, settings, column)
    except OSError as exc:
        log.warning("connection limits count in each worker alone: %s", exc)


def shared() -> SharedCounts | None:
    """This worker's view of its daemon's counts; None in a process of its own."""
    return _shared


def forget_worker(daemon_pid: int, settings: Settings, column: int) -> None:
    """The supervisor's part when worker `column` has died: its sessions no longer count."""
    if not limits_path(daemon_pid).exists():  # no worker opened it (yet)
        return
    try:
        counts = open_counts(daemon_pid, settings, column)
    except OSError as exc:
        log.warning("the sessions of a worker that died still count toward the connection limits: %s", exc)
        return
    try:
        counts.clear_column(column)
    finally:
        counts.close()
