"""API keys: the password for SMTP, POP3 and IMAP and the bearer token of the REST API.

A key looks like `rm_<prefix>_<secret>`: the prefix (10 characters) is visible and is how a
key is found; the secret (43 letters and digits, over 256 bits) is never stored. Only
HMAC-SHA256(server secret, secret) is kept: a fast keyed hash is right for high-entropy
random keys, and lookup by prefix means no per-login scan. Revocation is a column read on
every authentication (nothing about a key is cached in a process), so it takes effect at once
on every replica: a request that starts after `revoke_key` returned is refused everywhere.

The REST API authenticates every request with `verify_bearer`: one statement (the key, its
owner's administrator flag and primary address) outside any transaction, see
relate.store.rawread.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import bindparam, select, update

from relate.config import API_SCOPES
from relate.db.models import Address, ApiKey, User
from relate.store import rawread
from relate.store.accounts import normalise_address
from relate.store.errors import Forbidden, InvalidInput, NotFound
from relate.store.events import KEY_REVOKED, Change
from relate.store.secrets import get_secret
from relate.store.session import read, transaction
from relate.store.types import ApiKeyInfo, AuthResult

KEY_TAG = "rm"
PREFIX_CHARS = "abcdefghijkmnpqrstuvwxyz23456789"  # no look-alikes
PREFIX_LEN = 10
SECRET_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
SECRET_LEN = 43  # 43 * log2(62) > 256 bits
LAST_USED_GRANULARITY = dt.timedelta(minutes=1)  # don't write on every login


def _hash(secret: str) -> bytes:
    return hmac.new(get_secret("api-key-hmac"), secret.encode(), hashlib.sha256).digest()


def parse_scopes(value: str | list[str] | tuple[str, ...] | set[str] | frozenset[str]) -> frozenset[str]:
    items = value.replace(",", " ").split() if isinstance(value, str) else list(value)
    scopes = frozenset(s.strip().lower() for s in items if s.strip())
    unknown = scopes - set(API_SCOPES)
    if unknown:
        raise InvalidInput(f"unknown scope(s): {', '.join(sorted(unknown))}; allowed: {', '.join(API_SCOPES)}")
    if not scopes:
        raise InvalidInput("at least one scope is required")
    return scopes


def split_key(key: str) -> tuple[str, str] | None:
    """(prefix, secret) of a well-formed key, else None."""
    parts = key.strip().split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_TAG or len(parts[1]) != PREFIX_LEN or len(parts[2]) < 20:
        return None
    return f"{KEY_TAG}_{parts[1]}", parts[2]


def _info(k: ApiKey) -> ApiKeyInfo:
    return ApiKeyInfo(
        id=k.id,
        user_id=k.user_id,
        name=k.name,
        prefix=k.prefix,
        scopes=frozenset(k.scopes.split()),
        created_at=k.created_at,
        last_used_at=k.last_used_at,
        revoked_at=k.revoked_at,
    )


def create_key(
    user_id: int, name: str, scopes: frozenset[str] | str, *, granted_by: frozenset[str] | None = None
) -> tuple[ApiKeyInfo, str]:
    """Create a key; returns its info and the full key, which is shown once and never again.

    `granted_by` is the scope set of the caller when a key creates a key: the new key may not
    have a scope the caller lacks (no escalation). None means an administrator or the CLI.
    """
    wanted = parse_scopes(scopes)
    name = (name or "").strip()
    if not name or len(name) > 200:
        raise InvalidInput("key name must be 1 to 200 characters")
    if granted_by is not None and not wanted <= granted_by:
        raise Forbidden(f"cannot grant scope(s) you do not hold: {', '.join(sorted(wanted - granted_by))}")
    prefix = f"{KEY_TAG}_" + "".join(secrets.choice(PREFIX_CHARS) for _ in range(PREFIX_LEN))
    secret = "".join(secrets.choice(SECRET_CHARS) for _ in range(SECRET_LEN))
    with transaction() as t:
        key = ApiKey(
            user_id=user_id,
            name=name,
            prefix=prefix,
            secret_hash=_hash(secret),
            scopes=" ".join(sorted(wanted)),
        )
        t.s.add(key)
        t.s.flush()
        info = _info(key)
    return info, f"{prefix}_{secret}"


def list_keys(user_id: int, *, include_revoked: bool = False) -> list[ApiKeyInfo]:
    with read() as s:
        q = select(ApiKey).where(ApiKey.user_id == user_id).order_by(ApiKey.created_at, ApiKey.id)
        if not include_revoked:
            q = q.where(ApiKey.revoked_at.is_(None))
        return [_info(k) for k in s.scalars(q)]


def get_key(key_id: int) -> ApiKeyInfo:
    with read() as s:
        k = s.get(ApiKey, key_id)
        if k is None:
            raise NotFound("no such key")
        return _info(k)


def revoke_key(key_id: int, *, user_id: int | None = None) -> ApiKeyInfo:
    """Revoke a key (with user_id: only if it belongs to that user)."""
    with transaction() as t:
        k = t.s.get(ApiKey, key_id)
        if k is None or (user_id is not None and k.user_id != user_id):
            raise NotFound("no such key")
        if k.revoked_at is None:
            k.revoked_at = dt.datetime.now(dt.UTC)
            # Sessions authenticated by this key (WebSockets) end on every replica.
            t.emit(Change(KEY_REVOKED, k.user_id, extra={"keyId": k.id}))
        return _info(k)


def _touch_key(key_id: int, last_used_at: dt.datetime | None) -> None:
    now = dt.datetime.now(dt.UTC)
    if last_used_at is not None and now - last_used_at < LAST_USED_GRANULARITY:
        return
    with transaction() as t:
        t.s.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=now))


@dataclass(frozen=True)
class KeyHolder:
    """What the REST API needs to know on every request about a valid key and its owner."""

    key_id: int
    user_id: int
    scopes: frozenset[str]  # every scope of the key (REST and protocol ones)
    is_admin: bool  # the owner's administrator flag as stored (Admin__Emails is the caller's business)
    primary_address: str


# What every one-statement key check reads of the key (then compares the digest in Python).
_KEY_COLUMNS = (ApiKey.id, ApiKey.user_id, ApiKey.secret_hash, ApiKey.scopes, ApiKey.last_used_at)

_BEARER = rawread.Statement(
    select(*_KEY_COLUMNS, User.is_admin, User.primary_address)
    .join(User, User.id == ApiKey.user_id)
    .where(ApiKey.prefix == bindparam("prefix"), ApiKey.revoked_at.is_(None)),
    prepared=True,  # a unique-key lookup: one plan for every key
)
_scope_sets: dict[str, frozenset[str]] = {}  # stored scope strings, parsed (a handful per process)


def _scopes(stored: str) -> frozenset[str]:
    found = _scope_sets.get(stored)
    if found is None:
        found = frozenset(stored.split())
        if len(_scope_sets) < 1024:
            _scope_sets[stored] = found
    return found


def verify_bearer(key: str) -> KeyHolder | None:
    """The holder of `key` when it is valid and not revoked, read with one statement."""
    parts = split_key(key)
    if parts is None:
        return None
    prefix, secret = parts
    # Hashed before the read: the first hash in a process reads the secret in a transaction of
    # its own, and many requests each holding a connection while waiting for a second one
    # would exhaust the pool. Either way the same work is done, found or not.
    digest = _hash(secret)
    found = rawread.rows(_BEARER, {"prefix": prefix})
    if not found:
        return None
    key_id, user_id, stored, scopes, last_used_at, is_admin, address = found[0]
    if not hmac.compare_digest(bytes(stored), digest):
        return None
    _touch_key(key_id, rawread.utc(last_used_at))
    return KeyHolder(int(key_id), int(user_id), _scopes(scopes), bool(is_admin), address)


_LOGIN = rawread.Statement(
    select(
        *_KEY_COLUMNS,
        select(Address.user_id)
        .where(Address.address == bindparam("address"), Address.confirmed.is_(True))
        .scalar_subquery(),
    ).where(ApiKey.prefix == bindparam("prefix"), ApiKey.revoked_at.is_(None))
)


def authenticate(login: str, secret: str, scope: str) -> AuthResult | None:
    """The one login check every protocol shares, read with one statement.

    `login` is any confirmed address of the key's owner; `secret` the full API key; `scope`
    what the protocol needs (smtp, pop3, imap). None on any failure, without saying which
    part was wrong.
    """
    try:
        address = normalise_address(login)
    except InvalidInput:
        return None
    parts = split_key(secret)
    if parts is None:
        return None
    prefix, key_secret = parts
    digest = _hash(key_secret)  # before the read, as in verify_bearer
    found = rawread.rows(_LOGIN, {"prefix": prefix, "address": address})
    if not found:
        return None
    key_id, user_id, stored, scopes, last_used_at, owner = found[0]
    if not hmac.compare_digest(bytes(stored), digest):
        return None
    granted = _scopes(scopes)
    if scope not in granted or owner != user_id:
        return None
    _touch_key(key_id, rawread.utc(last_used_at))
    return AuthResult(user_id=int(user_id), key_id=int(key_id), scopes=granted, login=address)
