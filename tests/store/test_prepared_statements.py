"""Hot statements on PostgreSQL run prepared (relate.store.session.prepared): planned once per
connection, with the results the unprepared statement gives, and a connection whose prepared
statements went stale is replaced and the call retried."""

import psycopg2
import pytest

from relate import db
from relate.store import NotFound, accounts, mailboxes, messages, session
from relate.store.session import _prepared_form, pg_read
from tests.store.helpers import make_message


@pytest.mark.parametrize(("sql", "prepare", "execute"), [
    ("SELECT 1", "SELECT 1", ""),
    ("SELECT %(a)s + %(b)s * %(a)s", "SELECT $1 + $2 * $1", "(%(a)s, %(b)s)"),
    ("SELECT %s, %s", "SELECT $1, $2", "(%s, %s)"),
    ("SELECT 'x%%' LIKE %(p)s", "SELECT 'x%' LIKE $1", "(%(p)s)"),
])
def test_parameters_are_numbered_in_order_of_first_use(sql, prepare, execute):
    name, prepare_sql, execute_sql = _prepared_form(sql)
    assert prepare_sql == f"PREPARE {name} AS {prepare}"
    assert execute_sql == f"EXECUTE {name}{execute}"


def test_named_and_positional_parameters_do_not_mix():
    with pytest.raises(ValueError):
        _prepared_form("SELECT %(a)s, %s")


def _prepared_names() -> set[str]:
    with pg_read() as cursor:
        cursor.execute("SELECT name FROM pg_prepared_statements")
        return {row[0] for row in cursor.fetchall()}


def test_the_imap_writes_and_reads_run_prepared(pg_store, monkeypatch):
    monkeypatch.setattr(session, "UNPREPARED", set())
    user = accounts.create_user("alice@example.com")
    box = mailboxes.get_mailbox(user.id, "INBOX")
    for i in range(3):
        messages.append(user.id, box.id, make_message(f"m{i}"), ["\\Seen"] if i else [])
    for _ in range(7):  # past PostgreSQL's five custom plans, to its generic plan
        messages.store_flags(user.id, box.id, [1, 2], "add", ["\\Flagged", "Work"])
        messages.store_flags(user.id, box.id, [1, 2], "remove", ["\\Flagged", "Work"])
    for since in (None, 10**6):
        messages.store_flags(user.id, box.id, [2], "set", ["\\Seen", "Work"], unchanged_since=since)
        messages.store_flags(user.id, box.id, [2], "remove", ["Work"], unchanged_since=since)
    messages.store_flags(user.id, box.id, [1, 3], "add", ["\\Deleted"], unchanged_since=10**6)
    assert messages.expunge(user.id, box.id, [3], only_deleted=False) == [3]
    assert messages.expunge(user.id, box.id, [2]) == []
    assert messages.expunge(user.id, box.id) == [1]
    assert [e.uid for e in messages.list_entries(user.id, box.id)] == [2]
    info, entries = messages.open_view(user.id, "INBOX")
    assert [e.uid for e in entries] == [2] and info.uid_next == 4
    changes = messages.mailbox_changes(user.id, box.id, 0)
    assert changes is not None and changes.vanished == [1, 3] and [e.uid for e in changes.changed] == [2]
    assert messages.raw_message(entries[0].body_id) == make_message("m1")
    assert mailboxes.get_mailbox(user.id, "INBOX").id == box.id
    assert not session.UNPREPARED
    assert len(_prepared_names()) >= 1
    with pg_read() as cursor:
        cursor.execute("SELECT sum(generic_plans) FROM pg_prepared_statements")
        assert cursor.fetchone()[0] > 0


def test_a_client_number_too_big_for_an_id_still_finds_nothing(pg_store):
    user = accounts.create_user("alice@example.com")
    with pytest.raises(NotFound):
        mailboxes.get_mailbox_by_id(user.id, 31016369832)
    with pytest.raises(NotFound):
        mailboxes.status(user.id, 31016369832)


def test_a_stale_prepared_statement_is_prepared_again(pg_store, caplog):
    user = accounts.create_user("alice@example.com")
    box = mailboxes.get_mailbox(user.id, "INBOX")
    messages.append(user.id, box.id, make_message("one"))
    messages.store_flags(user.id, box.id, [1], "add", ["\\Seen"])
    # A column's type changed under the prepared statements (as a migration would while
    # daemons run): the statements returning entries' rows now have another result type.
    url = db.get_engine().url.set(drivername="postgresql").render_as_string(hide_password=False)
    admin = psycopg2.connect(url)
    admin.autocommit = True
    admin.cursor().execute("ALTER TABLE entries ALTER COLUMN thread_id TYPE text")
    try:
        with caplog.at_level("INFO", logger="relate.store"):
            result = messages.store_flags(user.id, box.id, [1], "add", ["\\Flagged"])
        assert [e.flags for e in result.changed] == [{"\\Seen", "\\Flagged"}]
        assert "preparing again" in caplog.text
    finally:
        admin.cursor().execute("ALTER TABLE entries ALTER COLUMN thread_id TYPE varchar(64)")
        admin.close()


def test_prepared_statements_dropped_behind_our_back_are_prepared_again(pg_store, caplog):
    user = accounts.create_user("alice@example.com")
    box = mailboxes.get_mailbox(user.id, "INBOX")
    messages.append(user.id, box.id, make_message("one"))
    for flag in ("\\Seen", "\\Flagged"):
        messages.store_flags(user.id, box.id, [1], "add", [flag])
        # Whichever pooled connection ran it: every one forgets its prepared statements.
        for _ in range(3):
            with pg_read() as cursor:
                cursor.execute("DEALLOCATE ALL")
    with caplog.at_level("INFO", logger="relate.store"):
        result = messages.store_flags(user.id, box.id, [1], "add", ["\\Answered"])
        _, entries = messages.open_view(user.id, "INBOX")
    assert [e.flags for e in result.changed] == [{"\\Seen", "\\Flagged", "\\Answered"}]
    assert [e.flags for e in entries] == [{"\\Seen", "\\Flagged", "\\Answered"}]
