"""What the real-time layer (WebSockets, web push) reads from the store and announces on the bus.

Invariants:
- Reads are scoped to one user: every query filters on the user's id, so an event can only
  ever be built from the addressee's own rows.
- Emails are read as the REST API lists them (relate.store.listing), so an event carries the
  same JSON as `GET /api/emails`.
- `announce` sends changes that come with no mutation (a daemon's new-email notification)
  through the same path as committed changes: NOTIFY on PostgreSQL, so every replica's
  listener receives them, and in-process publication on SQLite.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import select

from relate.db.models import ApiKey, Entry, Expunged, Mailbox
from relate.store import listing
from relate.store.events import Change
from relate.store.listing import EmailRow
from relate.store.messages import CHUNK
from relate.store.session import read, transaction

SYNC_LIMIT = 500  # changed emails one catch-up request returns per mailbox before saying "reload"


@dataclass(frozen=True)
class EmailState:
    """One email as the API lists it, and the MODSEQ it has now (RFC 7162)."""

    row: EmailRow
    modseq: int


@dataclass(frozen=True)
class MailboxChanges:
    """What changed in one mailbox after a MODSEQ (RFC 7162 CHANGEDSINCE / VANISHED)."""

    mailbox_id: int
    mailbox: str
    highest_modseq: int
    uid_validity: int
    changed: list[EmailState]  # entries whose MODSEQ is greater, in UID order
    vanished: list[int]  # UIDs expunged after the MODSEQ
    truncated: bool  # more than SYNC_LIMIT changed: the client should reload the mailbox


def _states(user_id: int, modseqs: dict[int, int]) -> list[EmailState]:
    """EmailStates for entry id → MODSEQ, in UID order (entries gone meanwhile are left out)."""
    rows = listing.get_rows(user_id, list(modseqs))
    return [EmailState(row, modseqs[row.id]) for row in sorted(rows, key=lambda r: (r.mailbox_id, r.uid))]


def emails_by_uid(user_id: int, mailbox_id: int, uids: Sequence[int]) -> list[EmailState]:
    """The user's emails with these UIDs in one mailbox (those still there), in UID order."""
    wanted = sorted(set(uids))
    modseqs: dict[int, int] = {}
    with read() as s:
        for start in range(0, len(wanted), CHUNK):
            q = select(Entry.id, Entry.modseq).where(
                Entry.user_id == user_id, Entry.mailbox_id == mailbox_id, Entry.uid.in_(wanted[start : start + CHUNK])
            )
            modseqs.update({int(i): int(m) for i, m in s.execute(q)})
    return _states(user_id, modseqs) if modseqs else []


def email_by_id(user_id: int, entry_id: int) -> EmailState | None:
    """The user's email with this id, or None (gone, or someone else's)."""
    with read() as s:
        modseq = s.scalar(select(Entry.modseq).where(Entry.user_id == user_id, Entry.id == entry_id))
    if modseq is None:
        return None
    states = _states(user_id, {entry_id: int(modseq)})
    return states[0] if states else None


def changes_since(user_id: int, mailbox_id: int, modseq: int, limit: int = SYNC_LIMIT) -> MailboxChanges | None:
    """Emails changed and UIDs expunged after `modseq` in the user's mailbox; None when the
    mailbox does not exist (any more)."""
    with read() as s:
        box = s.get(Mailbox, mailbox_id)
        if box is None or box.user_id != user_id:
            return None
        q = (
            select(Entry.id, Entry.modseq)
            .where(Entry.user_id == user_id, Entry.mailbox_id == mailbox_id, Entry.modseq > modseq)
            .order_by(Entry.uid)
            .limit(limit + 1)
        )
        modseqs = {int(i): int(m) for i, m in s.execute(q)}
        vanished = sorted(
            set(s.scalars(select(Expunged.uid).where(Expunged.mailbox_id == mailbox_id, Expunged.modseq > modseq)))
        )
        name, highest, validity = box.name, box.highest_modseq, box.uid_validity
    truncated = len(modseqs) > limit
    return MailboxChanges(
        mailbox_id=mailbox_id,
        mailbox=name,
        highest_modseq=highest,
        uid_validity=validity,
        changed=[] if truncated else _states(user_id, modseqs),
        vanished=vanished,
        truncated=truncated,
    )


def revoked_keys(key_ids: Iterable[int]) -> set[int]:
    """Those of `key_ids` that are revoked or no longer exist."""
    wanted = sorted(set(key_ids))
    alive: set[int] = set()
    with read() as s:
        for start in range(0, len(wanted), CHUNK):
            chunk = wanted[start : start + CHUNK]
            alive.update(s.scalars(select(ApiKey.id).where(ApiKey.id.in_(chunk), ApiKey.revoked_at.is_(None))))
    return set(wanted) - alive


def announce(changes: Sequence[Change]) -> None:
    """Put changes that come with no mutation of their own on the bus, to every process."""
    if not changes:
        return
    with transaction() as t:
        for change in changes:
            t.emit(change)
