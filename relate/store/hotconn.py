"""Connections kept at hand for the bare-cursor reads and writes (relate.store.session
`pg_read`, `pg_write`) on PostgreSQL: a short LIFO list of connections already checked out
of the engine's pool, so a hot IMAP command borrows one with a list pop instead of a pool
checkout and checkin (SQLAlchemy's pool costs about as much CPU as the statement it serves).

Invariants:
- Every connection here is a checked-out pool connection (a `_ConnectionFairy`), in
  autocommit mode with no transaction open, that the last borrower gave back after its
  statements succeeded. A connection whose use failed never comes back here: it is rolled
  back and returned to the pool, or discarded (relate.store.session `_pg_failed`).
- At most `limit` rest here: KEEP at most, and never more than half of the pool's size, so
  the ORM's transactions always find pool connections (a pool of one keeps none here).
- The pool's own rules still apply to every connection: one that rested here PING_AFTER_IDLE
  seconds or more goes back to the pool with that rest on its record (so the pool pings it
  at its next checkout, relate.db.engine), and one out of the pool for RETURN_AFTER seconds
  goes back when it is next given back (so the pool's recycling sees it).
- A connection failure (the server restarted, the connection was killed) closes every
  connection resting here, and every connection lent out at that moment is closed when given
  back: they came from the same server and are suspect, as SQLAlchemy treats a pool after a
  disconnect (their pool records connect afresh when next checked out).
- The list belongs to one engine; `dispose()` of that engine (relate.db `configure` with
  another URL, `dispose`) closes what rests here, and what is lent out when it comes back.
"""

from __future__ import annotations

import logging
import time
import weakref
from typing import Any

from sqlalchemy import Engine, event

from relate.db.engine import PING_AFTER_IDLE, RESTED_AT

log = logging.getLogger("relate.store")

KEEP = 8  # connections resting here at most (with imaptest's ten sessions, about what is busy at once)
RETURN_AFTER = 60.0  # seconds out of the pool after which a connection goes back when given back
_OUT_SINCE = "relate_hot_out_since"  # record info: time.monotonic() when it left the pool for here
_LENT_IN = "relate_hot_generation"  # record info: the generation it was lent in


class HotConnections:
    """The connections of one engine; see the module's invariants."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._idle: list[tuple[Any, float]] = []  # (connection, resting since), the newest last
        self._generation = 0  # bumped by a connection failure
        event.listen(engine, "engine_disposed", self._disposed)

    @property
    def limit(self) -> int:
        """How many may rest here now (the pool can be replaced or resized, so asked each time)."""
        size = getattr(self.engine.pool, "size", None)
        return min(KEEP, size() // 2) if size is not None else 0

    def borrow(self) -> Any:
        """A connection in autocommit mode; raises the pool's errors (DBAPIError) as they are."""
        now = time.monotonic()
        try:
            fairy, rested = self._idle.pop()
        except IndexError:  # none kept
            pass
        else:
            if now - rested < PING_AFTER_IDLE:
                fairy.info[_LENT_IN] = self._generation
                return fairy
            # The newest rested too long, so did all the others: the pool pings them as it does
            # any connection that rested, at their next checkout.
            stale, self._idle = self._idle, []
            for old, since in [(fairy, rested), *stale]:
                self._to_pool(old, since)
        fresh = self.engine.raw_connection()
        try:
            driver: Any = fresh.driver_connection
            driver.autocommit = True
        except Exception:
            fresh.invalidate()
            raise
        fresh.info[_OUT_SINCE] = now
        fresh.info[_LENT_IN] = self._generation
        return fresh

    def give_back(self, fairy: Any) -> None:
        """After a successful use: keep `fairy` here, or return it to the pool."""
        if not fairy.is_valid:
            return  # discarded while in use (its invalidation returned it to the pool)
        info = fairy.info
        if info.pop(_LENT_IN, -1) != self._generation:
            # Lent before a connection failure or the engine's disposal: suspect, or of a pool
            # that is gone. Closed; its pool record connects afresh when next used.
            info.pop(_OUT_SINCE, None)
            fairy.invalidate()
            return
        now = time.monotonic()
        if now - info.get(_OUT_SINCE, 0.0) < RETURN_AFTER and len(self._idle) < self.limit:
            self._idle.append((fairy, now))
            return
        self._to_pool(fairy, None)

    def after_failure(self, fairy: Any) -> None:
        """`fairy` failed and its borrower rolled it back (in transaction mode) or discarded it:
        to the pool, never here."""
        info = fairy.info
        info.pop(_OUT_SINCE, None)
        info.pop(_LENT_IN, None)
        if fairy.is_valid:
            fairy.close()

    def connection_failed(self) -> None:
        """A connection of this engine broke: the rest are suspect (module invariants)."""
        self._generation += 1
        self._close_all()

    def _to_pool(self, fairy: Any, rested: float | None) -> None:
        """Return `fairy` to the pool in transaction mode (a connection that cannot be switched
        back is discarded), recording since when it rested here."""
        info = fairy.info
        info.pop(_OUT_SINCE, None)
        info.pop(_LENT_IN, None)
        try:
            fairy.driver_connection.autocommit = False
        except Exception:
            log.debug("discarding a kept connection left in autocommit", exc_info=True)
            fairy.invalidate()
            return
        fairy.close()
        if rested is not None:
            info[RESTED_AT] = rested

    def _close_all(self) -> None:
        idle, self._idle = self._idle, []
        for fairy, _ in idle:
            try:
                fairy.invalidate()  # closes the connection now
            except Exception:
                log.debug("closing a kept connection failed", exc_info=True)

    def _disposed(self, _engine: Engine) -> None:
        self._generation += 1  # those lent out now are closed when given back
        self._close_all()


_by_engine: weakref.WeakKeyDictionary[Engine, HotConnections] = weakref.WeakKeyDictionary()


def of(engine: Engine) -> HotConnections:
    """The kept connections of `engine` (made on first use)."""
    found = _by_engine.get(engine)
    if found is None:
        found = _by_engine[engine] = HotConnections(engine)
    return found
