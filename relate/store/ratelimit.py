"""Request rate limits: fixed-window counters per key ('ip:<addr>', 'user:<id>').

On PostgreSQL every API replica counts in the same rows, so a limit holds across replicas:
one `INSERT .. ON CONFLICT DO UPDATE .. RETURNING` per request bumps all of its keys at once
(keys in sorted order, so two requests never lock the same rows in opposite orders). On
SQLite, the embedded single-process setup, counters live in this process's memory and no
write transaction is spent on them.

Old windows are deleted at most once per PURGE_INTERVAL per process.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import delete
from sqlalchemy.dialects import postgresql

from relate.db import get_engine
from relate.db.models import RateLimitCounter
from relate.store.session import retrying, transaction

WINDOW_SECONDS = 60
PURGE_INTERVAL = 60.0  # seconds between deletions of old windows, per process
MAX_KEY_LENGTH = 200


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


def hit(keys: Iterable[str], now: float | None = None) -> list[Count]:
    """Count one request against every key; returns the counts in the order given."""
    wanted = [k[:MAX_KEY_LENGTH] for k in keys]
    if not wanted:
        return []
    current = time.time() if now is None else now
    window = window_of(current)
    if get_engine().dialect.name != "postgresql":
        counts = _hit_local(wanted, window)
    else:
        counts = retrying(lambda: _hit_postgres(sorted(set(wanted)), window))
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


def _hit_postgres(keys: list[str], window: int) -> dict[str, int]:
    stmt = (
        postgresql.insert(RateLimitCounter)
        .values([{"key": k, "window_start": window, "count": 1} for k in keys])
        .on_conflict_do_update(index_elements=["key", "window_start"], set_={"count": RateLimitCounter.count + 1})
        .returning(RateLimitCounter.key, RateLimitCounter.count)
    )
    with transaction() as t:
        return {key: int(count) for key, count in t.s.execute(stmt).all()}


def _maybe_purge(window: int) -> None:
    global _last_purge
    now = time.monotonic()
    if now - _last_purge < PURGE_INTERVAL:
        return
    _last_purge = now
    with transaction() as t:
        t.s.execute(delete(RateLimitCounter).where(RateLimitCounter.window_start < window - WINDOW_SECONDS))


def reset() -> None:
    """Forget this process's counters (tests; the database rows are the tables' business)."""
    global _last_purge
    with _local_lock:
        _local.clear()
    _last_purge = 0.0
