"""The mail store: the only code that touches the database models.

Protocols, the web app and the command line call these functions; every mutation commits
before it returns and emits change events on `relate.store.events.bus`.
"""

from __future__ import annotations

import logging

from relate import db
from relate.config import Settings
from relate.store import (
    accounts,
    events,
    filters,
    health,
    keys,
    mailboxes,
    messages,
    ratelimit,
    searchindex,
    throttle,
)
from relate.store.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    OverQuota,
    RetryableConflict,
    StoreError,
    TemporaryFailure,
)
from relate.store.events import Change, Subscription, bus
from relate.store.types import (
    AddressInfo,
    ApiKeyInfo,
    AuthResult,
    Delivered,
    EntryInfo,
    Envelope,
    MailboxInfo,
    MailboxStatus,
    UserInfo,
)

log = logging.getLogger("relate.store")


def postgres_dsn(url: str) -> str | None:
    """The libpq DSN for an SQLAlchemy PostgreSQL URL (None for SQLite)."""
    if not url.startswith("postgresql"):
        return None
    from sqlalchemy.engine import make_url

    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def open_store(settings: Settings, *, migrate: bool | None = None, pool_size: int = 10) -> None:
    """Connect this process to the database named by the settings and get the store ready:
    migrate when asked (or Database__AutoMigrate), host the configured domains, set up the bus."""
    engine = db.configure(settings.database_url, pool_size=pool_size)
    from relate.db import migrate as migrations

    if settings.auto_migrate if migrate is None else migrate:
        migrations.upgrade(engine)
    elif not migrations.is_current(engine):
        raise StoreError("the database schema is not current: run `relate migrate` (or set Database__AutoMigrate=true)")
    bus.configure_postgres(postgres_dsn(settings.database_url))
    ratelimit.reset()  # in-process counters (SQLite) belong to the database opened here
    if settings.mail_domains:
        accounts.ensure_domains(settings.mail_domains)


def close_store() -> None:
    searchindex.stop()
    bus.stop_listener()
    db.dispose()


__all__ = [
    "AddressInfo",
    "ApiKeyInfo",
    "AuthResult",
    "Change",
    "Conflict",
    "Delivered",
    "EntryInfo",
    "Envelope",
    "Forbidden",
    "InvalidInput",
    "MailboxInfo",
    "MailboxStatus",
    "NotFound",
    "OverQuota",
    "RetryableConflict",
    "StoreError",
    "Subscription",
    "TemporaryFailure",
    "UserInfo",
    "accounts",
    "bus",
    "close_store",
    "events",
    "filters",
    "health",
    "keys",
    "mailboxes",
    "messages",
    "open_store",
    "postgres_dsn",
    "searchindex",
    "throttle",
]
