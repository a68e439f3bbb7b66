"""Who is calling: API keys, OIDC bearer tokens, the web session, or development mode.

Invariants:
- Every request is authenticated once, in `before_request`, into `g.principal` (or None). An
  API key costs one statement (the key with its owner's administrator flag, read fresh on
  every request, so a revoked key is refused from the next request on, on every replica).
- A route states what it needs with `@require("api:read")` / `@require("api:write")` /
  `@require_admin`; ownership is checked by the route against `principal.user_id`.
- Scopes: `api:read` reads, `api:write` writes, `app` covers everything a first-party client
  does. `smtp`, `pop3` and `imap` grant no REST access at all.
- Development mode (no Oidc__Authority): a request without credentials acts as the
  development user with full rights, when it names this server as localhost, an IP address
  or a configured host (`development_host`: not a name a hostile page rebound to us);
  credentials that are present are still checked.
- Routes marked `@public` (discovery, client configuration, sign-in) never look at
  credentials, so a client that sends some anyway (Outlook's autodiscover sends Basic) is not
  refused. Everything else is rate-limited after authentication (per address, and per user
  when there is one); cookie-authenticated writes must carry the CSRF token, and development
  mode's credential-less writes must not come from another origin (webapp.csrf).
- New API keys never get a scope their creator lacks: `Principal.grantable` is what a caller
  may hand out (a key: its own scopes; a signed-in person: every scope of their account).
"""

from __future__ import annotations

import functools
import hmac
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import Flask, current_app, g, request

from relate.config import API_SCOPES, Settings
from relate.store import accounts, keys
from webapp.errors import ApiError

REST_SCOPES = frozenset({"api:read", "api:write", "app"})
FULL_ACCESS = frozenset({"api:read", "api:write", "app"})
ACCOUNT_SCOPES = frozenset(API_SCOPES)  # what the account holder (not a key) may grant
SKIP_PATHS = ("/healthz", "/readyz", "/metrics")
SKIP_PREFIXES = ("/api/internal/",)  # the daemons' channel checks Internal__ApiKey itself

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Principal:
    user_id: int
    scopes: frozenset[str]  # what this credential may do
    method: str  # "development", "api-key", "oidc" or "session"
    is_admin: bool = False
    key_id: int | None = None  # the API key used, if any
    grantable: frozenset[str] = frozenset()  # scopes this caller may put on a new API key
    valid_until: float | None = None  # epoch seconds after which the credential is refused (OIDC tokens)

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or "app" in self.scopes


def settings() -> Settings:
    value: Settings = current_app.config["RELATE_SETTINGS"]
    return value


def _is_admin(user_id: int) -> bool:
    user = accounts.get_user(user_id)
    return user.is_admin or user.primary_address in settings().admin_emails


def _from_api_key(token: str) -> Principal:
    """One statement: the key, its scopes and its owner's administrator status."""
    holder = keys.verify_bearer(token)
    if holder is None:
        raise ApiError(401, "invalid or revoked API key")
    return Principal(
        holder.user_id,
        holder.scopes & REST_SCOPES,
        "api-key",
        holder.is_admin or holder.primary_address in settings().admin_emails,
        holder.key_id,
        grantable=holder.scopes,
    )


def authenticate() -> Principal | None:
    """The caller of the current request, or None when no credentials were given (and not dev)."""
    header = request.headers.get("Authorization", "").strip()
    if header:
        scheme, _, token = header.partition(" ")
        token = token.strip()
        scheme = scheme.lower()
        if scheme == "apikey" and token:
            return _from_api_key(token)
        if scheme == "bearer" and token:
            if keys.split_key(token) is not None:
                return _from_api_key(token)
            from webapp import oidc

            user_id, valid_until = oidc.user_for_token(settings(), token)
            return Principal(user_id, FULL_ACCESS, "oidc", _is_admin(user_id), grantable=ACCOUNT_SCOPES,
                             valid_until=valid_until)
        raise ApiError(401, "unsupported Authorization scheme (use Bearer or ApiKey)")
    from webapp import sessions

    session_user = sessions.current_user()
    if session_user is not None:
        return Principal(session_user, FULL_ACCESS, "session", _is_admin(session_user), grantable=ACCOUNT_SCOPES)
    if settings().development:
        if not development_host(request.host):
            raise ApiError(403, f"development mode acts as the development user only for requests to localhost, "
                                f"an IP address or the host of Api__BaseUrl or Cors__AllowedOrigins, not {request.host}")
        user = accounts.ensure_development_user()
        return Principal(user.id, FULL_ACCESS, "development", True, grantable=ACCOUNT_SCOPES)
    return None


def development_host(host: str) -> bool:
    """Whether a request without credentials may act as the development user when it names
    `host` (the Host header): localhost, an IP address, or the host of Api__BaseUrl or of one
    of Cors__AllowedOrigins. A hostile page that points its own name at this server (DNS
    rebinding) is same-origin to the browser, so neither Origin nor CORS stops it; the name it
    must use is its own, which is none of these."""
    try:
        name = (urlsplit(f"//{host}").hostname or "").rstrip(".")  # "localhost." is localhost
    except ValueError:  # not a host name at all
        return False
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        pass
    configured = (settings().api_base_url, *settings().cors_allowed_origins)
    return any(name == (urlsplit(url).hostname or "").lower() for url in configured if url != "*")


def principal() -> Principal:
    """The authenticated caller; 401 when there is none."""
    value: Principal | None = g.get("principal")
    if value is None:
        raise ApiError(401, "authentication required")
    return value


def require(scope: str) -> Callable[[F], F]:
    """Route decorator: the caller must hold `scope` (or `app`)."""

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            who = principal()
            if not who.allows(scope):
                raise ApiError(403, f"this credential lacks the {scope} scope")
            return view(*args, **kwargs)

        wrapped.required_scope = scope  # type: ignore[attr-defined]  # read by the OpenAPI document
        return wrapped  # type: ignore[return-value]

    return decorate


def require_admin(view: F) -> F:
    """Route decorator: the caller is an administrator and its credential holds api:read for
    reads and api:write for writes (an smtp-only key of an administrator gets nowhere)."""

    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        who = principal()
        if not who.is_admin:
            raise ApiError(403, "administrator rights required")
        scope = "api:read" if request.method in ("GET", "HEAD") else "api:write"
        if not who.allows(scope):
            raise ApiError(403, f"this credential lacks the {scope} scope")
        return view(*args, **kwargs)

    wrapped.required_scope = "admin"  # type: ignore[attr-defined]
    return wrapped  # type: ignore[return-value]


def public(view: F) -> F:
    """Route decorator: no credentials are read (discovery, client configuration, sign-in)."""
    view.public = True  # type: ignore[attr-defined]
    return view


def header_holds(header: str | None, scheme: str, expected: str) -> bool:
    """Whether an Authorization header is `<scheme> <expected>` (scheme in lower case, the
    token compared in constant time). An empty `expected` matches nothing."""
    if not expected or not header:
        return False
    given, _, token = header.partition(" ")
    return given.lower() == scheme and hmac.compare_digest(token.strip().encode(), expected.encode())


def check_internal_key(header: str | None) -> bool:
    """The daemons' internal channel: `Authorization: ApiKey <Internal__ApiKey>`, constant time.
    An unset key refuses everything."""
    return header_holds(header, "apikey", settings().internal_api_key)


def init_app(app: Flask) -> None:
    from webapp import csrf, ratelimit

    @app.before_request
    def _authenticate() -> None:
        g.principal = None
        if request.method == "OPTIONS" or request.path in SKIP_PATHS or request.path.startswith(SKIP_PREFIXES):
            return
        view = app.view_functions.get(request.endpoint or "")
        refused: ApiError | None = None
        if not getattr(view, "public", False):
            try:
                g.principal = authenticate()
            except ApiError as exc:
                if exc.status != 401:
                    raise
                refused = exc  # counted against the client's limit before it is answered
        ratelimit.check(settings(), g.principal.user_id if g.principal is not None else None)
        if refused is not None:
            raise refused
        if g.principal is not None:
            csrf.protect(g.principal.method)
