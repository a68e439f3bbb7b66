"""Transactions: one database session per store call, committed before anyone replies.

Invariants:
- `transaction()` commits before it returns; a caller acknowledges (SMTP 250, IMAP OK) only
  after it returned, so nothing acknowledged is ever lost.
- Changes recorded with `Tx.emit` are NOTIFYed inside the transaction on PostgreSQL (so they
  go out exactly when it commits) and published in-process after commit on SQLite.
- On SQLite every transaction of this process runs under one gevent lock (see relate.db.engine).
- Connection-level failures become `TemporaryFailure`; retryable conflicts (serialisation,
  deadlock) are retried a few times before that.
- `read()` on PostgreSQL runs its statements in autocommit mode: each statement sees its own
  snapshot, exactly as it would inside a READ COMMITTED transaction, without the BEGIN and
  ROLLBACK round trips around it. A caller that needs several statements to see one snapshot
  puts them in one statement.
- `pg_read()` and `pg_write()` are a read and a unit of work on a bare psycopg2 cursor of the
  same pool, for the hottest IMAP paths on PostgreSQL (a SQLAlchemy Session costs several
  times the CPU of the statement it runs). Same guarantees: commit before return, NOTIFY
  inside the transaction (the statement itself calls pg_notify), the same errors
  (`RetryableConflict`, `TemporaryFailure`).
- `pg_write()` sends a whole write as one message (no BEGIN, no COMMIT): PostgreSQL runs the
  statements of one simple-query message as one implicit transaction, each statement with a
  snapshot of its own (READ COMMITTED), commits at the end of the message, and only then
  tells the client it is done. A lock taken by its first statement is therefore held only
  while the server runs the rest, never across a round trip to this process, and its rows
  (those of its last statement) are returned after the commit.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

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


def _notify(session: Session, changes: list[Change]) -> None:
    """NOTIFY every change of the transaction in one statement (one round trip)."""
    calls = ", ".join(f"pg_notify(:c, :p{i})" for i in range(len(changes)))
    params: dict[str, str] = {"c": CHANNEL}
    params.update({f"p{i}": change.to_json() for i, change in enumerate(changes)})
    session.execute(text(f"SELECT {calls}"), params)


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
                _notify(session, t.changes)
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
    engine = get_engine()
    session = Session(engine.execution_options(relate_readonly=True), expire_on_commit=False)
    autocommit = engine.dialect.name == "postgresql"
    try:
        dbapi_conn = _autocommit(session) if autocommit else None
        try:
            yield session
        finally:
            if dbapi_conn is not None:
                _end_autocommit(session, dbapi_conn)
        session.rollback()
    except DBAPIError as exc:
        session.rollback()
        if _is_disconnect(exc):
            raise TemporaryFailure("database temporarily unavailable") from exc
        raise
    finally:
        session.close()


@contextlib.contextmanager
def pg_read() -> Iterator[Any]:
    """A psycopg2 cursor in autocommit mode on a pooled connection (PostgreSQL only). A
    connection that fails is discarded and the failure is `TemporaryFailure`."""
    try:
        fairy = get_engine().raw_connection()
    except DBAPIError as exc:
        raise TemporaryFailure("database temporarily unavailable") from exc
    conn: Any = fairy.driver_connection
    try:
        conn.autocommit = True
        cursor = conn.cursor()
        try:
            yield cursor
        finally:
            cursor.close()
            conn.autocommit = False
    except BaseException as exc:
        _pg_failed(fairy, exc)
        raise
    finally:
        fairy.close()


def pg_write(sql: str, params: Any = None) -> list[Any]:
    """Run `sql` (one or more statements, the last one returning rows) as one transaction in
    one message to PostgreSQL; the rows of the last statement, after the commit."""
    with pg_read() as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall()) if cursor.description is not None else []


def _pg_failed(fairy: Any, exc: BaseException) -> None:
    """Roll back after a failure; discard a broken connection; raise the store's error for it."""
    import psycopg2

    conn: Any = fairy.driver_connection
    try:
        if conn is not None and not conn.closed:
            conn.rollback()
            conn.autocommit = False
    except Exception:
        fairy.invalidate()
    if not isinstance(exc, psycopg2.Error):
        return
    if getattr(exc, "pgcode", None) in RETRYABLE_PGCODES:
        raise RetryableConflict("concurrent update; retry") from exc
    if isinstance(exc, psycopg2.OperationalError | psycopg2.InterfaceError):
        fairy.invalidate()
        log.warning("database unavailable: %s", str(exc).strip().splitlines()[0] if str(exc) else exc)
        raise TemporaryFailure("database temporarily unavailable") from exc


def _autocommit(session: Session) -> Any:
    """Put the session's psycopg2 connection in autocommit mode (a local switch, no round
    trip; SQLAlchemy's isolation_level option would cost one on every checkout)."""
    dbapi_conn = session.connection().connection.dbapi_connection
    assert dbapi_conn is not None
    dbapi_conn.autocommit = True
    return dbapi_conn


def _end_autocommit(session: Session, dbapi_conn: Any) -> None:
    """Back to transactions before the connection returns to the pool; one that cannot be
    switched back (broken, or interrupted mid-query) is discarded, never reused."""
    try:
        dbapi_conn.autocommit = False
    except Exception:
        log.debug("discarding a read connection left in autocommit", exc_info=True)
        session.invalidate()
