"""No user reads or changes another user's mail, mailboxes, labels, filters, keys, addresses or
subscriptions through any id: each attempt is a 404 (never a 403 that would confirm the id),
and afterwards the owner's view of everything is exactly as before."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from relate.store import accounts, keys, labels, mailboxes, messages, profiles, userfilters
from tests.webapp import resources_fixtures as fixtures
from tests.webapp.resources_fixtures import Api, User, make_message, with_attachment

# The fixtures these tests use.
alice, api, app, bob = fixtures.alice, fixtures.api, fixtures.app, fixtures.bob


@dataclass
class Bobs:
    email: int
    thread: str
    attachment: str
    mailbox: int
    label: int
    filter: int
    key: int
    address: int


@pytest.fixture
def bobs(bob: User, alice: User) -> Bobs:
    _, entry = messages.append(bob.id, bob.inbox(), with_attachment("Bob's secret report", to="bob@relate.test"))
    box = mailboxes.create_mailbox(bob.id, "Private")
    label = labels.create_label(bob.id, "BobOnly")
    rule = userfilters.create_filter(bob.id, "mine", {"subject": "x"}, {"markRead": True})
    key, _ = keys.create_key(bob.id, "bob's phone", "imap")
    accounts.add_address(bob.id, "bob.extra@relate.test", confirmed=True)
    address = next(a for a in profiles.get_profile(bob.id).addresses if a.address == "bob.extra@relate.test")
    parsed = messages.parsed_message(entry.body_id)
    return Bobs(entry.id, entry.thread_id, str(parsed.attachments[0]["part"]), box.id, label.id, rule.id, key.id,
                address.id)


ATTEMPTS: list[tuple[str, str, dict[str, Any] | None, dict[str, Any] | None]] = [
    # (method, path, JSON body, query); {x} are Bob's ids
    ("GET", "/api/emails/{email}", None, None),
    ("PATCH", "/api/emails/{email}", {"isRead": True, "labels": ["stolen"]}, None),
    ("PATCH", "/api/emails/{email}", {"mailbox": "INBOX"}, None),
    ("DELETE", "/api/emails/{email}", None, None),
    ("GET", "/api/emails/threads/{thread}", None, None),
    ("GET", "/api/emails/{email}/attachments/{attachment}", None, None),
    ("GET", "/api/emails/{email}/export/eml", None, None),
    ("POST", "/api/emails/{email}/reply", {"textBody": "hi"}, None),
    ("POST", "/api/emails/{email}/forward", {"recipients": [{"address": "alice@relate.test"}]}, None),
    ("GET", "/api/external/emails/{email}", None, None),
    ("PATCH", "/api/external/emails/{email}", {"isRead": True}, None),
    ("DELETE", "/api/external/emails/{email}", None, None),
    ("GET", "/api/emails", None, {"mailboxId": "{mailbox}"}),
    ("GET", "/api/emails/search", None, {"mailboxId": "{mailbox}", "q": "secret"}),
    ("GET", "/api/emails/export/mbox", None, {"mailboxId": "{mailbox}"}),
    ("GET", "/api/mailboxes/{mailbox}", None, None),
    ("PATCH", "/api/mailboxes/{mailbox}", {"name": "Taken", "subscribed": False}, None),
    ("DELETE", "/api/mailboxes/{mailbox}", None, None),
    ("POST", "/api/emails/bulk/move", {"emailIds": [1], "mailboxId": "{mailbox}"}, None),
    ("GET", "/api/labels/{label}", None, None),
    ("PUT", "/api/labels/{label}", {"name": "Renamed"}, None),
    ("PATCH", "/api/labels/{label}", {"color": "#000000"}, None),
    ("DELETE", "/api/labels/{label}", None, None),
    ("GET", "/api/labels/{label}/emails", None, None),
    ("POST", "/api/labels/emails/{email}", {"labelId": "{label}"}, None),
    ("DELETE", "/api/labels/emails/{email}/{label}", None, None),
    ("GET", "/api/filters/{filter}", None, None),
    ("PUT", "/api/filters/{filter}", {"name": "mine now"}, None),
    ("PATCH", "/api/filters/{filter}", {"isEnabled": False}, None),
    ("DELETE", "/api/filters/{filter}", None, None),
    ("POST", "/api/filters/{filter}/test", None, None),
    ("POST", "/api/filters", {"name": "x", "assignLabelId": "{label}"}, None),
    ("DELETE", "/api/smtp-credentials/{key}", None, None),
    ("DELETE", "/api/profile/addresses/{address}", None, None),
]


def _fill(value: Any, ids: Bobs) -> Any:
    if isinstance(value, str) and value.startswith("{") and value.endswith("}") and value.count("{") == 1:
        return getattr(ids, value[1:-1])
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, ids) for v in value]
    return value


def _snapshot(api: Api, user: User) -> list[Any]:
    paths = ["/api/emails", "/api/mailboxes", "/api/labels", "/api/filters", "/api/profile", "/api/smtp-credentials"]
    views = [api.get(p, user).json for p in paths]
    views.append(api.get("/api/emails", user, query={"mailbox": "Private"}).json)
    email = api.get("/api/emails", user).json["items"][0]["id"]
    views.append(api.get(f"/api/emails/{email}", user).json)
    return views


@pytest.mark.parametrize(("method", "path", "body", "query"), ATTEMPTS,
                         ids=[f"{m} {p}{' ' + str(sorted(q)) if q else ''}" for m, p, _, q in ATTEMPTS])
def test_other_users_ids_are_not_found(api: Api, alice: User, bob: User, bobs: Bobs, method: str, path: str,
                                       body: dict[str, Any] | None, query: dict[str, Any] | None) -> None:
    # The bulk move names one of Alice's own emails, so only the mailbox id is Bob's.
    mine = messages.append(alice.id, alice.inbox(), make_message("Alice's own"))[1].id
    before = _snapshot(api, bob)
    filled_body = _fill(body, bobs)
    if path == "/api/emails/bulk/move":
        filled_body["emailIds"] = [mine]
    r = api.call(method, path.format(**vars(bobs)), alice, json_body=filled_body, query=_fill(query, bobs))
    assert r.status == 404, (r.status, r.data[:200])
    assert "error" in r.json
    assert _snapshot(api, bob) == before


def test_alice_sees_none_of_bobs_things_in_her_lists(api: Api, alice: User, bob: User, bobs: Bobs) -> None:
    text = b"".join(api.get(p, alice).data for p in (
        "/api/emails", "/api/emails/search?q=secret", "/api/mailboxes", "/api/labels", "/api/filters",
        "/api/profile", "/api/smtp-credentials", "/api/emails/sent", "/api/emails/sent/addresses",
        "/api/emails/export/mbox"))
    for secret in (b"Bob's secret report", b"Private", b"BobOnly", b"bob's phone", b"bob.extra"):
        assert secret not in text
