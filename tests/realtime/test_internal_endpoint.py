"""POST /api/internal/notifications/new-email: the daemons' channel to the API."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from relate import notify
from tests.conftest import make_settings
from tests.realtime.conftest import INTERNAL_KEY, Api, http, make_user, serve_api

pytestmark = pytest.mark.timeout(60)

PATH = "/api/internal/notifications/new-email"
EMAIL = {"id": 424242, "from": "someone@elsewhere.test", "fromDisplay": "Some One", "subject": "Hi",
         "receivedAt": "2026-01-01T00:00:00Z", "hasAttachments": False}


@pytest.mark.parametrize(
    "header",
    [None, "ApiKey wrong-key", f"Bearer {INTERNAL_KEY}", f"ApiKey {INTERNAL_KEY}x", "ApiKey", f"{INTERNAL_KEY}"],
    ids=["missing", "wrong", "bearer-scheme", "longer", "empty", "no-scheme"],
)
def test_anything_but_the_internal_key_is_401(api: Api, header: str | None):
    alice = make_user("alice")
    ws = api.socket(alice)
    headers = {"Authorization": header} if header is not None else {}
    status, body = http("POST", api.base + PATH, {"userIds": [alice.id], "email": EMAIL}, headers)
    assert status == 401 and "error" in body
    assert [f for f in ws.collect(0.5) if f["type"] == "NewEmail"] == []
    ws.close()


def test_a_users_api_key_is_not_the_internal_key(api: Api):
    alice = make_user("alice")
    status, _ = http("POST", api.base + PATH, {"userIds": [alice.id], "email": EMAIL}, {"Authorization": f"ApiKey {alice.key}"})
    assert status == 401


def test_the_right_key_reaches_the_users_sockets_only(api: Api):
    alice, bob = make_user("alice"), make_user("bob")
    alice_ws, bob_ws = api.socket(alice), api.socket(bob)
    status, body = http("POST", api.base + PATH, {"userIds": [alice.id], "email": EMAIL},
                        {"Authorization": f"ApiKey {INTERNAL_KEY}"})
    assert status == 202 and body == {"accepted": 1}
    new = alice_ws.wait_for("NewEmail")["data"]
    # No such entry in this store, so the notification's own fields are relayed.
    assert new["id"] == EMAIL["id"] and new["subject"] == "Hi" and new["fromAddress"] == EMAIL["from"]
    assert [f for f in bob_ws.collect(0.5) if f["type"] == "NewEmail"] == []
    alice_ws.close()
    bob_ws.close()


@pytest.mark.parametrize(
    "payload",
    [
        {"userIds": [], "email": EMAIL},
        {"userIds": ["1"], "email": EMAIL},
        {"userIds": [1]},
        {"userIds": [1], "email": {"subject": "no id"}},
        {"userIds": [1], "email": EMAIL, "extra": True},
    ],
    ids=["no-users", "string-id", "no-email", "email-without-id", "unknown-field"],
)
def test_malformed_notifications_are_400(api: Api, payload: dict):
    status, body = http("POST", api.base + PATH, payload, {"Authorization": f"ApiKey {INTERNAL_KEY}"})
    assert status == 400 and "error" in body


def test_the_daemons_notifier_is_accepted(api: Api):
    alice = make_user("alice")
    ws = api.socket(alice)
    sender = notify.Notifier(api.base, INTERNAL_KEY)
    sender.submit(notify.new_email_payload([alice.id], EMAIL))
    assert sender.flush(5)
    assert sender.sent == 1 and sender.failed == 0
    assert ws.wait_for("NewEmail")["data"]["id"] == EMAIL["id"]
    ws.close()


def test_without_the_key_configured_everything_is_refused_and_said_at_start(
    store, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    from webapp import realtime

    caplog.set_level(logging.WARNING)
    settings = make_settings(store.database_url, tmp_path, Database__AutoMigrate="false", Api__RateLimitPerIp="0")
    served = serve_api(settings)
    try:
        assert any("Internal__ApiKey" in r.getMessage() for r in caplog.records)
        for header in ({}, {"Authorization": "ApiKey "}, {"Authorization": "ApiKey anything"}):
            status, _ = http("POST", f"http://127.0.0.1:{served.server.server_port}{PATH}",
                             {"userIds": [1], "email": EMAIL}, header)
            assert status == 401
    finally:
        served.server.stop(timeout=1)
        realtime.hub.stop()


def test_the_route_is_in_the_openapi_document(api: Api):
    status, doc = http("GET", api.base + "/api/openapi.json")
    assert status == 200
    operation = doc["paths"][PATH]["post"]
    assert "202" in operation["responses"] and "401" in operation["responses"]
    assert "/api/push-subscriptions" in doc["paths"]
