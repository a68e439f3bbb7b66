"""alembic 0009 (message_bodies.wire_size) down and up with mail stored, on SQLite and
PostgreSQL: the column goes and comes back without the table being rewritten, bodies stored
before it have none, and POP3 still reports their exact sizes, then writes them back."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, inspect, select, text

from relate import db, store
from relate.db import migrate
from relate.db.models import Entry, MessageBody
from relate.pop3d import sizes
from relate.store import mailboxes, messages
from tests.conftest import make_settings
from tests.pop3d.conftest import Account, assert_exact_sizes, make_account, start_server, stop_server
from tests.pop3d.tricky import on_the_wire, tricky_messages
from tests.protocol.conftest import wait_until
from tests.store.migrations import bodies_without_wire_size, run_step

BEFORE = "0008_entries_body_cover"


def _columns(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return {c["name"] for c in inspect(conn).get_columns("message_bodies")}


def _filenode(engine: Engine) -> object:
    """Where PostgreSQL keeps the table's rows (a rewrite moves them); None on SQLite."""
    if engine.dialect.name != "postgresql":
        return None
    with engine.connect() as conn:
        return conn.execute(text("SELECT pg_relation_filenode('message_bodies')")).scalar_one()


def _wire_sizes(engine: Engine, account: Account) -> dict[int, int | None]:
    """UID -> the stored wire size of each INBOX message."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(Entry.uid, MessageBody.wire_size).join(MessageBody, MessageBody.id == Entry.body_id)
            .where(Entry.user_id == account.user_id).order_by(Entry.uid)
        )
        return {int(uid): size for uid, size in rows}


def _append(account: Account, raw: bytes) -> int:
    inbox = mailboxes.get_mailbox(account.user_id, "INBOX").id
    return messages.append(account.user_id, inbox, raw)[1].uid


def test_wire_size_migrates_down_and_up(fresh_url: str, tmp_path: Path) -> None:
    store.open_store(make_settings(fresh_url, tmp_path), migrate=True, pool_size=5)
    engine = db.get_engine()
    account = make_account()
    cases = [raw for _, raw in tricky_messages(big=False)] + [b""]
    early, late = cases[:-3], cases[-3:]
    uids = [_append(account, raw) for raw in early]
    assert list(_wire_sizes(engine, account).values()) == [len(on_the_wire(raw)) for raw in early]

    run_step(engine, "downgrade", BEFORE)
    assert "wire_size" not in _columns(engine)
    with bodies_without_wire_size():  # what a server before 0009 stored
        uids += [_append(account, raw) for raw in late]
    filenode = _filenode(engine)

    run_step(engine, "upgrade", "head")
    assert migrate.is_current(engine)
    assert "wire_size" in _columns(engine)
    assert _filenode(engine) == filenode  # no row was rewritten
    assert set(_wire_sizes(engine, account).values()) == {None}

    server = start_server(fresh_url, tmp_path)
    try:
        client = server.raw_login(account)
        assert_exact_sizes(client, cases)
        assert client.command("QUIT").startswith(b"+OK")
    finally:
        stop_server(server)
    # The sizes POP3 computed were written back.
    wait_until(lambda: sizes.writer.idle)
    assert _wire_sizes(engine, account) == {uid: len(on_the_wire(raw)) for uid, raw in zip(uids, cases, strict=True)}

    new = b"Subject: after 0009\n\nbare LF\n"
    uid = _append(account, new)
    assert _wire_sizes(engine, account)[uid] == len(on_the_wire(new))
