"""Transactions: one database session per store call, committed before anyone replies.

Invariants:
- `transaction()` commits before it returns; a caller acknowledges (SMTP 250, IMAP OK) only
  after it returned, so nothing acknowledged is ever lost.
- Changes recorded with `Tx.emit` are NOTIFYed inside the transaction on PostgreSQL (so they
  go out exactly when it commits) and published in-process after commit on SQLite.
- On SQLite every transaction of this process runs under one gevent lock (see relate.db.engine).
- Connection-level failures become `TemporaryFailure`; retryable conflicts (serialisation,
  deadlock) are retried a few times before that.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

import gevent
import gevent.lock
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from relate.db import get_engine
from relate.store.errors import RetryableConflict, TemporaryFailure
from relate.store.events import CHANNEL, Change, bus

log = logging.getLogger("relate.store")

_sqlite_lock = gevent.lock.RLock()
RETRYABLE_PGCODES = {"40001", "40P01"}  # serialization_failure, deadlock_detected
T = TypeVar("T")


def retrying(fn: Callable[[], T], attempts: int = 4) -> T:
    """Run `fn` (which opens its own transaction) again after a deadlock or serialisation failure."""
    for attempt in range(attempts):
        try:
            return fn()
        except RetryableConflict:
            if attempt == attempts - 1:
                raise
            gevent.sleep(0.01 * (attempt + 1))
    raise AssertionError("unreachable")


@dataclass
class Tx:
    s: Session  # the SQLAlchemy session of this transaction
    changes: list[Change] = field(default_factory=list)  # emitted, published at commit
    postgres: bool = False

    def emit(self, change: Change) -> None:
        self.changes.append(change)


def _is_disconnect(exc: DBAPIError) -> bool:
    return bool(exc.connection_invalidated) or isinstance(exc, OperationalError)


@contextlib.contextmanager
def transaction() -> Iterator[Tx]:
    """Run a unit of work; commit and publish its changes, or roll back on any error."""
    engine = get_engine()
    postgres = engine.dialect.name == "postgresql"
    lock = contextlib.nullcontext() if postgres else _sqlite_lock
    with lock:
        session = Session(engine, expire_on_commit=False, autoflush=True)
        t = Tx(session, postgres=postgres)
        try:
            yield t
            if postgres and t.changes:
                for change in t.changes:
                    session.execute(
                        text("SELECT pg_notify(:c, :p)"), {"c": CHANNEL, "p": change.to_json()}
                    )
            session.commit()
        except DBAPIError as exc:
            session.rollback()
            if getattr(exc.orig, "pgcode", None) in RETRYABLE_PGCODES:
                raise RetryableConflict("concurrent update; retry") from exc
            if _is_disconnect(exc):
                log.warning("database unavailable: %s", str(exc.orig).strip().splitlines()[0] if exc.orig else exc)
                raise TemporaryFailure("database temporarily unavailable") from exc
            raise
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()
    if not postgres and t.changes:
        bus.publish_local(t.changes)


@contextlib.contextmanager
def read() -> Iterator[Session]:
    """A read-only session (no lock on SQLite beyond SQLite's own; WAL readers don't block)."""
    session = Session(get_engine().execution_options(relate_readonly=True), expire_on_commit=False)
    try:
        yield session
        session.rollback()
    except DBAPIError as exc:
        session.rollback()
        if _is_disconnect(exc):
            raise TemporaryFailure("database temporarily unavailable") from exc
        raise
    finally:
        session.close()
