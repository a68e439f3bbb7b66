"""Bearer JWTs from the OIDC issuer: what is accepted, what is refused, and who it signs in."""

from __future__ import annotations

import time

import pytest

from relate.store import accounts
from tests.webapp.conftest import MakeApi, make_user, oidc_env
from tests.webapp.oidc_issuer import CLIENT_ID, Issuer
from webapp import oidc


def session_of(api_, token: str) -> dict:
    response = api_.http.bearer(token).get("/api/session")
    assert response.status_code == 200, response.text
    return response.json()


def test_valid_token_signs_in_and_creates_the_user_from_the_email_claim(api: MakeApi, issuer: Issuer) -> None:
    server = api(**oidc_env(issuer))
    body = session_of(server, issuer.token())
    assert body["authenticated"] is True
    assert body["method"] == "oidc"
    assert body["user"]["email"] == "alice@example.test"
    assert body["user"]["displayName"] == "Alice"
    user = accounts.find_oidc_user(issuer.url, "user-1")
    assert user is not None and user.primary_address == "alice@example.test"
    # the second sign-in finds the same user by issuer and subject, whatever the email says now
    issuer.user["email"] = "renamed@example.test"
    assert session_of(server, issuer.token())["user"]["id"] == user.id


@pytest.mark.parametrize(
    "case",
    [
        "bad-signature",
        "other-key-same-kid",
        "wrong-audience",
        "wrong-issuer",
        "alg-none",
        "hs256-with-public-key",
        "expired",
        "not-yet-valid",
        "issued-in-the-future",
        "no-expiry",
        "no-subject",
        "garbage",
        "id-token-audience",
    ],
)
def test_invalid_tokens_get_401(api: MakeApi, issuer: Issuer, case: str) -> None:
    server = api(**oidc_env(issuer))
    now = int(time.time())
    if case == "bad-signature":
        head, body, sig = issuer.token().split(".")
        token = f"{head}.{body}.{sig[:-6]}AAAAAA"
    elif case == "other-key-same-kid":
        token = issuer.token(key=issuer.foreign_key(), header={"kid": issuer.signing_key.kid})
    elif case == "wrong-audience":
        token = issuer.token(audience="someone-else")
    elif case == "wrong-issuer":
        token = issuer.token(iss="https://evil.example")
    elif case == "alg-none":
        token = issuer.unsigned_token()
    elif case == "hs256-with-public-key":
        token = issuer.hmac_token_with_public_key()
    elif case == "expired":
        token = issuer.token(exp=now - oidc.LEEWAY - 30)
    elif case == "not-yet-valid":
        token = issuer.token(nbf=now + oidc.LEEWAY + 60)
    elif case == "issued-in-the-future":
        token = issuer.token(iat=now + oidc.LEEWAY + 60)
    elif case == "no-expiry":
        token = issuer.token(exp=None)
    elif case == "no-subject":
        token = issuer.token(sub=None)
    elif case == "garbage":
        token = "eyJhbGciOiJSUzI1NiJ9.not-a-token.at-all"
    else:  # an ID token for the web client is not an API access token
        token = issuer.token(audience=CLIENT_ID)
    response = server.http.bearer(token).get("/api/session")
    assert response.status_code == 401, response.text
    assert response.json() == {"error": "invalid token"}
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert accounts.find_oidc_user(issuer.url, "user-1") is None


def test_clock_skew_within_the_leeway_is_tolerated(api: MakeApi, issuer: Issuer) -> None:
    server = api(**oidc_env(issuer))
    now = int(time.time())
    assert session_of(server, issuer.token(exp=now - oidc.LEEWAY + 20))["authenticated"]
    assert session_of(server, issuer.token(nbf=now + oidc.LEEWAY - 20))["authenticated"]


def test_audience_may_be_a_list(api: MakeApi, issuer: Issuer) -> None:
    server = api(**oidc_env(issuer))
    assert session_of(server, issuer.token(aud=["other", "relate-api"]))["authenticated"]


@pytest.mark.parametrize("alg", ["RS384", "RS512", "PS256"])
def test_other_rsa_algorithms_are_accepted(api: MakeApi, issuer: Issuer, alg: str) -> None:
    server = api(**oidc_env(issuer))
    assert session_of(server, issuer.token(alg=alg))["authenticated"]


def test_ec_keys_sign_es256(api: MakeApi, issuer: Issuer) -> None:
    key = issuer.add_ec_key("P-256")
    server = api(**oidc_env(issuer))
    assert session_of(server, issuer.token(key=key, alg="ES256"))["authenticated"]


def test_keys_are_cached_and_fetched_again_for_an_unknown_kid(api: MakeApi, issuer: Issuer) -> None:
    server = api(**oidc_env(issuer))
    for _ in range(3):
        session_of(server, issuer.token())
    assert issuer.hits["/jwks"] == 1
    assert issuer.hits["/.well-known/openid-configuration"] == 1

    issuer.rotate(keep_old=False)  # the issuer rolled its key: tokens carry a kid we never saw
    assert session_of(server, issuer.token())["authenticated"]
    assert issuer.hits["/jwks"] == 2

    # made-up kids do not make us fetch the key set on every request
    for n in range(3):
        response = server.http.bearer(issuer.token(key=issuer.foreign_key())).get("/api/session")
        assert response.status_code == 401, n
    assert issuer.hits["/jwks"] == 2
    assert session_of(server, issuer.token())["authenticated"]


def test_an_unreachable_issuer_is_503_not_401(api: MakeApi, issuer: Issuer,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    server = api(**oidc_env(issuer))
    token = issuer.token()
    issuer.down = True
    response = server.http.bearer(token).get("/api/session")
    assert response.status_code == 503
    assert response.headers["Retry-After"]
    # it is left alone for a moment rather than asked again by every request
    assert server.http.bearer(token).get("/api/session").status_code == 503
    assert issuer.hits["/.well-known/openid-configuration"] == 1
    monkeypatch.setattr(oidc, "FAILURE_BACKOFF", 0.0)
    issuer.down = False
    assert session_of(server, token)["authenticated"]


def test_what_we_have_is_used_while_the_issuer_is_down(api: MakeApi, issuer: Issuer,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    server = api(**oidc_env(issuer))
    assert session_of(server, issuer.token())["authenticated"]
    monkeypatch.setattr(oidc, "METADATA_TTL", 0.0)  # everything is due for a refresh
    issuer.down = True
    assert session_of(server, issuer.token())["authenticated"]


def test_without_credentials_oidc_mode_refuses(api: MakeApi, issuer: Issuer) -> None:
    server = api(**oidc_env(issuer))
    assert server.http.get("/api/admin/domains").status_code == 401
    anonymous = server.http.get("/api/session").json()
    assert anonymous["authenticated"] is False and anonymous["development"] is False
    assert anonymous["loginUrl"] == "/auth/login"


def test_email_from_userinfo_when_the_access_token_has_none(api: MakeApi, issuer: Issuer) -> None:
    server = api(**oidc_env(issuer))
    claims = dict(issuer.user)
    token = issuer.token(email=None, email_verified=None, name=None)
    issuer.remember_access_token(token, claims)
    issuer.userinfo_claims = {"email": "alice@example.test", "email_verified": True, "name": "Alice U."}
    assert session_of(server, token)["user"]["email"] == "alice@example.test"


def test_no_email_anywhere_is_403(api: MakeApi, issuer: Issuer) -> None:
    server = api(**oidc_env(issuer))
    response = server.http.bearer(issuer.token(email=None)).get("/api/session")
    assert response.status_code == 403
    assert "email" in response.json()["error"]


def test_invalid_email_claim_is_403(api: MakeApi, issuer: Issuer) -> None:
    server = api(**oidc_env(issuer))
    response = server.http.bearer(issuer.token(email="not an address")).get("/api/session")
    assert response.status_code == 403


def test_verified_email_links_an_account_made_on_the_command_line(api: MakeApi, issuer: Issuer) -> None:
    existing = make_user("alice@example.test")
    server = api(**oidc_env(issuer))
    assert session_of(server, issuer.token())["user"]["id"] == existing.id
    linked = accounts.get_user(existing.id)
    assert (linked.oidc_issuer, linked.oidc_subject) == (issuer.url, "user-1")


@pytest.mark.parametrize("verified", [False, None, "true"])
def test_unverified_email_never_takes_over_an_account(api: MakeApi, issuer: Issuer, verified: object) -> None:
    existing = make_user("alice@example.test")
    server = api(**oidc_env(issuer))
    response = server.http.bearer(issuer.token(email_verified=verified)).get("/api/session")
    assert response.status_code == 403
    assert accounts.get_user(existing.id).oidc_subject is None


def test_an_address_of_an_account_linked_to_another_identity_is_refused(api: MakeApi, issuer: Issuer) -> None:
    server = api(**oidc_env(issuer))
    session_of(server, issuer.token())  # user-1 owns alice@
    response = server.http.bearer(issuer.token(sub="user-2")).get("/api/session")
    assert response.status_code == 403


def test_an_extra_address_of_someone_else_is_not_linked(api: MakeApi, issuer: Issuer) -> None:
    bob = make_user("bob@example.test")
    accounts.add_address(bob.id, "alice@example.test", confirmed=True)
    server = api(**oidc_env(issuer))
    response = server.http.bearer(issuer.token()).get("/api/session")
    assert response.status_code == 403
    assert accounts.get_user(bob.id).oidc_subject is None


def test_a_verified_first_sign_in_takes_its_address_over_a_pending_request(api: MakeApi, issuer: Issuer) -> None:
    accounts.add_domain("example.test")
    mallory = make_user("mallory@example.test")
    accounts.add_address(mallory.id, "alice@example.test", confirmed=False)  # a request, not a claim
    server = api(**oidc_env(issuer))
    alice = accounts.get_user(session_of(server, issuer.token())["user"]["id"])
    assert alice.primary_address == "alice@example.test" and alice.oidc_subject == "user-1"
    assert [a.address for a in accounts.list_addresses(mallory.id)] == ["mallory@example.test"]


@pytest.mark.parametrize("verified", [False, None])
def test_an_unverified_first_sign_in_leaves_a_pending_request_alone(api: MakeApi, issuer: Issuer,
                                                                      verified: object) -> None:
    accounts.add_domain("example.test")
    mallory = make_user("mallory@example.test")
    accounts.add_address(mallory.id, "alice@example.test", confirmed=False)
    server = api(**oidc_env(issuer))
    response = server.http.bearer(issuer.token(email_verified=verified)).get("/api/session")
    assert response.status_code == 403
    assert accounts.find_oidc_user(issuer.url, "user-1") is None
    assert "alice@example.test" in [a.address for a in accounts.list_addresses(mallory.id)]


def test_first_sign_in_outside_the_hosted_domains_is_refused(api: MakeApi, issuer: Issuer) -> None:
    accounts.add_domain("corp.test")
    server = api(**oidc_env(issuer))
    response = server.http.bearer(issuer.token(email="mallory@gmail.test")).get("/api/session")
    assert response.status_code == 403
    assert accounts.find_user("mallory@gmail.test") is None
    assert "gmail.test" not in accounts.hosted_domains()


def test_admin_emails_make_an_oidc_user_an_administrator(api: MakeApi, issuer: Issuer) -> None:
    server = api(**oidc_env(issuer, Admin__Emails="alice@example.test"))
    token = issuer.token()
    assert session_of(server, token)["user"]["isAdmin"] is True
    assert server.http.bearer(token).get("/api/admin/users").status_code == 200
    other = issuer.token(sub="user-2", email="bob@example.test")
    assert server.http.bearer(other).get("/api/admin/users").status_code == 403


def test_bearer_jwt_in_development_mode_is_refused(api: MakeApi, issuer: Issuer) -> None:
    server = api()
    response = server.http.bearer(issuer.token()).get("/api/session")
    assert response.status_code == 401
    assert "Oidc__Authority" in response.json()["error"]


def test_discovery_must_name_the_configured_issuer(api: MakeApi, issuer: Issuer) -> None:
    server = api(**oidc_env(issuer, Oidc__Authority=issuer.url.replace("127.0.0.1", "localhost")))
    response = server.http.bearer(issuer.token()).get("/api/session")
    assert response.status_code == 503
