"""Web push subscriptions (RFC 8030): where a user's browsers want to be told about new mail.

Invariants:
- An endpoint URL belongs to one browser profile and so to at most one user: subscribing an
  endpoint that is on file moves it to the subscribing user with the new keys (the browser
  was signed in as someone else before).
- The keys are stored as the browser gave them (base64url): `p256dh` is the browser's P-256
  public key, `auth` its 16-byte authentication secret (RFC 8291 §3).
- A subscription the push service reports gone (404 or 410) is removed by `remove_endpoint`.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from dataclasses import dataclass

from sqlalchemy import delete, select

from relate.db.models import PushSubscription
from relate.store.errors import InvalidInput, NotFound
from relate.store.session import read, transaction
from relate.store.sql import rowcount

MAX_ENDPOINT = 2000  # the column's width
MAX_PER_USER = 50  # browsers and devices one user may have subscribed at once
P256_POINT = 65  # an uncompressed P-256 point: 0x04 || X || Y (RFC 8291 §3.1)
AUTH_SECRET = 16  # RFC 8291 §3.2


@dataclass(frozen=True)
class PushSubscriptionInfo:
    id: int
    user_id: int
    endpoint: str
    p256dh: str
    auth: str
    created_at: dt.datetime


def _info(p: PushSubscription) -> PushSubscriptionInfo:
    return PushSubscriptionInfo(p.id, p.user_id, p.endpoint, p.p256dh, p.auth, p.created_at)


def b64url_decode(value: str) -> bytes:
    """Decode base64url with or without padding (browsers send it unpadded)."""
    value = value.strip()
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def _check_keys(p256dh: str, auth: str) -> None:
    try:
        point = b64url_decode(p256dh)
        secret = b64url_decode(auth)
    except (binascii.Error, ValueError):
        raise InvalidInput("keys must be base64url") from None
    if len(point) != P256_POINT or point[0] != 4:
        raise InvalidInput("keys.p256dh must be an uncompressed P-256 public key")
    if len(secret) != AUTH_SECRET:
        raise InvalidInput("keys.auth must be 16 bytes")


def subscribe(user_id: int, endpoint: str, p256dh: str, auth: str) -> PushSubscriptionInfo:
    """Record (or refresh) a browser's subscription for `user_id`."""
    endpoint = endpoint.strip()
    if not endpoint or len(endpoint) > MAX_ENDPOINT:
        raise InvalidInput(f"endpoint must be 1 to {MAX_ENDPOINT} characters")
    _check_keys(p256dh, auth)
    with transaction() as t:
        existing = t.s.scalar(select(PushSubscription).where(PushSubscription.endpoint == endpoint).with_for_update())
        if existing is None:
            count = len(list(t.s.scalars(select(PushSubscription.id).where(PushSubscription.user_id == user_id))))
            if count >= MAX_PER_USER:
                raise InvalidInput(f"at most {MAX_PER_USER} push subscriptions per user")
            existing = PushSubscription(user_id=user_id, endpoint=endpoint, p256dh=p256dh.strip(), auth=auth.strip())
            t.s.add(existing)
        else:
            existing.user_id = user_id
            existing.p256dh = p256dh.strip()
            existing.auth = auth.strip()
        t.s.flush()
        return _info(existing)


def list_subscriptions(user_id: int) -> list[PushSubscriptionInfo]:
    with read() as s:
        q = select(PushSubscription).where(PushSubscription.user_id == user_id).order_by(PushSubscription.id)
        return [_info(p) for p in s.scalars(q)]


def unsubscribe(user_id: int, *, endpoint: str | None = None, subscription_id: int | None = None) -> None:
    """Remove one of the user's subscriptions, by endpoint or by id. NotFound if it is not theirs."""
    q = delete(PushSubscription).where(PushSubscription.user_id == user_id)
    if endpoint is not None:
        q = q.where(PushSubscription.endpoint == endpoint.strip())
    elif subscription_id is not None:
        q = q.where(PushSubscription.id == subscription_id)
    else:
        raise InvalidInput("endpoint or id required")
    with transaction() as t:
        if rowcount(t.s.execute(q)) == 0:
            raise NotFound("no such push subscription")


def remove_endpoint(endpoint: str) -> bool:
    """The push service says this endpoint is gone: forget it. True when a row was removed."""
    with transaction() as t:
        return rowcount(t.s.execute(delete(PushSubscription).where(PushSubscription.endpoint == endpoint))) > 0
