"""Scopes on every mail-resource route: api:read reads, api:write writes, app both; smtp, pop3 and
imap keys get nothing; without credentials a production API answers 401 and development mode
acts as the development user."""

from __future__ import annotations

import dataclasses

import pytest
from flask import Flask

from relate.config import OidcSettings, Settings
from relate.store import labels, mailboxes, messages, userfilters
from tests.webapp import resources_fixtures as fixtures
from tests.webapp.resources_fixtures import Api, User, make_message
from webapp import create_app

# The fixtures these tests use.
alice, api, app, carol = fixtures.alice, fixtures.api, fixtures.app, fixtures.carol

READS = [
    "/api/emails", "/api/emails/search?q=x", "/api/emails/{email}", "/api/emails/threads/{thread}",
    "/api/emails/sent", "/api/emails/sent/addresses", "/api/emails/{email}/export/eml", "/api/emails/export/mbox",
    "/api/external/emails", "/api/external/emails/{email}", "/api/mailboxes", "/api/mailboxes/{mailbox}",
    "/api/labels", "/api/labels/{label}", "/api/labels/{label}/emails", "/api/filters", "/api/filters/{filter}",
    "/api/preferences", "/api/profile", "/api/smtp-credentials",
]
WRITES = [
    ("PATCH", "/api/emails/{email}", {"isRead": True}),
    ("POST", "/api/emails/bulk/mark-read", {"emailIds": [1]}),
    ("POST", "/api/emails/bulk/delete", {"emailIds": [999]}),
    ("POST", "/api/emails/bulk/move", {"emailIds": [999], "mailbox": "Archive"}),
    ("POST", "/api/emails/bulk/label", {"emailIds": [999], "add": ["x"]}),
    ("POST", "/api/emails/send", {"recipients": [{"address": "carol@relate.test"}], "subject": "s"}),
    ("POST", "/api/emails/{email}/reply", {"textBody": "x"}),
    ("POST", "/api/emails/{email}/forward", {"recipients": [{"address": "carol@relate.test"}]}),
    ("PATCH", "/api/external/emails/{email}", {"isFlagged": True}),
    ("POST", "/api/mailboxes", {"name": "Scoped"}),
    ("PATCH", "/api/mailboxes/{mailbox}", {"subscribed": True}),
    ("POST", "/api/labels", {"name": "Scoped"}),
    ("PUT", "/api/labels/{label}", {"color": "#abc"}),
    ("POST", "/api/labels/emails/{email}", {"labelId": "{label}"}),
    ("POST", "/api/filters", {"name": "Scoped"}),
    ("PATCH", "/api/filters/{filter}", {"isEnabled": True}),
    ("PUT", "/api/preferences", {"theme": "dark"}),
    ("PUT", "/api/profile", {"displayName": "A"}),
    ("POST", "/api/profile/addresses", {"address": "alice.scoped@relate.test"}),
    ("DELETE", "/api/labels/emails/{email}/{label}", None),
    ("DELETE", "/api/filters/{filter}", None),
    ("DELETE", "/api/labels/{label}", None),
    ("DELETE", "/api/emails/{email}", None),
    ("DELETE", "/api/mailboxes/{mailbox}", None),
]


@pytest.fixture
def ids(alice: User, carol: User) -> dict[str, object]:
    _, entry = messages.append(alice.id, alice.inbox(), make_message("Scoped"))
    return {
        "email": entry.id,
        "thread": entry.thread_id,
        "mailbox": mailboxes.create_mailbox(alice.id, "Scoped box").id,  # not a special-use one: deletable
        "label": labels.create_label(alice.id, "Existing").id,
        "filter": userfilters.create_filter(alice.id, "f", {"subject": "a"}, {}).id,
    }


def _fill(value: object, ids: dict[str, object]) -> object:
    if isinstance(value, str) and value.startswith("{") and value.endswith("}"):
        return ids[value[1:-1]]
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    return value


@pytest.mark.parametrize("path", READS)
def test_reads(api: Api, alice: User, ids: dict[str, object], path: str) -> None:
    url = path.format(**ids)
    for key in ("read", "full", "app"):
        assert api.get(url, alice, key).status == 200, (key, url)
    for key in ("write", "smtp"):
        r = api.get(url, alice, key)
        assert r.status == 403 and "api:read" in r.json["error"], (key, url)


@pytest.mark.parametrize(("method", "path", "body"), WRITES, ids=[f"{m} {p}" for m, p, _ in WRITES])
def test_writes(api: Api, alice: User, ids: dict[str, object], method: str, path: str, body: object) -> None:
    url = path.format(**ids)
    for key in ("read", "smtp"):
        r = api.call(method, url, alice, key, json_body=_fill(body, ids))
        assert r.status == 403 and "api:write" in r.json["error"], (key, r.json)
    r = api.call(method, url, alice, "write", json_body=_fill(body, ids))
    assert r.status in (200, 201, 204), r.data


def test_app_scope_writes_too(api: Api, alice: User, ids: dict[str, object]) -> None:
    r = api.patch(f"/api/emails/{ids['email']}", alice, "app", json_body={"isRead": True})
    assert r.status == 200


def test_writes_change_nothing_when_refused(api: Api, alice: User, ids: dict[str, object]) -> None:
    before = api.get("/api/emails", alice).json
    for key in ("read", "smtp"):
        api.delete(f"/api/emails/{ids['email']}", alice, key)
        api.patch(f"/api/emails/{ids['email']}", alice, key, json_body={"isRead": True})
    assert api.get("/api/emails", alice).json == before


@pytest.fixture
def production_app(store: Settings) -> Flask:
    settings = dataclasses.replace(store, oidc=OidcSettings(authority="https://id.relate.test",
                                                            audience="relate"))
    return create_app(settings)


def test_without_credentials_production_answers_401(production_app: Flask, alice: User,
                                                    ids: dict[str, object]) -> None:
    with production_app.test_client() as client:
        api = Api(client)
        for path in READS:
            r = api.get(path.format(**ids))
            assert r.status == 401 and "error" in r.json, path
            assert r.headers.get("WWW-Authenticate", "").startswith("Bearer")
        assert api.get("/api/emails", alice, "read").status == 200  # keys still work
        r = api.get("/api/emails", headers={"Authorization": "Bearer rm_aaaaaaaaaa_" + "x" * 43})
        assert r.status == 401


def test_development_mode_acts_as_the_development_user(api: Api, alice: User) -> None:
    r = api.get("/api/profile")
    assert r.status == 200 and r.json["email"] == "dev@relate.test"
    assert api.get("/api/emails").json["totalCount"] == 0  # not Alice's mail
