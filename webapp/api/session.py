"""GET /api/session: who the caller is, how they signed in, and what the web UI needs next
(the CSRF token for cookie sessions, where to sign in when nobody is)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g

from relate.store import accounts
from webapp import sessions
from webapp.apidoc import endpoint
from webapp.auth import Principal, settings
from webapp.errors import ApiError

bp = Blueprint("session", __name__)

USER = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "email": {"type": "string"},
        "displayName": {"type": "string"},
        "isAdmin": {"type": "boolean"},
    },
    "required": ["id", "email", "displayName", "isAdmin"],
}
SESSION_OUT = {
    "type": "object",
    "properties": {
        "authenticated": {"type": "boolean"},
        "development": {"type": "boolean", "description": "no OIDC issuer: requests without credentials act as the development user"},
        "method": {"type": ["string", "null"], "enum": ["development", "api-key", "oidc", "session", None]},
        "user": {"oneOf": [USER, {"type": "null"}]},
        "scopes": {"type": "array", "items": {"type": "string"}},
        "csrfToken": {"type": ["string", "null"], "description": "send as X-CSRF-Token on cookie-authenticated writes"},
        "expiresAt": {"type": ["string", "null"], "format": "date-time"},
        "loginUrl": {"type": ["string", "null"]},
    },
    "required": ["authenticated", "development", "method", "user", "scopes", "csrfToken", "expiresAt", "loginUrl"],
}


@bp.get("/api/session")
@endpoint(summary="Who is signed in, and the CSRF token of a web session", response=SESSION_OUT, tags=["session"])
def current_session() -> Any:
    current = settings()
    login_url = "/auth/login" if current.oidc.client_id and not current.development else None
    who: Principal | None = g.principal
    if who is None:
        return {
            "authenticated": False,
            "development": current.development,
            "method": None,
            "user": None,
            "scopes": [],
            "csrfToken": None,
            "expiresAt": None,
            "loginUrl": login_url,
        }
    if not who.allows("api:read"):
        raise ApiError(403, "this credential lacks the api:read scope")
    user = accounts.get_user(who.user_id)
    web = sessions.current() if who.method == "session" else None
    return {
        "authenticated": True,
        "development": current.development,
        "method": who.method,
        "user": {
            "id": user.id,
            "email": user.primary_address,
            "displayName": user.display_name,
            "isAdmin": who.is_admin,
        },
        "scopes": sorted(who.scopes),
        "csrfToken": web.csrf_token if web else None,
        "expiresAt": web.expires_at.isoformat().replace("+00:00", "Z") if web else None,
        "loginUrl": login_url,
    }
