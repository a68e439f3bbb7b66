"""Administration over the API: domains, users, pending addresses, keys."""

from __future__ import annotations

import pytest

from relate.store import accounts, keys
from tests.webapp.conftest import Http, MakeApi, make_key, make_user


@pytest.fixture
def admin_http(api: MakeApi) -> Http:
    server = api()
    root = make_user("root@example.test", admin=True)
    return server.http.bearer(make_key(root, "api:read api:write"))


def test_domains(admin_http: Http) -> None:
    assert admin_http.post("/api/admin/domains", json={"name": "New.Example."}).json() == {"name": "new.example"}
    duplicate = admin_http.post("/api/admin/domains", json={"name": "new.example"})
    assert duplicate.status_code == 409
    assert "already" in duplicate.json()["error"]
    assert admin_http.post("/api/admin/domains", json={"name": "not a domain"}).status_code == 400
    listed = admin_http.get("/api/admin/domains").json()
    assert {"name": "new.example"} in listed["items"]
    assert listed["totalCount"] == len(listed["items"]) and listed["page"] == 1
    assert admin_http.delete("/api/admin/domains/new.example").status_code == 204
    assert admin_http.delete("/api/admin/domains/new.example").status_code == 404
    assert "new.example" not in accounts.hosted_domains()


def test_users(admin_http: Http) -> None:
    created = admin_http.post("/api/admin/users", json={"email": "Bob@Example.test", "displayName": "Bob"})
    assert created.status_code == 201, created.text
    bob = created.json()
    assert bob["email"] == "bob@example.test" and bob["displayName"] == "Bob" and bob["isAdmin"] is False
    assert bob["addresses"] == [{"address": "bob@example.test", "userId": bob["id"], "confirmed": True, "primary": True}]
    assert admin_http.post("/api/admin/users", json={"email": "bob@example.test"}).status_code == 409
    assert admin_http.post("/api/admin/users", json={"email": "nobody"}).status_code == 400

    page = admin_http.get("/api/admin/users", params={"pageSize": 1, "page": 2}).json()
    assert page["totalCount"] == 2 and page["pageSize"] == 1 and len(page["items"]) == 1

    promoted = admin_http.patch(f"/api/admin/users/{bob['id']}", json={"isAdmin": True, "displayName": "Robert"})
    assert promoted.json()["isAdmin"] is True and promoted.json()["displayName"] == "Robert"
    assert admin_http.get(f"/api/admin/users/{bob['id']}").json()["displayName"] == "Robert"

    assert admin_http.delete(f"/api/admin/users/{bob['id']}").status_code == 204
    assert admin_http.get(f"/api/admin/users/{bob['id']}").status_code == 404
    assert accounts.find_user("bob@example.test") is None


def test_administrators_cannot_remove_or_demote_themselves(admin_http: Http) -> None:
    me = admin_http.get("/api/session").json()["user"]["id"]
    assert admin_http.delete(f"/api/admin/users/{me}").status_code == 409
    demote = admin_http.patch(f"/api/admin/users/{me}", json={"isAdmin": False})
    assert demote.status_code == 409 and demote.json()["field"] == "isAdmin"


def test_pending_addresses(admin_http: Http) -> None:
    alice = make_user("alice@example.test")
    accounts.add_address(alice.id, "sales@example.test", confirmed=False)
    accounts.add_address(alice.id, "spam@example.test", confirmed=False)
    pending = admin_http.get("/api/admin/addresses/pending").json()
    assert [p["address"] for p in pending["items"]] == ["sales@example.test", "spam@example.test"]
    assert pending["items"][0]["userEmail"] == "alice@example.test"

    confirmed = admin_http.post("/api/admin/addresses/sales@example.test/confirm")
    assert confirmed.status_code == 200 and confirmed.json()["confirmed"] is True
    assert accounts.resolve_recipient("sales@example.test") == alice.id
    assert admin_http.delete("/api/admin/addresses/spam@example.test").status_code == 204
    assert admin_http.get("/api/admin/addresses/pending").json()["items"] == []
    assert admin_http.delete("/api/admin/addresses/alice@example.test").status_code == 409  # a primary address
    assert admin_http.post("/api/admin/addresses/ghost@example.test/confirm").status_code == 404


def test_an_administrator_takes_over_pending_requests(admin_http: Http) -> None:
    squatter = make_user("squatter@example.test")
    other = make_user("other@example.test")
    for address in ("newguy@example.test", "sales@example.test"):
        accounts.add_address(squatter.id, address, confirmed=False)
    created = admin_http.post("/api/admin/users", json={"email": "newguy@example.test"})
    assert created.status_code == 201, created.text
    assigned = admin_http.post(f"/api/admin/users/{other.id}/addresses", json={"address": "sales@example.test"})
    assert assigned.status_code == 201 and assigned.json()["userId"] == other.id and assigned.json()["confirmed"]
    assert admin_http.get("/api/admin/addresses/pending").json()["items"] == []
    assert [a["address"] for a in admin_http.get(f"/api/admin/users/{squatter.id}").json()["addresses"]] == [
        "squatter@example.test"]
    # A confirmed address of another user is still theirs.
    assert admin_http.post("/api/admin/users", json={"email": "sales@example.test"}).status_code == 409
    taken = admin_http.post(f"/api/admin/users/{other.id}/addresses", json={"address": "newguy@example.test"})
    assert taken.status_code == 409 and "already in use" in taken.json()["error"]


def test_confirming_never_hosts_a_domain(admin_http: Http) -> None:
    alice = make_user("alice@example.test")
    accounts.add_domain("other.test")
    accounts.add_address(alice.id, "alice@other.test", confirmed=False)
    assert admin_http.delete("/api/admin/domains/other.test").status_code == 204
    refused = admin_http.post("/api/admin/addresses/alice@other.test/confirm")
    assert refused.status_code == 409 and "other.test is not a domain hosted here" in refused.json()["error"]
    assert "other.test" not in accounts.hosted_domains()
    assert [p["address"] for p in admin_http.get("/api/admin/addresses/pending").json()["items"]] == [
        "alice@other.test"]
    assert admin_http.post("/api/admin/domains", json={"name": "other.test"}).status_code == 201
    assert admin_http.post("/api/admin/addresses/alice@other.test/confirm").status_code == 200


def test_admin_assigned_addresses_are_confirmed(admin_http: Http) -> None:
    alice = make_user("alice@example.test")
    response = admin_http.post(f"/api/admin/users/{alice.id}/addresses", json={"address": "info@other.test"})
    assert response.status_code == 201
    assert response.json() == {"address": "info@other.test", "userId": alice.id, "confirmed": True, "primary": False}
    assert accounts.resolve_recipient("info@other.test") == alice.id
    again = admin_http.post(f"/api/admin/users/{alice.id}/addresses", json={"address": "info@other.test"})
    assert again.status_code == 409
    assert admin_http.post("/api/admin/users/99999/addresses", json={"address": "x@other.test"}).status_code == 404


def test_keys(admin_http: Http) -> None:
    alice = make_user("alice@example.test")
    made = admin_http.post(f"/api/admin/users/{alice.id}/keys", json={"name": "laptop", "scopes": ["api:read"]})
    assert made.status_code == 201
    body = made.json()
    assert body["key"].startswith(body["prefix"] + "_")
    assert keys.verify_bearer(body["key"]) is not None
    listed = admin_http.get(f"/api/admin/users/{alice.id}/keys").json()
    assert [k["name"] for k in listed["items"]] == ["laptop"]
    assert "key" not in listed["items"][0]
    assert admin_http.delete(f"/api/admin/keys/{body['id']}").status_code == 204
    assert keys.verify_bearer(body["key"]) is None
    assert admin_http.get(f"/api/admin/users/{alice.id}/keys").json()["items"] == []
    bad = admin_http.post(f"/api/admin/users/{alice.id}/keys", json={"name": "x", "scopes": ["root"]})
    assert bad.status_code == 400 and bad.json()["field"] == "scopes.0"


def test_ids_beyond_any_database_integer_are_404(admin_http: Http) -> None:
    assert admin_http.get(f"/api/admin/users/{2**64}").status_code == 404
    assert admin_http.get(f"/api/admin/users/{2**63 - 1}").status_code == 404
