"""Plain values the store hands out. Callers never see ORM objects."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

SPECIAL_MAILBOXES = (
    # (name, special-use attribute) created for every user (DESIGN.md §5, RFC 6154)
    ("INBOX", None),
    ("Sent", "\\Sent"),
    ("Drafts", "\\Drafts"),
    ("Trash", "\\Trash"),
    ("Junk", "\\Junk"),
    ("Archive", "\\Archive"),
)
SPECIAL_USES = frozenset(use for _, use in SPECIAL_MAILBOXES if use) | {"\\All", "\\Flagged", "\\Important"}
SYSTEM_FLAGS = ("\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft")


@dataclass(frozen=True)
class UserInfo:
    id: int
    primary_address: str
    display_name: str
    is_admin: bool
    oidc_issuer: str | None = None
    oidc_subject: str | None = None
    created_at: dt.datetime | None = None


@dataclass(frozen=True)
class AddressInfo:
    address: str
    user_id: int
    confirmed: bool
    primary: bool = False


@dataclass(frozen=True)
class ApiKeyInfo:
    id: int
    user_id: int
    name: str
    prefix: str
    scopes: frozenset[str]
    created_at: dt.datetime
    last_used_at: dt.datetime | None
    revoked_at: dt.datetime | None


@dataclass(frozen=True)
class AuthResult:
    user_id: int
    key_id: int
    scopes: frozenset[str]
    login: str  # the address the client logged in with


@dataclass(frozen=True)
class MailboxInfo:
    id: int
    user_id: int
    name: str
    special_use: str | None
    uid_validity: int
    uid_next: int
    highest_modseq: int
    subscribed: bool


@dataclass(frozen=True)
class MailboxStatus:
    mailbox: MailboxInfo
    messages: int
    unseen: int
    deleted: int
    size: int


@dataclass(frozen=True)
class EntryInfo:
    """One message as a mailbox sees it."""

    id: int
    mailbox_id: int
    uid: int
    modseq: int
    body_id: int
    size: int
    internal_date: dt.datetime
    flags: frozenset[str]  # system flags and keywords together, as IMAP shows them
    thread_id: str = ""
    envelope_from: str | None = None  # SMTP MAIL FROM, or the mbox From_ sender

    @property
    def seen(self) -> bool:
        return "\\Seen" in self.flags


@dataclass(frozen=True)
class Envelope:
    """The SMTP envelope (or its equivalent for API sends and imports)."""

    mail_from: str  # '' for the null reverse-path
    recipients: tuple[str, ...]  # normalised addresses (already checked to be local)
    sender_user_id: int | None = None  # authenticated submitter: gets a copy in Sent
    origin: str = ""


@dataclass(frozen=True)
class Delivered:
    """What `deliver` stored: one entry per distinct local user, plus the Sent copy."""

    body_id: int
    size: int
    entries: tuple[tuple[int, int, int], ...]  # (user_id, mailbox_id, uid)
    sent_entry: tuple[int, int, int] | None = None
    user_ids: tuple[int, ...] = field(default=())
    # (user_id, summary) per stored entry, Sent copy included: what the internal
    # notification to the API carries (relate.notify.new_email_payload).
    summaries: tuple[tuple[int, dict[str, object]], ...] = field(default=())
