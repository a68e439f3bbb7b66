"""Development mode: requests without credentials act as the development administrator, so a
page of another origin must not be able to make the developer's browser write through them."""

from __future__ import annotations

import pytest

from relate.store import accounts
from tests.webapp.conftest import Api, MakeApi, make_key, make_user

EVIL = "http://evil.example"
LISTED = "https://app.example.test"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
def server(api: MakeApi) -> Api:
    """A development-mode server (no Oidc__Authority) and a pending address to confirm."""
    running = api(Cors__AllowedOrigins=LISTED)
    accounts.ensure_development_user()  # hosts relate.test
    owner = make_user("owner@relate.test")
    accounts.add_address(owner.id, "x@relate.test", confirmed=False)
    return running


CONFIRM = "/api/admin/addresses/x@relate.test/confirm"


def _pending() -> list[str]:
    return [a.address for a in accounts.pending_addresses()]


@pytest.mark.parametrize("headers", [
    {"Origin": EVIL},
    {"Origin": "null"},  # sandboxed frames, file: pages, some redirects
    {"Origin": "http://127.0.0.1.evil.example"},
    {"Origin": EVIL, "Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "cross-site"},  # no Origin: the browser still says where it came from
], ids=["foreign", "null", "lookalike", "both", "fetch-metadata"])
def test_cross_origin_writes_without_credentials_are_refused(server: Api, headers: dict[str, str]) -> None:
    response = server.http.post(CONFIRM, headers={**FORM, **headers})
    assert response.status_code == 403, response.text
    assert "cross-origin" in response.json()["error"]
    assert _pending() == ["x@relate.test"]


def test_every_unsafe_method_is_refused(server: Api) -> None:
    accounts.add_domain("keep.test")
    cross = {"Origin": EVIL}
    assert server.http.delete("/api/admin/domains/keep.test", headers=cross).status_code == 403
    assert server.http.request("PUT", "/api/preferences", json={"theme": "dark"}, headers=cross).status_code == 403
    assert server.http.patch("/api/profile", json={"displayName": "Mallory"}, headers=cross).status_code == 403
    assert "keep.test" in accounts.hosted_domains()
    assert accounts.find_user(accounts.DEVELOPMENT_USER).display_name == "Developer"
    assert server.http.get("/api/profile", headers=cross).status_code == 200  # reads are not writes


def test_same_origin_and_tools_without_origin_still_write(server: Api) -> None:
    same = server.http.post(CONFIRM, headers={"Origin": server.base, "Sec-Fetch-Site": "same-origin"})
    assert same.status_code == 200, same.text
    assert _pending() == []
    created = server.http.post("/api/admin/domains", json={"name": "curl.test"})  # curl, scripts, tests
    assert created.status_code == 201
    listed = server.http.post("/api/admin/domains", json={"name": "listed.test"},
                              headers={"Origin": LISTED, "Sec-Fetch-Site": "cross-site"})
    assert listed.status_code == 201, listed.text  # Cors__AllowedOrigins
    site = server.http.post("/api/admin/domains", json={"name": "site.test"}, headers={"Sec-Fetch-Site": "same-site"})
    assert site.status_code == 201


def test_the_own_origin_is_compared_by_host_and_port(server: Api) -> None:
    port = server.server.server_port
    other_port = server.http.post(CONFIRM, headers={"Origin": f"http://127.0.0.1:{port + 1}"})
    assert other_port.status_code == 403
    spelled = server.http.post(CONFIRM, headers={"Origin": f"HTTP://127.0.0.1:{port}"})
    assert spelled.status_code == 200, spelled.text


def test_credentials_other_than_ambient_ones_are_unaffected(server: Api) -> None:
    admin = make_user("root@relate.test", admin=True)
    keyed = server.http.bearer(make_key(admin, "api:read api:write"))
    response = keyed.post(CONFIRM, headers={**FORM, "Origin": EVIL, "Sec-Fetch-Site": "cross-site"})
    assert response.status_code == 200, response.text
    assert _pending() == []


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8080", "127.0.0.1.evil.example"])
def test_a_rebound_name_gets_nothing_without_credentials(server: Api, host: str) -> None:
    # DNS rebinding: the hostile page's own name now points here, so its requests are
    # same-origin to the browser (Origin and Host agree) and only the name gives them away.
    evil = f"http://{host}"
    read = server.http.get("/api/profile", headers={"Host": host})
    assert read.status_code == 403 and host in read.json()["error"]
    write = server.http.post(CONFIRM, headers={"Host": host, "Origin": evil})
    assert write.status_code == 403
    assert _pending() == ["x@relate.test"]


@pytest.mark.parametrize("host", ["localhost", "localhost:8080", "dev.localhost", "127.0.0.1:8080", "[::1]:8080",
                                  "10.0.0.5", "app.example.test", "localhost.:8080"])
def test_local_and_configured_names_act_as_the_development_user(server: Api, host: str) -> None:
    response = server.http.get("/api/profile", headers={"Host": host})
    assert response.status_code == 200, response.text


def test_credentials_work_under_any_name(server: Api) -> None:
    user = make_user("someone@relate.test")
    keyed = server.http.bearer(make_key(user, "api:read"))
    assert keyed.get("/api/profile", headers={"Host": "evil.example"}).status_code == 200
