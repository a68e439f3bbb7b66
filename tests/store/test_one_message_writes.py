"""STORE, EXPUNGE and APPEND on PostgreSQL as one message each (relate.store.session.pg_write):
the flags computed in SQL equal the Python rules the SQLite path uses, the NOTIFY payload is
the text Change.to_json() gives, a write is atomic, and a writer that waited for the mailbox
lock works on what the lock holder committed."""

import json
import random
import select
import threading

import psycopg2
import pytest

from relate import db
from relate.store import accounts, events, mailboxes, messages
from relate.store.session import pg_write
from tests.store.helpers import make_message

FLAGS = ["\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft", "Work", "work", "$Label", "Zeta", "alpha"]


@pytest.fixture
def alice(pg_store):
    return accounts.create_user("alice@example.com")


def _listener(dsn: str):
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    conn.cursor().execute(f"LISTEN {events.CHANNEL}")
    return conn


def _payloads(conn, count: int) -> list[str]:
    got: list[str] = []
    while len(got) < count:
        if select.select([conn], [], [], 5) == ([], [], []):
            break
        conn.poll()
        got.extend(n.payload for n in conn.notifies)
        conn.notifies.clear()
    return got


def _dsn() -> str:
    url = db.get_engine().url
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def test_store_flags_in_sql_follow_the_python_rules(alice):
    box = mailboxes.get_mailbox(alice.id, "INBOX")
    rng = random.Random(7)
    for i in range(12):
        start = rng.sample(FLAGS[:5], rng.randint(0, 3)) + rng.sample(["Work", "$Label", "Zeta", "alpha"], rng.randint(0, 3))
        messages.append(alice.id, box.id, make_message(f"m{i}"), start)
    for _ in range(60):
        mode = rng.choice(["set", "add", "remove"])
        flags = rng.sample(FLAGS, rng.randint(0, 4))
        uids = sorted(rng.sample(range(1, 14), rng.randint(1, 5)))  # 13 does not exist
        before = {e.uid: e for e in messages.list_entries(alice.id, box.id)}
        system, keywords = messages.split_flags(flags)
        expected = {}
        for uid in uids:
            e = before.get(uid)
            if e is None:
                continue
            row = [e.id, 0, uid, e.modseq, 0, 0, None, *(n in e.flags for n in messages._COLUMN_FLAGS.values()),
                   sorted((f for f in e.flags if not f.startswith("\\")), key=str.lower)]
            new = messages._new_flags(row, mode, system, keywords, {k.lower() for k in keywords})
            if new is not None:
                expected[uid] = messages.row_flags(*new)
        result = messages.store_flags(alice.id, box.id, uids, mode, flags)
        assert {c.uid: c.flags for c in result.changed} == expected, (mode, flags, uids)
        after = {e.uid: e for e in messages.list_entries(alice.id, box.id)}
        for uid, e in after.items():
            assert e.flags == expected.get(uid, before[uid].flags)
            assert e.modseq == (result.modseq if uid in expected else before[uid].modseq)


def test_stored_keywords_stay_sorted_case_insensitively(alice):
    box = mailboxes.get_mailbox(alice.id, "INBOX")
    messages.append(alice.id, box.id, make_message(), ["b", "D"])
    messages.store_flags(alice.id, box.id, [1], "add", ["a", "C", "d"])
    with pg_write_cursor() as rows:
        rows.execute("SELECT keywords::text FROM entries")
        assert json.loads(rows.fetchone()[0]) == ["a", "b", "C", "D"]


class pg_write_cursor:
    def __enter__(self):
        self.conn = psycopg2.connect(_dsn())
        return self.conn.cursor()

    def __exit__(self, *exc):
        self.conn.close()


def test_notify_payloads_are_change_to_json(alice):
    box = mailboxes.get_mailbox(alice.id, "INBOX")
    listener = _listener(_dsn())
    try:
        _, first = messages.append(alice.id, box.id, make_message("one"), ["\\Seen"], origin="c1")
        for i in range(4):
            messages.append(alice.id, box.id, make_message(f"more{i}"))
        result = messages.store_flags(alice.id, box.id, [1, 2, 4, 5], "add", ["\\Deleted"], origin="c2")
        removed = messages.expunge(alice.id, box.id, origin="c3")
        got = _payloads(listener, 7)
    finally:
        listener.close()
    assert len(got) == 7
    changes = [events.Change.from_json(text) for text in got]
    parsed = messages.parsed_message(first.body_id)
    new = changes[0]
    assert messages.event_new_entries(new) == [first]
    assert new == events.Change(events.NEW, alice.id, box.id, (1,), first.modseq, "INBOX", origin="c1",
                                extra=messages.summary(first, parsed), entries=new.entries, complete=True)
    # Without entries the text is byte for byte what Change.to_json writes.
    assert got[0].split(',"e":')[0] == events.Change(events.NEW, alice.id, box.id, (1,), first.modseq, "INBOX",
                                                     origin="c1", extra=messages.summary(first, parsed)
                                                     ).to_json()[:-1]
    flags = changes[5]
    assert messages.event_flags(flags) == [(e.uid, e.flags) for e in result.changed]
    assert [uid for uid, _ in messages.event_flags(flags)] == [1, 2, 4, 5]
    assert flags == events.Change(events.FLAGS, alice.id, box.id, (1, 2, 4, 5), result.modseq, "INBOX",
                                  origin="c2", entries=flags.entries, complete=True)
    assert removed == [1, 2, 4, 5]
    ids = json.loads(got[6])["x"]["ids"]
    assert got[6] == events.Change(events.EXPUNGE, alice.id, box.id, (1, 2, 4, 5), result.modseq + 1, "INBOX",
                                   origin="c3", extra={"ids": ids}, complete=True).to_json()
    assert len(ids) == 4 and ids == sorted(ids)


def test_a_payload_too_long_for_notify_is_the_short_form(alice):
    box = mailboxes.get_mailbox(alice.id, "INBOX")
    messages.append(alice.id, box.id, make_message())
    pg_write("INSERT INTO entries (user_id, mailbox_id, body_id, uid, modseq, size, thread_id, internal_date, "
             "seen, answered, flagged, deleted, draft, keywords) SELECT e.user_id, e.mailbox_id, e.body_id, "
             "2 * n + 1, 1, 1, '', now(), false, false, false, false, false, '[]' "
             "FROM entries e, generate_series(1, 1999) n", ())
    pg_write("UPDATE mailboxes SET uid_next = 5000 WHERE id = %s", (box.id,))
    listener = _listener(_dsn())
    try:
        result = messages.store_flags(alice.id, box.id, list(range(1, 4000, 2)), "add", ["\\Seen"])
        got = _payloads(listener, 1)
    finally:
        listener.close()
    assert len(result.changed) == 2000
    assert got == [events.Change(events.FLAGS, alice.id, box.id, tuple(range(1, 4000, 2)), result.modseq,
                                 "INBOX").to_json()]
    assert "i" not in json.loads(got[0])


def _store_behind_a_lock_holder(user_id: int, mailbox_id: int, since_offset: int | None) -> messages.FlagResult:
    """Another transaction holds the mailbox lock and sets \\Seen and `held` with a new MODSEQ;
    a STORE +FLAGS (\\Flagged) queues behind it and runs once it commits."""
    holder = psycopg2.connect(_dsn())
    results: list[messages.FlagResult] = []
    try:
        cur = holder.cursor()
        cur.execute("UPDATE mailboxes SET highest_modseq = highest_modseq + 1 WHERE id = %s RETURNING highest_modseq",
                    (mailbox_id,))
        held = cur.fetchone()[0]
        cur.execute("UPDATE entries SET seen = true, keywords = '[\"held\"]', modseq = %s WHERE mailbox_id = %s",
                    (held, mailbox_id))
        since = None if since_offset is None else held + since_offset
        waiter = threading.Thread(target=lambda: results.append(
            messages.store_flags(user_id, mailbox_id, [1], "add", ["\\Flagged"], unchanged_since=since)))
        waiter.start()
        waiter.join(0.5)
        assert waiter.is_alive()  # queued behind the lock
        holder.commit()
        waiter.join(10)
    finally:
        holder.close()
    (result,) = results
    return result


def test_a_write_that_waited_for_the_lock_sees_what_the_holder_committed(alice):
    box = mailboxes.get_mailbox(alice.id, "INBOX")
    messages.append(alice.id, box.id, make_message())
    refused = _store_behind_a_lock_holder(alice.id, box.id, -1)  # UNCHANGEDSINCE just below the holder's
    assert refused.failed == [1] and refused.changed == [] and refused.modseq == 0
    result = _store_behind_a_lock_holder(alice.id, box.id, None)
    assert [(c.uid, c.flags) for c in result.changed] == [(1, {"\\Seen", "held", "\\Flagged"})]
    assert result.modseq == mailboxes.get_mailbox(alice.id, "INBOX").highest_modseq


def test_a_write_that_changes_nothing_does_not_wait_for_the_lock(alice):
    box = mailboxes.get_mailbox(alice.id, "INBOX")
    messages.append(alice.id, box.id, make_message(), ["\\Seen", "kw"])
    before = mailboxes.get_mailbox(alice.id, "INBOX").highest_modseq
    holder = psycopg2.connect(_dsn())
    try:
        holder.cursor().execute("SELECT 1 FROM mailboxes WHERE id = %s FOR NO KEY UPDATE", (box.id,))
        done: list[object] = []
        worker = threading.Thread(target=lambda: done.extend([
            messages.store_flags(alice.id, box.id, [1], "add", ["\\Seen", "KW"]),
            messages.store_flags(alice.id, box.id, [1], "remove", ["\\Draft"], unchanged_since=before),
            messages.expunge(alice.id, box.id),
        ]))
        worker.start()
        worker.join(5)
        assert not worker.is_alive()  # none of them queued behind the holder
        changed, refused, removed = done
        assert changed.changed == [] and refused.failed == [] and removed == []
    finally:
        holder.close()
    assert mailboxes.get_mailbox(alice.id, "INBOX").highest_modseq == before
