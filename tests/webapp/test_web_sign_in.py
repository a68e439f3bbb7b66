"""The web UI's sign-in: authorisation code flow with PKCE against the test issuer, over real HTTP,
ending in a session cookie; CSRF on cookie-authenticated writes; signing out."""

from __future__ import annotations

import urllib.parse

import pytest
import requests

from relate.store import accounts, websessions
from tests.webapp.conftest import Api, Http, MakeApi, make_key, make_user, oidc_env
from tests.webapp.oidc_issuer import CLIENT_ID, Issuer
from webapp import csrf, sessions


def sign_in(server: Api, issuer: Issuer, http: Http | None = None, return_to: str = "/inbox") -> requests.Response:
    """Follow the whole dance by hand: app → issuer → app. Returns the callback's answer."""
    browser = http or server.http
    start = browser.get("/auth/login", params={"returnTo": return_to})
    assert start.status_code == 302, start.text
    to_issuer = start.headers["Location"]
    assert to_issuer.startswith(issuer.url + "/authorize?")
    approved = requests.get(to_issuer, allow_redirects=False, timeout=10)
    assert approved.status_code == 302, approved.text
    back = approved.headers["Location"]
    assert back.startswith(server.base + "/auth/callback?")
    return browser.get(back[len(server.base):])


def cookie_attributes(response: requests.Response, name: str) -> str:
    headers = [v for k, v in response.raw.headers.items() if k.lower() == "set-cookie" and v.startswith(name + "=")]
    assert headers, f"no {name} cookie set"
    return headers[-1]


def test_code_flow_with_pkce_signs_in(api: MakeApi, issuer: Issuer) -> None:
    server = api(**oidc_env(issuer))
    start = server.http.get("/auth/login", params={"returnTo": "/inbox"})
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(start.headers["Location"]).query))
    assert query["response_type"] == "code"
    assert query["client_id"] == CLIENT_ID
    assert query["code_challenge_method"] == "S256"
    assert len(query["code_challenge"]) == 43
    assert query["redirect_uri"] == server.base + "/auth/callback"
    assert query["state"] and query["nonce"]
    assert query["scope"] == "openid profile email"
    login_cookie = cookie_attributes(start, "relate_login")
    assert "HttpOnly" in login_cookie and "SameSite=Lax" in login_cookie and "Path=/auth/" in login_cookie

    done = sign_in(server, issuer)
    assert done.status_code == 302, done.text
    assert done.headers["Location"] == "/inbox"
    cookie = cookie_attributes(done, sessions.COOKIE)
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # plain HTTP here
    # the code went to the token endpoint with the verifier and the client's secret
    token_request = issuer.token_requests[-1]
    assert token_request["grant_type"] == "authorization_code"
    assert token_request["code_verifier"]

    me = server.http.get("/api/session").json()
    assert me["authenticated"] is True and me["method"] == "session"
    assert me["user"]["email"] == "alice@example.test"
    assert me["csrfToken"] == server.http.session.cookies.get(sessions.CSRF_COOKIE)
    assert me["expiresAt"]
    user = accounts.find_user("alice@example.test")
    assert user is not None and user.oidc_subject == "user-1"


def test_session_cookie_is_secure_behind_a_tls_proxy(api: MakeApi, issuer: Issuer) -> None:
    server = api(**oidc_env(issuer, Api__TrustedProxies="1"))
    browser = server.new_http(X_Forwarded_Proto="https", X_Forwarded_Host="mail.example.test")
    start = browser.get("/auth/login")
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(start.headers["Location"]).query))
    assert query["redirect_uri"] == "https://mail.example.test/auth/callback"
    assert "Secure" in cookie_attributes(start, "relate_login")
    approved = requests.get(start.headers["Location"], allow_redirects=False, timeout=10)
    callback = urllib.parse.urlsplit(approved.headers["Location"])
    # requests will not send a Secure cookie over http: hand the state cookie over ourselves
    state_cookie = start.cookies.get("relate_login")
    done = browser.get(f"{callback.path}?{callback.query}", cookies={"relate_login": state_cookie})
    assert done.status_code == 302, done.text
    assert "Secure" in cookie_attributes(done, sessions.COOKIE)


def test_untrusted_forwarded_headers_are_ignored(api: MakeApi, issuer: Issuer) -> None:
    server = api(**oidc_env(issuer))
    start = server.new_http(X_Forwarded_Proto="https", X_Forwarded_Host="evil.test").get("/auth/login")
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(start.headers["Location"]).query))
    assert query["redirect_uri"] == server.base + "/auth/callback"
    assert "Secure" not in cookie_attributes(start, "relate_login")


def test_cookie_writes_need_the_csrf_token(api: MakeApi, issuer: Issuer) -> None:
    server = api(**oidc_env(issuer, Admin__Emails="alice@example.test"))
    sign_in(server, issuer)
    token = server.http.get("/api/session").json()["csrfToken"]

    no_token = server.http.post("/api/admin/domains", json={"name": "one.test"})
    assert no_token.status_code == 403
    assert csrf.HEADER in no_token.json()["error"]
    wrong = server.http.post("/api/admin/domains", json={"name": "one.test"}, headers={csrf.HEADER: "x" * 43})
    assert wrong.status_code == 403
    assert "one.test" not in accounts.hosted_domains()

    ok = server.http.post("/api/admin/domains", json={"name": "one.test"}, headers={csrf.HEADER: token})
    assert ok.status_code == 201, ok.text
    # reads need no token
    assert server.http.get("/api/admin/domains").status_code == 200


def test_another_sessions_csrf_token_does_not_work(api: MakeApi, issuer: Issuer) -> None:
    server = api(**oidc_env(issuer, Admin__Emails="alice@example.test"))
    first, second = server.new_http(), server.new_http()
    sign_in(server, issuer, first)
    sign_in(server, issuer, second)
    other_token = second.get("/api/session").json()["csrfToken"]
    response = first.post("/api/admin/domains", json={"name": "two.test"}, headers={csrf.HEADER: other_token})
    assert response.status_code == 403


def test_bearer_requests_need_no_csrf_token(api: MakeApi, issuer: Issuer) -> None:
    server = api(**oidc_env(issuer, Admin__Emails="alice@example.test"))
    response = server.http.bearer(issuer.token()).post("/api/admin/domains", json={"name": "three.test"})
    assert response.status_code == 201


def test_logout_ends_the_session_everywhere(api: MakeApi, issuer: Issuer) -> None:
    server = api(**oidc_env(issuer))
    replica = api(**oidc_env(issuer))
    sign_in(server, issuer)
    cookie = server.http.session.cookies.get(sessions.COOKIE)
    csrf_token = server.http.get("/api/session").json()["csrfToken"]
    # another replica on the same database knows the session
    on_replica = replica.http.get("/api/session", cookies={sessions.COOKIE: cookie})
    assert on_replica.json()["authenticated"] is True

    assert server.http.post("/auth/logout").status_code == 403  # sign-out is a write: CSRF applies
    out = server.http.post("/auth/logout", headers={csrf.HEADER: csrf_token})
    assert out.status_code == 200
    assert out.json() == {"signedOut": True, "endSessionUrl": f"{issuer.url}/logout"}
    # replaying the old cookie gets nowhere, on any replica
    for somewhere in (server, replica):
        again = somewhere.http.get("/api/session", cookies={sessions.COOKIE: cookie})
        assert again.json()["authenticated"] is False


def test_signing_in_again_replaces_the_session(api: MakeApi, issuer: Issuer) -> None:
    server = api(**oidc_env(issuer))
    sign_in(server, issuer)
    first = server.http.session.cookies.get(sessions.COOKIE)
    sign_in(server, issuer)
    second = server.http.session.cookies.get(sessions.COOKIE)
    assert first != second
    assert websessions.lookup(first) is None
    assert websessions.lookup(second) is not None


def test_administrator_can_end_a_users_sessions(api: MakeApi, issuer: Issuer) -> None:
    server = api(**oidc_env(issuer))
    sign_in(server, issuer)
    alice = accounts.find_user("alice@example.test")
    assert alice is not None
    admin = make_user("root@example.test", admin=True)
    key = make_key(admin, "api:read api:write")
    assert server.http.bearer(key).delete(f"/api/admin/users/{alice.id}/sessions").status_code == 204
    assert server.http.get("/api/session").json()["authenticated"] is False


@pytest.mark.parametrize("target", ["//evil.test/x", "https://evil.test/", "/\\evil.test", "javascript:alert(1)"])
def test_return_to_never_leaves_the_site(api: MakeApi, issuer: Issuer, target: str) -> None:
    server = api(**oidc_env(issuer))
    done = sign_in(server, issuer, return_to=target)
    assert done.headers["Location"] == "/"


def test_callback_with_a_foreign_state_is_refused(api: MakeApi, issuer: Issuer) -> None:
    server = api(**oidc_env(issuer))
    start = server.http.get("/auth/login")
    approved = requests.get(start.headers["Location"], allow_redirects=False, timeout=10)
    callback = urllib.parse.urlsplit(approved.headers["Location"])
    params = dict(urllib.parse.parse_qsl(callback.query))
    params["state"] = "forged"
    response = server.http.get("/auth/callback", params=params)
    assert response.status_code == 400
    assert response.json()["field"] == "state"
    assert server.http.get("/api/session").json()["authenticated"] is False


def test_callback_without_the_login_cookie_is_refused(api: MakeApi, issuer: Issuer) -> None:
    """A code injected into someone else's browser (no sign-in started there) goes nowhere."""
    server = api(**oidc_env(issuer))
    start = server.http.get("/auth/login")
    approved = requests.get(start.headers["Location"], allow_redirects=False, timeout=10)
    victim = server.new_http()
    response = victim.get(approved.headers["Location"][len(server.base):])
    assert response.status_code == 400
    assert issuer.token_requests == []


def test_tampered_login_cookie_is_refused(api: MakeApi, issuer: Issuer) -> None:
    server = api(**oidc_env(issuer))
    start = server.http.get("/auth/login")
    approved = requests.get(start.headers["Location"], allow_redirects=False, timeout=10)
    cookie = start.cookies["relate_login"]
    server.http.session.cookies.clear()
    response = server.http.get(
        approved.headers["Location"][len(server.base):], cookies={"relate_login": cookie[:-4] + "AAAA"}
    )
    assert response.status_code == 400


def test_a_code_works_once(api: MakeApi, issuer: Issuer) -> None:
    server = api(**oidc_env(issuer))
    start = server.http.get("/auth/login")
    approved = requests.get(start.headers["Location"], allow_redirects=False, timeout=10)
    back = approved.headers["Location"][len(server.base):]
    login_cookie = start.cookies["relate_login"]
    assert server.http.get(back).status_code == 302
    replay = server.new_http().get(back, cookies={"relate_login": login_cookie})
    assert replay.status_code == 400
    assert "refused" in replay.json()["error"]


def test_issuer_error_is_reported(api: MakeApi, issuer: Issuer) -> None:
    server = api(**oidc_env(issuer))
    server.http.get("/auth/login")
    response = server.http.get("/auth/callback", params={"error": "access_denied", "state": "x"})
    assert response.status_code == 400
    assert "access_denied" in response.json()["error"]


def test_id_token_with_the_wrong_nonce_is_refused(api: MakeApi, issuer: Issuer) -> None:
    server = api(**oidc_env(issuer))
    start = server.http.get("/auth/login")
    location = start.headers["Location"].replace("nonce=", "nonce=tampered")
    approved = requests.get(location, allow_redirects=False, timeout=10)
    response = server.http.get(approved.headers["Location"][len(server.base):])
    assert response.status_code == 401
    assert server.http.get("/api/session").json()["authenticated"] is False


def test_development_mode_has_nobody_to_sign_in(api: MakeApi) -> None:
    server = api()
    response = server.http.get("/auth/login", params={"returnTo": "/settings"})
    assert response.status_code == 302 and response.headers["Location"] == "/settings"
    me = server.http.get("/api/session").json()
    assert me["method"] == "development" and me["development"] is True and me["loginUrl"] is None


def test_web_sign_in_needs_a_client_id(api: MakeApi, issuer: Issuer) -> None:
    server = api(**oidc_env(issuer, Oidc__ClientId=""))
    assert server.http.get("/auth/login").status_code == 404
