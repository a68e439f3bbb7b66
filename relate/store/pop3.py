"""What the POP3 daemon needs in bulk: the INBOX listing at login with each message's POP3
size, raw bodies in batches, and \\Seen for many retrieved messages at once.

Invariants:
- The listing is one query for the whole INBOX in UID order (oldest first) without building
  ORM objects. It carries each body's stored wire size (message_bodies.wire_size), so STAT
  and LIST read no body; raw bodies come back exactly as stored, many per query, and are read
  only for RETR and TOP, and for the sizes of bodies stored before alembic 0009 (NULL).
- `store_wire_sizes` writes such a computed size back, so it is read once per body and not
  at every login. The size depends only on the raw bytes, which never change, so any writer
  writes the same value: it fills NULLs only and skips rows another transaction has locked
  (a delivery that found the same body, the body collector) instead of waiting for them. On
  PostgreSQL the new row version seldom fits in its page, so it costs about what indexing the
  body for search did (relate.pop3d.sizes calls it in the background for that reason).
- `mark_seen` is `messages.store_flags(..., "add", ["\\Seen"])` done set-wise: one UPDATE
  per chunk of UIDs instead of one per row, the same new MODSEQ for all, the same FLAGS
  change event, committed before it returns. (Row-by-row updates fire the mailbox counter
  triggers once per row; see migration 0003.) The deletions applied at QUIT go through
  `messages.expunge`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import BigInteger, case, literal, select, update

from relate.db.models import Entry, Mailbox, MessageBody
from relate.store import events as ev
from relate.store.errors import NotFound
from relate.store.messages import allocate
from relate.store.session import read, transaction
from relate.store.sql import rowcount

BODY_QUERY_CHUNK = 500  # bound for the IN (...) list of one body query


@dataclass(frozen=True)
class MaildropEntry:
    uid: int
    body_id: int
    size: int  # octets as stored (not the POP3 size, which counts CRLF line endings)
    seen: bool
    wire_size: int | None  # the POP3 size (relate.message.crlf); None for a body stored before it was kept


@dataclass(frozen=True)
class Inbox:
    mailbox_id: int
    uid_validity: int
    entries: tuple[MaildropEntry, ...]  # in UID order


def inbox_listing(user_id: int) -> Inbox:
    """The user's INBOX as it is now: its id, UIDVALIDITY and every entry in UID order."""
    with read() as s:
        box = s.execute(
            select(Mailbox.id, Mailbox.uid_validity).where(Mailbox.user_id == user_id, Mailbox.name == "INBOX")
        ).one_or_none()
        if box is None:
            raise NotFound("user has no INBOX")
        rows = s.execute(
            select(Entry.uid, Entry.body_id, Entry.size, Entry.seen, MessageBody.wire_size)
            .join(MessageBody, MessageBody.id == Entry.body_id)
            .where(Entry.mailbox_id == box.id, Entry.user_id == user_id)
            .order_by(Entry.uid)
        ).all()
    entries = tuple(
        MaildropEntry(int(r.uid), int(r.body_id), int(r.size), bool(r.seen),
                      None if r.wire_size is None else int(r.wire_size))
        for r in rows
    )
    return Inbox(int(box.id), int(box.uid_validity), entries)


def raw_bodies(body_ids: Sequence[int]) -> dict[int, bytes]:
    """The exact stored bytes of each body, by id. Ids that no longer exist are left out.

    The caller bounds how many octets one call returns (it knows each entry's size).
    """
    wanted = sorted(set(body_ids))
    found: dict[int, bytes] = {}
    with read() as s:
        for start in range(0, len(wanted), BODY_QUERY_CHUNK):
            chunk = wanted[start : start + BODY_QUERY_CHUNK]
            for body_id, raw in s.execute(
                select(MessageBody.id, MessageBody.raw).where(MessageBody.id.in_(chunk))
            ):
                found[int(body_id)] = bytes(raw)
    return found


def store_wire_sizes(sizes: Mapping[int, int]) -> int:
    """Record computed POP3 sizes (body id -> relate.message.crlf.wire_size of its raw bytes)
    for bodies that have none yet. Returns how many rows were written; a body that is gone,
    already has its size or is locked by another transaction is left as it is."""
    wanted = sorted(sizes)
    written = 0
    with transaction() as t:
        for start in range(0, len(wanted), BODY_QUERY_CHUNK):
            chunk = wanted[start : start + BODY_QUERY_CHUNK]
            free = (
                select(MessageBody.id)
                .where(MessageBody.id.in_(chunk), MessageBody.wire_size.is_(None))
                .with_for_update(key_share=True, skip_locked=True)  # FOR NO KEY UPDATE SKIP LOCKED
            )
            written += rowcount(t.s.execute(
                update(MessageBody)
                .where(MessageBody.id.in_(free))
                .values(wire_size=case(*((MessageBody.id == i, literal(sizes[i], BigInteger)) for i in chunk))),
                execution_options={"synchronize_session": False},
            ))
    return written


def mark_seen(user_id: int, mailbox_id: int, uids: Sequence[int], *, origin: str = "") -> list[int]:
    """Set \\Seen on those of `uids` that lack it; returns the UIDs that changed, ascending."""
    wanted = sorted(set(uids))
    if not wanted:
        return []
    changed: list[int] = []
    with transaction() as t:
        box = t.s.get(Mailbox, mailbox_id)
        if box is None or box.user_id != user_id:
            raise NotFound("no such mailbox")
        unseen: list[int] = []
        for start in range(0, len(wanted), BODY_QUERY_CHUNK):
            chunk = wanted[start : start + BODY_QUERY_CHUNK]
            unseen.extend(
                t.s.scalars(
                    select(Entry.uid).where(Entry.mailbox_id == mailbox_id, Entry.uid.in_(chunk), Entry.seen.is_(False))
                )
            )
        if not unseen:
            return []
        modseq = allocate(t, mailbox_id, 0)[1]
        unseen.sort()
        for start in range(0, len(unseen), BODY_QUERY_CHUNK):
            chunk = unseen[start : start + BODY_QUERY_CHUNK]
            changed.extend(
                t.s.scalars(
                    update(Entry)
                    .where(Entry.mailbox_id == mailbox_id, Entry.uid.in_(chunk), Entry.seen.is_(False))
                    .values(seen=True, modseq=modseq)
                    .returning(Entry.uid),
                    execution_options={"synchronize_session": False},
                )
            )
        changed.sort()
        if changed:
            t.emit(ev.Change(ev.FLAGS, user_id, mailbox_id, tuple(changed), modseq, box.name, origin=origin))
    return changed
