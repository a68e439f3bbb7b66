"""alembic 0007 (the list indexes end with the entry id): down and up again, on a fresh SQLite
file and a fresh PostgreSQL database, with mail in a mailbox that lists the same either way."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, inspect

from relate import db, store
from relate.store import accounts, listing, mailboxes, messages
from tests.conftest import make_settings
from tests.store.helpers import make_message
from tests.store.migrations import run_step

BEFORE = "0006_deferred_search_index"
NEW = {"ix_entries_mailbox_date_id": ["mailbox_id", "internal_date", "id"],
       "ix_entries_user_date_id": ["user_id", "internal_date", "id"]}
OLD = {"ix_entries_mailbox_internal_date": ["mailbox_id", "internal_date"],
       "ix_entries_user_internal_date": ["user_id", "internal_date"]}


def _list_indexes(engine: Engine) -> dict[str, list[str]]:
    found = {i["name"]: list(i["column_names"]) for i in inspect(engine).get_indexes("entries")}
    return {name: columns for name, columns in found.items() if name in NEW or name in OLD}


def test_page_indexes_migrate_down_and_up(fresh_url: str, tmp_path: Path) -> None:
    store.open_store(make_settings(fresh_url, tmp_path), migrate=True, pool_size=2)
    user = accounts.create_user("migrate@example.com")
    inbox = mailboxes.get_mailbox(user.id, "INBOX")
    for i in range(7):
        messages.append(user.id, inbox.id, make_message(f"Message {i}"))
    engine = db.get_engine()

    def page() -> list[int]:
        return [r.id for r in listing.list_page(user.id, listing.Filters(mailbox_name="INBOX"), limit=3, offset=2).rows]

    expected = page()
    assert len(expected) == 3
    assert _list_indexes(engine) == NEW
    run_step(engine, "downgrade", BEFORE)
    assert _list_indexes(engine) == OLD
    assert page() == expected
    run_step(engine, "upgrade", "head")
    assert _list_indexes(engine) == NEW
    assert page() == expected
