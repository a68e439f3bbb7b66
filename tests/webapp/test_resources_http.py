"""The mail resources over real HTTP: a gevent WSGI server on loopback, stdlib http.client, a
streamed mbox export, download headers and JSON errors as a client sees them."""

from __future__ import annotations

import http.client
import io
import json
from collections.abc import Iterator

import pytest
from flask import Flask
from gevent.pywsgi import WSGIServer

from relate import mailfile
from relate.store import messages
from tests.webapp import resources_fixtures as fixtures
from tests.webapp.resources_fixtures import User, make_message, with_attachment

# The fixtures these tests use.
alice, app, bob = fixtures.alice, fixtures.app, fixtures.bob


@pytest.fixture
def server(app: Flask) -> Iterator[tuple[str, int]]:
    srv = WSGIServer(("127.0.0.1", 0), app, log=None)
    srv.start()
    try:
        yield "127.0.0.1", srv.server_port
    finally:
        srv.stop(timeout=5)


def _request(server: tuple[str, int], method: str, path: str, user: User, body: object = None,
             raw_body: bytes | None = None) -> tuple[int, http.client.HTTPMessage, bytes]:
    conn = http.client.HTTPConnection(*server, timeout=10)
    headers = {"Authorization": f"Bearer {user.keys['full']}"}
    data = raw_body
    if body is not None:
        data = json.dumps(body).encode()
    if data is not None:
        headers["Content-Type"] = "application/json"
    conn.request(method, path, body=data, headers=headers)
    response = conn.getresponse()
    payload = response.read()
    conn.close()
    return response.status, response.headers, payload


def test_list_detail_and_change_over_http(server: tuple[str, int], alice: User) -> None:
    _, entry = messages.append(alice.id, alice.inbox(), make_message("Over the wire"))
    status, headers, data = _request(server, "GET", "/api/emails?pageSize=10", alice)
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert json.loads(data)["items"][0]["subject"] == "Over the wire"
    status, _, data = _request(server, "PATCH", f"/api/emails/{entry.id}", alice, {"isRead": True})
    assert status == 200 and json.loads(data)["isRead"] is True
    status, headers, data = _request(server, "PATCH", f"/api/emails/{entry.id}", alice, raw_body=b"{oops")
    assert status == 400 and headers["Content-Type"] == "application/json" and "error" in json.loads(data)


def test_mbox_streams_in_chunks(server: tuple[str, int], alice: User) -> None:
    raws = [make_message(f"Chunk {i}", body="x" * 2000 + "\r\n") for i in range(30)]
    for raw in raws:
        messages.append(alice.id, alice.inbox(), raw)
    status, headers, data = _request(server, "GET", "/api/emails/export/mbox?mailbox=INBOX", alice)
    assert status == 200
    assert headers["Transfer-Encoding"] == "chunked" and "Content-Length" not in headers
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert [i.raw for i in mailfile.read_mbox(io.BytesIO(data))] == raws


def test_attachment_headers_over_http(server: tuple[str, int], alice: User, bob: User) -> None:
    _, entry = messages.append(alice.id, alice.inbox(), with_attachment(filename="naïve.pdf"))
    part = messages.parsed_message(entry.body_id).attachments[0]["part"]
    status, headers, _ = _request(server, "GET", f"/api/emails/{entry.id}/attachments/{part}", alice)
    assert status == 200
    assert headers["Content-Type"] == "application/pdf" and headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Content-Disposition"] == "attachment; filename=\"na_ve.pdf\"; filename*=UTF-8''na%C3%AFve.pdf"
    status, _, data = _request(server, "GET", f"/api/emails/{entry.id}/attachments/{part}", bob)
    assert status == 404 and json.loads(data)["error"]
