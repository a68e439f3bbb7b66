"""Web UI sign-in sessions, kept in the database so every API replica sees them and signing
out (or removing the user) ends them everywhere at once.

Invariants:
- The browser holds a random token (256 bits); the table holds only its SHA-256, so rows read
  from a backup or a leak cannot be turned back into cookies.
- A session ends at the earlier of IDLE_TIMEOUT after its last use and MAX_LIFETIME after it
  began. Use is written back at most once per TOUCH_INTERVAL, not on every request.
- Each session has its own CSRF token, which cookie-authenticated writes must echo in a header.
- Ended sessions are deleted now and then as new ones start (at most every PURGE_INTERVAL).
- `lookup` (every cookie-authenticated request) is one statement outside any transaction
  (relate.store.rawread); signing out deletes the row, so it takes effect at once everywhere.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import time
from dataclasses import dataclass

from sqlalchemy import bindparam, delete, func, select, update

from relate.db.models import WebSession
from relate.store import rawread
from relate.store.session import read, transaction
from relate.store.sql import rowcount

MAX_LIFETIME = dt.timedelta(days=7)
IDLE_TIMEOUT = dt.timedelta(hours=24)
TOUCH_INTERVAL = dt.timedelta(minutes=5)
TOKEN_BYTES = 32
PURGE_INTERVAL = 600.0  # seconds between deletions of ended sessions, per process

_last_purge = float("-inf")


@dataclass(frozen=True)
class WebSessionInfo:
    id: str  # the token's hash: safe to log a prefix of, never the token itself
    user_id: int
    csrf_token: str
    created_at: dt.datetime
    expires_at: dt.datetime


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def _expiry(created_at: dt.datetime, now: dt.datetime) -> dt.datetime:
    return min(created_at + MAX_LIFETIME, now + IDLE_TIMEOUT)


def _info(row: WebSession) -> WebSessionInfo:
    return WebSessionInfo(row.id, row.user_id, row.csrf_token, row.created_at, row.expires_at)


def create(user_id: int) -> tuple[str, WebSessionInfo]:
    """Start a session; returns the cookie token (shown once) and the session."""
    global _last_purge
    if time.monotonic() - _last_purge >= PURGE_INTERVAL:
        _last_purge = time.monotonic()
        purge_expired()
    token = secrets.token_urlsafe(TOKEN_BYTES)
    now = dt.datetime.now(dt.UTC)
    row = WebSession(
        id=_digest(token),
        user_id=user_id,
        csrf_token=secrets.token_urlsafe(TOKEN_BYTES),
        created_at=now,
        last_seen_at=now,
        expires_at=_expiry(now, now),
    )
    with transaction() as t:
        t.s.add(row)
        t.s.flush()
        info = _info(row)
    return token, info


_LOOKUP = rawread.Statement(
    select(
        WebSession.id,
        WebSession.user_id,
        WebSession.csrf_token,
        WebSession.created_at,
        WebSession.expires_at,
        WebSession.last_seen_at,
    ).where(WebSession.id == bindparam("id"))
)


def lookup(token: str) -> WebSessionInfo | None:
    """The live session a cookie token names, or None (unknown, expired or signed out)."""
    if not token or len(token) > 200:
        return None
    now = dt.datetime.now(dt.UTC)
    found = rawread.rows(_LOOKUP, {"id": _digest(token)})
    if not found:
        return None
    session_id, user_id, csrf_token, created_at, expires_at, last_seen = found[0]
    info = WebSessionInfo(session_id, int(user_id), csrf_token, rawread.utc(created_at), rawread.utc(expires_at))
    if info.expires_at <= now:
        return None
    if now - rawread.utc(last_seen) >= TOUCH_INTERVAL:
        expires = _expiry(info.created_at, now)
        with transaction() as t:
            t.s.execute(
                update(WebSession).where(WebSession.id == info.id).values(last_seen_at=now, expires_at=expires)
            )
        info = WebSessionInfo(info.id, info.user_id, info.csrf_token, info.created_at, expires)
    return info


def revoke(token: str) -> bool:
    """End the session a token names; False when there was none."""
    with transaction() as t:
        return rowcount(t.s.execute(delete(WebSession).where(WebSession.id == _digest(token)))) > 0


def revoke_user(user_id: int) -> int:
    """End every session of a user (sign out everywhere)."""
    with transaction() as t:
        return rowcount(t.s.execute(delete(WebSession).where(WebSession.user_id == user_id)))


def count_for_user(user_id: int) -> int:
    with read() as s:
        return int(s.scalar(select(func.count(WebSession.id)).where(WebSession.user_id == user_id)) or 0)


def purge_expired() -> int:
    """Drop ended sessions (periodic maintenance)."""
    with transaction() as t:
        return rowcount(t.s.execute(delete(WebSession).where(WebSession.expires_at <= dt.datetime.now(dt.UTC))))
