"""CSRF protection for writes a browser could make on its own: cookie-authenticated ones, and
those without any credentials in development mode.

A browser sends the session cookie with any request to us, including one a hostile page
triggers, so every unsafe method (anything but GET, HEAD, OPTIONS) authenticated by the cookie
must carry the session's own CSRF token in the X-CSRF-Token header: a header a page on
another origin can neither read the token for nor set without a CORS preflight we refuse.
The token is bound to the session (not merely equal to a cookie), compared in constant time.

In development mode a request without credentials acts as the development administrator, so
any page the developer visits could post a form to us. Unsafe requests of that kind are
refused when they come from another origin: an Origin header that is neither this server's
own nor one of Cors__AllowedOrigins (a `*` there does not count), or, without an Origin
header, `Sec-Fetch-Site: cross-site`. This server's own origin is the host and port of the
Host header, which the browser writes for the URL it requests: a port left out there is the
default of the Origin's scheme (so a TLS proxy in front changes nothing). Tools that send no
Origin (curl, scripts) are unaffected.

Requests authenticated by an Authorization header (API keys, bearer tokens) are exempt: a
browser never attaches those on its own.
"""

from __future__ import annotations

import hmac
from urllib.parse import urlsplit

from flask import request

from webapp import sessions
from webapp.auth import settings
from webapp.errors import ApiError

HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
DEFAULT_PORTS = {"http": 80, "https": 443}


def protect(method: str) -> None:
    """Raise 403 unless this request is safe, or carries no ambient authority (a cookie, or
    nothing at all in development mode) a hostile page could use, or proves it is ours."""
    if request.method in SAFE_METHODS:
        return
    if method == "development":
        if _from_elsewhere():
            raise ApiError(403, "cross-origin write refused: without credentials (development mode) only this "
                                "server's own pages and Cors__AllowedOrigins may write")
        return
    if method != "session":
        return
    session = sessions.current()
    sent = request.headers.get(HEADER, "")
    if session is None or not sent or not hmac.compare_digest(sent.encode(), session.csrf_token.encode()):
        raise ApiError(403, f"missing or wrong CSRF token: send the {HEADER} header from GET /api/session")


def _host_port(scheme: str, netloc: str) -> tuple[str, int | None] | None:
    """(host, port) of an origin's host[:port] or of a Host header, a missing port being the
    default of `scheme`; None when it does not parse."""
    try:
        parts = urlsplit(f"//{netloc}")
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname:
        return None
    return parts.hostname.lower(), port if port is not None else DEFAULT_PORTS.get(scheme.lower())


def _from_elsewhere() -> bool:
    """True when a browser made this request for a page of another origin."""
    origin = request.headers.get("Origin")
    if origin is None:
        return request.headers.get("Sec-Fetch-Site", "").strip().lower() == "cross-site"
    if origin in settings().cors_allowed_origins:
        return False
    scheme, _, netloc = origin.partition("://")
    theirs = _host_port(scheme, netloc) if netloc and not set("/@") & set(netloc) else None
    return theirs is None or theirs != _host_port(scheme, request.host)
