"""Real-time test harness: an API served in this process (gevent WSGI, like the all-in-one) on
either backend, a WebSocket client that keeps every frame it receives, and small HTTP helpers."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gevent
import pytest
import simple_websocket
from flask import Flask
from gevent.pywsgi import WSGIServer

from relate import store
from relate.config import Settings
from relate.store import accounts, keys
from tests.conftest import make_settings

INTERNAL_KEY = "internal-test-key-0123456789"
DOMAIN = "example.test"


class _Client(simple_websocket.Client):
    """simple_websocket's client leaves frames that arrive in the same read as the handshake
    response unparsed until more bytes come; parse them at once."""

    def handshake(self) -> None:
        super().handshake()
        self.connected = self._handle_events()


@dataclass
class WsClient:
    """A WebSocket client that records every frame; tests wait for the ones they expect."""

    url: str
    headers: dict[str, str] = field(default_factory=dict)
    ws: _Client | None = None
    frames: list[dict[str, Any]] = field(default_factory=list)  # received, not yet taken
    seen: list[dict[str, Any]] = field(default_factory=list)  # everything received, in order
    arrival: dict[int, float] = field(default_factory=dict)  # id(frame) → monotonic time received
    background: bool = False  # a greenlet reads frames as they arrive

    def connect(self) -> WsClient:
        self.ws = _Client(self.url, headers=self.headers)
        return self

    def pump_in_background(self) -> WsClient:
        """Read frames as they arrive (so `arrival` is the true arrival time)."""

        def pump() -> None:
            while self._pump(1.0) and (self.connected or (self.ws is not None and self.ws.input_buffer)):
                pass

        self.background = True
        gevent.spawn(pump)
        return self

    def _next(self, timeout: float) -> bool:
        if self.background:
            gevent.sleep(min(timeout, 0.01))
            return self.connected or bool(self.frames)
        return self._pump(timeout)

    def _pump(self, timeout: float) -> bool:
        assert self.ws is not None
        try:
            raw = self.ws.receive(timeout=timeout)
        except simple_websocket.ConnectionClosed:
            return False
        if raw is None:
            return True
        message = json.loads(raw)
        self.arrival[id(message)] = time.monotonic()
        self.frames.append(message)
        self.seen.append(message)
        return True

    def wait_for(self, kind: str, predicate: Callable[[dict[str, Any]], bool] = lambda f: True,
                 timeout: float = 5.0) -> dict[str, Any]:
        """The first frame of `kind` matching `predicate` (taken out of the buffer)."""
        deadline = time.monotonic() + timeout
        while True:
            for f in self.frames:
                if f["type"] == kind and predicate(f):
                    self.frames.remove(f)
                    return f
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {kind} frame within {timeout}s; got {[f['type'] for f in self.frames]}")
            if not self._next(min(left, 0.5)) and not self.connected:
                raise AssertionError(f"socket closed while waiting for {kind}; got {self.frames}")

    def collect(self, seconds: float) -> list[dict[str, Any]]:
        """Everything that arrives within `seconds` (and was not taken yet)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and self._next(max(0.01, deadline - time.monotonic())):
            pass
        out, self.frames = self.frames, []
        return out

    def send(self, data: dict[str, Any]) -> None:
        assert self.ws is not None
        self.ws.send(json.dumps(data))

    @property
    def connected(self) -> bool:
        return self.ws is not None and self.ws.connected

    def wait_closed(self, timeout: float = 5.0) -> tuple[int, str]:
        """(close code, reason) once the server closed the socket."""
        assert self.ws is not None
        deadline = time.monotonic() + timeout
        while self.ws.connected and time.monotonic() < deadline:
            self._next(0.2)
        assert not self.ws.connected, "the server did not close the socket"
        return int(self.ws.close_reason), str(self.ws.close_message or "")

    def close(self) -> None:
        if self.ws is not None and self.ws.connected:
            try:
                self.ws.close()
            except Exception:
                pass


def http(method: str, url: str, body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """(status, parsed JSON or None) of one request."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
            status = response.status
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        status = exc.code
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw


@dataclass
class User:
    id: int
    address: str
    key: str  # an API key with every scope
    key_id: int

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


def make_user(name: str, scopes: str = "smtp pop3 imap api:read api:write") -> User:
    address = f"{name}@{DOMAIN}"
    info = accounts.create_user(address)
    key_info, key = keys.create_key(info.id, "realtime test", scopes)
    return User(info.id, address, key, key_info.id)


def make_message(subject: str = "Hello", sender: str = "someone@elsewhere.test", to: str = "x@example.test",
                 body: str = "Hi there.\r\n") -> bytes:
    return (
        f"From: Some One <{sender}>\r\nTo: {to}\r\nSubject: {subject}\r\n"
        f"Message-ID: <{time.monotonic_ns()}@elsewhere.test>\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n\r\n{body}"
    ).encode()


def deliver(to: User, subject: str = "Hello") -> store.Delivered:
    return store.messages.deliver(make_message(subject, to=to.address),
                                  store.Envelope("someone@elsewhere.test", (to.address,)))


@dataclass
class Api:
    """An API served in this process on a loopback port."""

    settings: Settings
    app: Flask
    server: WSGIServer

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.server.server_port}/api/ws"

    def socket(self, user: User | None = None, **headers: str) -> WsClient:
        all_headers = dict(user.auth if user else {})
        all_headers.update(headers)
        client = WsClient(self.ws_url, all_headers).connect()
        client.wait_for("Hello")
        return client


def serve_api(settings: Settings) -> Api:
    from webapp import create_app

    app = create_app(settings)
    server = WSGIServer(("127.0.0.1", 0), app, log=None)
    server.start()
    return Api(settings, app, server)


@pytest.fixture
def api_env() -> dict[str, str]:
    """Extra environment for the `api` fixture (a test overrides it to change settings)."""
    return {}


@pytest.fixture
def api(store: Settings, tmp_path: Path, api_env: dict[str, str]) -> Iterator[Api]:
    """The API on this test's backend, in this process, with Internal__ApiKey set."""
    from webapp import realtime

    env = {"Database__AutoMigrate": "false", "Internal__ApiKey": INTERNAL_KEY, "Api__RateLimitPerIp": "0",
           "Api__RateLimitPerUser": "0", **api_env}
    settings = make_settings(store.database_url, tmp_path, **env)
    accounts.ensure_domains([DOMAIN])
    served = serve_api(settings)
    yield served
    served.server.stop(timeout=1)
    realtime.hub.stop()
    gevent.sleep(0)
