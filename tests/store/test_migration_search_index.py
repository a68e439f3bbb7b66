"""alembic 0006 (deferred search indexing) on PostgreSQL, with mail stored: down to the full
GIN indexes and up again; bodies stored before the upgrade count as indexed, without the
table being rewritten, and every search finds the same messages at each step."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Connection, inspect, text

from relate import db, store
from relate.db import migrate
from relate.store import accounts, mailboxes, messages, searchindex
from relate.store import search as store_search
from tests.conftest import make_settings
from tests.store.helpers import make_message
from tests.store.migrations import bodies_without_wire_size, run_step

BEFORE = "0005_subscriptions"


def _indexes(conn: Connection) -> dict[str, str]:
    rows = conn.execute(text("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'message_bodies'"))
    return dict(rows.all())


def _document_hits(conn: Connection, word: str) -> int:
    """Bodies whose full-text document has `word`, whatever index serves it."""
    query = text(f"SELECT count(*) FROM message_bodies WHERE {store_search.FTS_DOCUMENT} @@ CAST(:q AS tsquery)")
    return int(conn.execute(query, {"q": word}).scalar_one())


def test_deferred_search_index_migrates_down_and_up(fresh_pg: str, tmp_path: Path) -> None:
    store.open_store(make_settings(fresh_pg, tmp_path), migrate=True, pool_size=2)
    user = accounts.create_user("migrate@example.com")
    inbox = mailboxes.get_mailbox(user.id, "INBOX").id
    for i in range(3):
        messages.append(user.id, inbox, make_message(f"early {i}", body=f"kingfisher number{i}\r\n"))
    searchindex.index_all()
    messages.append(user.id, inbox, make_message("waiting", body="kingfisher still waiting\r\n"))
    engine = db.get_engine()
    with engine.connect() as conn:
        trigrams = "ix_message_bodies_trgm_indexed" in _indexes(conn)

    run_step(engine, "downgrade", BEFORE)
    with engine.connect() as conn:
        assert "indexed" not in {c["name"] for c in inspect(conn).get_columns("message_bodies")}
        indexes = _indexes(conn)
        assert "ix_message_bodies_fts" in indexes and "WHERE" not in indexes["ix_message_bodies_fts"]
        assert ("ix_message_bodies_search_trgm" in indexes) == trigrams
        assert not {"ix_message_bodies_fts_indexed", "ix_message_bodies_trgm_indexed",
                    "ix_message_bodies_unindexed"} & set(indexes)
        assert _document_hits(conn, "kingfisher") == 4
    with bodies_without_wire_size():  # stored under 0005: in the full indexes
        for i in range(2):
            messages.append(user.id, inbox, make_message(f"late {i}", body=f"kingfisher late{i}\r\n"))
    with engine.connect() as conn:
        filenode = conn.execute(text("SELECT pg_relation_filenode('message_bodies')")).scalar_one()

    run_step(engine, "upgrade", "head")
    assert migrate.is_current(engine)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT pg_relation_filenode('message_bodies')")).scalar_one() == filenode
        assert conn.execute(text("SELECT bool_and(indexed), count(*) FROM message_bodies")).one() == (True, 6)
        indexes = _indexes(conn)
        assert indexes["ix_message_bodies_fts_indexed"].endswith("WHERE indexed")
        assert indexes["ix_message_bodies_unindexed"].endswith("WHERE (NOT indexed)")
        assert ("ix_message_bodies_trgm_indexed" in indexes) == trigrams
        assert not {"ix_message_bodies_fts", "ix_message_bodies_search_trgm"} & set(indexes)
    assert searchindex.waiting() == (0, None)
    messages.append(user.id, inbox, make_message("after", body="kingfisher after\r\n"))
    assert searchindex.waiting()[0] == 1  # new bodies wait for the indexer again
    uids = store_search.fulltext_uids(user.id, inbox, "body", "kingfisher")
    assert uids == {1, 2, 3, 4, 5, 6, 7}
    searchindex.index_all()
    assert store_search.fulltext_uids(user.id, inbox, "body", "kingfisher") == uids
