"""Per-protocol counters for /metrics, from every process.

Any code (daemons, the API) counts events in memory, which costs a dict update:

    from relate import metrics
    metrics.incr("smtp", "messages_accepted")
    metrics.incr("imap", "bytes_sent", len(data))

A process that runs for a while calls `metrics.start_flusher()` once (the daemon runner, the
all-in-one process and the gunicorn worker do); a greenlet then adds what was counted to the
shared totals in the database every FLUSH_INTERVAL seconds, and once more at `stop_flusher()`.
The API's /metrics serves the database totals plus what this process has not flushed yet, as
`relate_<protocol>_<name>_total` counters in the Prometheus text format.

Names: `protocol` is a short word (`smtp`, `pop3`, `imap`, `http`); `name` says what was
counted in snake_case, plural nouns for events (`connections`, `auth_failures`,
`messages_delivered`). Both are normalised to [a-z0-9_] and bounded in length, so a typo
cannot break the exposition format. Never put user data (addresses, hosts) in a name:
names are a small fixed set.

Invariants:
- Counting never touches the database and never raises.
- A flush that fails keeps its deltas for the next one: totals only grow, nothing is counted
  twice, and at most one interval of counts is lost if a process dies.
"""

from __future__ import annotations

import functools
import logging
import re
import threading

import gevent

log = logging.getLogger("relate.metrics")

FLUSH_INTERVAL = 15.0  # seconds
MAX_PROTOCOL = 32
MAX_NAME = 64
_BAD = re.compile(r"[^a-z0-9_]+")

_pending: dict[tuple[str, str], int] = {}  # counted here, not yet in the database
_lock = threading.Lock()
_flusher: gevent.Greenlet | None = None


def _clean(value: str, limit: int) -> str:
    return _BAD.sub("_", value.strip().lower()).strip("_")[:limit] or "unknown"


@functools.lru_cache(maxsize=1024)
def _key(protocol: str, name: str) -> tuple[str, str]:
    """The cleaned counter key; remembered, since code counts the same few names over and over."""
    return _clean(protocol, MAX_PROTOCOL), _clean(name, MAX_NAME)


def incr(protocol: str, name: str, n: int = 1) -> None:
    """Count `n` occurrences of `name` for `protocol` (cheap: memory only)."""
    if n <= 0:
        return
    key = _key(protocol, name)
    with _lock:
        _pending[key] = _pending.get(key, 0) + n


def pending() -> dict[tuple[str, str], int]:
    """What this process has counted and not yet flushed."""
    with _lock:
        return dict(_pending)


def _take() -> dict[tuple[str, str], int]:
    with _lock:
        taken = dict(_pending)
        _pending.clear()
        return taken


def _give_back(deltas: dict[tuple[str, str], int]) -> None:
    with _lock:
        for key, n in deltas.items():
            _pending[key] = _pending.get(key, 0) + n


def flush() -> bool:
    """Add the pending counts to the shared totals. False (counts kept) when the database failed."""
    from relate.store import metrics as stored

    deltas = _take()
    if not deltas:
        return True
    try:
        stored.add(deltas)
    except Exception as exc:
        _give_back(deltas)
        log.warning("metrics flush failed, will retry: %s", exc)
        return False
    return True


def _run(interval: float) -> None:
    while True:
        gevent.sleep(interval)
        flush()


def start_flusher(interval: float = FLUSH_INTERVAL) -> gevent.Greenlet:
    """Start the background flush greenlet of this process (idempotent)."""
    global _flusher
    if _flusher is None or _flusher.dead:
        _flusher = gevent.spawn(_run, interval)
    return _flusher


def stop_flusher(*, final_flush: bool = True) -> None:
    """Stop the flush greenlet; by default flush what is left (call before closing the store)."""
    global _flusher
    if _flusher is not None:
        _flusher.kill(block=True)
        _flusher = None
    if final_flush:
        flush()


def reset() -> None:
    """Drop unflushed counts (tests)."""
    with _lock:
        _pending.clear()
