"""Every request body and query of the mail resources is checked: malformed JSON, wrong types,
unknown fields, oversize values and bodies are 4xx JSON errors naming the field; duplicates are
409; no input causes a 500."""

from __future__ import annotations

from typing import Any

import pytest

from relate.store import labels, messages, userfilters
from tests.webapp import resources_fixtures as fixtures
from tests.webapp.resources_fixtures import Api, User, make_message

# The fixtures these tests use.
alice, api, app, carol = fixtures.alice, fixtures.api, fixtures.app, fixtures.carol

# (method, path, a valid body, a field and a value of the wrong type for it); {email}, {label},
# {filter}, {mailbox} are Alice's own ids.
BODIES: list[tuple[str, str, dict[str, Any], str, Any]] = [
    ("PATCH", "/api/emails/{email}", {"isRead": True}, "isFlagged", "yes"),
    ("POST", "/api/emails/bulk/mark-read", {"emailIds": ["{email}"]}, "emailIds", "1,2"),
    ("POST", "/api/emails/bulk/delete", {"emailIds": ["{email}"]}, "emailIds", {"id": 1}),
    ("POST", "/api/emails/bulk/move", {"emailIds": ["{email}"], "mailbox": "Archive"}, "mailbox", 7),
    ("POST", "/api/emails/bulk/label", {"emailIds": ["{email}"], "add": ["x"]}, "add", "x"),
    ("POST", "/api/emails/send", {"recipients": [{"address": "alice@relate.test"}]}, "subject", 42),
    ("POST", "/api/emails/{email}/reply", {"textBody": "ok"}, "replyAll", "true"),
    ("POST", "/api/emails/{email}/forward", {"recipients": [{"address": "alice@relate.test"}]}, "recipients",
     "alice@relate.test"),
    ("POST", "/api/mailboxes", {"name": "New"}, "name", ["New"]),
    ("PATCH", "/api/mailboxes/{mailbox}", {"subscribed": False}, "subscribed", 0),
    ("POST", "/api/labels", {"name": "Tag"}, "color", 255),
    ("PUT", "/api/labels/{label}", {"color": "#fff"}, "name", None),
    ("POST", "/api/labels/emails/{email}", {"labelId": "{label}"}, "labelId", "one"),
    ("POST", "/api/filters", {"name": "F"}, "priority", "high"),
    ("PATCH", "/api/filters/{filter}", {"isEnabled": True}, "markAsRead", "no"),
    ("PUT", "/api/preferences", {"theme": "dark"}, "emailsPerPage", "20"),
    ("PUT", "/api/profile", {"displayName": "A"}, "displayName", {"first": "A"}),
    ("POST", "/api/profile/addresses", {"address": "alice.x@relate.test"}, "address", 5),
    ("POST", "/api/smtp-credentials", {"name": "k"}, "scopes", "smtp"),
    ("POST", "/api/smtp-credentials/mobile", {"deviceName": "d", "platform": "ios"}, "platform", True),
]
IDS = [f"{m} {p}" for m, p, *_ in BODIES]


@pytest.fixture
def ids(alice: User, carol: User) -> dict[str, int]:
    """Alice's own things (Carol, who sent her mail, exists so a reply can be delivered)."""
    _, entry = messages.append(alice.id, alice.inbox(), make_message("Mine"))
    return {
        "email": entry.id,
        "label": labels.create_label(alice.id, "Existing").id,
        "filter": userfilters.create_filter(alice.id, "f", {"subject": "a"}, {}).id,
        "mailbox": alice.mailbox("Archive"),
    }


def _fill(value: Any, ids: dict[str, int]) -> Any:
    if isinstance(value, str) and value.startswith("{") and value.endswith("}"):
        return ids[value[1:-1]]
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, ids) for v in value]
    return value


@pytest.mark.parametrize(("method", "path", "valid", "field", "wrong"), BODIES, ids=IDS)
def test_unknown_field(api: Api, alice: User, ids: dict[str, int], method: str, path: str, valid: dict[str, Any],
                       field: str, wrong: Any) -> None:
    r = api.call(method, path.format(**ids), alice, "app", json_body={**_fill(valid, ids), "bogusField": 1})
    assert r.status == 400 and r.json["field"] == "bogusField", r.json


@pytest.mark.parametrize("extra", [["colour", "extra"], ["zeta", "alpha", "mid"]], ids=["two", "three"])
@pytest.mark.parametrize(("method", "path", "valid", "field", "wrong"), BODIES, ids=IDS)
def test_unknown_fields_are_all_named(api: Api, alice: User, ids: dict[str, int], method: str, path: str,
                                      valid: dict[str, Any], field: str, wrong: Any, extra: list[str]) -> None:
    body = {**_fill(valid, ids), **dict.fromkeys(extra, 1)}
    r = api.call(method, path.format(**ids), alice, "app", json_body=body)
    assert r.status == 400, r.json
    assert r.json == {"error": f"unknown fields: {', '.join(extra)}", "field": extra[0]}


def test_unknown_fields_change_nothing(api: Api, alice: User) -> None:
    before = api.get("/api/labels", alice).json
    r = api.post("/api/labels", alice, "app", json_body={"name": "x", "colour": "red", "extra": 1})
    assert r.status == 400 and r.json == {"error": "unknown fields: colour, extra", "field": "colour"}
    assert api.get("/api/labels", alice).json == before


def test_unknown_nested_fields_are_named_in_full(api: Api, alice: User) -> None:
    r = api.post("/api/emails/send", alice, "app", json_body={
        "recipients": [{"address": "alice@relate.test", "name": "A", "kind": "to"}]})
    assert r.status == 400
    assert r.json == {"error": "unknown fields: recipients.0.name, recipients.0.kind", "field": "recipients.0.name"}
    r = api.post("/api/emails/send", alice, "app", json_body={"recipients": [{"address": "alice@relate.test",
                                                                              "name": "A"}]})
    assert r.json == {"error": "recipients.0.name: unknown field", "field": "recipients.0.name"}


def test_unknown_query_parameters_are_all_named(api: Api, alice: User) -> None:
    r = api.get("/api/emails", alice, query={"pageSize": 5, "unread": 1, "folder": "x"})
    assert r.status == 400 and r.json == {"error": "unknown query parameters: folder, unread", "field": "folder"}
    r = api.get("/api/emails", alice, query={"folder": "x"})
    assert r.json == {"error": "folder: unknown query parameter", "field": "folder"}


@pytest.mark.parametrize(("method", "path", "valid", "field", "wrong"), BODIES, ids=IDS)
def test_wrong_type(api: Api, alice: User, ids: dict[str, int], method: str, path: str, valid: dict[str, Any],
                    field: str, wrong: Any) -> None:
    r = api.call(method, path.format(**ids), alice, "app", json_body={**_fill(valid, ids), field: wrong})
    assert r.status == 400 and r.json["field"] == field, r.json
    assert r.json["error"].startswith(field)


@pytest.mark.parametrize(("method", "path", "valid", "field", "wrong"), BODIES, ids=IDS)
def test_malformed_json_and_non_objects(api: Api, alice: User, ids: dict[str, int], method: str, path: str,
                                        valid: dict[str, Any], field: str, wrong: Any) -> None:
    url = path.format(**ids)
    for data in ('{"isRead": tru', "", "[1, 2]", "null", '"text"'):
        r = api.call(method, url, alice, "app", data=data, content_type="application/json")
        assert r.status == 400, (data, r.data)
        assert "error" in r.json
    r = api.call(method, url, alice, "app", data="a=1", content_type="application/x-www-form-urlencoded")
    assert r.status == 415


@pytest.mark.parametrize(("method", "path", "valid", "field", "wrong"), BODIES, ids=IDS)
def test_valid_body_is_accepted(api: Api, alice: User, ids: dict[str, int], method: str, path: str,
                                valid: dict[str, Any], field: str, wrong: Any) -> None:
    r = api.call(method, path.format(**ids), alice, "app", json_body=_fill(valid, ids))
    assert r.status in (200, 201), r.json


@pytest.mark.parametrize(("body", "field"), [
    ({"name": "x" * 201}, "name"),
    ({"name": "F", "subjectContains": "s" * 501}, "subjectContains"),
    ({"name": "F", "subjectContains": "nul\x00byte"}, "subjectContains"),
    ({"name": "F", "subjectContains": "lone \ud800 surrogate"}, "subjectContains"),
    ({"name": "two\nlines"}, "name"),
    ({"name": "F", "priority": 10**30}, "priority"),
])
def test_oversize_and_unstorable_values_name_the_field(api: Api, alice: User, body: dict[str, Any],
                                                        field: str) -> None:
    r = api.post("/api/filters", alice, json_body=body)
    assert r.status == 400 and r.json["field"] == field, r.json


def test_oversize_body_is_refused(api: Api, alice: User) -> None:
    r = api.post("/api/emails/send", alice, json_body={"recipients": [{"address": "alice@relate.test"}],
                                                       "textBody": "x" * (2 * 1024 * 1024)})
    assert r.status == 400 and r.json["field"] == "body", r.json


def test_huge_ids_and_email_ids_as_floats(api: Api, alice: User, ids: dict[str, int]) -> None:
    r = api.post("/api/emails/bulk/mark-read", alice, json_body={"emailIds": [2**60]})
    assert r.status == 400 and r.json["field"] == "emailIds.0"
    r = api.post("/api/emails/bulk/mark-read", alice, json_body={"emailIds": [float(ids["email"])]})
    assert r.status == 200 and r.json["updatedCount"] == 1
    assert api.get(f"/api/emails/{2**62}", alice).status == 404
    assert api.get(f"/api/mailboxes/{2**40}", alice).status == 404
    assert api.get(f"/api/emails/{10**30}", alice).status == 404


def test_duplicates_are_conflicts(api: Api, alice: User) -> None:
    assert api.post("/api/labels", alice, json_body={"name": "Dup"}).status == 201
    r = api.post("/api/labels", alice, json_body={"name": "DUP"})
    assert r.status == 409 and "error" in r.json
    assert api.post("/api/mailboxes", alice, json_body={"name": "Dup"}).status == 201
    assert api.post("/api/mailboxes", alice, json_body={"name": "Dup"}).status == 409
    assert api.post("/api/profile/addresses", alice, json_body={"address": "alice@relate.test"}).status == 409


QUERIES: list[tuple[str, dict[str, str], str]] = [
    ("/api/emails", {"page": "0"}, "page"),
    ("/api/emails", {"page": "abc"}, "page"),
    ("/api/emails", {"pageSize": "1000"}, "pageSize"),
    ("/api/emails", {"sort": "random"}, "sort"),
    ("/api/emails", {"isRead": "maybe"}, "isRead"),
    ("/api/emails", {"fromDate": "yesterday"}, "fromDate"),
    ("/api/emails", {"mailbox": "bad\x00name"}, "mailbox"),
    ("/api/emails", {"mailbox": "a//b"}, "mailbox"),
    ("/api/emails", {"unknownParam": "1"}, "unknownParam"),
    ("/api/emails/search", {"q": "nul\x00"}, "q"),
    ("/api/emails/search", {"q": "x" * 501}, "q"),
    ("/api/emails/search", {"label": "two words"}, "label"),
    ("/api/emails/sent", {"fromAddress": "a\x01b"}, "fromAddress"),
    ("/api/emails/export/mbox", {"toDate": "2026-13-01"}, "toDate"),
]


@pytest.mark.parametrize(("path", "query", "field"), QUERIES, ids=[f"{p} {q}" for p, q, _ in QUERIES])
def test_bad_query_parameters_name_the_field(api: Api, alice: User, path: str, query: dict[str, str],
                                             field: str) -> None:
    r = api.get(path, alice, query=query)
    assert r.status == 400 and r.json["field"] == field, r.json


@pytest.mark.parametrize("q", [
    "'", "\\", "%", "_", "a:*", "!", "& | !", "(()", "<->", "' OR 1=1 --", "naïve", "日本語", "🦀", "a" * 400,
    '"unterminated', '""', "   ", "@", "a@b.c", "x:y", "\\'",
])
def test_any_search_text_is_safe(api: Api, alice: User, q: str) -> None:
    messages.append(alice.id, alice.inbox(), make_message("Something", body="naïve 日本語 text 🦀 a@b.c\r\n"))
    r = api.get("/api/emails/search", alice, query={"q": q})
    assert r.status == 200, r.data
    assert r.json["totalCount"] in (0, 1)


def test_unicode_searches_find_their_text(api: Api, alice: User) -> None:
    messages.append(alice.id, alice.inbox(), make_message("Grüße", body="naïve 日本語 text\r\n"))
    for q in ("grüße", "naïve", "日本語"):
        assert api.get("/api/emails/search", alice, query={"q": q}).json["totalCount"] == 1, q
