"""Database engine: one per process, cooperative under gevent.

Invariants:
- On PostgreSQL, psycopg2 runs in asynchronous mode with a gevent wait callback, so a slow
  query parks only its own greenlet; the hub keeps serving every other connection.
- On SQLite (the embedded default) calls are short and local; writes are serialised through
  one process-wide gevent lock held by `relate.store.tx`, so a greenlet never blocks the hub
  in SQLite's busy handler waiting for another greenlet of the same process.
- A connection that sat idle in the pool for more than PING_AFTER_IDLE seconds is pinged
  before use; one in steady use is not (a ping is a round trip on every checkout). A
  connection that fails mid-use invalidates the whole pool (SQLAlchemy's disconnect
  handling), so after a PostgreSQL restart at most one unit of work per process sees
  `TemporaryFailure` before fresh connections are made.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from gevent.socket import wait_read, wait_write
from psycopg2.extensions import POLL_OK, POLL_READ, POLL_WRITE
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.pool import NullPool

log = logging.getLogger("relate.db")

_engine: Engine | None = None
_engine_url: str | None = None
_lock = threading.Lock()
PING_AFTER_IDLE = 2.0  # seconds a pooled connection may rest before it is pinged on checkout
RESTED_AT = "relate_rested_at"  # record info: time.monotonic() since when the connection rests


def gevent_wait_callback(conn: Any, timeout: float | None = None) -> None:
    """psycopg2 wait callback: poll the connection, yielding to the gevent hub while it waits.
    Runs around every statement, so what it uses is imported once, at module level."""
    while True:
        state = conn.poll()
        if state == POLL_OK:
            return
        if state == POLL_READ:
            wait_read(conn.fileno(), timeout=timeout)
        elif state == POLL_WRITE:
            wait_write(conn.fileno(), timeout=timeout)
        else:  # pragma: no cover - psycopg2 never returns anything else
            raise conn.OperationalError(f"bad poll state {state!r}")


def make_cooperative() -> None:
    """Install the gevent wait callback for psycopg2 (idempotent)."""
    try:
        import psycopg2.extensions as ext
    except ImportError:  # pragma: no cover - psycopg2 is a hard dependency
        return
    ext.set_wait_callback(gevent_wait_callback)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL is durable across process kills
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def _sqlite_begin(conn: Any) -> None:
    deferred = conn.get_execution_options().get("relate_readonly", False)
    conn.exec_driver_sql("BEGIN" if deferred else "BEGIN IMMEDIATE")


def _install_idle_ping(engine: Engine) -> None:
    """Ping on checkout only connections that rested in the pool longer than PING_AFTER_IDLE."""

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_conn: Any, record: Any) -> None:
        if record is not None:
            record.info[RESTED_AT] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        rested = record.info.get(RESTED_AT)
        if rested is None or time.monotonic() - rested < PING_AFTER_IDLE:
            return  # brand new, or in steady use
        try:
            cur = dbapi_conn.cursor()
            try:
                cur.execute("SELECT 1")
            finally:
                cur.close()
            dbapi_conn.rollback()
        except Exception as exc:  # any failure means this connection is gone
            raise DisconnectionError(f"stale pooled connection: {exc}") from exc


def create(url: str, *, pool_size: int = 10, echo: bool = False) -> Engine:
    """Create an engine for `url` (already normalised by relate.config)."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            echo=echo,
            poolclass=NullPool if path == ":memory:" else None,
            connect_args={"check_same_thread": False, "timeout": 10},
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        # SQLite's own BEGIN is deferred; BEGIN IMMEDIATE takes the write lock up front so two
        # processes never deadlock upgrading read locks.
        # Read-only sessions (relate.store.session.read) use a deferred BEGIN: WAL readers
        # never wait for a writer.
        event.listen(engine, "begin", _sqlite_begin)

        @event.listens_for(engine, "connect")
        def _no_pysqlite_begin(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None

        return engine
    make_cooperative()
    engine = create_engine(
        url,
        echo=echo,
        pool_size=pool_size,
        max_overflow=pool_size * 4,
        pool_recycle=1800,
        pool_timeout=30,
        # Most recently used first: a steady load keeps reusing the same few warm backends
        # (plans cached, catalogs in memory) instead of rotating over every connection a past
        # burst opened, and the rest stay idle until recycled.
        pool_use_lifo=True,
        connect_args={"connect_timeout": 5, "application_name": "relate"},
    )
    _install_idle_ping(engine)
    return engine


def configure(url: str, **kwargs: Any) -> Engine:
    """Set the process-wide engine (replacing any previous one with a different URL)."""
    global _engine, _engine_url
    with _lock:
        if _engine is not None and _engine_url == url:
            return _engine
        if _engine is not None:
            _engine.dispose()
        _engine = create(url, **kwargs)
        _engine_url = url
        return _engine


def get_engine() -> Engine:
    if _engine is None:
        raise RuntimeError("database not configured: call relate.db.configure() first")
    return _engine


def dispose() -> None:
    global _engine, _engine_url
    with _lock:
        if _engine is not None:
            _engine.dispose()
        _engine = None
        _engine_url = None
