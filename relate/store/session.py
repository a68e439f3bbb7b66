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
  (`RetryableConflict`, `TemporaryFailure`). Their connections come from a few kept checked
  out in autocommit mode (relate.store.hotconn), so a statement costs no pool checkout and
  checkin; only a connection whose use succeeded is kept, and a connection failure discards
  the kept ones.
- `pg_write()` sends a whole write as one message (no BEGIN, no COMMIT): PostgreSQL runs the
  statements of one simple-query message as one implicit transaction, each statement with a
  snapshot of its own (READ COMMITTED), commits at the end of the message, and only then
  tells the client it is done. A lock taken by its first statement is therefore held only
  while the server runs the rest, never across a round trip to this process, and its rows
  (those of its last statement) are returned after the commit.
- Hot statements run prepared (`execute_prepared`): planned once per connection, not on
  every call, with the same results; statements lost or gone stale are prepared again.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import re
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import gevent
import gevent.lock
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from relate.db import get_engine
from relate.store import hotconn
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
def pg_read(*, prepare: bool = False) -> Iterator[Any]:
    """A psycopg2 cursor in autocommit mode on a pooled connection (PostgreSQL only). A
    connection that fails is discarded and the failure is `TemporaryFailure`.

    With `prepare`, statements with parameters run prepared (see `prepared`): for hot reads
    whose parameters are the store's own values (ids, UIDs, MODSEQs), since a prepared
    statement's parameter has the type PostgreSQL inferred (a client's number too large for
    an integer column is an error there, where a literal merely matches nothing)."""
    with _pg_cursor() as (cursor, info):
        yield _PreparingCursor(cursor, info) if prepare else cursor


@contextlib.contextmanager
def _pg_cursor() -> Iterator[tuple[Any, dict[Any, Any]]]:
    """pg_read()'s cursor and its pooled connection's `info` (kept for the connection's life).
    The connection comes from, and after success goes back to, the engine's kept connections
    (relate.store.hotconn)."""
    kept = hotconn.of(get_engine())
    try:
        fairy = kept.borrow()
    except DBAPIError as exc:
        raise TemporaryFailure("database temporarily unavailable") from exc
    try:
        cursor = fairy.driver_connection.cursor()
        try:
            yield cursor, fairy.info
        finally:
            cursor.close()
    except BaseException as exc:
        try:
            _pg_failed(fairy, exc, kept)
        finally:
            kept.after_failure(fairy)
        raise
    kept.give_back(fairy)


def pg_write(sql: str | Sequence[str], params: Any = None) -> list[Any]:
    """Run `sql` (one or more statements, the last one returning rows) as one transaction in
    one message to PostgreSQL; the rows of the last statement, after the commit.

    Given as a sequence of statements (named parameters only), each runs as a statement
    prepared once per connection (`execute_prepared`): PostgreSQL plans it once, not on every call.
    """
    with _pg_cursor() as (cursor, info):
        if isinstance(sql, str):
            cursor.execute(sql, params)
        else:
            execute_prepared(cursor, info, sql, params)
        return list(cursor.fetchall()) if cursor.description is not None else []


# -- prepared statements ----------------------------------------------------------------------
#
# A hot write is several hundred bytes to a few KB of SQL whose planning costs PostgreSQL
# several times its execution. Each statement is prepared once per pooled connection
# (PREPARE, its %(name)s parameters numbered $1..$n in order of first use) and run as
# `EXECUTE name(%(a)s, ...)`, the values interpolated by psycopg2 as before. The names of the
# statements a connection has prepared live in the pool's per-connection `info` (SQLAlchemy
# clears it whenever the connection is closed or replaced), at most MAX_PREPARED, the least
# recently used deallocated first. A statement PostgreSQL cannot prepare (a parameter whose
# type it cannot infer) runs unprepared and is named in `UNPREPARED` (the tests check that no
# hot statement is there). A message whose prepared statements were dropped behind our back
# (DISCARD ALL or DEALLOCATE ALL on the connection) or went stale (a table under one changed
# type) failed whole, as one implicit transaction: they are prepared again and it runs once
# more. relate.store.rawread prepares its own statements (other names) on the same
# connections.

_PARAMETER = re.compile(r"%\(([^)]+)\)s|%s|%%")
MAX_PREPARED = 64
UNPREPARED: set[str] = set()
_MISSING = "26000"  # invalid_sql_statement_name
_DUPLICATE = "42P05"  # duplicate_prepared_statement


@functools.lru_cache(maxsize=1024)
def _prepared_form(sql: str) -> tuple[str, str, str]:
    """(name, PREPARE statement, EXECUTE statement with the same parameters) for `sql`, whose
    parameters are all named (%(name)s) or all positional (%s)."""
    names: list[str] = []
    positional = 0

    def number(match: re.Match[str]) -> str:
        nonlocal positional
        if match.group(0) == "%%":
            return "%"
        if match.group(0) == "%s":
            positional += 1
            return f"${positional}"
        if match.group(1) not in names:
            names.append(match.group(1))
        return f"${names.index(match.group(1)) + 1}"

    body = _PARAMETER.sub(number, sql)
    if names and positional:
        raise ValueError("named and positional parameters in one statement")
    name = "relate_" + hashlib.sha1(sql.encode()).hexdigest()[:24]
    arguments = [f"%({n})s" for n in names] or ["%s"] * positional
    return name, f"PREPARE {name} AS {body}", f"EXECUTE {name}({', '.join(arguments)})" if arguments else f"EXECUTE {name}"


class _PreparingCursor:
    """pg_read()'s cursor: a psycopg2 cursor whose parameterised statements run prepared."""

    __slots__ = ("_cursor", "_info")

    def __init__(self, cursor: Any, info: dict[Any, Any]) -> None:
        self._cursor = cursor
        self._info = info

    def execute(self, sql: Any, params: Any = None) -> None:
        if params is None or not isinstance(sql, str):
            self._cursor.execute(sql, params)
        else:
            execute_prepared(self._cursor, self._info, [sql], params)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._cursor)


_INT32 = 2**31


def preparable(params: Any) -> bool:
    """Whether these values mean the same as parameters of a prepared statement as they do as
    literals: a number beyond 32 bits (or a float) could be a different type from the one
    PostgreSQL inferred from the first call (an out-of-range error where a literal matches
    nothing, or rounding), so a statement given one runs unprepared."""
    values = params.values() if isinstance(params, dict) else params
    for value in values:
        if isinstance(value, list | tuple):
            if not preparable(value):
                return False
        elif isinstance(value, float) or (isinstance(value, int) and not -_INT32 <= value < _INT32):
            return False
    return True


def execute_prepared(cursor: Any, info: dict[Any, Any], statements: Sequence[str], params: Any) -> None:
    """Run `statements` as one message (one implicit transaction in autocommit mode), each as a
    statement prepared on the cursor's connection, whose pool `info` is given."""
    if not preparable(params or ()):
        cursor.execute("; ".join(statements), params)
        return
    for attempt in (1, 2):
        message = _prepare(cursor, info, statements)
        try:
            cursor.execute(message, params)
            return
        except Exception as exc:
            code = getattr(exc, "pgcode", None)
            if attempt == 2 or not (code == _MISSING or (code == "0A000" and "cached plan" in str(exc))):
                raise
            log.info("prepared statements lost or out of date on a connection; preparing again")
            known = info.setdefault("relate_prepared", OrderedDict())
            for sql in statements:
                name = _prepared_form(sql)[0]
                if known.pop(name, False) is None and code != _MISSING:
                    try:
                        cursor.execute(f"DEALLOCATE {name}")
                    except Exception as gone:  # already gone: prepared afresh below
                        if getattr(gone, "pgcode", None) != _MISSING:
                            raise
    raise AssertionError("unreachable")


def _prepare(cursor: Any, info: dict[Any, Any], statements: Sequence[str]) -> str:
    """The message running `statements` in order, each prepared on first use (PREPARE runs
    on its own in autocommit mode, so a refusal leaves no transaction behind)."""
    import psycopg2

    known: OrderedDict[str, None] = info.setdefault("relate_prepared", OrderedDict())
    out: list[str] = []
    for sql in statements:
        name, prepare, execute = _prepared_form(sql)
        if name in known:
            known.move_to_end(name)
        elif sql not in UNPREPARED:
            while len(known) >= MAX_PREPARED:
                cursor.execute(f"DEALLOCATE {known.popitem(last=False)[0]}")
            try:
                cursor.execute(prepare)
                known[name] = None
            except psycopg2.ProgrammingError as exc:
                if getattr(exc, "pgcode", None) == _DUPLICATE:  # prepared before we lost count
                    known[name] = None
                else:
                    UNPREPARED.add(sql)
                    log.warning("statement runs unprepared: %s", str(exc).strip().splitlines()[0])
            except psycopg2.DataError as exc:
                UNPREPARED.add(sql)
                log.warning("statement runs unprepared: %s", str(exc).strip().splitlines()[0])
        out.append(execute if name in known else sql)
    return "; ".join(out)


def _pg_failed(fairy: Any, exc: BaseException, kept: hotconn.HotConnections) -> None:
    """Roll back after a failure (the connection then goes back to the pool, not to the kept
    ones); discard a broken connection, and the kept ones with it; raise the store's error."""
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
        if fairy.is_valid:
            fairy.invalidate()
        kept.connection_failed()
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
