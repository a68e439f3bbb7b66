"""relate.store.searchindex: bodies are delivered unindexed (PostgreSQL) and found all the same;
the indexer indexes each body once, several at a time, all or nothing; the search statements
still use the partial GIN indexes for indexed bodies."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import gevent
import pytest
from sqlalchemy import event, text

from relate import db
from relate.config import Settings
from relate.store import (
    Envelope,
    accounts,
    bulkload,
    groupcommit,
    listing,
    mailboxes,
    messages,
    rawread,
    searchindex,
)
from relate.store import search as store_search
from relate.store.errors import TemporaryFailure
from tests.protocol.conftest import wait_until
from tests.store.helpers import make_message

BODIES = [
    # (subject, body)
    ("Quarterly invoices", "Please find the invoices attached.\r\nRegards"),
    ("Lunch on Friday", "Shall we have LUNCH on Friday at noon?"),
    ("Re: invoice", "Thanks, paid. Contact billing@example.org about the voice mail."),
    ("Grüße", "Viele Grüße aus München, STRASSE 5"),
]
REST_QUERIES = ["invoice", "lunch", "friday noon", "billing@example.org", '"paid. contact"', "grüße", "nothing"]
IMAP_SEARCHES = [("body", "voice"), ("body", "INVOICES ATTACHED"), ("text", "friday"), ("text", "example.org"),
                 ("body", "grüße"), ("body", "absent")]


def _indexed_flags() -> list[bool]:
    with db.get_engine().connect() as conn:
        return [bool(v) for (v,) in conn.execute(text("SELECT indexed FROM message_bodies ORDER BY id"))]


def _deliver_all(user: Any) -> None:
    for subject, body in BODIES:
        raw = make_message(subject, to=user.primary_address, body=body + "\r\n")
        groupcommit.deliver(raw, Envelope("alice@example.com", (user.primary_address,)))


def _results(user_id: int, inbox: int) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for q in REST_QUERIES:
        page = listing.list_page(user_id, listing.Filters(text=q))
        found[f"list {q}"] = (sorted(r.id for r in page.rows), page.total)
        found[f"rest {q}"] = sorted(store_search.search_entries(user_id, q))
    for field, value in IMAP_SEARCHES:
        found[f"imap {field} {value}"] = sorted(store_search.fulltext_uids(user_id, inbox, field, value))
    return found


def test_found_at_once_and_the_same_after_indexing(store: Settings) -> None:
    user = accounts.create_user("carol@example.com")
    inbox = mailboxes.get_mailbox(user.id, "INBOX").id
    _deliver_all(user)
    postgres = searchindex.enabled()
    assert _indexed_flags() == [not postgres] * len(BODIES)  # SQLite: nothing ever waits
    before = _results(user.id, inbox)
    assert before["list invoice"][1] == 2 and before["imap body voice"] == [1, 3]
    assert before["rest billing@example.org"] and before["list grüße"][1] == 1
    assert before["imap body absent"] == [] and before["list nothing"] == ([], 0)

    assert searchindex.index_all() == (len(BODIES) if postgres else 0)
    assert _indexed_flags() == [True] * len(BODIES)
    assert _results(user.id, inbox) == before
    assert searchindex.waiting() == (0, None)


def test_other_users_waiting_bodies_are_not_found(store: Settings) -> None:
    carol = accounts.create_user("carol@example.com")
    dave = accounts.create_user("dave@example.com")
    _deliver_all(dave)
    assert listing.list_page(carol.id, listing.Filters(text="invoice")).total == 0
    assert store_search.search_entries(carol.id, "invoice") == []
    assert listing.list_page(dave.id, listing.Filters(text="invoice")).total == 2


def _append_many(user_id: int, count: int, size: int = 0) -> None:
    inbox = mailboxes.get_mailbox(user_id, "INBOX").id
    filler = "lorem ipsum dolor sit amet consectetur " * (size // 40)
    for i in range(count):
        messages.append(user_id, inbox, make_message(f"message {i}", body=f"word{i} {filler}\r\n"))


def test_two_indexers_index_each_body_once(pg_store: Settings) -> None:
    user = accounts.create_user("carol@example.com")
    _append_many(user.id, 120)
    taken: list[list[int]] = [[], []]

    def runner(ids: list[int]) -> None:
        while True:
            batch = searchindex.index_batch(5)
            ids.extend(batch)
            if not batch and not searchindex.waiting(1)[0]:
                return
            gevent.sleep(0)

    gevent.joinall([gevent.spawn(runner, taken[0]), gevent.spawn(runner, taken[1])], raise_error=True)
    assert not set(taken[0]) & set(taken[1])
    assert len(taken[0]) + len(taken[1]) == 120
    assert _indexed_flags() == [True] * 120


def _wait_for_batch_statement() -> int:
    """The backend pid of an indexing statement once PostgreSQL is running it."""
    pids: list[int] = []

    def running() -> bool:
        pid = _backend_running("WITH turn")
        pids.extend([pid] if pid else [])
        return bool(pid)

    wait_until(running, timeout=10)
    return pids[0]


def test_one_batch_runs_at_a_time_across_indexers(pg_store: Settings) -> None:
    user = accounts.create_user("carol@example.com")
    _append_many(user.id, 150, size=48_000)
    worker = gevent.spawn(searchindex.index_batch, 150)
    _wait_for_batch_statement()
    assert searchindex.index_batch(5) == []  # another process's turn: this one does nothing
    assert len(worker.get(timeout=60)) == 150
    assert _indexed_flags() == [True] * 150


def _backend_running(statement_start: str) -> int | None:
    with db.get_engine().connect() as conn:
        return conn.execute(
            text("SELECT pid FROM pg_stat_activity WHERE state = 'active' AND query LIKE :q AND pid <> pg_backend_pid()"),
            {"q": statement_start + "%"},
        ).scalar()


def test_an_indexer_killed_mid_batch_leaves_nothing_half_done(pg_store: Settings) -> None:
    user = accounts.create_user("carol@example.com")
    _append_many(user.id, 150, size=48_000)  # a batch of them takes PostgreSQL a while
    before = sorted(store_search.fulltext_uids(user.id, mailboxes.get_mailbox(user.id, "INBOX").id, "body", "word7"))
    worker = gevent.spawn(searchindex.index_batch, 150)
    pid = _wait_for_batch_statement()
    with db.get_engine().connect() as conn:
        assert conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar()
    worker.join(10)
    assert isinstance(worker.exception, TemporaryFailure)
    assert _indexed_flags() == [False] * 150  # the batch rolled back whole
    assert searchindex.index_all() == 150
    assert _indexed_flags() == [True] * 150
    inbox = mailboxes.get_mailbox(user.id, "INBOX").id
    assert sorted(store_search.fulltext_uids(user.id, inbox, "body", "word7")) == before


def test_the_indexer_indexes_what_was_delivered_once_deliveries_pause(pg_store: Settings) -> None:
    user = accounts.create_user("carol@example.com")
    indexer = searchindex.Indexer(poll=0.02, max_backlog=1000, batch=8)
    indexer.start()
    try:
        _deliver_all(user)
        wait_until(lambda: searchindex.waiting() == (0, None), timeout=10)
    finally:
        indexer.stop()
    assert _indexed_flags() == [True] * len(BODIES)


def test_the_indexer_keeps_up_with_a_stream_beyond_its_backlog_bound(pg_store: Settings) -> None:
    """Deliveries that never pause: bodies are indexed once more than `max_backlog` wait."""
    user = accounts.create_user("carol@example.com")
    indexer = searchindex.Indexer(poll=0.02, max_backlog=10, batch=4)
    inbox = mailboxes.get_mailbox(user.id, "INBOX").id
    indexer.start()
    try:
        for i in range(60):
            messages.append(user.id, inbox, make_message(f"stream {i}"))
        waiting, _ = searchindex.waiting()
        assert waiting < 60, "indexing went on while deliveries did"
    finally:
        indexer.stop()


# -- the plans: the partial indexes still serve the indexed bodies ---------------------------


@pytest.fixture
def big_mailbox(pg_store: Settings) -> Iterator[tuple[int, int]]:
    """A mailbox of 2,000 indexed messages and a few waiting ones, analysed."""
    user = accounts.create_user("carol@example.com")
    inbox = mailboxes.get_mailbox(user.id, "INBOX").id
    when = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    items = (bulkload.Item(make_message(f"filler {i}", body=f"routine update number{i}\r\n"), [], when)
             for i in range(2000))
    bulkload.append_many(user.id, inbox, items)
    _deliver_all(user)
    # As autovacuum would: GIN's pending list merged (the planner shuns an index whose pending
    # list it would have to scan whole) and statistics gathered.
    with db.get_engine().connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE message_bodies"))
        conn.execute(text("ANALYZE entries"))
    yield user.id, inbox


def _statements(run: Any) -> list[tuple[str, Any]]:
    """Every statement `run()` sends, with its parameters."""
    seen: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        seen.append((statement, parameters))

    original, original_prepared = rawread._run, rawread._run_prepared
    engine = db.get_engine()
    event.listen(engine, "before_cursor_execute", record)
    rawread._run = lambda sql, values: (seen.append((sql, values)), original(sql, values))[1]  # type: ignore[assignment]
    rawread._run_prepared = lambda statement, compiled, values: (  # type: ignore[assignment]
        seen.append((compiled.string, values)), original_prepared(statement, compiled, values))[1]
    try:
        run()
    finally:
        rawread._run, rawread._run_prepared = original, original_prepared  # type: ignore[assignment]
        event.remove(engine, "before_cursor_execute", record)
    return seen


def _plans(statements: list[tuple[str, Any]], marker: str) -> list[str]:
    plans = []
    fairy = db.get_engine().raw_connection()
    try:
        cursor = fairy.cursor()
        cursor.execute("SET enable_seqscan = off")
        for sql, params in statements:
            if marker in sql:
                cursor.execute("EXPLAIN " + sql, params)
                plans.append("\n".join(row[0] for row in cursor.fetchall()))
        fairy.rollback()
    finally:
        fairy.close()
    assert plans, f"no statement with {marker}"
    return plans


def test_rest_search_uses_the_full_text_index_for_indexed_bodies(big_mailbox: tuple[int, int]) -> None:
    user_id, _ = big_mailbox
    found: list[Any] = []
    statements = _statements(lambda: found.append(listing.list_page(user_id, listing.Filters(text="invoice"))))
    assert found[0].total == 2
    for plan in _plans(statements, "to_tsvector"):
        assert "ix_message_bodies_fts_indexed" in plan, plan
        assert "ix_message_bodies_unindexed" in plan, plan


def test_imap_body_search_uses_the_trigram_index_for_indexed_bodies(big_mailbox: tuple[int, int]) -> None:
    user_id, inbox = big_mailbox
    with db.get_engine().connect() as conn:
        if not conn.execute(text("SELECT 1 FROM pg_indexes WHERE indexname = 'ix_message_bodies_trgm_indexed'")).first():
            pytest.skip("pg_trgm is not available on this server (the migration leaves the index out)")
    found: list[set[int]] = []
    statements = _statements(lambda: found.append(store_search.fulltext_uids(user_id, inbox, "body", "voice mail")))
    assert len(found[0]) == 1
    for plan in _plans(statements, "lower(message_bodies.search_text)"):
        assert "ix_message_bodies_trgm_indexed" in plan, plan
        assert "ix_message_bodies_unindexed" in plan, plan
