"""The special-use mailboxes over the API: never deleted here, taken again by their default name
once deleted over IMAP, and deleting an email never destroys it because Trash is missing."""

from __future__ import annotations

import pytest

from relate.store import mailboxes, messages
from relate.store.types import SPECIAL_MAILBOXES
from tests.webapp import resources_fixtures as fixtures
from tests.webapp.resources_fixtures import Api, User, deliver, make_message

# The fixtures these tests use.
alice, api, app, bob = fixtures.alice, fixtures.api, fixtures.app, fixtures.bob


def _names(api: Api, user: User) -> dict[str, str | None]:
    return {m["name"]: m["specialUse"] for m in api.get("/api/mailboxes", user).json}


def _one_email(api: Api, user: User, subject: str = "Keep me") -> int:
    deliver(make_message(subject), user.address)
    [item] = [i for i in api.get("/api/emails", user).json["items"] if i["subject"] == subject]
    return int(item["id"])


@pytest.mark.parametrize("name", [name for name, _ in SPECIAL_MAILBOXES])
def test_special_use_mailboxes_cannot_be_deleted(api: Api, alice: User, name: str) -> None:
    box = alice.mailbox(name)
    messages.append(alice.id, box, make_message("Inside"))
    r = api.delete(f"/api/mailboxes/{box}", alice)
    assert r.status == 409 and name in r.json["error"]
    assert api.get(f"/api/mailboxes/{box}", alice).json["messageCount"] == 1


def test_a_renamed_special_mailbox_keeps_its_role_and_protection(api: Api, alice: User) -> None:
    trash = alice.mailbox("Trash")
    assert api.patch(f"/api/mailboxes/{trash}", alice, json_body={"name": "Bin"}).json["specialUse"] == "\\Trash"
    assert api.delete(f"/api/mailboxes/{trash}", alice).status == 409
    plain = api.post("/api/mailboxes", alice, json_body={"name": "Trash"}).json  # Bin has the role
    assert plain["specialUse"] is None
    assert api.delete(f"/api/mailboxes/{plain['id']}", alice).status == 204


@pytest.mark.parametrize("name", [name for name, use in SPECIAL_MAILBOXES if use])
def test_creating_a_default_name_restores_a_deleted_role(api: Api, alice: User, name: str) -> None:
    mailboxes.delete_mailbox(alice.id, name)  # IMAP DELETE may do this
    r = api.post("/api/mailboxes", alice, json_body={"name": name})
    assert r.status == 201 and r.json["specialUse"] == dict(SPECIAL_MAILBOXES)[name]


def test_delete_after_trash_was_deleted_recreates_it(api: Api, alice: User) -> None:
    email_id = _one_email(api, alice)
    mailboxes.delete_mailbox(alice.id, "Trash")
    assert api.delete(f"/api/emails/{email_id}", alice).status == 204
    assert _names(api, alice)["Trash"] == "\\Trash"
    [kept] = api.get("/api/emails", alice, query={"mailbox": "Trash"}).json["items"]
    assert kept["subject"] == "Keep me"
    assert api.get("/api/emails", alice).json["totalCount"] == 0


def test_delete_uses_a_recreated_trash_by_name(api: Api, alice: User) -> None:
    email_id = _one_email(api, alice)
    mailboxes.delete_mailbox(alice.id, "Trash")
    assert api.post("/api/mailboxes", alice, json_body={"name": "Trash"}).json["specialUse"] == "\\Trash"
    assert api.delete(f"/api/emails/{email_id}", alice).status == 204
    assert api.get("/api/emails", alice, query={"mailbox": "Trash"}).json["totalCount"] == 1


def test_delete_picks_a_free_name_when_trash_is_taken(api: Api, alice: User) -> None:
    ids = [_one_email(api, alice, "One"), _one_email(api, alice, "Two")]
    trash = alice.mailbox("Trash")
    api.patch(f"/api/mailboxes/{trash}", alice, json_body={"name": "Bin"})
    api.post("/api/mailboxes", alice, json_body={"name": "Trash"})  # an ordinary mailbox: Bin has the role
    mailboxes.delete_mailbox(alice.id, "Bin")  # over IMAP
    r = api.post("/api/emails/bulk/delete", alice, json_body={"emailIds": ids})
    assert r.json == {"deletedCount": 2, "missingIds": []}
    names = _names(api, alice)
    assert names["Trash"] is None and names["Trash 2"] == "\\Trash"
    assert api.get("/api/emails", alice, query={"mailbox": "Trash 2"}).json["totalCount"] == 2
    assert api.get("/api/emails", alice, query={"mailbox": "Trash"}).json["totalCount"] == 0


def test_only_deleting_in_trash_destroys(api: Api, alice: User) -> None:
    email_id = _one_email(api, alice)
    mailboxes.delete_mailbox(alice.id, "Trash")
    api.delete(f"/api/emails/{email_id}", alice)
    [trashed] = api.get("/api/emails", alice, query={"mailbox": "Trash"}).json["items"]
    assert api.delete(f"/api/emails/{trashed['id']}", alice).status == 204
    assert api.get(f"/api/emails/{trashed['id']}", alice).status == 404


def test_a_filters_delete_recreates_trash(api: Api, alice: User, bob: User) -> None:
    r = api.post("/api/filters", alice, json_body={"name": "Bin", "subjectContains": "offer", "delete": True})
    assert r.status == 201
    mailboxes.delete_mailbox(alice.id, "Trash")
    sent = api.post("/api/emails/send", bob, json_body={"recipients": [{"address": alice.address}],
                                                        "subject": "Another offer", "textBody": "Cheap."})
    assert sent.status == 201, sent.json  # an API send (group commit on PostgreSQL)
    assert api.get("/api/emails", alice, query={"mailbox": "Trash"}).json["totalCount"] == 1
    mailboxes.delete_mailbox(alice.id, "Trash")
    deliver(make_message("Special offer"), alice.address)  # messages.deliver
    trashed = api.get("/api/emails", alice, query={"mailbox": "Trash"}).json
    assert [i["subject"] for i in trashed["items"]] == ["Special offer"]
    assert api.get("/api/emails", alice).json["totalCount"] == 0
