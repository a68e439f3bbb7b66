"""SQLAlchemy models: the schema of DESIGN.md §4-5.

Only relate/store (and migrations and tests) import this module.

Invariants:
- Every address is stored lowercased and is globally unique; it belongs to at most one user.
- A message body is stored once, keyed by the SHA-256 of its exact raw bytes; every mailbox
  entry points at one body. Deleting an entry never touches another user's entries.
- Per mailbox: UIDs are strictly ascending and never reused while UIDVALIDITY stays the same;
  `uid_next` and `highest_modseq` are advanced only under the mailbox row lock, in the same
  transaction that inserts or changes the entries, so allocation order is commit order.
- Flags are columns (the five system flags) and keywords a sorted JSON list, so the API's
  labels and IMAP keywords are the same thing.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    select,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, column_property, deferred, mapped_column

# BIGINT primary keys on PostgreSQL; SQLite only auto-increments a plain INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")
Json = JSON().with_variant(JSONB(), "postgresql")

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UtcDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC datetimes on both PostgreSQL and SQLite (which stores naive text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class ServerSecret(Base):
    """Process-independent secrets (the API-key hashing key), generated once per database."""

    __tablename__ = "server_secrets"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)


class Domain(Base):
    __tablename__ = "domains"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True, nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow, nullable=False)


class User(Base):
    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("oidc_issuer", "oidc_subject", name="uq_users_oidc"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    oidc_issuer: Mapped[str | None] = mapped_column(String(512))
    oidc_subject: Mapped[str | None] = mapped_column(String(255))
    primary_address: Mapped[str] = mapped_column(String(320), unique=True, nullable=False)
    display_name: Mapped[str] = mapped_column(String(255), default="", nullable=False)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow, nullable=False)
    updated_at: Mapped[dt.datetime] = mapped_column(
        UtcDateTime(), default=utcnow, onupdate=utcnow, nullable=False
    )
    last_login_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    # Last UIDVALIDITY handed out to one of this user's mailboxes: a recreated mailbox always
    # gets a new, greater value (RFC 9051 §2.3.1.1).
    last_uid_validity: Mapped[int] = mapped_column(BigInteger, default=0, nullable=False)


class Address(Base):
    __tablename__ = "addresses"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    address: Mapped[str] = mapped_column(String(320), unique=True, nullable=False)  # lowercased
    domain: Mapped[str] = mapped_column(String(255), nullable=False, index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True)
    confirmed: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow, nullable=False)


class ApiKey(Base):
    __tablename__ = "api_keys"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    prefix: Mapped[str] = mapped_column(String(32), unique=True, nullable=False)  # visible, not secret
    secret_hash: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)  # HMAC-SHA256
    scopes: Mapped[str] = mapped_column(String(200), nullable=False)  # space-separated
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow, nullable=False)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())


class Subscription(Base):
    """One name in a user's subscription list (RFC 9051 §6.3.7, RFC 3501 §6.3.6).

    A name, not a mailbox: it may name a mailbox that does not exist (yet, or any more), and
    deleting a mailbox leaves it. Stored as the store normalises mailbox names (INBOX
    upper-cased).
    """

    __tablename__ = "subscriptions"
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(1000), primary_key=True)  # full path, '/' delimiter


class Mailbox(Base):
    __tablename__ = "mailboxes"
    __table_args__ = (UniqueConstraint("user_id", "name", name="uq_mailboxes_user_name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    name: Mapped[str] = mapped_column(String(1000), nullable=False)  # full path, '/' delimiter
    special_use: Mapped[str | None] = mapped_column(String(32))  # '\\Sent', '\\Trash', ...
    uid_validity: Mapped[int] = mapped_column(BigInteger, nullable=False)
    uid_next: Mapped[int] = mapped_column(BigInteger, default=1, nullable=False)
    highest_modseq: Mapped[int] = mapped_column(BigInteger, default=1, nullable=False)
    # Read-only: whether the user's subscription list names this mailbox (alembic 0005).
    subscribed: Mapped[bool] = column_property(
        select(Subscription.name)
        .where(Subscription.user_id == user_id, Subscription.name == name)
        .correlate_except(Subscription)
        .exists()
    )
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow, nullable=False)
    # Kept by database triggers on entries (alembic 0003); never written by the store.
    message_count: Mapped[int] = mapped_column(BigInteger, server_default="0", nullable=False)
    unseen_count: Mapped[int] = mapped_column(BigInteger, server_default="0", nullable=False)


class MessageBody(Base):
    """One stored message, shared by every entry that references it (content-addressed)."""

    __tablename__ = "message_bodies"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    size: Mapped[int] = mapped_column(BigInteger, nullable=False)
    raw: Mapped[bytes] = deferred(mapped_column(LargeBinary, nullable=False))
    # Parsed once at delivery (relate.message.ParsedMessage.to_json()).
    meta: Mapped[dict[str, Any]] = deferred(mapped_column(Json, nullable=False))
    message_id: Mapped[str | None] = mapped_column(String(998), index=True)
    subject: Mapped[str] = mapped_column(Text, default="", nullable=False)
    from_address: Mapped[str] = mapped_column(String(320), default="", nullable=False)
    from_display: Mapped[str] = mapped_column(String(500), default="", nullable=False)
    to_text: Mapped[str] = mapped_column(Text, default="", nullable=False)  # addresses for search
    sent_date: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    preview: Mapped[str] = mapped_column(String(400), default="", nullable=False)
    has_attachments: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    attachment_count: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    thread_id: Mapped[str] = mapped_column(String(64), default="", nullable=False)
    search_text: Mapped[str] = deferred(mapped_column(Text, default="", nullable=False))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow, nullable=False)
    # Whether the search indexes hold this body's documents (alembic 0006). Deliveries and
    # APPEND leave it to the database's default (false on PostgreSQL; true on SQLite, which
    # has no such indexes); relate.store.searchindex sets it; bulk loads insert it true.
    indexed: Mapped[bool] = mapped_column(Boolean, nullable=False)
    # Octets of the message as POP3 sends it (relate.message.crlf.wire_size), stored with
    # the body (alembic 0009). NULL for bodies stored before: POP3 computes those from `raw`
    # and writes the size back (relate.store.pop3.store_wire_sizes).
    wire_size: Mapped[int | None] = mapped_column(BigInteger)


class Entry(Base):
    """A message in one user's mailbox: the IMAP view (UID, flags, keywords, MODSEQ)."""

    __tablename__ = "entries"
    __table_args__ = (
        UniqueConstraint("mailbox_id", "uid", name="uq_entries_mailbox_uid"),
        Index("ix_entries_mailbox_modseq", "mailbox_id", "modseq"),
        Index("ix_entries_user_unseen", "user_id", "mailbox_id", "seen"),
        # Lists walk these in (internal_date, id) order; the first carries the owner on
        # PostgreSQL (alembic 0007; 0003 made the second).
        Index("ix_entries_mailbox_date_id", "mailbox_id", "internal_date", "id", postgresql_include=["user_id"]),
        Index("ix_entries_user_date_id", "user_id", "internal_date", "id"),
        Index("ix_entries_user_thread", "user_id", "thread_id"),
        # A search finds bodies first, then their entries: on PostgreSQL the index carries
        # what the search reads of an entry before its page is chosen (alembic 0008).
        Index("ix_entries_body_id", "body_id", postgresql_include=["user_id", "internal_date", "id", "seen"]),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    mailbox_id: Mapped[int] = mapped_column(ForeignKey("mailboxes.id", ondelete="CASCADE"), nullable=False)
    body_id: Mapped[int] = mapped_column(ForeignKey("message_bodies.id"), nullable=False)
    uid: Mapped[int] = mapped_column(BigInteger, nullable=False)
    modseq: Mapped[int] = mapped_column(BigInteger, nullable=False)
    size: Mapped[int] = mapped_column(BigInteger, nullable=False)  # copy of the body's, for STATUS SIZE
    thread_id: Mapped[str] = mapped_column(String(64), default="", nullable=False)
    internal_date: Mapped[dt.datetime] = mapped_column(UtcDateTime(), nullable=False)
    # SMTP MAIL FROM (or the mbox From_ line's sender on import); '' for the null sender.
    envelope_from: Mapped[str | None] = mapped_column(String(320))
    seen: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    answered: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    flagged: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    draft: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    keywords: Mapped[list[str]] = mapped_column(Json, default=list, nullable=False)


class Expunged(Base):
    """UIDs removed from a mailbox, with the MODSEQ of their removal (RFC 7162 VANISHED)."""

    __tablename__ = "expunged"
    __table_args__ = (Index("ix_expunged_mailbox_modseq", "mailbox_id", "modseq"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    mailbox_id: Mapped[int] = mapped_column(ForeignKey("mailboxes.id", ondelete="CASCADE"), nullable=False)
    uid: Mapped[int] = mapped_column(BigInteger, nullable=False)
    modseq: Mapped[int] = mapped_column(BigInteger, nullable=False)


class Label(Base):
    __tablename__ = "labels"
    __table_args__ = (UniqueConstraint("user_id", "name", name="uq_labels_user_name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)  # also the IMAP keyword
    color: Mapped[str] = mapped_column(String(32), default="", nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow, nullable=False)


class Filter(Base):
    __tablename__ = "filters"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, nullable=False)
    position: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    conditions: Mapped[dict[str, Any]] = mapped_column(Json, nullable=False)
    actions: Mapped[dict[str, Any]] = mapped_column(Json, nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow, nullable=False)


class Preference(Base):
    __tablename__ = "preferences"
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    data: Mapped[dict[str, Any]] = mapped_column(Json, nullable=False)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow, nullable=False)


class PushSubscription(Base):
    __tablename__ = "push_subscriptions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True)
    endpoint: Mapped[str] = mapped_column(String(2000), unique=True, nullable=False)
    p256dh: Mapped[str] = mapped_column(String(200), nullable=False)
    auth: Mapped[str] = mapped_column(String(100), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow, nullable=False)


class AuthFailure(Base):
    """One failed login, keyed by 'ip:<addr>' and 'login:<name>' rows (the shared throttle)."""

    __tablename__ = "auth_failures"
    __table_args__ = (Index("ix_auth_failures_key_at", "key", "at"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    key: Mapped[str] = mapped_column(String(400), nullable=False)
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow, nullable=False, index=True)


class WebSession(Base):
    """A signed-in web UI session. The cookie holds a random token; only its SHA-256 is kept,
    so a database leak hands out no sessions, and deleting the row signs out on every replica."""

    __tablename__ = "web_sessions"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # hex SHA-256 of the cookie token
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True)
    csrf_token: Mapped[str] = mapped_column(String(64), nullable=False)  # sent back in X-CSRF-Token
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow, nullable=False)
    last_seen_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow, nullable=False)
    expires_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), nullable=False, index=True)


class RateLimitCounter(Base):
    """Requests counted in one fixed window for one key ('ip:<addr>' or 'user:<id>'), shared by
    every API replica on PostgreSQL."""

    __tablename__ = "rate_limits"
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    window_start: Mapped[int] = mapped_column(BigInteger, primary_key=True, index=True)  # Unix seconds
    count: Mapped[int] = mapped_column(Integer, nullable=False)


class MetricCounter(Base):
    """A cumulative per-protocol counter, summed over every process (relate.metrics flushes)."""

    __tablename__ = "metric_counters"
    protocol: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, nullable=False)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow, nullable=False)
