"""Every event type, from store changes, on both backends, through a real WebSocket to an API
served in this process (the all-in-one's gevent WSGI server)."""

from __future__ import annotations

import pytest

from relate import store
from relate.store import keys, mailboxes, messages
from relate.store import realtime as rt
from relate.store.events import NEW_EMAIL_NOTICE, Change
from tests.realtime.conftest import Api, WsClient, deliver, make_message, make_user

pytestmark = pytest.mark.timeout(60)


def inbox(user_id: int) -> int:
    return mailboxes.get_mailbox(user_id, "INBOX").id


def test_new_email_has_the_rest_list_shape_and_counts_follow(api: Api):
    alice = make_user("alice")
    ws = api.socket(alice)
    delivered = deliver(alice, "Quarterly report")
    new = ws.wait_for("NewEmail")
    email = new["data"]
    entry_id = delivered.summaries[0][1]["id"]
    assert email["id"] == entry_id
    assert email["subject"] == "Quarterly report"
    assert email["fromAddress"] == "someone@elsewhere.test"
    assert email["mailbox"] == "INBOX" and email["mailboxId"] == inbox(alice.id)
    assert email["isRead"] is False and email["labels"] == []
    assert new["modseq"] > 0
    from webapp.api import shapes

    assert set(email) == set(shapes.EMAIL_SUMMARY["properties"])  # the REST list item, field for field
    counts = ws.wait_for("UnreadCountChanged")["data"]
    assert counts == {"mailboxId": inbox(alice.id), "mailbox": "INBOX", "unreadCount": 1, "totalCount": 1,
                      "inboxUnreadCount": 1}
    ws.close()


def test_flags_expunge_move_and_mailbox_changes(api: Api):
    alice = make_user("alice")
    ws = api.socket(alice)
    deliver(alice, "one")
    first = ws.wait_for("NewEmail")["data"]
    ws.wait_for("UnreadCountChanged")
    box = inbox(alice.id)

    messages.store_flags(alice.id, box, [first["uid"]], "add", ["\\Seen", "Work", "B&APw-ro"])
    updated = ws.wait_for("EmailUpdated")
    assert updated["data"]["id"] == first["id"] and updated["data"]["isRead"] is True
    assert updated["data"]["labels"] == ["Büro", "Work"]  # keywords read as label names
    assert ws.wait_for("UnreadCountChanged")["data"]["unreadCount"] == 0

    projects = mailboxes.create_mailbox(alice.id, "Projects")
    created = ws.wait_for("MailboxChanged")["data"]
    assert created == {"change": "created", "id": projects.id, "name": "Projects"}

    messages.move(alice.id, box, [first["uid"]], projects.id)
    moved = ws.wait_for("NewEmail")["data"]
    assert moved["mailboxId"] == projects.id and moved["subject"] == "one"
    gone = ws.wait_for("EmailDeleted")
    assert gone["data"] == {"ids": [first["id"]], "mailboxId": box, "mailbox": "INBOX", "uids": [first["uid"]]}
    assert gone["modseq"] > updated["modseq"]

    messages.store_flags(alice.id, projects.id, [moved["uid"]], "add", ["\\Deleted"])
    ws.wait_for("EmailUpdated")
    assert messages.expunge(alice.id, projects.id) == [moved["uid"]]
    assert ws.wait_for("EmailDeleted")["data"]["ids"] == [moved["id"]]

    mailboxes.rename_mailbox(alice.id, "Projects", "Archive/2024")
    renamed = ws.wait_for("MailboxChanged", lambda f: f["data"]["change"] == "renamed")["data"]
    assert renamed["name"] == "Archive/2024" and renamed["oldName"] == "Projects"
    mailboxes.set_subscribed(alice.id, "Archive/2024", False)
    sub = ws.wait_for("MailboxChanged", lambda f: f["data"]["change"] == "subscription")["data"]
    assert sub["subscribed"] is False
    mailboxes.delete_mailbox(alice.id, "Archive/2024")
    assert ws.wait_for("MailboxChanged", lambda f: f["data"]["change"] == "deleted")["data"]["id"] == projects.id
    ws.close()


def test_append_gives_new_email(api: Api):
    alice = make_user("alice")
    ws = api.socket(alice)
    _, entry = messages.append(alice.id, inbox(alice.id), make_message("appended"), ["\\Seen"])
    new = ws.wait_for("NewEmail")["data"]
    assert new["id"] == entry.id and new["isRead"] is True
    ws.close()


def test_a_user_never_receives_another_users_events(api: Api):
    alice, bob = make_user("alice"), make_user("bob")
    alice_ws, bob_ws = api.socket(alice), api.socket(bob)
    deliver(alice, "for alice only")
    alice_ws.wait_for("NewEmail")
    box = mailboxes.create_mailbox(alice.id, "Private")
    alice_ws.wait_for("MailboxChanged")
    messages.store_flags(alice.id, inbox(alice.id), [1], "add", ["\\Seen"])
    alice_ws.wait_for("EmailUpdated")
    mailboxes.delete_mailbox(alice.id, box.name)
    alice_ws.wait_for("MailboxChanged", lambda f: f["data"]["change"] == "deleted")
    deliver(bob, "for bob")
    bob_new = bob_ws.wait_for("NewEmail")["data"]
    assert bob_new["subject"] == "for bob"
    leftovers = bob_ws.collect(0.5)
    assert [f["type"] for f in leftovers if f["type"] != "Heartbeat"] == ["UnreadCountChanged"]
    assert all("alice" not in str(f) for f in bob_ws.seen)
    alice_ws.close()
    bob_ws.close()


def test_a_notice_is_deduplicated_against_the_stores_own_event(api: Api):
    alice = make_user("alice")
    ws = api.socket(alice)
    delivered = deliver(alice, "once")
    summary = delivered.summaries[0][1]
    rt.announce([Change(NEW_EMAIL_NOTICE, alice.id, extra=dict(summary))])
    assert ws.wait_for("NewEmail")["data"]["id"] == summary["id"]
    assert [f for f in ws.collect(0.7) if f["type"] == "NewEmail"] == []
    ws.close()


def test_a_revoked_keys_socket_is_closed(api: Api):
    alice = make_user("alice")
    other_info, other_key = keys.create_key(alice.id, "second", "api:read")
    ws = api.socket(alice)
    survivor = api.socket(None, Authorization=f"ApiKey {other_key}")
    keys.revoke_key(alice.key_id)
    code, reason = ws.wait_closed()
    assert code == 1008 and "revoked" in reason
    deliver(alice, "still here")
    assert survivor.wait_for("NewEmail")["data"]["subject"] == "still here"
    survivor.close()
    assert other_info.id != alice.key_id


def test_a_resync_reaches_every_socket(api: Api):
    alice, bob = make_user("alice"), make_user("bob")
    sockets = [api.socket(alice), api.socket(bob)]
    store.bus.publish_local([Change("resync", 0)])
    for ws in sockets:
        assert ws.wait_for("Resync")["data"]["mailboxId"] is None
        ws.close()


def test_sync_after_reconnect_returns_what_changed_since_a_modseq(api: Api):
    alice = make_user("alice")
    ws = api.socket(alice)
    deliver(alice, "seen before the drop")
    first = ws.wait_for("NewEmail")
    ws.close()
    box = inbox(alice.id)
    # While disconnected: one more message, one flag change, one expunge.
    deliver(alice, "arrived while away")
    messages.store_flags(alice.id, box, [first["data"]["uid"]], "add", ["\\Flagged", "\\Deleted"])
    deliver(alice, "arrived and went")
    messages.expunge(alice.id, box, [3], only_deleted=False)

    probe = WsClient(api.ws_url, alice.auth).connect()
    hello = probe.wait_for("Hello")["data"]
    probe.close()
    assert {"id": box, "name": "INBOX", "modseq": mailboxes.get_mailbox(alice.id, "INBOX").highest_modseq,
            "uidValidity": mailboxes.get_mailbox(alice.id, "INBOX").uid_validity} in hello["mailboxes"]
    assert {b["name"] for b in hello["mailboxes"]} == {"INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive"}
    ws = api.socket(alice)
    ws.send({"type": "Sync", "mailboxes": [{"id": box, "modseq": first["modseq"], "lastUid": first["data"]["uid"]}]})
    updated = ws.wait_for("EmailUpdated")["data"]
    assert updated["id"] == first["data"]["id"] and updated["isFlagged"] is True
    new = ws.wait_for("NewEmail")["data"]
    assert new["subject"] == "arrived while away"
    assert ws.wait_for("EmailDeleted")["data"]["uids"] == [3]
    assert ws.wait_for("UnreadCountChanged")["data"]["totalCount"] == 2
    synced = ws.wait_for("Synced")["data"]["mailboxes"]
    assert synced == [{"id": box, "modseq": mailboxes.get_mailbox(alice.id, "INBOX").highest_modseq,
                       "uidValidity": mailboxes.get_mailbox(alice.id, "INBOX").uid_validity}]
    ws.send({"type": "Sync", "mailboxes": [{"id": 999999, "modseq": 1}]})
    assert ws.wait_for("MailboxChanged")["data"] == {"change": "deleted", "id": 999999, "name": None}
    ws.send({"type": "Sync", "mailboxes": "everything"})
    assert "mailboxes" in ws.wait_for("Error")["data"]["error"]
    ws.send({"type": "Ping"})
    ws.wait_for("Pong")
    ws.close()
