"""The WebSocket itself: who may open one, heartbeats, and the bound on what it buffers."""

from __future__ import annotations

import base64
import os
import socket
import time
from collections.abc import Iterator

import gevent
import pytest
import simple_websocket

from relate.store import keys
from tests.realtime.conftest import Api, WsClient, deliver, make_user
from tests.webapp.oidc_issuer import AUDIENCE, Issuer
from webapp import realtime

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    running = Issuer().start()
    yield running
    running.stop()


def refused(api: Api, path: str = "/api/ws", **headers: str) -> int:
    """The HTTP status a handshake is refused with."""
    with pytest.raises(simple_websocket.ConnectionError) as info:
        WsClient(api.ws_url.replace("/api/ws", path), headers).connect()
    return int(info.value.status_code)


class TestAuthentication:
    @pytest.fixture
    def api_env(self, issuer: Issuer) -> dict[str, str]:
        return {"Oidc__Authority": issuer.url, "Oidc__Audience": AUDIENCE}

    def test_without_credentials_it_is_401(self, api: Api):
        assert refused(api) == 401

    def test_a_wrong_or_revoked_key_is_401(self, api: Api):
        alice = make_user("alice")
        assert refused(api, Authorization="Bearer rm_aaaaaaaaaa_" + "x" * 43) == 401
        keys.revoke_key(alice.key_id)
        assert refused(api, Authorization=f"Bearer {alice.key}") == 401

    def test_a_key_without_api_read_is_403(self, api: Api):
        alice = make_user("alice", scopes="smtp imap")
        assert refused(api, Authorization=f"ApiKey {alice.key}") == 403

    def test_api_key_header_and_query_token(self, api: Api):
        alice = make_user("alice")
        by_header = api.socket(None, Authorization=f"ApiKey {alice.key}")
        by_query = WsClient(f"{api.ws_url}?access_token={alice.key}").connect()
        assert by_query.wait_for("Hello")["data"]["userId"] == alice.id
        deliver(alice)
        by_header.wait_for("NewEmail")
        by_query.wait_for("NewEmail")
        by_header.close()
        by_query.close()

    def test_bearer_jwt_header_and_query(self, api: Api, issuer: Issuer):
        alice = make_user("alice")
        token = issuer.token()  # for alice@example.test, a user of this deployment
        ws = api.socket(None, Authorization=f"Bearer {token}")
        assert refused(api, Authorization=f"Bearer {issuer.token(key=issuer.foreign_key())}") == 401
        query = WsClient(f"{api.ws_url}?access_token={token}").connect()
        user_id = query.wait_for("Hello")["data"]["userId"]
        deliver(alice)
        if user_id == alice.id:
            query.wait_for("NewEmail")
        ws.close()
        query.close()


    def test_a_jwt_socket_closes_when_the_token_expires(self, api: Api, issuer: Issuer,
                                                        monkeypatch: pytest.MonkeyPatch):
        from webapp import oidc

        monkeypatch.setattr(oidc, "LEEWAY", 0)
        make_user("alice")
        lasting = api.socket(None, Authorization=f"Bearer {issuer.token(lifetime=300)}")
        started = time.monotonic()
        ws = api.socket(None, Authorization=f"Bearer {issuer.token(lifetime=2)}")
        code, reason = ws.wait_closed(timeout=10)
        assert code == realtime.CLOSE_POLICY and "expired" in reason
        assert time.monotonic() - started >= 0.9  # not before the token's lifetime is over
        assert lasting.connected  # a token still valid keeps its socket
        lasting.close()


class TestDevelopmentMode:
    def test_no_credentials_is_the_development_user_from_our_origin_only(self, api: Api):
        # This client's Host header carries no port, so our own origin is http://127.0.0.1 here.
        ws = api.socket(None, Origin="http://127.0.0.1")
        assert ws.connected
        ws.close()
        assert refused(api, Origin="https://evil.example") == 403
        nobody = WsClient(api.ws_url).connect()  # not a browser: no Origin header
        nobody.wait_for("Hello")
        nobody.close()

    def test_a_key_from_another_origin_is_fine(self, api: Api):
        alice = make_user("alice")
        ws = api.socket(alice, Origin="https://app.example")
        ws.close()

    def test_plain_http_get_is_not_a_websocket(self, api: Api):
        from tests.realtime.conftest import http

        status, body = http("GET", f"{api.base}/api/ws")
        assert status == 426 and "WebSocket" in body["error"]


def test_heartbeats_arrive_every_interval(api: Api, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(realtime, "HEARTBEAT_SECONDS", 0.3)
    alice = make_user("alice")
    ws = api.socket(alice)
    beats = [f for f in ws.collect(1.1) if f["type"] == "Heartbeat"]
    assert 2 <= len(beats) <= 5
    ws.close()


def test_no_heartbeat_before_it_is_due(api: Api):
    ws = api.socket(make_user("alice"))
    assert [f["type"] for f in ws.collect(1.0)] == []
    ws.close()


def test_too_many_sockets_for_one_user(api: Api, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(realtime, "MAX_CONNECTIONS_PER_USER", 2)
    alice = make_user("alice")
    first, second = api.socket(alice), api.socket(alice)
    assert refused(api, **alice.auth) == 429
    first.close()
    second.close()


def _silent_client(api: Api, key: str) -> socket.socket:
    """A WebSocket client that completes the handshake and then never reads."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", api.server.server_port))
    nonce = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET /api/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {nonce}\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer {key}\r\n\r\n".encode()
    )
    head = sock.recv(1024)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def test_a_client_that_cannot_keep_up_is_disconnected_not_buffered(api: Api, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(realtime, "CONNECTION_QUEUE", 16)
    monkeypatch.setattr(realtime, "SEND_TIMEOUT", 1.0)
    alice = make_user("alice")
    sock = _silent_client(api, alice.key)
    deadline = time.monotonic() + 5
    while not realtime.hub.by_user.get(alice.id) and time.monotonic() < deadline:
        gevent.sleep(0.05)
    (conn,) = realtime.hub.by_user[alice.id]
    big = realtime.frame("Test", {"padding": "x" * 65536})
    most = 0
    for _ in range(2000):  # 128 MB if nothing bounded it
        realtime.hub.send_to_user(alice.id, [big])
        most = max(most, len(conn.frames))
        gevent.sleep(0)
        if conn.closing is not None:
            break
    assert conn.closing is not None and conn.closing[0] == 1013
    assert most <= 16
    deadline = time.monotonic() + 10
    while realtime.hub.by_user.get(alice.id) and time.monotonic() < deadline:
        gevent.sleep(0.05)
    assert alice.id not in realtime.hub.by_user, "the stuck socket was not dropped"
    sock.close()
