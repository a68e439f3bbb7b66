"""/api/mailboxes and /api/labels: CRUD, counts, keywords shared with IMAP."""

from __future__ import annotations

from relate.store import filters as filter_rules
from relate.store import mailboxes, messages, userfilters
from tests.webapp import resources_fixtures as fixtures
from tests.webapp.resources_fixtures import Api, User, make_message

# The fixtures these tests use.
alice, api, app, bob = fixtures.alice, fixtures.api, fixtures.app, fixtures.bob


def test_mailbox_list_with_counts(api: Api, alice: User) -> None:
    box = alice.inbox()
    for i in range(3):
        messages.append(alice.id, box, make_message(f"M{i}"), ["\\Seen"] if i == 0 else [])
    listed = {m["name"]: m for m in api.get("/api/mailboxes", alice).json}
    assert set(listed) == {"INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive"}
    assert listed["INBOX"]["messageCount"] == 3 and listed["INBOX"]["unreadCount"] == 2
    assert listed["Sent"]["specialUse"] == "\\Sent" and listed["INBOX"]["specialUse"] is None
    assert api.get(f"/api/mailboxes/{listed['INBOX']['id']}", alice).json == listed["INBOX"]


def test_mailbox_create_rename_subscribe_delete(api: Api, alice: User) -> None:
    r = api.post("/api/mailboxes", alice, json_body={"name": "Projects/Relate"})
    assert r.status == 201 and r.json["name"] == "Projects/Relate" and r.json["messageCount"] == 0
    names = [m["name"] for m in api.get("/api/mailboxes", alice).json]
    assert "Projects" in names  # parents are created
    assert api.post("/api/mailboxes", alice, json_body={"name": "Projects/Relate"}).status == 409
    box_id = r.json["id"]
    messages.append(alice.id, box_id, make_message("Inside"))
    r = api.patch(f"/api/mailboxes/{box_id}", alice, json_body={"name": "Work/Relate", "subscribed": False})
    assert r.status == 200 and r.json["name"] == "Work/Relate" and r.json["subscribed"] is False
    assert r.json["messageCount"] == 1
    parent = next(m for m in api.get("/api/mailboxes", alice).json if m["name"] == "Work")
    assert api.delete(f"/api/mailboxes/{parent['id']}", alice).status == 409  # has children
    assert api.delete(f"/api/mailboxes/{box_id}", alice).status == 204
    assert api.get(f"/api/mailboxes/{box_id}", alice).status == 404


def test_mailbox_rules(api: Api, alice: User) -> None:
    inbox = alice.inbox()
    assert api.delete(f"/api/mailboxes/{inbox}", alice).status == 409  # a special-use mailbox
    archive = alice.mailbox("Archive")
    r = api.patch(f"/api/mailboxes/{archive}", alice, json_body={"name": "inbox"})
    assert r.status == 403
    r = api.post("/api/mailboxes", alice, json_body={"name": "bad//name"})
    assert r.status == 400 and r.json["field"] == "name"
    r = api.post("/api/mailboxes", alice, json_body={"name": "Sent"})
    assert r.status == 409


def test_label_crud(api: Api, alice: User) -> None:
    r = api.post("/api/labels", alice, json_body={"name": "Work", "color": "#ff0000"})
    assert r.status == 201 and r.json["name"] == "Work" and r.json["color"] == "#ff0000"
    label_id = r.json["id"]
    assert api.post("/api/labels", alice, json_body={"name": "work"}).status == 409  # keywords ignore case
    r = api.post("/api/labels", alice, json_body={"name": "Two words"})
    assert r.status == 400 and r.json["field"] == "name"
    assert api.post("/api/labels", alice, json_body={"name": "\\Seen"}).status == 400
    assert api.post("/api/labels", alice, json_body={"name": "Later"}).json["color"] == "#6b7280"
    assert [label["name"] for label in api.get("/api/labels", alice).json] == ["Later", "Work"]
    r = api.put(f"/api/labels/{label_id}", alice, json_body={"color": "#00f"})
    assert r.json == {**r.json, "name": "Work", "color": "#00f"}
    assert api.get(f"/api/labels/{label_id}", alice).json["color"] == "#00f"
    assert api.patch(f"/api/labels/{label_id}", alice, json_body={"name": "later"}).status == 409
    assert api.delete(f"/api/labels/{label_id}", alice).status == 204
    assert api.get(f"/api/labels/{label_id}", alice).status == 404


def test_label_assignment_is_an_imap_keyword(api: Api, alice: User) -> None:
    _, entry = messages.append(alice.id, alice.inbox(), make_message("Tagged"))
    label = api.post("/api/labels", alice, json_body={"name": "Project-X"}).json
    r = api.post(f"/api/labels/emails/{entry.id}", alice, json_body={"labelId": label["id"]})
    assert r.status == 200 and r.json == {"emailId": entry.id, "labels": ["Project-X"]}
    assert "Project-X" in messages.get_entry(alice.id, entry.id).flags
    page = api.get(f"/api/labels/{label['id']}/emails", alice).json
    assert [i["id"] for i in page["items"]] == [entry.id] and page["totalCount"] == 1
    # A keyword set over IMAP shows as a label.
    messages.store_flags(alice.id, alice.inbox(), [entry.uid], "add", ["FromThunderbird"])
    assert "FromThunderbird" in api.get(f"/api/emails/{entry.id}", alice).json["labels"]
    r = api.delete(f"/api/labels/emails/{entry.id}/{label['id']}", alice)
    assert r.json["labels"] == ["FromThunderbird"]


def test_label_rename_and_delete_follow_messages_and_filters(api: Api, alice: User) -> None:
    box = alice.inbox()
    label = api.post("/api/labels", alice, json_body={"name": "Old"}).json
    ids = [messages.append(alice.id, box, make_message(f"M{i}"), ["Old", "Keep"])[1] for i in range(2)]
    archived = messages.append(alice.id, alice.mailbox("Archive"), make_message("A"), ["old"])[1]
    rule = userfilters.create_filter(alice.id, "tag", {"subject": "x"}, {"addLabel": "Old"})
    modseq_before = mailboxes.get_mailbox_by_id(alice.id, box).highest_modseq
    api.patch(f"/api/labels/{label['id']}", alice, json_body={"name": "New"})
    for e in [*ids, archived]:
        flags = messages.get_entry(alice.id, e.id).flags
        assert "New" in flags and "Old" not in flags and "old" not in flags
    assert mailboxes.get_mailbox_by_id(alice.id, box).highest_modseq > modseq_before  # IMAP sees the change
    assert userfilters.get_filter(alice.id, rule.id).actions == {"addLabel": "New"}
    api.delete(f"/api/labels/{label['id']}", alice)
    assert messages.get_entry(alice.id, ids[0].id).flags == frozenset({"Keep"})
    assert userfilters.get_filter(alice.id, rule.id).actions == {}
    filter_rules.validate({}, userfilters.get_filter(alice.id, rule.id).actions)
