"""Exclusive per-user locks that span processes and hosts (the POP3 maildrop lock, RFC 1939 §8).

On PostgreSQL a lock is a session-level advisory lock held on a dedicated connection: if the
holding process dies or its connection drops, PostgreSQL releases it at once. On SQLite (one
process) it is an in-process set.
"""

from __future__ import annotations

import threading
from typing import Any

from relate.db import get_engine
from relate.store.errors import TemporaryFailure

POP3_MAILDROP = 0x504F5033  # "POP3": advisory lock class for maildrop locks

_local_held: set[tuple[int, int]] = set()
_local_lock = threading.Lock()


class UserLock:
    """A held lock; release() (or the context manager) gives it back. Idempotent."""

    def __init__(self, kind: int, user_id: int, conn: Any = None):
        self.kind = kind
        self.user_id = user_id
        self._conn = conn  # dedicated psycopg2 connection on PostgreSQL
        self.held = True

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        if self._conn is not None:
            try:
                # Unlock first: the lock is free when release() returns, not only once the
                # server has noticed the closed connection.
                with self._conn.cursor() as cur:
                    cur.execute("SELECT pg_advisory_unlock(%s, %s)", (self.kind, self.user_id))
            except Exception:
                pass
            try:
                self._conn.close()  # closing the session releases its advisory locks anyway
            except Exception:
                pass
        else:
            with _local_lock:
                _local_held.discard((self.kind, self.user_id))

    def __enter__(self) -> UserLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __del__(self) -> None:
        self.release()


def try_lock(kind: int, user_id: int) -> UserLock | None:
    """Take the lock without waiting; None when someone else holds it."""
    engine = get_engine()
    if engine.dialect.name != "postgresql":
        with _local_lock:
            if (kind, user_id) in _local_held:
                return None
            _local_held.add((kind, user_id))
        return UserLock(kind, user_id)
    import psycopg2

    from relate.store import postgres_dsn

    dsn = postgres_dsn(str(engine.url.render_as_string(hide_password=False)))
    try:
        conn = psycopg2.connect(dsn, connect_timeout=5, application_name="relate-lock")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT pg_try_advisory_lock(%s, %s)", (kind, user_id))
            row = cur.fetchone()
    except psycopg2.Error as exc:
        raise TemporaryFailure("database temporarily unavailable") from exc
    if not row or not row[0]:
        conn.close()
        return None
    return UserLock(kind, user_id, conn)
