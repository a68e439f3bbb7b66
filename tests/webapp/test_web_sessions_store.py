"""Server-side web sessions in the store: lookup, idle and absolute expiry, revocation."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import update

from relate.config import Settings
from relate.db.models import WebSession
from relate.store import accounts, websessions
from relate.store.session import transaction


def _age(info: websessions.WebSessionInfo, **changes: dt.datetime) -> None:
    with transaction() as t:
        t.s.execute(update(WebSession).where(WebSession.id == info.id).values(**changes))


def test_lookup_touch_and_revoke(store: Settings) -> None:
    alice = accounts.create_user("alice@example.test")
    token, info = websessions.create(alice.id)
    assert info.id != token and len(info.id) == 64  # only a hash is kept
    assert websessions.lookup(token) == info
    assert websessions.lookup(token + "x") is None
    assert websessions.lookup("") is None
    now = dt.datetime.now(dt.UTC)
    _age(info, last_seen_at=now - dt.timedelta(hours=1), expires_at=now + dt.timedelta(minutes=1))
    touched = websessions.lookup(token)
    assert touched is not None and touched.expires_at > now + dt.timedelta(hours=23)
    assert websessions.revoke(token) is True
    assert websessions.lookup(token) is None
    assert websessions.revoke(token) is False


def test_expired_sessions_are_gone_and_purged(store: Settings) -> None:
    alice = accounts.create_user("alice@example.test")
    token, info = websessions.create(alice.id)
    _age(info, expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
    assert websessions.lookup(token) is None
    assert websessions.purge_expired() == 1
    assert websessions.count_for_user(alice.id) == 0


def test_touching_never_extends_beyond_the_absolute_lifetime(store: Settings) -> None:
    alice = accounts.create_user("alice@example.test")
    token, info = websessions.create(alice.id)
    now = dt.datetime.now(dt.UTC)
    began = now - websessions.MAX_LIFETIME + dt.timedelta(hours=1)
    _age(info, created_at=began, last_seen_at=now - dt.timedelta(hours=1))
    touched = websessions.lookup(token)
    assert touched is not None
    assert touched.expires_at <= began + websessions.MAX_LIFETIME + dt.timedelta(seconds=1)


def test_removing_a_user_ends_its_sessions(store: Settings) -> None:
    alice = accounts.create_user("alice@example.test")
    token, _ = websessions.create(alice.id)
    websessions.create(alice.id)
    assert websessions.count_for_user(alice.id) == 2
    accounts.remove_user("alice@example.test")
    assert websessions.lookup(token) is None
    assert websessions.revoke_user(alice.id) == 0
