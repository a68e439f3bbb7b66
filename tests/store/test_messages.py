import datetime as dt

import pytest
from sqlalchemy import func, select

from relate import db
from relate.db.models import MessageBody
from relate.store import Envelope, InvalidInput, NotFound, accounts, events, filters, mailboxes, messages
from tests.store.helpers import make_message


@pytest.fixture
def users(store):
    return accounts.create_user("alice@example.com"), accounts.create_user("bob@example.com")


def inbox(user):
    return mailboxes.get_mailbox(user.id, "INBOX")


def test_deliver_shares_one_body_and_keeps_copies_independent(users):
    alice, bob = users
    raw = make_message()
    result = messages.deliver(raw, Envelope("alice@example.com", ("bob@example.com", "alice@example.com"), alice.id))
    assert sorted(u for u, _, _ in result.entries) == sorted([alice.id, bob.id])
    assert result.sent_entry is not None
    with db.get_engine().connect() as conn:
        assert conn.scalar(select(func.count(MessageBody.id))) == 1
    sent = mailboxes.find_special(alice.id, "\\Sent")
    assert [e.flags for e in messages.list_entries(alice.id, sent.id)] == [frozenset({"\\Seen"})]
    # Bob deletes his copy; Alice's copies stay.
    messages.store_flags(bob.id, inbox(bob).id, [1], "add", ["\\Deleted"])
    assert messages.expunge(bob.id, inbox(bob).id) == [1]
    assert messages.list_entries(bob.id, inbox(bob).id) == []
    entries = messages.list_entries(alice.id, inbox(alice).id)
    assert len(entries) == 1
    assert messages.raw_message(entries[0].body_id) == raw


def test_deliver_is_byte_exact_and_parsed_once(users):
    alice, _ = users
    raw = b"Subject: =?utf-8?q?caf=C3=A9?=\nFrom: x@y.test\n\nbare LF body\n\xff\xfe"
    messages.deliver(raw, Envelope("x@y.test", ("alice@example.com",)))
    entry = messages.list_entries(alice.id, inbox(alice).id)[0]
    assert messages.raw_message(entry.body_id) == raw
    assert entry.size == len(raw)
    assert messages.parsed_message(entry.body_id).subject == "café"


def test_alias_delivery_counts_once(users):
    alice, _ = users
    accounts.add_address(alice.id, "a2@example.com", confirmed=True)
    result = messages.deliver(make_message(), Envelope("x@y.test", ("alice@example.com", "a2@example.com")))
    assert len(result.entries) == 1


def test_unknown_recipients_store_nothing(users):
    result = messages.deliver(make_message(), Envelope("x@y.test", ("nobody@example.com",)))
    assert result.entries == () and result.body_id == 0


def test_uids_ascend_and_uidnext_advances(users):
    alice, _ = users
    box = inbox(alice)
    uids = [messages.append(alice.id, box.id, make_message(f"n{i}"))[1].uid for i in range(5)]
    assert uids == [1, 2, 3, 4, 5]
    after = mailboxes.get_mailbox(alice.id, "INBOX")
    assert after.uid_next == 6
    assert after.highest_modseq > box.highest_modseq


def test_flags_modes_and_modseq(users):
    alice, _ = users
    box = inbox(alice)
    messages.append(alice.id, box.id, make_message(), ["\\Seen", "work"])
    r = messages.store_flags(alice.id, box.id, [1], "add", ["\\Flagged", "Work", "later"])
    assert r.changed[0].flags == {"\\Seen", "\\Flagged", "work", "later"}
    r2 = messages.store_flags(alice.id, box.id, [1], "remove", ["\\Seen", "LATER"])
    assert r2.changed[0].flags == {"\\Flagged", "work"}
    assert r2.modseq > r.modseq
    r3 = messages.store_flags(alice.id, box.id, [1], "set", ["\\Answered"])
    assert r3.changed[0].flags == {"\\Answered"}
    noop = messages.store_flags(alice.id, box.id, [1], "add", ["\\Answered"])
    assert noop.changed == [] and noop.modseq == 0


def test_unchangedsince(users):
    alice, _ = users
    box = inbox(alice)
    messages.append(alice.id, box.id, make_message("a"))
    messages.append(alice.id, box.id, make_message("b"))
    entries = messages.list_entries(alice.id, box.id)
    messages.store_flags(alice.id, box.id, [2], "add", ["\\Seen"])
    r = messages.store_flags(alice.id, box.id, [1, 2], "add", ["\\Flagged"], unchanged_since=entries[1].modseq)
    assert r.failed == [2]
    assert [c.uid for c in r.changed] == [1]


@pytest.mark.parametrize("flag", ["\\Recent", "\\Bogus", "bad keyword", "a(b", ""], ids=["recent", "unknown-system", "space", "paren", "empty"])
def test_bad_flags(users, flag):
    alice, _ = users
    box = inbox(alice)
    messages.append(alice.id, box.id, make_message())
    with pytest.raises(InvalidInput):
        messages.store_flags(alice.id, box.id, [1], "add", [flag])


def test_copy_and_move(users):
    alice, _ = users
    box = inbox(alice)
    archive = mailboxes.get_mailbox(alice.id, "Archive")
    for i in range(3):
        messages.append(alice.id, box.id, make_message(f"c{i}"), ["\\Seen"] if i == 0 else [])
    copied = messages.copy(alice.id, box.id, [1, 3], archive.id)
    assert copied.pairs == [(1, 1), (3, 2)]
    assert copied.uid_validity == archive.uid_validity
    moved = messages.move(alice.id, box.id, [2], archive.id)
    assert moved.pairs == [(2, 3)]
    assert [e.uid for e in messages.list_entries(alice.id, box.id)] == [1, 3]
    arch = messages.list_entries(alice.id, archive.id)
    assert [e.uid for e in arch] == [1, 2, 3]
    assert arch[0].flags == {"\\Seen"}
    _changed, vanished = messages.changes_since(alice.id, box.id, box.highest_modseq)
    assert vanished == [2]


def test_expunge_only_deleted_and_vanished(users):
    alice, _ = users
    box = inbox(alice)
    for i in range(4):
        messages.append(alice.id, box.id, make_message(f"e{i}"))
    messages.store_flags(alice.id, box.id, [2, 3], "add", ["\\Deleted"])
    mark = mailboxes.get_mailbox(alice.id, "INBOX").highest_modseq
    assert messages.expunge(alice.id, box.id, [3, 4]) == [3]
    assert messages.expunge(alice.id, box.id) == [2]
    changed, vanished = messages.changes_since(alice.id, box.id, mark)
    assert vanished == [2, 3] and changed == []
    # UIDs are never reused.
    _, entry = messages.append(alice.id, box.id, make_message("new"))
    assert entry.uid == 5


def test_events_for_each_mutation(users):
    alice, bob = users
    sub = events.bus.subscribe(alice.id)
    other = events.bus.subscribe(bob.id)
    try:
        box = inbox(alice)
        messages.deliver(make_message(), Envelope("x@y.test", ("alice@example.com",)))
        messages.store_flags(alice.id, box.id, [1], "add", ["\\Deleted"])
        messages.expunge(alice.id, box.id)
        got = [sub.get(timeout=5) for _ in range(3)]
        assert [c.kind for c in got] == [events.NEW, events.FLAGS, events.EXPUNGE]
        assert all(c.mailbox_id == box.id and c.uids == (1,) for c in got)
        assert got[0].extra["subject"] == "Hello"
        assert other.get(timeout=0.2) is None
    finally:
        sub.close()
        other.close()


def test_filters_run_at_delivery(users):
    alice, _ = users
    from relate.db.models import Filter
    from relate.store.session import transaction

    with transaction() as t:
        t.s.add(Filter(user_id=alice.id, name="news", position=0,
                       conditions={"subject": "newsletter"}, actions={"moveTo": "Archive", "markRead": True, "addLabel": "news"}))
    messages.deliver(make_message("Weekly NEWSLETTER"), Envelope("x@y.test", ("alice@example.com",)))
    archive = mailboxes.get_mailbox(alice.id, "Archive")
    (entry,) = messages.list_entries(alice.id, archive.id)
    assert entry.flags == {"\\Seen", "news"}


def test_filter_validation():
    with pytest.raises(InvalidInput, match=r"conditions\.nope"):
        filters.validate({"nope": 1}, {})
    with pytest.raises(InvalidInput, match=r"actions\.moveTo"):
        filters.validate({"subject": "x"}, {"moveTo": ""})


def test_internal_date_kept(users):
    alice, _ = users
    when = dt.datetime(2020, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    _, entry = messages.append(alice.id, inbox(alice).id, make_message(), internal_date=when)
    assert messages.list_entries(alice.id, inbox(alice).id)[0].internal_date == when == entry.internal_date


def test_gc_removes_only_orphans(users):
    alice, bob = users
    messages.deliver(make_message("gc"), Envelope("x@y.test", ("alice@example.com", "bob@example.com")))
    messages.store_flags(bob.id, inbox(bob).id, [1], "add", ["\\Deleted"])
    messages.expunge(bob.id, inbox(bob).id)
    assert messages.gc_bodies(dt.timedelta(0)) == 0
    messages.store_flags(alice.id, inbox(alice).id, [1], "add", ["\\Deleted"])
    messages.expunge(alice.id, inbox(alice).id)
    assert messages.gc_bodies(dt.timedelta(0)) == 1


def test_a_store_that_changes_nothing_spends_no_modseq_and_sends_no_event(users):
    alice, _ = users
    box = inbox(alice)
    messages.append(alice.id, box.id, make_message(), ["\\Seen", "work"])
    before = mailboxes.get_mailbox(alice.id, "INBOX").highest_modseq
    sub = events.bus.subscribe(alice.id)
    try:
        for mode, flags in (("add", ["\\Seen", "WORK"]), ("remove", ["\\Draft"]), ("set", ["\\Seen", "work"])):
            result = messages.store_flags(alice.id, box.id, [1, 99], mode, flags)
            assert result.changed == [] and result.failed == [] and result.modseq == 0
        assert messages.expunge(alice.id, box.id) == []  # nothing \Deleted
        assert messages.expunge(alice.id, box.id, [1, 99]) == []
        assert mailboxes.get_mailbox(alice.id, "INBOX").highest_modseq == before
        assert sub.get(timeout=0.3) is None
    finally:
        sub.close()


def test_unchangedsince_failures_are_reported_even_when_nothing_else_changes(users):
    alice, _ = users
    box = inbox(alice)
    messages.append(alice.id, box.id, make_message())
    modseq = messages.list_entries(alice.id, box.id)[0].modseq
    result = messages.store_flags(alice.id, box.id, [1], "add", ["\\Flagged"], unchanged_since=modseq - 1)
    assert result.failed == [1] and result.changed == [] and result.modseq == 0


def test_one_store_changes_many_messages_with_one_modseq(users):
    alice, _ = users
    box = inbox(alice)
    for i in range(5):
        messages.append(alice.id, box.id, make_message(f"m{i}"), ["old"] if i % 2 else [])
    result = messages.store_flags(alice.id, box.id, [1, 2, 3, 4, 5], "add", ["\\Seen", "New"])
    assert [c.uid for c in result.changed] == [1, 2, 3, 4, 5]
    assert {c.modseq for c in result.changed} == {result.modseq}
    stored = messages.list_entries(alice.id, box.id)
    assert [e.flags for e in stored] == [c.flags for c in result.changed]
    assert stored[1].flags == {"\\Seen", "New", "old"}
    assert mailboxes.get_mailbox(alice.id, "INBOX").highest_modseq == result.modseq


def test_writes_to_another_users_mailbox_are_not_found(users):
    alice, bob = users
    box = inbox(alice)
    messages.append(alice.id, box.id, make_message())
    with pytest.raises(NotFound):
        messages.store_flags(bob.id, box.id, [1], "add", ["\\Deleted"])
    with pytest.raises(NotFound):
        messages.expunge(bob.id, box.id, [1], only_deleted=False)
    with pytest.raises(NotFound):
        messages.append(bob.id, box.id, make_message("intruder"))
    assert [e.flags for e in messages.list_entries(alice.id, box.id)] == [frozenset()]
    assert messages.mailbox_changes(bob.id, box.id, 0) is None


def test_mailbox_changes_reads_changes_vanished_and_highest_modseq_together(users):
    alice, _ = users
    box = inbox(alice)
    for i in range(3):
        messages.append(alice.id, box.id, make_message(f"v{i}"))
    mark = mailboxes.get_mailbox(alice.id, "INBOX").highest_modseq
    messages.store_flags(alice.id, box.id, [1], "add", ["\\Deleted", "gone"])
    messages.store_flags(alice.id, box.id, [3], "add", ["\\Answered"])
    removed = messages.expunge(alice.id, box.id)
    assert removed == [1]
    found = messages.mailbox_changes(alice.id, box.id, mark)
    assert found is not None
    assert [(e.uid, e.flags) for e in found.changed] == [(3, {"\\Answered"})]
    assert found.vanished == [1]
    assert found.highest_modseq == mailboxes.get_mailbox(alice.id, "INBOX").highest_modseq
    assert found.changed[0].internal_date.tzinfo is not None
    everything = messages.mailbox_changes(alice.id, box.id, 0)
    assert everything is not None and [e.uid for e in everything.changed] == [2, 3]


def test_append_returns_what_was_stored(users):
    alice, _ = users
    box = inbox(alice)
    when = dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=dt.UTC)
    raw = make_message("stored")
    info, entry = messages.append(alice.id, box.id, raw, ["\\Draft", "Kw"], when)
    assert (info.id, info.name, info.uid_next) == (box.id, "INBOX", entry.uid + 1)
    assert info.highest_modseq == entry.modseq
    assert messages.list_entries(alice.id, box.id) == [entry]
    assert messages.raw_message(entry.body_id) == raw
    # The same content again shares the body.
    _, again = messages.append(alice.id, box.id, raw)
    assert again.body_id == entry.body_id and again.uid == entry.uid + 1
