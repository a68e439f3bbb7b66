"""One-statement reads outside transactions (relate.store.rawread), on both backends."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import psycopg2
import psycopg2.errors
import pytest
from sqlalchemy import bindparam, select, text

from relate.config import Settings
from relate.db import get_engine
from relate.db.models import Domain
from relate.store import accounts, rawread
from relate.store.session import pg_write, transaction

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


# -- prepared statements (PostgreSQL) ----------------------------------------------------------

DOMAINS_PAGE = rawread.Statement(
    select(Domain.name).where(Domain.name.like(bindparam("pattern"))).order_by(Domain.name)
    .limit(bindparam("limit")).offset(bindparam("offset")),
    prepared=True,
    literals=("limit", "offset"),
)
DOMAIN_PREPARED = rawread.Statement(DOMAIN_BY_NAME.statement, prepared=True)


def _prepared_here() -> dict[str, tuple[int, int]]:
    """Prepared statements of the connection the next read gets: name -> (generic, custom) plans."""
    found = rawread.rows(rawread.Statement(text(
        "SELECT name, generic_plans, custom_plans FROM pg_prepared_statements")), {})
    return {str(name): (int(generic), int(custom)) for name, generic, custom in found}


@pytest.fixture
def one_connection(store: Settings) -> Iterator[None]:
    """Every read on the same pooled connection, so what it has prepared can be seen."""
    engine = get_engine()
    engine.dispose()
    engine.pool._pool.maxsize = 1  # type: ignore[attr-defined]
    engine.pool._max_overflow = 0  # type: ignore[attr-defined]
    yield
    engine.dispose()


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_prepared_statements_answer_as_plain_ones_with_one_generic_plan(one_connection: None) -> None:
    for name in ("a.test", "b.test", "c.test", "d.test"):
        accounts.add_domain(name)
    plain = rawread.Statement(DOMAINS_PAGE.statement)
    for limit, offset in [(2, 0), (2, 2), (3, 1), (2, 0), (2, 0)]:
        params = {"pattern": "%.test", "limit": limit, "offset": offset}
        assert rawread.rows(DOMAINS_PAGE, params) == rawread.rows(plain, params)
    assert [r[0] for r in rawread.rows(DOMAIN_PREPARED, {"name": "b.test"})] == ["b.test"]
    assert rawread.rows(DOMAIN_PREPARED, {"name": "nowhere.test"}) == []
    prepared = _prepared_here()
    page = f"relate_{DOMAINS_PAGE.serial}"
    # One statement per LIMIT and OFFSET written into it; every run used the generic plan.
    assert prepared == {f"{page}_2_0": (3, 0), f"{page}_2_2": (1, 0), f"{page}_3_1": (1, 0),
                        f"relate_{DOMAIN_PREPARED.serial}": (2, 0)}


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_a_connection_keeps_at_most_max_prepared(one_connection: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rawread, "MAX_PREPARED", 3)
    for offset in range(6):
        rawread.rows(DOMAINS_PAGE, {"pattern": "%", "limit": 1, "offset": offset})
    page = f"relate_{DOMAINS_PAGE.serial}"
    assert set(_prepared_here()) == {f"{page}_1_3", f"{page}_1_4", f"{page}_1_5"}  # the most recent


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_prepared_statements_survive_failures_and_discard_all(one_connection: None) -> None:
    accounts.add_domain("example.test")
    assert rawread.rows(DOMAIN_PREPARED, {"name": "example.test"})
    failing = rawread.Statement(select(Domain.name).where(Domain.id == bindparam("n") / bindparam("zero")),
                                prepared=True)
    with pytest.raises(psycopg2.errors.DivisionByZero):
        rawread.rows(failing, {"n": 1, "zero": 0})
    assert [r[0] for r in rawread.rows(DOMAIN_PREPARED, {"name": "example.test"})] == ["example.test"]
    pg_write("DISCARD ALL")  # behind rawread's back
    assert [r[0] for r in rawread.rows(DOMAIN_PREPARED, {"name": "example.test"})] == ["example.test"]
    with pytest.raises(TypeError):
        rawread.rows(DOMAINS_PAGE, {"pattern": "%", "limit": "1", "offset": 0})


def test_prepared_statements_run_as_plain_ones_on_sqlite(store: Settings) -> None:
    accounts.add_domain("example.test")
    params = {"pattern": "%.test", "limit": 5, "offset": 0}
    assert [r[0] for r in rawread.rows(DOMAINS_PAGE, params)] == ["example.test"]
