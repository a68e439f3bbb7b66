"""A message is searchable the moment its 250 was sent: REST `q` search and IMAP SEARCH
BODY/TEXT find it before the search indexer (relate.store.searchindex) has been through it,
and find the same after. Real listeners: SMTP submission, IMAP, the REST API."""

from __future__ import annotations

import imaplib
import ssl
from collections.abc import Iterator
from email.message import EmailMessage

import pytest
import requests
from gevent.pywsgi import WSGIServer
from sqlalchemy import text

from relate import db
from relate.imapd.service import handler, refuse
from relate.protocol.server import Listener, ServiceGroup
from relate.store import keys, searchindex
from tests.protocol.conftest import insecure_context
from tests.smtpd.conftest import Server, World
from webapp import create_app


@pytest.fixture
def imap_port(world: World, server_ctx: ssl.SSLContext) -> Iterator[int]:
    group = ServiceGroup(world.settings, server_ctx)
    group.add(Listener("imaps", 0, True, handler(world.settings), refuse=refuse, protocol="imap"))
    group.start()
    yield group.bound_port("imaps")
    group.stop(0)


@pytest.fixture
def api_base(world: World) -> Iterator[str]:
    server = WSGIServer(("127.0.0.1", 0), create_app(world.settings), log=None, error_log=None)
    server.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.stop(timeout=0.1)


def _submit(server: Server, world: World) -> None:
    message = EmailMessage()
    message["From"] = "alice@example.test"
    message["To"] = "bob@example.test"
    message["Subject"] = "Zebrafinch sightings"
    message.set_content("The invoicing of the aviary is late.\nPlease see the attached counts.\n")
    with server.smtp() as client:
        client.login("alice@example.test", world.alice_key)
        raw = message.as_bytes(policy=message.policy.clone(linesep="\r\n"))
        assert client.sendmail("alice@example.test", ["bob@example.test"], raw) == {}


def _searches(api_base: str, api_key: str, imap_port: int, imap_key: str) -> dict[str, object]:
    headers = {"Authorization": f"Bearer {api_key}"}
    found: dict[str, object] = {}
    for q in ("zebrafinch", "aviary", "invoicing late", "counts", "pelican"):
        reply = requests.get(f"{api_base}/api/emails/search", params={"q": q}, headers=headers, timeout=10)
        assert reply.status_code == 200, reply.text
        found[f"rest {q}"] = [item["subject"] for item in reply.json()["items"]]
    imap = imaplib.IMAP4_SSL("127.0.0.1", imap_port, ssl_context=insecure_context(), timeout=10)
    try:
        imap.login("bob@example.test", imap_key)
        imap.select("INBOX")
        for key, value in (("BODY", "voicing"), ("BODY", "AVIARY"), ("TEXT", "zebrafinch"), ("BODY", "pelican")):
            typ, data = imap.uid("SEARCH", key, value)
            assert typ == "OK", data
            found[f"imap {key} {value}"] = data[0].split()
    finally:
        imap.logout()
    return found


def _waiting_bodies() -> int:
    with db.get_engine().connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM message_bodies WHERE NOT indexed")).scalar_one())


def test_found_by_rest_and_imap_search_right_after_250(
    server: Server, world: World, imap_port: int, api_base: str
) -> None:
    _, api_key = keys.create_key(world.bob, "web", "api:read")
    _submit(server, world)
    assert _waiting_bodies() == (1 if searchindex.enabled() else 0)  # nothing indexed it yet
    before = _searches(api_base, api_key, imap_port, world.bob_key)
    subject = ["Zebrafinch sightings"]
    assert before == {
        "rest zebrafinch": subject, "rest aviary": subject, "rest invoicing late": subject, "rest counts": subject,
        "rest pelican": [],
        "imap BODY voicing": [b"1"], "imap BODY AVIARY": [b"1"], "imap TEXT zebrafinch": [b"1"],
        "imap BODY pelican": [],
    }
    searchindex.index_all()
    assert _waiting_bodies() == 0
    assert _searches(api_base, api_key, imap_port, world.bob_key) == before
