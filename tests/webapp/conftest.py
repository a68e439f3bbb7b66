"""Web app test harness: the real Flask app served over real HTTP (gevent WSGI on 127.0.0.1, as in
the all-in-one process) on either backend, a real OIDC issuer (tests/webapp/oidc_issuer.py),
and helpers to make users and API keys through the store.

- `api(**env)` builds an app from `Section__Key` variables on the test's database and serves
  it; `api.http` is a requests session against it (redirects are not followed), `api.client`
  Flask's in-process client for the odd case where a socket adds nothing.
- `oidc_env(issuer)` is the environment of an OIDC deployment using the test issuer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from gevent.pywsgi import WSGIServer

from relate import metrics
from relate.config import Settings
from relate.store import accounts, keys
from relate.store.types import UserInfo
from tests.conftest import make_settings
from tests.webapp.oidc_issuer import AUDIENCE, CLIENT_ID, CLIENT_SECRET, Issuer
from webapp import create_app, oidc


class Http:
    """requests against one server; paths are relative, redirects are never followed."""

    def __init__(self, base: str, headers: dict[str, str] | None = None):
        self.base = base
        self.session = requests.Session()
        self.session.headers.update(headers or {})

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("allow_redirects", False)
        kwargs.setdefault("timeout", 10)
        return self.session.request(method, self.base + path, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("DELETE", path, **kwargs)

    def with_headers(self, **headers: str) -> Http:
        """Another client (own cookies) that sends these headers on every request."""
        return Http(self.base, {k.replace("_", "-"): v for k, v in headers.items()})

    def bearer(self, token: str) -> Http:
        return Http(self.base, {"Authorization": f"Bearer {token}"})


@dataclass
class Api:
    app: Flask
    settings: Settings
    server: WSGIServer
    base: str  # http://127.0.0.1:port
    http: Http
    client: FlaskClient

    def new_http(self, **headers: str) -> Http:
        return self.http.with_headers(**headers)


MakeApi = Callable[..., Api]


@pytest.fixture
def api(store: Settings, tmp_path: Path) -> Iterator[MakeApi]:
    """Factory: serve a new app (a replica) on the test's database, configured by `env`."""
    servers: list[WSGIServer] = []
    metrics.reset()

    def make(**env: str) -> Api:
        env.setdefault("Database__AutoMigrate", "false")
        settings = make_settings(store.database_url, tmp_path, **env)
        app = create_app(settings)
        server = WSGIServer(("127.0.0.1", 0), app, log=None, error_log=None)
        server.start()
        servers.append(server)
        base = f"http://127.0.0.1:{server.server_port}"
        return Api(app, settings, server, base, Http(base), app.test_client())

    yield make
    for server in servers:
        server.stop(timeout=0.1)  # keep-alive connections of requests sessions are simply cut
    metrics.reset()


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    running = Issuer().start()
    yield running
    running.stop()
    oidc.forget_providers()


def oidc_env(issuer: Issuer, **more: str) -> dict[str, str]:
    return {
        "Oidc__Authority": issuer.url,
        "Oidc__Audience": AUDIENCE,
        "Oidc__ClientId": CLIENT_ID,
        "Oidc__ClientSecret": CLIENT_SECRET,
        **more,
    }


def make_user(email: str, *, admin: bool = False, name: str = "") -> UserInfo:
    return accounts.create_user(email, name, is_admin=admin)


def make_key(user: UserInfo, scopes: str) -> str:
    _, secret = keys.create_key(user.id, f"test {scopes}", scopes)
    return secret
