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
- `pg_read()` and `pg_transaction()` are the same two units of work on a bare psycopg2 cursor
  of the same pool, for the hottest IMAP paths on PostgreSQL (a SQLAlchemy Session costs
  several times the CPU of the statement it runs). Same guarantees: commit before return,
  NOTIFY inside the transaction, the same errors (`RetryableConflict`, `TemporaryFailure`).
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
    """A psycopg2 cursor in autocommit mode on a pooled connection (PostgreSQL only)."""
    fairy = get_engine().raw_connection()
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


@dataclass
class PgTx:
    """A transaction on a bare psycopg2 cursor, sent as few messages as possible.

    The connection is in autocommit mode and the transaction is explicit: the first `query`
    goes out as "BEGIN; <statements>", and statements given to `defer` go out with the
    NOTIFY of the emitted changes and the COMMIT, as one message. A writer that locks a row in
    its first query therefore holds the lock across one round trip, not one per statement.
    """

    cursor: Any  # psycopg2 cursor, its connection in autocommit mode
    changes: list[Change] = field(default_factory=list)  # emitted, NOTIFYed at commit
    deferred: list[bytes] = field(default_factory=list)  # statements sent with the COMMIT
    begun: bool = False  # BEGIN went out: the transaction is open on the server

    def query(self, sql: str, params: Any = None) -> list[Any]:
        """Run `sql` (one or more statements) now; the rows of the last one."""
        message = self.cursor.mogrify(sql, params)
        if not self.begun:
            message = b"BEGIN; " + message
            self.begun = True
        self.cursor.execute(message)
        return list(self.cursor.fetchall()) if self.cursor.description is not None else []

    def defer(self, sql: str, params: Any = None) -> None:
        """Run `sql` with the COMMIT (it must not be needed for anything before)."""
        self.deferred.append(self.cursor.mogrify(sql, params))

    def emit(self, change: Change) -> None:
        self.changes.append(change)

    def commit(self) -> None:
        parts = list(self.deferred)
        if self.changes:
            calls = ", ".join(["pg_notify(%s, %s)"] * len(self.changes))
            parts.append(self.cursor.mogrify(f"SELECT {calls}", [v for c in self.changes for v in (CHANNEL, c.to_json())]))
        if not parts and not self.begun:
            return  # nothing was sent: nothing to commit
        if not self.begun:
            parts.insert(0, b"BEGIN")
        parts.append(b"COMMIT")
        self.cursor.execute(b"; ".join(parts))
        self.begun = False


@contextlib.contextmanager
def pg_transaction() -> Iterator[PgTx]:
    """`transaction()` on a bare psycopg2 cursor (PostgreSQL only): commits before it returns."""
    fairy = get_engine().raw_connection()
    conn: Any = fairy.driver_connection
    t: PgTx | None = None
    try:
        conn.autocommit = True
        cursor = conn.cursor()
        try:
            t = PgTx(cursor)
            yield t
            t.commit()
        finally:
            cursor.close()
        conn.autocommit = False
    except BaseException as exc:
        _pg_failed(fairy, exc, open_transaction=t is not None and t.begun)
        raise
    finally:
        fairy.close()


def _pg_failed(fairy: Any, exc: BaseException, *, open_transaction: bool = False) -> None:
    """Roll back after a failure; discard a broken connection; raise the store's error for it."""
    import psycopg2

    conn: Any = fairy.driver_connection
    try:
        if conn is not None and not conn.closed:
            if open_transaction:  # an explicit BEGIN went out (autocommit mode): end it explicitly
                with conn.cursor() as cursor:
                    cursor.execute("ROLLBACK")
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
