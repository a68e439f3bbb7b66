"""Connections kept at hand for the bare-cursor reads and writes (relate.store.hotconn): reused
without a pool checkout, never kept after a failure, recovered after the database connection
drops, and never keeping the ORM's transactions from a pool connection."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg2
import pytest
from sqlalchemy import event, text

from relate import db
from relate.config import Settings
from relate.db import get_engine
from relate.store import accounts, hotconn, mailboxes
from relate.store.errors import TemporaryFailure
from relate.store.session import pg_read, pg_write, transaction


def _backend_pid() -> int:
    with pg_read() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return int(cursor.fetchone()[0])


def _terminate(*pids: int) -> None:
    url = get_engine().url.set(drivername="postgresql").render_as_string(hide_password=False)
    killer = psycopg2.connect(url)
    killer.autocommit = True
    with killer.cursor() as cur:
        for pid in pids:
            cur.execute("SELECT pg_terminate_backend(%s)", (pid,))
    killer.close()


@pytest.fixture(autouse=True)
def _fresh_pool_after(pg_store: Settings) -> Iterator[None]:
    """No connection a test killed is left in the pool for the next test."""
    yield
    get_engine().dispose()


@pytest.fixture
def checkouts(pg_store: Settings) -> Iterator[list[int]]:
    """One element per checkout from the engine's pool from now on."""
    counted: list[int] = []

    def count(*_: object) -> None:
        counted.append(1)

    engine = get_engine()
    event.listen(engine, "checkout", count)
    yield counted
    event.remove(engine, "checkout", count)


def test_a_kept_connection_serves_the_next_read_without_a_pool_checkout(checkouts: list[int]) -> None:
    first = _backend_pid()
    taken = len(checkouts)
    for _ in range(5):
        assert _backend_pid() == first
    assert len(checkouts) == taken
    with transaction() as t:  # the ORM still gets a pool connection, another one
        assert t.s.execute(text("SELECT pg_backend_pid()")).scalar() != first


def test_kept_connections_are_in_autocommit_and_pooled_ones_are_not(pg_store: Settings) -> None:
    _backend_pid()
    with pg_read() as cursor:
        assert cursor.connection.autocommit
    with transaction() as t:  # what the ORM gets from the pool is in transaction mode
        assert not t.s.connection().connection.dbapi_connection.autocommit  # type: ignore[union-attr]
    kept = hotconn.of(get_engine())
    assert kept._idle
    kept.give_back(kept.borrow())
    kept._to_pool(*kept._idle.pop())  # as when it rested too long: back in transaction mode
    with transaction() as t:
        assert not t.s.connection().connection.dbapi_connection.autocommit  # type: ignore[union-attr]


def test_a_connection_whose_statement_failed_is_not_kept(checkouts: list[int]) -> None:
    pid = _backend_pid()
    with pytest.raises(psycopg2.Error), pg_read() as cursor:
        cursor.execute("SELECT * FROM no_such_table")
    taken = len(checkouts)
    _backend_pid()
    assert len(checkouts) == taken + 1  # it went back to the pool, rolled back
    with transaction() as t:  # which still hands out working transactions
        assert t.s.execute(text("SELECT 1")).scalar() == 1
    assert pid > 0


def test_reads_and_writes_recover_after_the_connection_drops(pg_store: Settings) -> None:
    user = accounts.create_user("carol@example.com")
    box = mailboxes.get_mailbox(user.id, "INBOX")
    pid = _backend_pid()
    _terminate(pid)
    with pytest.raises(TemporaryFailure):
        pg_write("UPDATE mailboxes SET uid_next = uid_next + 1 WHERE id = %(m)s RETURNING uid_next", {"m": box.id})
    assert pg_write("UPDATE mailboxes SET uid_next = uid_next + 1 WHERE id = %(m)s RETURNING uid_next",
                    {"m": box.id}) == [(box.uid_next + 1,)]  # the failed one changed nothing
    assert _backend_pid() != pid


def test_one_drop_discards_every_kept_connection(pg_store: Settings) -> None:
    # Two connections kept (the pool holds 5, so 2 may rest), both of them killed, as a
    # server restart would: one failure, then the next read and write work.
    kept = hotconn.of(get_engine())
    with pg_read() as a, pg_read() as b:
        a.execute("SELECT pg_backend_pid()")
        b.execute("SELECT pg_backend_pid()")
        pids = (a.fetchone()[0], b.fetchone()[0])
    assert len(kept._idle) == 2
    _terminate(*pids)
    with pytest.raises(TemporaryFailure), pg_read() as cursor:
        cursor.execute("SELECT 1")
    assert kept._idle == []
    assert _backend_pid() not in pids
    assert pg_write("SELECT 7") == [(7,)]


def test_a_connection_that_rested_goes_back_to_the_pool_which_pings_it(
    pg_store: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    get_engine().dispose()  # the connection kept below is then the only one the pool has
    pid = _backend_pid()
    _terminate(pid)
    # As if it had rested PING_AFTER_IDLE seconds: it goes back to the pool, whose checkout
    # pings it, finds it dead and connects afresh, so the read does not fail.
    monkeypatch.setattr(hotconn, "PING_AFTER_IDLE", 0.0)
    monkeypatch.setattr(db.engine, "PING_AFTER_IDLE", 0.0)
    assert _backend_pid() != pid


def test_a_pool_of_one_keeps_nothing_back_from_the_orm(pg_store: Settings) -> None:
    engine = get_engine()
    engine.dispose()
    pool = engine.pool
    size, overflow, timeout = pool._pool.maxsize, pool._max_overflow, pool._timeout  # type: ignore[attr-defined]
    pool._pool.maxsize, pool._max_overflow, pool._timeout = 1, 0, 1  # type: ignore[attr-defined]
    try:
        _backend_pid()
        assert hotconn.of(engine)._idle == []
        with transaction() as t:  # would wait for the pool's timeout if the read had kept it
            assert t.s.execute(text("SELECT 1")).scalar() == 1
    finally:
        engine.dispose()
        engine.pool._pool.maxsize, engine.pool._max_overflow, engine.pool._timeout = size, overflow, timeout  # type: ignore[attr-defined]


def test_disposing_the_engine_closes_the_kept_connections(pg_store: Settings) -> None:
    _backend_pid()
    kept = hotconn.of(get_engine())
    conns = [fairy.driver_connection for fairy, _ in kept._idle]
    assert conns
    get_engine().dispose()
    assert kept._idle == []
    assert all(conn.closed for conn in conns)
    assert _backend_pid() > 0


def test_a_connection_lent_out_when_another_one_failed_is_closed_when_given_back(pg_store: Settings) -> None:
    kept = hotconn.of(get_engine())
    with pg_read() as cursor:
        lent = cursor.connection
        kept.connection_failed()  # another borrower's connection broke meanwhile
        cursor.execute("SELECT 1")
    assert lent.closed and kept._idle == []
    assert _backend_pid() > 0  # and the pool connects afresh
