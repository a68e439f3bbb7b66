"""CSRF protection for cookie-authenticated writes.

A browser sends the session cookie with any request to us, including one a hostile page
triggers, so every unsafe method (anything but GET, HEAD, OPTIONS) authenticated by the cookie
must carry the session's own CSRF token in the X-CSRF-Token header: a header a page on
another origin can neither read the token for nor set without a CORS preflight we refuse.
The token is bound to the session (not merely equal to a cookie), compared in constant time.

Requests authenticated by an Authorization header (API keys, bearer tokens) are exempt: a
browser never attaches those on its own.
"""

from __future__ import annotations

import hmac

from flask import request

from webapp import sessions
from webapp.errors import ApiError

HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def protect(method: str) -> None:
    """Raise 403 unless this request is safe, not cookie-authenticated, or carries the token."""
    if method != "session" or request.method in SAFE_METHODS:
        return
    session = sessions.current()
    sent = request.headers.get(HEADER, "")
    if session is None or not sent or not hmac.compare_digest(sent.encode(), session.csrf_token.encode()):
        raise ApiError(403, f"missing or wrong CSRF token: send the {HEADER} header from GET /api/session")
