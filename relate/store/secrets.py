"""Per-database secrets (the keyed-hash key for API keys), created once and cached."""

from __future__ import annotations

import secrets as _secrets

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from relate.db import get_engine
from relate.db.models import ServerSecret
from relate.store.session import transaction

_cache: dict[tuple[str, str], bytes] = {}  # (database URL, name) -> value


def get_secret(name: str) -> bytes:
    """The secret `name`, generating it on first use (safe against concurrent first use)."""
    cache_key = (str(get_engine().url), name)
    if cache_key in _cache:
        return _cache[cache_key]
    for _ in range(3):
        try:
            with transaction() as t:
                value = t.s.scalar(select(ServerSecret.value).where(ServerSecret.name == name))
                if value is None:
                    value = _secrets.token_bytes(32)
                    t.s.add(ServerSecret(name=name, value=value))
            _cache[cache_key] = bytes(value)
            return _cache[cache_key]
        except IntegrityError:
            continue  # another process created it first; read theirs
    raise RuntimeError(f"could not create server secret {name}")


def clear_cache() -> None:
    _cache.clear()
