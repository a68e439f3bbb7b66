"""relate.store.mailboxes subscriptions: a per-user list of names (RFC 9051 §6.3.7-8), on
SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from relate.store import InvalidInput, accounts, events, mailboxes
from relate.store.types import SPECIAL_MAILBOXES


@pytest.fixture
def user(store):
    return accounts.create_user("sub@example.com")


def test_a_new_user_is_subscribed_to_the_special_mailboxes(user):
    assert mailboxes.list_subscriptions(user.id) == sorted(name for name, _ in SPECIAL_MAILBOXES)
    assert all(box.subscribed for box in mailboxes.list_mailboxes(user.id))


def test_names_need_no_mailbox(user):
    mailboxes.set_subscribed(user.id, "Not/Yet", True)
    mailboxes.set_subscribed(user.id, "Not/Yet", True)  # idempotent
    assert "Not/Yet" in mailboxes.list_subscriptions(user.id)
    assert "Not" not in mailboxes.list_subscriptions(user.id)
    box = mailboxes.create_mailbox(user.id, "Not/Yet", subscribe=False)
    assert box.subscribed  # the earlier subscription names it now
    mailboxes.delete_mailbox(user.id, "Not/Yet")
    assert "Not/Yet" in mailboxes.list_subscriptions(user.id)  # DELETE leaves it
    mailboxes.set_subscribed(user.id, "Not/Yet", False)
    mailboxes.set_subscribed(user.id, "Not/Yet", False)  # idempotent
    assert "Not/Yet" not in mailboxes.list_subscriptions(user.id)


def test_inbox_is_stored_canonically(user):
    mailboxes.set_subscribed(user.id, "inbox", False)
    assert "INBOX" not in mailboxes.list_subscriptions(user.id)
    mailboxes.set_subscribed(user.id, "Inbox/Sub", True)
    assert "INBOX/Sub" in mailboxes.list_subscriptions(user.id)


@pytest.mark.parametrize("bad", ["", "a//b", "a%b", "x\x01"], ids=["empty", "empty-level", "percent", "control"])
def test_impossible_names_are_refused(user, bad):
    with pytest.raises(InvalidInput):
        mailboxes.set_subscribed(user.id, bad, True)


def test_delete_may_also_unsubscribe(user):
    mailboxes.create_mailbox(user.id, "Web")
    mailboxes.delete_mailbox(user.id, "Web", unsubscribe=True)
    assert "Web" not in mailboxes.list_subscriptions(user.id)
    mailboxes.create_mailbox(user.id, "Imap")
    mailboxes.delete_mailbox(user.id, "Imap")
    assert "Imap" in mailboxes.list_subscriptions(user.id)


def test_create_subscribes_unless_told_not_to(user):
    assert mailboxes.create_mailbox(user.id, "Web/Made").subscribed
    assert mailboxes.get_mailbox(user.id, "Web").subscribed  # and the parents it created
    assert not mailboxes.create_mailbox(user.id, "Imap/Made", subscribe=False).subscribed
    assert not mailboxes.get_mailbox(user.id, "Imap").subscribed


def test_rename_moves_the_subscriptions_below_the_name(user):
    mailboxes.create_mailbox(user.id, "Old/Kid", subscribe=False)
    for name in ("Old", "Old/Kid", "Old/Ghost", "Older"):
        mailboxes.set_subscribed(user.id, name, True)
    mailboxes.set_subscribed(user.id, "New/Ghost", True)  # already there: stays once
    renamed = mailboxes.rename_mailbox(user.id, "Old", "Far/New")
    assert renamed.subscribed
    subscribed = mailboxes.list_subscriptions(user.id)
    assert {"Far/New", "Far/New/Kid", "Far/New/Ghost", "Older", "New/Ghost"} <= set(subscribed)
    assert not {"Old", "Old/Kid", "Old/Ghost", "Far"} & set(subscribed)  # "Older" is not below "Old"
    assert mailboxes.get_mailbox(user.id, "Far/New/Kid").subscribed
    assert not mailboxes.get_mailbox(user.id, "Far").subscribed


def test_rename_of_an_unsubscribed_mailbox_subscribes_nothing(user):
    mailboxes.create_mailbox(user.id, "Quiet", subscribe=False)
    assert not mailboxes.rename_mailbox(user.id, "Quiet", "Still").subscribed
    assert "Still" not in mailboxes.list_subscriptions(user.id)


def test_rename_inbox_keeps_its_subscription(user):
    renamed = mailboxes.rename_mailbox(user.id, "INBOX", "Old Mail")
    assert renamed.subscribed and mailboxes.get_mailbox(user.id, "INBOX").subscribed


def test_status_reports_the_subscription(user):
    mailboxes.set_subscribed(user.id, "Trash", False)
    statuses = {s.mailbox.name: s.mailbox.subscribed for s in mailboxes.status_all(user.id)}
    assert statuses["Trash"] is False and statuses["INBOX"] is True


def test_subscription_limit(user, monkeypatch):
    monkeypatch.setattr(mailboxes, "MAX_SUBSCRIPTIONS", len(SPECIAL_MAILBOXES) + 1)
    mailboxes.set_subscribed(user.id, "One", True)
    with pytest.raises(InvalidInput, match="too many"):
        mailboxes.set_subscribed(user.id, "Two", True)
    mailboxes.set_subscribed(user.id, "One", True)  # already there: no new name


def test_events_only_for_existing_mailboxes(user):
    with events.bus.subscribe(user.id) as sub:
        mailboxes.set_subscribed(user.id, "Nowhere", True)
        mailboxes.set_subscribed(user.id, "Sent", False)
        mailboxes.set_subscribed(user.id, "Sent", False)  # no change, no event
        mailboxes.create_mailbox(user.id, "Marker")  # events arrive in commit order
        changes = []
        while not changes or changes[-1].kind != events.MAILBOX_CREATED:
            change = sub.get(timeout=5)
            assert change is not None
            changes.append(change)
    assert [(c.kind, c.mailbox) for c in changes[:-1]] == [(events.MAILBOX_SUBSCRIBED, "Sent")]


def test_removing_the_user_removes_the_list(user):
    mailboxes.set_subscribed(user.id, "Kept/Name", True)
    accounts.remove_user(user.primary_address)
    assert mailboxes.list_subscriptions(user.id) == []
