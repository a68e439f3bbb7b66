"""The reads IMAP makes on SELECT and STATUS, on both databases: the mailbox and its entries
together, a mailbox's counts by name, and the count of UIDs above a mark."""

import pytest

from relate.store import NotFound, accounts, mailboxes, messages
from relate.store.errors import InvalidInput
from tests.store.helpers import make_message


@pytest.fixture
def alice(store):
    return accounts.create_user("alice@example.com")


def test_open_view_reads_the_mailbox_and_its_entries(alice):
    box = mailboxes.get_mailbox(alice.id, "INBOX")
    for i in range(3):
        messages.append(alice.id, box.id, make_message(f"m{i}"), ["\\Seen"] if i == 1 else [])
    info, entries = messages.open_view(alice.id, "inbox")
    assert info == mailboxes.get_mailbox(alice.id, "INBOX")
    assert entries == messages.list_entries(alice.id, box.id)
    assert [e.uid for e in entries] == [1, 2, 3]
    empty = mailboxes.create_mailbox(alice.id, "Empty")
    assert messages.open_view(alice.id, "Empty") == (empty, [])
    with pytest.raises(NotFound):
        messages.open_view(alice.id, "Nope")
    with pytest.raises(InvalidInput):
        messages.open_view(alice.id, "a//b")


def test_status_named_and_count_above(alice):
    box = mailboxes.get_mailbox(alice.id, "INBOX")
    for i in range(4):
        messages.append(alice.id, box.id, make_message(f"s{i}"), ["\\Seen"] if i < 2 else ["\\Deleted"])
    found = mailboxes.status_named(alice.id, "INBOX")
    assert found == mailboxes.status(alice.id, box.id)
    assert (found.messages, found.unseen, found.deleted) == (4, 2, 2)
    mailboxes.create_mailbox(alice.id, "Work")
    assert mailboxes.status_named(alice.id, "Work").messages == 0
    with pytest.raises(NotFound):
        mailboxes.status_named(alice.id, "Nope")
    assert [messages.count_above(alice.id, box.id, uid) for uid in (0, 2, 4)] == [4, 2, 0]
    assert mailboxes.list_mailboxes(alice.id) == [s.mailbox for s in mailboxes.status_all(alice.id)]
