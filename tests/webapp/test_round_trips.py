"""What one authenticated request costs the database: the hot reads run one statement each,
outside any transaction (relate.store.rawread), and authentication is one of them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event

from relate.db import get_engine
from relate.store import keys, rawread
from tests.webapp.conftest import MakeApi
from tests.webapp.resources_fixtures import deliver, make_message, make_user

pytestmark = pytest.mark.parametrize("backend", ["postgres"], indirect=True)


class Tally:
    def __init__(self) -> None:
        self.statements: list[str] = []  # one-statement reads
        self.session_statements = 0  # statements through SQLAlchemy sessions and connections
        self.transactions = 0  # BEGINs SQLAlchemy issued


@pytest.fixture
def tally(monkeypatch: pytest.MonkeyPatch) -> Iterator[Tally]:
    counted = Tally()
    real_run, real_run_prepared = rawread._run, rawread._run_prepared

    def run(sql: str, values: dict[str, Any]) -> list[Any]:
        counted.statements.append(sql)
        return real_run(sql, values)

    def run_prepared(statement: rawread.Statement, compiled: Any, values: dict[str, Any]) -> list[Any]:
        counted.statements.append(compiled.string)
        return real_run_prepared(statement, compiled, values)

    def on_statement(*_: Any) -> None:
        counted.session_statements += 1

    def on_begin(*_: Any) -> None:
        counted.transactions += 1

    monkeypatch.setattr(rawread, "_run", run)
    monkeypatch.setattr(rawread, "_run_prepared", run_prepared)
    engine = get_engine()
    event.listen(engine, "before_cursor_execute", on_statement)
    event.listen(engine, "begin", on_begin)
    yield counted
    event.remove(engine, "before_cursor_execute", on_statement)
    event.remove(engine, "begin", on_begin)


def test_a_page_costs_two_statements_and_no_transaction(api: MakeApi, tally: Tally) -> None:
    server = api()
    alice = make_user("alice")
    deliver(make_message("Quarterly figures", body="The invoice is attached.\r\n"), alice.address)
    http = server.http.bearer(alice.keys["read"])
    paths = ("/api/emails?mailbox=INBOX&pageSize=50&page=1", "/api/emails/search?q=invoice&pageSize=50")
    for path in paths:  # first use: last_used_at is written, the search term's lexemes are read
        assert http.get(path).status_code == 200
    for path in paths:
        tally.statements.clear()
        tally.session_statements = tally.transactions = 0
        response = http.get(path)
        assert response.status_code == 200 and response.json()["totalCount"] == 1, response.text
        assert len(tally.statements) == 2, tally.statements  # the key (with its owner), the page
        assert (tally.session_statements, tally.transactions) == (0, 0)


def test_a_revoked_key_is_refused_by_every_replica_at_once(api: MakeApi) -> None:
    first, second = api(), api()
    alice = make_user("alice")
    key = alice.keys["read"]
    info = next(k for k in keys.list_keys(alice.id) if k.prefix == keys.split_key(key)[0])  # type: ignore[index]
    for replica in (first, second):
        assert replica.http.bearer(key).get("/api/session").status_code == 200
    keys.revoke_key(info.id)
    for replica in (first, second):
        assert replica.http.bearer(key).get("/api/session").status_code == 401
