"""/api/labels and the emails' `labels` with names that are not ASCII: the API speaks names
("Büro"), the messages carry 7-bit keywords (`B&APw-ro`), and every route converts."""

from __future__ import annotations

import pytest

from relate.store import labels, mailboxes, messages, userfilters
from tests.webapp import resources_fixtures as fixtures
from tests.webapp.resources_fixtures import Api, User, make_message

# The fixtures these tests use.
alice, api, app = fixtures.alice, fixtures.api, fixtures.app


def _keywords(user: User, email_id: int) -> set[str]:
    return {f for f in messages.get_entry(user.id, email_id).flags if not f.startswith("\\")}


def _found(api: Api, user: User, path: str, **query: str) -> list[int]:
    return [i["id"] for i in api.get(path, user, query=query).json["items"]]


def test_a_non_ascii_label_is_named_as_typed_and_stored_as_a_7bit_keyword(api: Api, alice: User) -> None:
    r = api.post("/api/labels", alice, json_body={"name": "Büro", "color": "#123456"})
    assert r.status == 201 and r.json["name"] == "Büro"
    label_id = r.json["id"]
    assert labels.get_label(alice.id, label_id).keyword == "B&APw-ro"
    assert [label["name"] for label in api.get("/api/labels", alice).json] == ["Büro"]
    assert api.get(f"/api/labels/{label_id}", alice).json["name"] == "Büro"
    assert api.post("/api/labels", alice, json_body={"name": "büro"}).status == 409  # the same keyword, any case

    first, second = (messages.append(alice.id, alice.inbox(), make_message(s))[1].id for s in ("One", "Two"))
    r = api.patch(f"/api/emails/{first}", alice, json_body={"labels": ["Büro", "Ärger", "Work"]})
    assert r.status == 200 and r.json["labels"] == ["Ärger", "Büro", "Work"]
    assert _keywords(alice, first) == {"B&APw-ro", "&AMQ-rger", "Work"}
    r = api.patch(f"/api/emails/{first}", alice, json_body={"labels": ["Büro", "work"]})  # the complete list
    assert r.json["labels"] == ["Büro", "Work"] and _keywords(alice, first) == {"B&APw-ro", "Work"}

    r = api.post(f"/api/labels/emails/{second}", alice, json_body={"labelId": label_id})
    assert r.json == {"emailId": second, "labels": ["Büro"]}
    assert api.get(f"/api/emails/{second}", alice).json["labels"] == ["Büro"]
    assert sorted(_found(api, alice, "/api/emails", label="Büro")) == [first, second]
    assert sorted(_found(api, alice, "/api/emails/search", label="büro")) == [first, second]
    assert sorted(_found(api, alice, f"/api/labels/{label_id}/emails")) == [first, second]
    r = api.delete(f"/api/labels/emails/{second}/{label_id}", alice)
    assert r.json == {"emailId": second, "labels": []} and _keywords(alice, second) == set()

    r = api.post("/api/emails/bulk/label", alice, json_body={"emailIds": [first, second], "add": ["Küche"],
                                                              "remove": ["Büro"]})
    assert r.json["updatedCount"] == 2
    items = api.get("/api/emails", alice, query={"sort": "subject-asc"}).json["items"]
    assert [i["labels"] for i in items] == [["Küche", "Work"], ["Küche"]]
    assert _keywords(alice, second) == {"K&APw-che"}


def test_keywords_set_by_other_clients_read_as_names(api: Api, alice: User) -> None:
    box = alice.inbox()
    _, entry = messages.append(alice.id, box, make_message("Tagged"))
    # What IMAP clients may set: the encoding of a name, and keywords that only look like one.
    messages.store_flags(alice.id, box, [entry.uid], "add", ["B&APw-ro", "R&D", "&Jjp-", "$Forwarded"])
    assert api.get(f"/api/emails/{entry.id}", alice).json["labels"] == ["$Forwarded", "&Jjp-", "Büro", "R&D"]
    # A keyword stored as raw UTF-8 before alembic 0010 reads as it is, and a PATCH that keeps
    # its name puts the 7-bit keyword in its place.
    messages.store_flags(alice.id, box, [entry.uid], "add", ["Ünï"])
    assert "Ünï" in api.get(f"/api/emails/{entry.id}", alice).json["labels"]
    r = api.patch(f"/api/emails/{entry.id}", alice, json_body={"labels": ["Ünï"]})
    assert r.json["labels"] == ["Ünï"] and _keywords(alice, entry.id) == {"&ANw-n&AO8-"}


def test_renaming_and_deleting_a_non_ascii_label_follow_messages_and_filters(api: Api, alice: User) -> None:
    box = alice.inbox()
    label = api.post("/api/labels", alice, json_body={"name": "Büro"}).json
    kept = [messages.append(alice.id, box, make_message(f"M{i}"), ["B&APw-ro", "Keep"])[1] for i in range(2)]
    archived = messages.append(alice.id, alice.mailbox("Archive"), make_message("A"), ["b&APw-ro"])[1]
    rule = api.post("/api/filters", alice, json_body={"name": "office", "subjectContains": "x",
                                                      "assignLabelId": label["id"]}).json
    assert rule["assignLabelName"] == "Büro"
    assert userfilters.get_filter(alice.id, rule["id"]).actions == {"addLabel": "B&APw-ro"}
    modseq_before = mailboxes.get_mailbox_by_id(alice.id, box).highest_modseq

    r = api.patch(f"/api/labels/{label['id']}", alice, json_body={"name": "Küche"})
    assert r.status == 200 and r.json["name"] == "Küche"
    for e in [*kept, archived]:
        assert _keywords(alice, e.id) - {"Keep"} == {"K&APw-che"}
        assert "Küche" in api.get(f"/api/emails/{e.id}", alice).json["labels"]
    assert mailboxes.get_mailbox_by_id(alice.id, box).highest_modseq > modseq_before  # IMAP sees the change
    assert userfilters.get_filter(alice.id, rule["id"]).actions == {"addLabel": "K&APw-che"}
    assert api.get(f"/api/filters/{rule['id']}", alice).json["assignLabelName"] == "Küche"

    assert api.delete(f"/api/labels/{label['id']}", alice).status == 204
    assert [_keywords(alice, e.id) for e in [*kept, archived]] == [{"Keep"}, {"Keep"}, set()]
    assert userfilters.get_filter(alice.id, rule["id"]).actions == {}


BAD_NAMES = [
    pytest.param("Bü ro", id="space"),
    pytest.param("a\u0085b", id="c1-control"),
    pytest.param("Bü\u00a0ro", id="no-break-space"),
    pytest.param("&ANw-", id="reads-as-another-name"),
    pytest.param("Ü" * 80, id="keyword-too-long"),
]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_names_that_cannot_be_labels_are_refused_and_change_nothing(api: Api, alice: User, name: str) -> None:
    label = api.post("/api/labels", alice, json_body={"name": "Büro"}).json
    _, entry = messages.append(alice.id, alice.inbox(), make_message("Tagged"), ["B&APw-ro"])
    for method, path, body, field in [
        ("POST", "/api/labels", {"name": name}, "name"),
        ("PATCH", f"/api/labels/{label['id']}", {"name": name}, "name"),
        ("PATCH", f"/api/emails/{entry.id}", {"labels": ["Work", name], "isRead": True}, "labels"),
        ("POST", "/api/emails/bulk/label", {"emailIds": [entry.id], "add": [name]}, "add"),
        ("POST", "/api/emails/bulk/label", {"emailIds": [entry.id], "remove": [name]}, "remove"),
    ]:
        r = api.call(method, path, alice, json_body=body)
        assert r.status == 400 and r.json["field"].split(".")[0] == field, (method, path, r.json)
    assert [(x["id"], x["name"]) for x in api.get("/api/labels", alice).json] == [(label["id"], "Büro")]
    assert messages.get_entry(alice.id, entry.id).flags == frozenset({"B&APw-ro"})
