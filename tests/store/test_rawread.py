"""One-statement reads outside transactions (relate.store.rawread), on both backends."""

from __future__ import annotations

import datetime as dt

import psycopg2
import pytest
from sqlalchemy import bindparam, select

from relate.config import Settings
from relate.db import get_engine
from relate.db.models import Domain
from relate.store import accounts, rawread
from relate.store.session import transaction

DOMAIN_BY_NAME = rawread.Statement(select(Domain.name, Domain.created_at).where(Domain.name == bindparam("name")))


def test_rows_and_their_timestamps(store: Settings) -> None:
    accounts.add_domain("example.test")
    found = rawread.rows(DOMAIN_BY_NAME, {"name": "example.test"})
    assert [row[0] for row in found] == ["example.test"]
    created = rawread.utc(found[0][1])
    assert created.tzinfo is dt.UTC and abs(dt.datetime.now(dt.UTC) - created) < dt.timedelta(minutes=5)
    assert rawread.rows(DOMAIN_BY_NAME, {"name": "nowhere.test"}) == []


def test_connections_go_back_to_the_pool_in_transaction_mode(store: Settings) -> None:
    rawread.rows(DOMAIN_BY_NAME, {"name": "example.test"})
    with pytest.raises(RuntimeError), transaction() as t:
        t.s.add(Domain(name="rolled-back.test"))
        t.s.flush()
        raise RuntimeError("abandon")
    assert rawread.rows(DOMAIN_BY_NAME, {"name": "rolled-back.test"}) == []


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_a_dead_pooled_connection_is_replaced(store: Settings) -> None:
    accounts.add_domain("example.test")
    engine = get_engine()
    engine.dispose()  # an empty pool ...
    borrowed = engine.raw_connection()
    pid = borrowed.dbapi_connection.get_backend_pid()  # type: ignore[union-attr]
    borrowed.close()  # ... holding one connection, which the next read gets back
    killer = psycopg2.connect(engine.url.set(drivername="postgresql").render_as_string(hide_password=False))
    killer.autocommit = True
    with killer.cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(%s)", (pid,))
    killer.close()
    assert [row[0] for row in rawread.rows(DOMAIN_BY_NAME, {"name": "example.test"})] == ["example.test"]
