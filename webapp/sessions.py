"""The web UI's sign-in session (cookie)."""

from __future__ import annotations


def current_user() -> int | None:
    """The user id of the signed-in web session, if any."""
    return None
