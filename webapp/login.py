"""Signing in to the web UI: the OIDC authorisation code flow with PKCE, ending in a session cookie.

    GET  /auth/login?returnTo=/path   → 302 to the issuer's authorisation endpoint
    GET  /auth/callback?code&state    → 302 to returnTo, signed in (webapp.sessions)
    POST /auth/logout                 → session ended; says where to end the issuer's session

/auth/login keeps `state`, `nonce`, the PKCE verifier and returnTo in a short-lived cookie
signed with a per-database secret, so the callback may land on any replica. The callback
checks state (CSRF on the sign-in itself, RFC 6749 §10.12), the issuer (`iss`, RFC 9207, when
sent), exchanges the code with the verifier (RFC 7636, S256 only), and validates the ID token
with the nonce (OpenID Connect Core §3.1.3.7). returnTo is a local path only, never another
site. In development mode there is nobody to sign in: /auth/login goes straight to returnTo.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import urllib.parse
from typing import Any

from authlib.oauth2.rfc7636 import create_s256_code_challenge
from flask import Blueprint, g, jsonify, redirect, request
from flask.wrappers import Response
from itsdangerous import BadSignature, URLSafeTimedSerializer

from relate.store import accounts
from relate.store.secrets import get_secret
from webapp import oidc, sessions
from webapp.apidoc import endpoint
from webapp.auth import public, settings
from webapp.errors import ApiError

log = logging.getLogger("relate.webapp.login")

bp = Blueprint("login", __name__)

STATE_COOKIE = "relate_login"
STATE_MAX_AGE = 600  # seconds from /auth/login to /auth/callback
MAX_RETURN_TO = 2000


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(get_secret("web-login-state"), salt="relate-login")


def redirect_uri() -> str:
    """Where the issuer sends the browser back: this server's /auth/callback, as the browser sees it."""
    return request.host_url.rstrip("/") + "/auth/callback"


def safe_return_to(value: str | None) -> str:
    """A local path to land on after signing in; anything else becomes '/'."""
    if not value or len(value) > MAX_RETURN_TO or not value.startswith("/") or value.startswith(("//", "/\\")):
        return "/"
    parts = urllib.parse.urlsplit(value)
    if parts.scheme or parts.netloc or any(ord(c) < 0x20 for c in value):
        return "/"
    return value


def _web_sign_in_configured() -> None:
    if not settings().oidc.client_id:
        raise ApiError(404, "web sign-in is not configured (Oidc__ClientId)")


@bp.get("/auth/login")
@public
@endpoint(
    summary="Start signing in to the web UI (OIDC authorisation code flow with PKCE); redirects to the issuer",
    query={"returnTo": {"type": "string", "maxLength": MAX_RETURN_TO}},
    status=302,
    tags=["session"],
    errors=(404, 503),
)
def login() -> Any:
    target = safe_return_to(g.query.get("returnTo"))
    current = settings()
    if current.development:
        return redirect(target)
    _web_sign_in_configured()
    issuer = oidc.provider(current)
    try:
        authorize = issuer.endpoint("authorization_endpoint")
    except oidc.ProviderUnavailable as exc:
        raise oidc.unavailable(exc) from None
    state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    verifier = secrets.token_urlsafe(48)  # 64 characters (RFC 7636 §4.1: 43 to 128)
    params = {
        "response_type": "code",
        "client_id": current.oidc.client_id,
        "redirect_uri": redirect_uri(),
        "scope": current.oidc.scope,
        "state": state,
        "nonce": nonce,
        "code_challenge": create_s256_code_challenge(verifier),
        "code_challenge_method": "S256",
    }
    response = redirect(authorize + ("&" if "?" in authorize else "?") + urllib.parse.urlencode(params))
    cookie = _serializer().dumps({"state": state, "nonce": nonce, "verifier": verifier, "returnTo": target})
    response.set_cookie(
        STATE_COOKIE, cookie, max_age=STATE_MAX_AGE, httponly=True, secure=sessions.secure(), samesite="Lax",
        path="/auth/",
    )
    return response


def _login_state() -> dict[str, str]:
    raw = request.cookies.get(STATE_COOKIE)
    if not raw:
        raise ApiError(400, "no sign-in in progress in this browser (or it took too long); start again")
    try:
        data = _serializer().loads(raw, max_age=STATE_MAX_AGE)
    except BadSignature:
        raise ApiError(400, "sign-in state expired or tampered with; start again") from None
    if not isinstance(data, dict) or not all(isinstance(data.get(k), str) for k in ("state", "nonce", "verifier")):
        raise ApiError(400, "sign-in state unreadable; start again")
    return data


@bp.get("/auth/callback")
@public
@endpoint(
    summary="Where the issuer returns the browser (code, state, iss or error); signs in and redirects",
    status=302,
    tags=["session"],
    errors=(401, 403, 404, 503),
)
def callback() -> Any:
    current = settings()
    if current.development:
        return redirect("/")
    _web_sign_in_configured()
    data = _login_state()
    args = request.args
    if args.get("error"):
        reason = "".join(c for c in args.get("error", "")[:100] if c.isprintable())
        raise ApiError(400, f"the identity provider refused the sign-in: {reason}")
    state = args.get("state", "")
    if not state or not hmac.compare_digest(state.encode(), data["state"].encode()):
        raise ApiError(400, "sign-in state does not match; start again", field="state")
    code = args.get("code", "")
    if not code or len(code) > 4096:
        raise ApiError(400, "no authorisation code", field="code")
    issuer = oidc.provider(current)
    try:
        if "iss" in args and args["iss"] != issuer.issuer:  # RFC 9207 §2.4
            raise ApiError(400, "the response comes from another issuer", field="iss")
        tokens = issuer.exchange_code(
            code=code,
            redirect_uri=redirect_uri(),
            code_verifier=data["verifier"],
            client_id=current.oidc.client_id,
            client_secret=current.oidc.client_secret,
        )
        id_token = tokens.get("id_token")
        if not isinstance(id_token, str):
            raise ApiError(401, "sign-in failed: the identity provider sent no ID token")
        claims = issuer.verify(id_token, audience=current.oidc.client_id, nonce=data["nonce"])
        access_token = tokens.get("access_token")
        user_id = oidc.user_for_claims(
            current, claims, access_token=access_token if isinstance(access_token, str) else None
        )
    except oidc.ProviderRefused as exc:
        log.info("code exchange refused: %s", exc)
        raise ApiError(400, "the identity provider refused the sign-in code; start again") from None
    except oidc.ProviderUnavailable as exc:
        raise oidc.unavailable(exc) from None
    except oidc.TokenRejected as exc:
        log.info("ID token refused: %s", exc)
        raise ApiError(401, "sign-in failed: invalid ID token") from None
    accounts.touch_login(user_id)
    response = redirect(safe_return_to(data.get("returnTo")))
    sessions.start(response, user_id)
    response.delete_cookie(STATE_COOKIE, path="/auth/", httponly=True, secure=sessions.secure(), samesite="Lax")
    log.info("user %d signed in to the web UI", user_id)
    return response


LOGOUT_OUT = {
    "type": "object",
    "properties": {
        "signedOut": {"type": "boolean"},
        "endSessionUrl": {"type": ["string", "null"], "description": "the issuer's sign-out page, if it has one"},
    },
    "required": ["signedOut", "endSessionUrl"],
}


@bp.post("/auth/logout")
@endpoint(summary="Sign out of the web UI (ends the session on every replica)", response=LOGOUT_OUT, tags=["session"])
def logout() -> Any:
    end_session: str | None = None
    current = settings()
    if not current.development:
        try:
            end_session = oidc.provider(current).endpoint("end_session_endpoint")
        except oidc.ProviderUnavailable:
            end_session = None
    response: Response = jsonify({"signedOut": True, "endSessionUrl": end_session})
    sessions.end(response)
    return response
