"""Request rate limits: fixed-window counters per key ('ip:<addr>', 'user:<id>').

On PostgreSQL every API replica counts in the same rows (`rate_limits`), so a limit holds across
replicas. Writing a row on every request would cost a transaction per request, so `admit`
counts in two ways:

- far from a limit, a hit is counted in this process's memory, and a flusher greenlet adds what
  was counted to the shared rows every FLUSH_INTERVAL seconds, in one statement, reading back
  the shared totals (every replica's hits);
- a key seen for the first time in a window, a key with SLACK of its limit counted here and
  not yet written, or a key within SLACK of its limit (as far as this process knows) is
  counted in the shared row at once, and the answer is decided on the shared total.

Tolerance: each process leaves at most `budget(limit)` = SLACK x limit hits of a key unwritten
(rounded down; 0 for limits under 1/SLACK, which are therefore exact). A request is admitted
lazily only while this process's view plus its own unwritten hits stays `budget` below the
limit, and the others' unwritten hits are at most `budget` each, so in one window a key gets
at most `limit + (P - 1) x budget` requests through P API processes (workers x replicas),
never fewer than `limit`. A lone process is exact.

`hit` is the exact, write-every-time counter (tests, callers that want it).

On SQLite, the embedded single-process setup, counters live in this process's memory and
no write transaction is spent on them; `admit` is exact there.

Old windows are deleted at most once per PURGE_INTERVAL per process.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import gevent
from sqlalchemy import delete
from sqlalchemy.dialects import postgresql

from relate.db import get_engine
from relate.db.models import RateLimitCounter
from relate.store.errors import StoreError
from relate.store.session import retrying, transaction

log = logging.getLogger("relate.store.ratelimit")

WINDOW_SECONDS = 60
PURGE_INTERVAL = 60.0  # seconds between deletions of old windows, per process
MAX_KEY_LENGTH = 200
FLUSH_INTERVAL = 0.25  # seconds between writes of the hits counted in memory, per process
SLACK = 0.02  # fraction of a limit one process may leave unwritten (see the module docstring)
MAX_TRACKED = 100_000  # keys counted in memory in one process before the oldest windows go


@dataclass(frozen=True)
class Count:
    key: str
    count: int  # requests in the current window, this one included
    window_start: int  # Unix seconds

    def retry_after(self, now: float | None = None) -> int:
        """Whole seconds until this window ends (at least 1)."""
        current = time.time() if now is None else now
        return max(1, int(self.window_start + WINDOW_SECONDS - current + 0.999))


_local: dict[tuple[str, int], int] = {}  # SQLite: (key, window_start) -> count
_local_lock = threading.Lock()
_last_purge = 0.0


def window_of(now: float) -> int:
    return int(now) - int(now) % WINDOW_SECONDS


def budget(limit: int) -> int:
    """Hits of a key with this limit that one process may count without writing them."""
    return int(limit * SLACK)


def hit(keys: Iterable[str], now: float | None = None) -> list[Count]:
    """Count one request against every key, in the shared rows at once; returns the counts in
    the order given."""
    wanted = [k[:MAX_KEY_LENGTH] for k in keys]
    if not wanted:
        return []
    current = time.time() if now is None else now
    window = window_of(current)
    if get_engine().dialect.name != "postgresql":
        counts = _hit_local(wanted, window)
    else:
        totals = retrying(lambda: _add_postgres({(k, window): 1 for k in set(wanted)}))
        counts = {k: n for (k, _), n in totals.items()}
        _maybe_purge(window)
    return [Count(k, counts[k], window) for k in wanted]


def _hit_local(keys: list[str], window: int) -> dict[str, int]:
    with _local_lock:
        stale = [entry for entry in _local if entry[1] < window]
        for entry in stale:
            del _local[entry]
        result = {}
        for key in dict.fromkeys(keys):
            _local[(key, window)] = _local.get((key, window), 0) + 1
            result[key] = _local[(key, window)]
        return result


def _add_postgres(deltas: Mapping[tuple[str, int], int]) -> dict[tuple[str, int], int]:
    """Add `deltas` to the shared rows in one statement (rows in sorted order, so two writers
    never lock the same rows in opposite orders); returns the new totals."""
    ordered = sorted(deltas.items())
    rows = postgresql.insert(RateLimitCounter).values(
        [{"key": k, "window_start": w, "count": n} for (k, w), n in ordered]
    )
    stmt = rows.on_conflict_do_update(
        index_elements=["key", "window_start"], set_={"count": RateLimitCounter.count + rows.excluded.count}
    ).returning(RateLimitCounter.key, RateLimitCounter.window_start, RateLimitCounter.count)
    with transaction() as t:
        return {(key, int(w)): int(count) for key, w, count in t.s.execute(stmt).all()}


def _maybe_purge(window: int) -> None:
    global _last_purge
    now = time.monotonic()
    if now - _last_purge < PURGE_INTERVAL:
        return
    _last_purge = now
    with transaction() as t:
        t.s.execute(delete(RateLimitCounter).where(RateLimitCounter.window_start < window - WINDOW_SECONDS))


@dataclass
class _Tally:
    """One key's count in one window, as this process knows it."""

    shared: int = 0  # the shared total when this process last wrote or flushed (every replica's)
    pending: int = 0  # hits counted here since then, not yet written


class SharedCounters:
    """The approximate shared counters of one process (see the module docstring)."""

    def __init__(self, flush_interval: float = FLUSH_INTERVAL):
        self.flush_interval = flush_interval
        self._tallies: dict[tuple[str, int], _Tally] = {}
        self._flusher: gevent.Greenlet | None = None
        self.writes = 0  # statements written (for tests and benchmarks)

    def admit(self, limits: Mapping[str, int], now: float | None = None) -> list[Count]:
        """Count one request against every key of `limits` ({key: requests per window}); the
        counts of the keys it is over the limit of (empty: admitted)."""
        current = time.time() if now is None else now
        window = window_of(current)
        keyed = {key[:MAX_KEY_LENGTH]: limit for key, limit in limits.items()}
        tallies = {key: self._tallies.get((key, window)) for key in keyed}
        if all(t is not None and self._lazy(t, keyed[k]) for k, t in tallies.items()):
            for t in tallies.values():
                assert t is not None
                t.pending += 1
            self._start_flusher()
            return []
        return self._admit_now(keyed, window)

    @staticmethod
    def _lazy(t: _Tally, limit: int) -> bool:
        slack = budget(limit)
        return t.pending + 1 <= slack and t.shared + t.pending + 1 <= limit - slack

    def _admit_now(self, limits: Mapping[str, int], window: int) -> list[Count]:
        """Write this request, with what this process had not written of its keys, and decide
        on the shared totals."""
        taken: dict[tuple[str, int], int] = {}
        for key in limits:
            t = self._tallies.setdefault((key, window), _Tally())
            taken[(key, window)] = t.pending + 1
            t.pending = 0
        self._forget_old(window)
        try:
            totals = retrying(lambda: _add_postgres(taken))
        except StoreError:
            self._give_back(taken)
            raise
        self.writes += 1
        self._learn(totals)
        _maybe_purge(window)
        return [Count(key, totals[(key, window)], window) for key, limit in limits.items()
                if totals[(key, window)] > limit]

    def _learn(self, totals: Mapping[tuple[str, int], int]) -> None:
        for entry, total in totals.items():
            t = self._tallies.get(entry)
            if t is not None:
                t.shared = max(t.shared, total)

    def _give_back(self, taken: Mapping[tuple[str, int], int]) -> None:
        for entry, n in taken.items():
            self._tallies.setdefault(entry, _Tally()).pending += n

    def _forget_old(self, window: int) -> None:
        """Drop tallies of windows that ended and hold nothing unwritten (and, past
        MAX_TRACKED, the oldest ones whatever they hold)."""
        if len(self._tallies) < MAX_TRACKED // 2:
            return
        for entry in [e for e, t in self._tallies.items() if e[1] < window and not t.pending]:
            del self._tallies[entry]
        if len(self._tallies) >= MAX_TRACKED:
            self._tallies.clear()

    def flush(self) -> bool:
        """Write every unwritten hit; False (and the hits kept) when the database failed."""
        taken = {entry: t.pending for entry, t in self._tallies.items() if t.pending}
        if not taken:
            return True
        for t in self._tallies.values():
            t.pending = 0
        try:
            totals = retrying(lambda: _add_postgres(taken))
        except StoreError as exc:
            log.warning("rate limit counters not written, kept for the next try: %s", exc)
            self._give_back(taken)
            return False
        self.writes += 1
        self._learn(totals)
        self._forget_old(window_of(time.time()))
        return True

    def _start_flusher(self) -> None:
        if self._flusher is None or self._flusher.dead:
            self._flusher = gevent.spawn(self._flush_forever)

    def _flush_forever(self) -> None:
        while True:
            gevent.sleep(self.flush_interval)
            try:
                self.flush()
            except RuntimeError:  # the store was closed: nothing to write to any more
                self._tallies.clear()
                return
            except Exception:  # never let the flusher die of a surprise; the next round retries
                log.exception("rate limit flush failed")

    def stop(self) -> None:
        """Write what is pending and stop the flusher."""
        if self._flusher is not None:
            self._flusher.kill()
            self._flusher = None
        self.flush()


_shared = SharedCounters()


def admit(limits: Mapping[str, int], now: float | None = None) -> list[Count]:
    """Count one request against every key of `limits` ({key: requests per window}) and return
    the counts of the keys now over their limit (empty: admitted). Shared by every replica on
    PostgreSQL within the tolerance of the module docstring; exact on SQLite."""
    if not limits:
        return []
    if get_engine().dialect.name != "postgresql":
        keyed = {key[:MAX_KEY_LENGTH]: limit for key, limit in limits.items()}
        return [c for c in hit(list(keyed), now) if c.count > keyed[c.key]]
    return _shared.admit(limits, now)


def reset() -> None:
    """Forget this process's counters (tests; the database rows are the tables' business)."""
    global _last_purge, _shared
    with _local_lock:
        _local.clear()
    _last_purge = 0.0
    if _shared._flusher is not None:
        _shared._flusher.kill()
    _shared = SharedCounters()
