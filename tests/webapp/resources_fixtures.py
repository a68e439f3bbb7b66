"""Fixtures of the mail-resource API tests: the real Flask app on a real store (SQLite and
PostgreSQL), two users with API keys of each kind, and a small client that speaks JSON."""

from __future__ import annotations

import datetime as dt
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import jsonschema
import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.exceptions import HTTPException
from werkzeug.routing import RoutingException

from relate import store
from relate.config import Settings
from relate.store import accounts, keys, mailboxes, messages
from webapp import create_app
from webapp.apidoc import ERROR_SCHEMA

DOMAIN = "relate.test"
_counter = itertools.count(1)


def make_message(
    subject: str = "Hello",
    sender: str = "carol@relate.test",
    to: str = "alice@relate.test",
    body: str = "Hi there.\r\n",
    *,
    extra_headers: str = "",
    content_type: str = "text/plain; charset=utf-8",
    date: str = "Sat, 28 Nov 2026 10:00:00 +0000",
) -> bytes:
    """A small RFC 5322 message; every call gets its own Message-ID (so its own stored body)."""
    n = next(_counter)
    return (
        f"From: Carol Sender <{sender}>\r\n"
        f"To: {to}\r\n"
        f"Subject: {subject}\r\n"
        f"Message-ID: <m{n}.{abs(hash((subject, body)))}@relate.test>\r\n"
        f"Date: {date}\r\n"
        f"{extra_headers}"
        "MIME-Version: 1.0\r\n"
        f"Content-Type: {content_type}\r\n"
        "\r\n"
        f"{body}"
    ).encode()


def with_attachment(subject: str = "Report", to: str = "alice@relate.test", *, filename: str = "report.pdf",
                    content_type: str = "application/pdf", data: str = "JVBERi0xLjQKJcfs") -> bytes:
    boundary = "b-relate-1"
    body = (
        f"--{boundary}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n"
        "See attached.\r\n"
        f"--{boundary}\r\n"
        f"Content-Type: {content_type}; name=\"{filename}\"\r\n"
        f"Content-Disposition: attachment; filename=\"{filename}\"\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\n"
        f"{data}\r\n"
        f"--{boundary}--\r\n"
    )
    return make_message(subject, to=to, body=body, content_type=f'multipart/mixed; boundary="{boundary}"')


@dataclass
class User:
    id: int
    address: str
    keys: dict[str, str] = field(default_factory=dict)  # kind -> full API key

    def inbox(self) -> int:
        return mailboxes.get_mailbox(self.id, "INBOX").id

    def mailbox(self, name: str) -> int:
        return mailboxes.get_mailbox(self.id, name).id


KEY_SCOPES = {
    "full": "api:read,api:write",
    "read": "api:read",
    "write": "api:write",
    "app": "app,smtp,pop3,imap",
    "smtp": "smtp,pop3,imap",
}


def make_user(local: str, name: str = "") -> User:
    info = accounts.create_user(f"{local}@{DOMAIN}", name or local.title())
    user = User(info.id, info.primary_address)
    for kind, scopes in KEY_SCOPES.items():
        user.keys[kind] = keys.create_key(info.id, f"{kind} key", scopes)[1]
    return user


def deliver(raw: bytes, *recipients: str) -> store.Delivered:
    return messages.deliver(raw, store.Envelope("carol@relate.test", tuple(recipients)))


@dataclass
class Reply:
    status: int
    headers: Any
    data: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.data)


def check_contract(app: Flask, method: str, path: str, status: int, headers: Any, data: bytes) -> None:
    """The answer matches what the route declares in the OpenAPI document: the success status,
    the response schema, and the JSON error shape."""
    try:
        endpoint, _ = app.url_map.bind("localhost").match(path.split("?", 1)[0], method=method)
    except (HTTPException, RoutingException):  # an unrouted path: nothing declared to compare with
        return
    doc = getattr(app.view_functions[endpoint], "api_doc", None)
    if doc is None:
        return
    if status >= 400:
        assert headers.get("Content-Type", "").startswith("application/json"), (path, status)
        jsonschema.validate(json.loads(data), ERROR_SCHEMA)
        return
    assert status == doc["status"], (path, status, doc["status"])
    if doc["response"] is not None and doc["content_type"] == "application/json":
        jsonschema.validate(json.loads(data), doc["response"], format_checker=jsonschema.FormatChecker())


class Api:
    """JSON over the Flask test client, authenticated with a user's API key. Every answer is
    checked against the route's declared contract (check_contract)."""

    def __init__(self, client: FlaskClient):
        self.client = client

    def call(self, method: str, path: str, user: User | None = None, key: str = "full", *, json_body: Any = None,
             data: bytes | str | None = None, content_type: str | None = None, query: dict[str, Any] | None = None,
             headers: dict[str, str] | None = None) -> Reply:
        all_headers = dict(headers or {})
        if user is not None:
            all_headers["Authorization"] = f"Bearer {user.keys[key]}"
        kwargs: dict[str, Any] = {"headers": all_headers, "query_string": query}
        if json_body is not None:
            kwargs["json"] = json_body
        elif data is not None:
            kwargs["data"] = data
            if content_type:
                kwargs["content_type"] = content_type
        response = self.client.open(path, method=method, **kwargs)
        reply = Reply(response.status_code, response.headers, response.get_data())
        check_contract(self.client.application, method, path, reply.status, reply.headers, reply.data)
        return reply

    def get(self, path: str, user: User | None = None, key: str = "full", **kw: Any) -> Reply:
        return self.call("GET", path, user, key, **kw)

    def post(self, path: str, user: User | None = None, key: str = "full", **kw: Any) -> Reply:
        return self.call("POST", path, user, key, **kw)

    def put(self, path: str, user: User | None = None, key: str = "full", **kw: Any) -> Reply:
        return self.call("PUT", path, user, key, **kw)

    def patch(self, path: str, user: User | None = None, key: str = "full", **kw: Any) -> Reply:
        return self.call("PATCH", path, user, key, **kw)

    def delete(self, path: str, user: User | None = None, key: str = "full", **kw: Any) -> Reply:
        return self.call("DELETE", path, user, key, **kw)


@pytest.fixture
def app(store: Settings) -> Flask:
    return create_app(store)


@pytest.fixture
def api(app: Flask) -> Iterator[Api]:
    with app.test_client() as client:
        yield Api(client)


@pytest.fixture
def alice(store: Settings) -> User:
    return make_user("alice", "Alice Liddell")


@pytest.fixture
def bob(store: Settings) -> User:
    return make_user("bob", "Bob Builder")


@pytest.fixture
def carol(store: Settings) -> User:
    """A local sender (the messages of these tests come from her)."""
    return make_user("carol", "Carol Sender")


def ago(**delta: float) -> dt.datetime:
    return dt.datetime.now(dt.UTC) - dt.timedelta(**delta)
