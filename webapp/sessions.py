"""The web UI's sign-in session: a cookie naming a server-side session (relate.store.websessions).

The cookie is HttpOnly, SameSite=Lax and Secure whenever the request came over TLS (directly
or, with Api__TrustedProxies, through a proxy that said so). The session's CSRF token goes
out in the readable `relate_csrf` cookie and in GET /api/session; cookie-authenticated writes
must echo it in X-CSRF-Token (webapp.csrf). Signing out deletes the row, so the session ends
on every replica at once.
"""

from __future__ import annotations

from flask import g, request
from werkzeug.wrappers import Response

from relate.store import websessions

COOKIE = "relate_session"
CSRF_COOKIE = "relate_csrf"
MAX_AGE = int(websessions.MAX_LIFETIME.total_seconds())


def current_user() -> int | None:
    """The user id of the signed-in web session, if any (the session is kept in g.web_session)."""
    token = request.cookies.get(COOKIE)
    if not token:
        return None
    info = websessions.lookup(token)
    if info is None:
        return None
    g.web_session = info
    return info.user_id


def current() -> websessions.WebSessionInfo | None:
    value: websessions.WebSessionInfo | None = g.get("web_session")
    return value


def secure() -> bool:
    return request.is_secure


def start(response: Response, user_id: int) -> websessions.WebSessionInfo:
    """Sign `user_id` in: a new session and its cookies on `response`. A session the browser
    already had is ended, never carried over (no session fixation)."""
    previous = request.cookies.get(COOKIE)
    if previous:
        websessions.revoke(previous)
    token, info = websessions.create(user_id)
    response.set_cookie(COOKIE, token, max_age=MAX_AGE, httponly=True, secure=secure(), samesite="Lax", path="/")
    response.set_cookie(
        CSRF_COOKIE, info.csrf_token, max_age=MAX_AGE, httponly=False, secure=secure(), samesite="Strict", path="/"
    )
    return info


def end(response: Response) -> None:
    """Sign out: delete the session named by the request's cookie and clear both cookies."""
    token = request.cookies.get(COOKIE)
    if token:
        websessions.revoke(token)
    response.delete_cookie(COOKIE, path="/", httponly=True, secure=secure(), samesite="Lax")
    response.delete_cookie(CSRF_COOKIE, path="/", secure=secure(), samesite="Strict")
