"""/api/emails/bulk/*: mark read, delete, move and label many emails at once."""

from __future__ import annotations

from relate.store import mailboxes, messages
from tests.webapp import resources_fixtures as fixtures
from tests.webapp.resources_fixtures import Api, User, make_message

# The fixtures these tests use.
alice, api, app, bob = fixtures.alice, fixtures.api, fixtures.app, fixtures.bob


def _three(user: User) -> list[int]:
    return [messages.append(user.id, user.inbox(), make_message(f"M{i}"))[1].id for i in range(3)]


def test_mark_read_and_unread(api: Api, alice: User) -> None:
    ids = _three(alice)
    r = api.post("/api/emails/bulk/mark-read", alice, json_body={"emailIds": ids[:2]})
    assert r.status == 200 and r.json == {"updatedCount": 2, "missingIds": []}
    assert api.get("/api/emails", alice).json["unreadCount"] == 1
    r = api.post("/api/emails/bulk/mark-read", alice, json_body={"emailIds": ids, "isRead": False})
    assert r.json["updatedCount"] == 2
    assert api.get("/api/emails", alice).json["unreadCount"] == 3


def test_delete_moves_to_trash_and_purges_trash(api: Api, alice: User) -> None:
    ids = _three(alice)
    r = api.post("/api/emails/bulk/delete", alice, json_body={"emailIds": ids})
    assert r.json == {"deletedCount": 3, "missingIds": []}
    trash = api.get("/api/emails", alice, query={"mailbox": "Trash"}).json
    assert trash["totalCount"] == 3
    r = api.post("/api/emails/bulk/delete", alice, json_body={"emailIds": [i["id"] for i in trash["items"]]})
    assert r.json["deletedCount"] == 3
    assert api.get("/api/emails", alice, query={"mailbox": "Trash"}).json["totalCount"] == 0


def test_move_and_label(api: Api, alice: User) -> None:
    ids = _three(alice)
    mailboxes.create_mailbox(alice.id, "Keep")
    r = api.post("/api/emails/bulk/label", alice, json_body={"emailIds": ids, "add": ["Keep", "Later"]})
    assert r.json["updatedCount"] == 3
    r = api.post("/api/emails/bulk/label", alice, json_body={"emailIds": ids[:1], "remove": ["later"]})
    assert r.json["updatedCount"] == 1
    r = api.post("/api/emails/bulk/move", alice, json_body={"emailIds": ids, "mailbox": "Keep"})
    assert r.json == {"movedCount": 3, "missingIds": []}
    moved = api.get("/api/emails", alice, query={"mailbox": "Keep", "sort": "subject-asc"}).json["items"]
    assert [m["labels"] for m in moved] == [["Keep"], ["Keep", "Later"], ["Keep", "Later"]]
    again = api.post("/api/emails/bulk/move", alice, json_body={"emailIds": [m["id"] for m in moved],
                                                                 "mailbox": "Keep"})
    assert again.json["movedCount"] == 0
    r = api.post("/api/emails/bulk/move", alice, json_body={"emailIds": ids})
    assert r.status == 400 and r.json["field"] == "mailbox"


def test_other_users_ids_are_reported_missing_and_untouched(api: Api, alice: User, bob: User) -> None:
    mine = _three(alice)
    theirs = _three(bob)
    r = api.post("/api/emails/bulk/mark-read", alice, json_body={"emailIds": [mine[0], *theirs, 999999]})
    assert r.json == {"updatedCount": 1, "missingIds": sorted([*theirs, 999999])}
    r = api.post("/api/emails/bulk/delete", alice, json_body={"emailIds": theirs})
    assert r.json == {"deletedCount": 0, "missingIds": sorted(theirs)}
    r = api.post("/api/emails/bulk/move", alice, json_body={"emailIds": theirs, "mailbox": "Archive"})
    assert r.json["movedCount"] == 0
    r = api.post("/api/emails/bulk/label", alice, json_body={"emailIds": theirs, "add": ["mine"]})
    assert r.json["updatedCount"] == 0
    bob_view = api.get("/api/emails", bob).json
    assert bob_view["totalCount"] == 3 and bob_view["unreadCount"] == 3
    assert all(i["labels"] == [] for i in bob_view["items"])
