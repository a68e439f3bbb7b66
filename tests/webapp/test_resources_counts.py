"""The mailbox counters the database keeps (alembic 0003) equal COUNT(*) after every kind of
change, on both databases; and the bulk loader stores what one-by-one APPEND would."""

from __future__ import annotations

import datetime as dt

import gevent

from relate import store
from relate.config import Settings
from relate.store import accounts, bulkload, groupcommit, labels, listing, mailboxes, messages
from tests.webapp import resources_fixtures as fixtures
from tests.webapp.resources_fixtures import User, deliver, make_message

# The fixtures these tests use.
alice, bob = fixtures.alice, fixtures.bob


def _check(*users: User) -> None:
    for user in users:
        counted = {s.mailbox.id: (s.messages, s.unseen) for s in mailboxes.status_all(user.id)}
        assert listing.mailbox_counts(user.id) == counted


def test_counters_follow_every_change(alice: User, bob: User) -> None:
    inbox, archive = alice.inbox(), alice.mailbox("Archive")
    for i in range(4):
        deliver(make_message(f"D{i}"), "alice@relate.test", "bob@relate.test")
    messages.append(alice.id, inbox, make_message("Seen one"), ["\\Seen"])
    _check(alice, bob)
    messages.store_flags(alice.id, inbox, [1, 2], "add", ["\\Seen"])
    messages.store_flags(alice.id, inbox, [2, 3], "set", ["\\Flagged"])
    _check(alice, bob)
    messages.copy(alice.id, inbox, [1, 2, 3], archive)
    messages.move(alice.id, inbox, [4, 5], archive)
    _check(alice, bob)
    messages.store_flags(alice.id, archive, [1], "add", ["\\Deleted"])
    messages.expunge(alice.id, archive)
    messages.expunge(alice.id, inbox, [1], only_deleted=False)
    _check(alice, bob)
    tag = labels.create_label(alice.id, "Tag")
    messages.store_flags(alice.id, archive, [2, 3], "add", ["Tag"])
    labels.update_label(alice.id, tag.id, name="Tag2")
    _check(alice, bob)
    mailboxes.rename_mailbox(alice.id, "INBOX", "Old Inbox")  # moves every message
    _check(alice, bob)
    box = mailboxes.create_mailbox(alice.id, "Doomed")
    messages.append(alice.id, box.id, make_message("in doomed"))
    mailboxes.delete_mailbox(alice.id, "Doomed")
    _check(alice, bob)
    messages.deliver(make_message("Sent one", sender="alice@relate.test", to="bob@relate.test"),
                     store.Envelope("alice@relate.test", ("bob@relate.test",), sender_user_id=alice.id))
    _check(alice, bob)
    accounts.remove_user("alice@relate.test")
    _check(bob)


def test_bulk_load_matches_append(alice: User, store: Settings) -> None:
    inbox = alice.inbox()
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    items = [bulkload.Item(make_message(f"Bulk {i}", body=f"word{i}\r\n"), ["\\Seen"] if i % 3 == 0 else ["Tag"],
                           start + dt.timedelta(minutes=i), "carol@relate.test") for i in range(25)]
    items.append(bulkload.Item(items[0].raw))  # the same bytes again: one body, two entries
    assert bulkload.append_many(alice.id, inbox, items, batch=10) == 26
    entries = messages.list_entries(alice.id, inbox)
    assert [e.uid for e in entries] == list(range(1, 27))
    assert entries[0].body_id == entries[25].body_id
    assert entries[1].flags == frozenset({"Tag"}) and entries[0].flags == frozenset({"\\Seen"})
    assert entries[5].internal_date == start + dt.timedelta(minutes=5)
    assert mailboxes.get_mailbox(alice.id, "INBOX").uid_next == 27
    _check(alice)
    page = listing.list_page(alice.id, listing.Filters(mailbox_id=inbox, text="word7"))
    assert [r.subject for r in page.rows] == ["Bulk 7"]
    assert page.rows[0].envelope_from == "carol@relate.test"


def test_counters_follow_group_commit_deliveries(alice: User, bob: User) -> None:
    # Concurrent deliveries are stored together in one statement on PostgreSQL.
    envelope = store.Envelope("carol@relate.test", ("alice@relate.test", "bob@relate.test"))
    jobs = [gevent.spawn(groupcommit.deliver, make_message(f"G{i}"), envelope) for i in range(12)]
    gevent.joinall(jobs, raise_error=True)
    assert listing.mailbox_counts(alice.id)[alice.inbox()] == (12, 12)
    _check(alice, bob)
