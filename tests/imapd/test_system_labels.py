"""A label named in the REST API with letters outside ASCII is a keyword every IMAP client can
use (RFC 9051 §9: flag-keyword is an atom, 7-bit): Python's imaplib, which never enables
UTF8=ACCEPT, sees it in modified UTF-7, stores and searches it, and what it sets reads as the
label's name in the API (relate.store.labels)."""

from __future__ import annotations

import imaplib
from collections.abc import Iterator

import pytest

from relate.config import Settings
from relate.store import keys
from tests.imapd.conftest import Account, ImapServer, simple_message
from tests.webapp.resources_fixtures import Api, User
from webapp import create_app


@pytest.fixture
def web(store: Settings, account: Account) -> Iterator[tuple[Api, User]]:
    """The real Flask app on the IMAP server's store, and the IMAP account as an API user."""
    _, key = keys.create_key(account.user_id, "web", "api:read,api:write")
    with create_app(store).test_client() as client:
        yield Api(client), User(account.user_id, account.address, {"full": key})


def ok(result: tuple[str, list]) -> list:
    typ, data = result
    assert typ == "OK", data
    return data


def fetched_flags(imap: imaplib.IMAP4, message: str) -> bytes:
    """The FLAGS of one message as the server sent them (every FETCH line of the answer)."""
    data = b" ".join(d for d in ok(imap.fetch(message, "(FLAGS)")) if isinstance(d, bytes))
    assert data.isascii(), data
    return data


def test_a_non_ascii_label_is_a_7bit_keyword_imap_clients_use(
    server: ImapServer, account: Account, web: tuple[Api, User]
) -> None:
    api, user = web
    account.append(simple_message("first"))
    account.append(simple_message("second"))
    label = api.post("/api/labels", user, json_body={"name": "Büro"}).json
    first, second = (i["id"] for i in api.get("/api/emails", user, query={"sort": "subject-asc"}).json["items"])
    assert api.patch(f"/api/emails/{first}", user, json_body={"labels": ["Büro"]}).json["labels"] == ["Büro"]

    imap = server.imaplib()
    ok(imap.select("INBOX"))
    announced = [*imap.untagged_responses["FLAGS"], *imap.untagged_responses["PERMANENTFLAGS"]]
    assert len(announced) == 2
    for line in announced:
        assert line.isascii() and b" B&APw-ro" in line, line
    assert b"B&APw-ro" in fetched_flags(imap, "1")
    assert ok(imap.search(None, "KEYWORD", "B&APw-ro")) == [b"1"]
    assert ok(imap.search(None, "KEYWORD", "b&APw-RO")) == [b"1"]  # keywords compare without case

    ok(imap.store("1", "-FLAGS", "(B&APw-ro)"))
    assert api.get(f"/api/emails/{first}", user).json["labels"] == []
    ok(imap.store("2", "+FLAGS", "(B&APw-ro &AMQ-rger)"))
    assert api.get(f"/api/emails/{second}", user).json["labels"] == ["Ärger", "Büro"]
    assert [i["id"] for i in api.get(f"/api/labels/{label['id']}/emails", user).json["items"]] == [second]

    # Renaming the label renames the keyword the IMAP session sees; deleting it takes it away.
    assert api.patch(f"/api/labels/{label['id']}", user, json_body={"name": "Küche"}).status == 200
    ok(imap.noop())
    assert b"K&APw-che" in fetched_flags(imap, "2") and b"B&APw-ro" not in fetched_flags(imap, "2")
    assert ok(imap.search(None, "KEYWORD", "K&APw-che")) == [b"2"]
    assert api.delete(f"/api/labels/{label['id']}", user).status == 204
    ok(imap.noop())
    assert b"K&APw-che" not in fetched_flags(imap, "2")
    assert api.get(f"/api/emails/{second}", user).json["labels"] == ["Ärger"]
