"""alembic 0008 (the entries' body index carries what a search reads of an entry): down and
up again on PostgreSQL with mail stored, the same search answer at each step, and the search
reading the entries from the index alone once it is there."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, text

from relate import db, store
from relate.store import accounts, listing, mailboxes, messages, searchindex
from tests.conftest import make_settings
from tests.store.helpers import make_message
from tests.store.migrations import run_step

BEFORE = "0007_entries_page_index"
COVERING = "CREATE INDEX ix_entries_body_id ON public.entries USING btree (body_id) INCLUDE (user_id, internal_date, id, seen)"
PLAIN = "CREATE INDEX ix_entries_body_id ON public.entries USING btree (body_id)"


def _body_index(engine: Engine) -> str:
    with engine.connect() as conn:
        return str(conn.execute(text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_entries_body_id'")).scalar_one())


def test_body_index_migrates_down_and_up(fresh_pg: str, tmp_path: Path) -> None:
    store.open_store(make_settings(fresh_pg, tmp_path), migrate=True, pool_size=2)
    user = accounts.create_user("migrate@example.com")
    inbox = mailboxes.get_mailbox(user.id, "INBOX").id
    for i in range(5):
        messages.append(user.id, inbox, make_message(f"note {i}", body=f"heron number{i}\r\n" if i % 2 else "nothing\r\n"))
    searchindex.index_all()
    engine = db.get_engine()

    def found() -> tuple[list[int], int, int]:
        page = listing.list_page(user.id, listing.Filters(text="heron"))
        return [r.id for r in page.rows], page.total, page.unseen

    expected = found()
    assert expected[1] == 2
    assert _body_index(engine) == COVERING
    run_step(engine, "downgrade", BEFORE)
    assert _body_index(engine) == PLAIN
    assert found() == expected
    run_step(engine, "upgrade", "head")
    assert _body_index(engine) == COVERING
    assert found() == expected


def test_search_reads_entries_from_the_index(fresh_pg: str, tmp_path: Path) -> None:
    """With the planner steered to the body index (as it chooses on a large mailbox), the
    entries of the matching bodies come from an index-only scan."""
    store.open_store(make_settings(fresh_pg, tmp_path), migrate=True, pool_size=2)
    user = accounts.create_user("plan@example.com")
    inbox = mailboxes.get_mailbox(user.id, "INBOX").id
    for i in range(20):
        messages.append(user.id, inbox, make_message(f"plan {i}", body="egret\r\n" if i % 4 == 0 else "dull\r\n"))
    searchindex.index_all()
    engine = db.get_engine()
    shape, params = listing._shape_and_params(user.id, listing.Filters(text="egret"), listing.DEFAULT_SORT, True)
    params.update(limit=50, offset=0)
    compiled = listing._page_select(shape).compile(dialect=engine.dialect)
    with engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        raw.commit()
        raw.autocommit = True
        with raw.cursor() as cur:
            cur.execute("VACUUM ANALYZE entries")
            cur.execute("SET enable_seqscan = off")
            cur.execute("EXPLAIN " + compiled.string, compiled.construct_params(params))
            plan = "\n".join(r[0] for r in cur.fetchall())
            cur.execute("RESET ALL")
        raw.autocommit = False
    assert "Index Only Scan using ix_entries_body_id" in plan, plan
