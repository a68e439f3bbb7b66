"""API keys as credentials on the REST API, and the scopes every route enforces."""

from __future__ import annotations

import pytest

from relate.store import keys
from tests.webapp.conftest import MakeApi, make_key, make_user, oidc_env
from tests.webapp.oidc_issuer import Issuer


@pytest.mark.parametrize("scheme", ["Bearer", "ApiKey", "bearer", "apikey"])
def test_both_schemes_carry_a_key(api: MakeApi, issuer: Issuer, scheme: str) -> None:
    server = api(**oidc_env(issuer))
    alice = make_user("alice@example.test")
    key = make_key(alice, "api:read")
    body = server.http.get("/api/session", headers={"Authorization": f"{scheme} {key}"}).json()
    assert body["authenticated"] is True and body["method"] == "api-key"
    assert body["user"]["id"] == alice.id
    assert body["scopes"] == ["api:read"]


def test_keys_work_in_development_mode_too_and_bad_ones_are_refused(api: MakeApi) -> None:
    server = api()
    alice = make_user("alice@example.test")
    key = make_key(alice, "api:read")
    assert server.http.bearer(key).get("/api/session").json()["user"]["email"] == "alice@example.test"
    for bad in ("rm_aaaaaaaaaa_" + "x" * 43, key[:-1] + ("a" if key[-1] != "a" else "b")):
        response = server.http.get("/api/session", headers={"Authorization": f"ApiKey {bad}"})
        assert response.status_code == 401


def test_revoked_key_is_refused_at_once(api: MakeApi) -> None:
    server = api()
    alice = make_user("alice@example.test")
    info, key = keys.create_key(alice.id, "phone", "api:read")
    assert server.http.bearer(key).get("/api/session").status_code == 200
    keys.revoke_key(info.id)
    assert server.http.bearer(key).get("/api/session").status_code == 401


@pytest.mark.parametrize("header", ["Basic YWxpY2U6c2VjcmV0", "Token abc", "Bearer", "ApiKey "])
def test_unsupported_or_empty_authorization_is_401(api: MakeApi, header: str) -> None:
    server = api()
    response = server.http.get("/api/session", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.json()["error"]


@pytest.mark.parametrize("scopes", ["smtp", "pop3", "imap", "smtp pop3 imap"])
def test_protocol_scopes_grant_no_rest_access(api: MakeApi, scopes: str) -> None:
    server = api()
    admin = make_user("root@example.test", admin=True)
    key = make_key(admin, scopes)
    http = server.http.bearer(key)
    assert http.get("/api/session").status_code == 403
    assert http.get("/api/admin/users").status_code == 403
    assert http.post("/api/admin/domains", json={"name": "x.test"}).status_code == 403


def test_read_scope_reads_and_write_scope_writes(api: MakeApi) -> None:
    server = api()
    admin = make_user("root@example.test", admin=True)
    reader = server.http.bearer(make_key(admin, "api:read"))
    writer = server.http.bearer(make_key(admin, "api:write"))
    both = server.http.bearer(make_key(admin, "api:read api:write"))
    app = server.http.bearer(make_key(admin, "app"))
    assert reader.get("/api/admin/domains").status_code == 200
    assert reader.post("/api/admin/domains", json={"name": "r.test"}).status_code == 403
    assert writer.post("/api/admin/domains", json={"name": "w.test"}).status_code == 201
    assert writer.get("/api/admin/domains").status_code == 403
    assert both.post("/api/admin/domains", json={"name": "b.test"}).status_code == 201
    assert app.get("/api/admin/domains").status_code == 200
    assert app.post("/api/admin/domains", json={"name": "a.test"}).status_code == 201


def test_admin_routes_need_an_administrator(api: MakeApi) -> None:
    server = api()
    alice = make_user("alice@example.test")
    http = server.http.bearer(make_key(alice, "app"))
    for method, path in [
        ("GET", "/api/admin/users"),
        ("GET", "/api/admin/domains"),
        ("GET", "/api/admin/addresses/pending"),
        ("POST", "/api/admin/domains"),
        ("DELETE", f"/api/admin/users/{alice.id}"),
    ]:
        response = http.request(method, path, json={"name": "x.test"} if method == "POST" else None)
        assert response.status_code == 403, (method, path)


def test_admin_emails_grant_administrator_rights(api: MakeApi) -> None:
    server = api(Admin__Emails="alice@example.test")
    alice = make_user("alice@example.test")
    assert server.http.bearer(make_key(alice, "api:read")).get("/api/admin/users").status_code == 200


def test_keys_made_by_a_key_never_gain_a_scope(api: MakeApi) -> None:
    server = api()
    admin = make_user("root@example.test", admin=True)
    alice = make_user("alice@example.test")
    http = server.http.bearer(make_key(admin, "api:read api:write"))
    refused = http.post(f"/api/admin/users/{alice.id}/keys", json={"name": "mail", "scopes": ["smtp"]})
    assert refused.status_code == 403
    assert "smtp" in refused.json()["error"]
    allowed = http.post(f"/api/admin/users/{alice.id}/keys", json={"name": "read", "scopes": ["api:read"]})
    assert allowed.status_code == 201
    # a key holding smtp may hand smtp on
    holder = server.http.bearer(make_key(admin, "app smtp"))
    assert holder.post(f"/api/admin/users/{alice.id}/keys", json={"name": "m", "scopes": ["smtp"]}).status_code == 201


def test_signed_in_people_may_grant_every_scope(api: MakeApi, issuer: Issuer) -> None:
    server = api(**oidc_env(issuer, Admin__Emails="alice@example.test"))
    http = server.http.bearer(issuer.token())
    alice_id = http.get("/api/session").json()["user"]["id"]
    response = http.post(f"/api/admin/users/{alice_id}/keys", json={"name": "all", "scopes": ["smtp", "imap", "app"]})
    assert response.status_code == 201, response.text
    assert response.json()["key"].startswith("rm_")
