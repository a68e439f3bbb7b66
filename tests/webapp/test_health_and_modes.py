"""/healthz, /readyz and development mode."""

from __future__ import annotations

import logging

import pytest

import webapp
from relate import db
from relate.config import Settings
from relate.store import accounts
from tests.webapp.conftest import MakeApi


def test_health_and_readiness(api: MakeApi) -> None:
    server = api()
    assert server.http.get("/healthz").json() == {"status": "ok"}
    assert server.http.get("/readyz").json() == {"status": "ready"}


def test_readiness_fails_when_the_database_is_gone(api: MakeApi, store: Settings) -> None:
    server = api()
    db.configure("postgresql+psycopg2://nobody:x@127.0.0.1:1/none", pool_size=1)
    try:
        response = server.http.get("/readyz")
        assert response.status_code == 503
        assert response.json()["status"] == "unavailable"
        assert server.http.get("/healthz").status_code == 200
    finally:
        db.configure(store.database_url, pool_size=5)


def test_development_mode_acts_as_the_development_user(api: MakeApi) -> None:
    server = api()
    body = server.http.get("/api/session").json()
    assert body["user"]["email"] == accounts.DEVELOPMENT_USER
    assert body["user"]["isAdmin"] is True
    assert body["method"] == "development"
    # credentials that are present are still checked
    assert server.http.get("/api/session", headers={"Authorization": "ApiKey nonsense"}).status_code == 401


def test_development_mode_is_announced_once_per_process(api: MakeApi, caplog: pytest.LogCaptureFixture,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(webapp, "_warned_development", False)
    caplog.set_level(logging.WARNING, logger="relate.webapp")
    api()
    api()
    warnings = [r for r in caplog.records if r.name == "relate.webapp" and "development mode" in r.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING
