"""PostgreSQL units of work on bare cursors (relate.store.session): reads in autocommit mode
leave no connection in autocommit behind, and a one-message write commits all of its
statements or none."""

import pytest
from sqlalchemy import text

from relate import db
from relate.store import accounts, mailboxes, messages
from relate.store.session import pg_read, pg_write, read, transaction
from tests.store.helpers import make_message


def _pooled_autocommit_flags() -> list[bool]:
    """Whether each connection resting in the pool is in autocommit mode (all must not be:
    transaction() relies on it)."""
    engine = db.get_engine()
    conns = [engine.connect() for _ in range(engine.pool.checkedin())]  # type: ignore[attr-defined]
    try:
        return [bool(c.connection.dbapi_connection.autocommit) for c in conns]  # type: ignore[union-attr]
    finally:
        for c in conns:
            c.close()


def _none_autocommit() -> bool:
    """No connection resting in the pool is in autocommit mode. The bare cursors keep the
    connections they use checked out (relate.store.hotconn), so a transaction first makes
    sure at least one rests there."""
    with transaction() as t:
        t.s.execute(text("SELECT 1"))
    flags = _pooled_autocommit_flags()
    return bool(flags) and not any(flags)


def test_reads_return_their_connection_in_transaction_mode(pg_store):
    for _ in range(3):
        with read() as s:
            assert s.execute(text("SELECT 1")).scalar() == 1
        with pg_read() as cursor:
            cursor.execute("SELECT 2")
            assert cursor.fetchone()[0] == 2
        assert _none_autocommit()


def test_a_failed_read_still_returns_a_usable_connection(pg_store):
    with pytest.raises(Exception, match="no_such_table"), pg_read() as cursor:
        cursor.execute("SELECT * FROM no_such_table")
    assert _none_autocommit()
    with transaction() as t:  # and a transaction still works (and is one)
        assert t.s.execute(text("SELECT 1")).scalar() == 1


def test_a_one_message_write_commits_all_or_nothing(pg_store):
    user = accounts.create_user("carol@example.com")
    box = mailboxes.get_mailbox(user.id, "INBOX")
    assert pg_write("UPDATE mailboxes SET uid_next = uid_next + 5 WHERE id = %(m)s; "
                    "UPDATE mailboxes SET uid_next = uid_next + 1 WHERE id = %(m)s RETURNING uid_next",
                    {"m": box.id}) == [(box.uid_next + 6,)]
    assert mailboxes.get_mailbox(user.id, "INBOX").uid_next == box.uid_next + 6
    # A later statement that fails takes the earlier ones of the message with it.
    with pytest.raises(Exception, match="division by zero"):
        pg_write("UPDATE mailboxes SET uid_next = uid_next + 5 WHERE id = %s; SELECT 1 / 0", (box.id,))
    assert mailboxes.get_mailbox(user.id, "INBOX").uid_next == box.uid_next + 6
    assert _none_autocommit()
    _, entry = messages.append(user.id, box.id, make_message("after"))  # the pool is healthy
    assert entry.uid == box.uid_next + 6
