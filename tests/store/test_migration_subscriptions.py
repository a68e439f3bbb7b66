"""alembic 0005 (subscriptions): down to the flag on the mailbox row and up again, on a fresh
SQLite file and a fresh PostgreSQL database, with mail in the mailboxes."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Connection, inspect, text

from relate import db, store
from relate.db import migrate
from relate.store import accounts, mailboxes, messages
from relate.store.types import SPECIAL_MAILBOXES
from tests.conftest import make_settings
from tests.store.helpers import make_message
from tests.store.migrations import run_step

BEFORE = "0004_body_trigram_index"


def _flags(conn: Connection, user_id: int) -> dict[str, bool]:
    rows = conn.execute(text("SELECT name, subscribed FROM mailboxes WHERE user_id = :u"), {"u": user_id})
    return {name: bool(flag) for name, flag in rows}


def _entries(conn: Connection) -> int:
    return int(conn.execute(text("SELECT count(*) FROM entries")).scalar_one())


def test_subscriptions_migrate_down_and_up(fresh_url: str, tmp_path: Path) -> None:
    store.open_store(make_settings(fresh_url, tmp_path), migrate=True, pool_size=2)
    user = accounts.create_user("migrate@example.com")
    mailboxes.create_mailbox(user.id, "Kept/Inner")  # subscribed, parents too
    mailboxes.create_mailbox(user.id, "Quiet", subscribe=False)
    mailboxes.set_subscribed(user.id, "Trash", False)
    mailboxes.set_subscribed(user.id, "Ghost", True)  # names no mailbox: lost on the way down
    for box in ("INBOX", "Kept/Inner", "Quiet"):
        messages.append(user.id, mailboxes.get_mailbox(user.id, box).id, make_message(box))
    engine = db.get_engine()

    run_step(engine, "downgrade", BEFORE)
    with engine.connect() as conn:
        assert not inspect(conn).has_table("subscriptions")
        flags = _flags(conn, user.id)
        assert _entries(conn) == 3  # nothing cascaded from rebuilding a table
    subscribed = {name for name, _ in SPECIAL_MAILBOXES} - {"Trash"} | {"Kept", "Kept/Inner"}
    assert flags == {name: name in subscribed for name in flags}
    assert set(flags) == {name for name, _ in SPECIAL_MAILBOXES} | {"Kept", "Kept/Inner", "Quiet"}

    run_step(engine, "upgrade", "head")
    with engine.connect() as conn:
        assert "subscribed" not in {c["name"] for c in inspect(conn).get_columns("mailboxes")}
        assert _entries(conn) == 3
    assert migrate.is_current(engine)
    assert mailboxes.list_subscriptions(user.id) == sorted(subscribed)
    assert {b.name for b in mailboxes.list_mailboxes(user.id) if b.subscribed} == subscribed
    assert len(messages.list_entries(user.id, mailboxes.get_mailbox(user.id, "Quiet").id)) == 1
