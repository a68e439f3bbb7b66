"""Mailboxes: hierarchy with '/' as delimiter, special-use roles, UIDVALIDITY, subscriptions.

Invariants:
- "INBOX" is case-insensitive (RFC 9051 §5.1) and always stored as INBOX; it cannot be
  deleted, and renaming it moves its messages to the new mailbox and leaves it empty.
- UIDVALIDITY comes from the user's counter (never smaller than the clock in seconds), so a
  mailbox deleted and created again gets a new, greater value (RFC 9051 §2.3.1.1).
- A mailbox with children cannot be deleted ([HASCHILDREN]); creating a/b/c creates a and a/b.
"""

from __future__ import annotations

import time

from sqlalchemy import case, delete, func, select, text

from relate.db.models import Entry, Mailbox, User
from relate.store import events as ev
from relate.store.errors import Conflict, Forbidden, InvalidInput, NotFound
from relate.store.session import Tx, read, transaction
from relate.store.types import SPECIAL_MAILBOXES, SPECIAL_USES, MailboxInfo, MailboxStatus

DELIMITER = "/"
MAX_NAME = 1000
MAX_DEPTH = 32


def normalise_name(name: str) -> str:
    """Validate a mailbox name and canonicalise INBOX."""
    if not isinstance(name, str) or not name or len(name) > MAX_NAME:
        raise InvalidInput("mailbox name must be 1 to 1000 characters")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name) or "*" in name or "%" in name:
        raise InvalidInput("mailbox name contains a forbidden character")
    parts = name.split(DELIMITER)
    if any(p == "" for p in parts):
        raise InvalidInput("mailbox name has an empty level")
    if len(parts) > MAX_DEPTH:
        raise InvalidInput("mailbox hierarchy is too deep")
    if parts[0].upper() == "INBOX":
        parts[0] = "INBOX"
    return DELIMITER.join(parts)


def _info(m: Mailbox) -> MailboxInfo:
    return MailboxInfo(
        id=m.id,
        user_id=m.user_id,
        name=m.name,
        special_use=m.special_use,
        uid_validity=m.uid_validity,
        uid_next=m.uid_next,
        highest_modseq=m.highest_modseq,
        subscribed=m.subscribed,
    )


def _next_uid_validity(t: Tx, user_id: int) -> int:
    now = int(time.time())
    value = t.s.execute(
        text(
            "UPDATE users SET last_uid_validity = CASE WHEN last_uid_validity + 1 > :now "
            "THEN last_uid_validity + 1 ELSE :now END WHERE id = :id RETURNING last_uid_validity"
        ),
        {"now": now, "id": user_id},
    ).scalar_one()
    return int(value) & 0xFFFFFFFF or 1


def _add(t: Tx, user_id: int, name: str, special_use: str | None) -> Mailbox:
    box = Mailbox(
        user_id=user_id,
        name=name,
        special_use=special_use,
        uid_validity=_next_uid_validity(t, user_id),
        uid_next=1,
        highest_modseq=1,
        subscribed=True,
    )
    t.s.add(box)
    t.s.flush()
    t.emit(ev.Change(ev.MAILBOX_CREATED, user_id, box.id, mailbox=name))
    return box


def create_special(t: Tx, user_id: int) -> None:
    """Create INBOX, Sent, Drafts, Trash, Junk and Archive for a new user."""
    for name, use in SPECIAL_MAILBOXES:
        _add(t, user_id, name, use)


def list_mailboxes(user_id: int) -> list[MailboxInfo]:
    with read() as s:
        return [_info(m) for m in s.scalars(select(Mailbox).where(Mailbox.user_id == user_id).order_by(Mailbox.name))]


def get_mailbox(user_id: int, name: str) -> MailboxInfo:
    name = normalise_name(name)
    with read() as s:
        box = s.scalar(select(Mailbox).where(Mailbox.user_id == user_id, Mailbox.name == name))
        if box is None:
            raise NotFound(f"no mailbox named {name}")
        return _info(box)


def get_mailbox_by_id(user_id: int, mailbox_id: int) -> MailboxInfo:
    with read() as s:
        box = s.get(Mailbox, mailbox_id)
        if box is None or box.user_id != user_id:
            raise NotFound("no such mailbox")
        return _info(box)


def find_special(user_id: int, use: str) -> MailboxInfo | None:
    with read() as s:
        box = s.scalar(select(Mailbox).where(Mailbox.user_id == user_id, Mailbox.special_use == use))
        return _info(box) if box else None


def create_mailbox(user_id: int, name: str, special_use: str | None = None) -> MailboxInfo:
    """Create `name` and any missing parents. Conflict if it exists."""
    name = normalise_name(name)
    if special_use is not None and special_use not in SPECIAL_USES:
        raise InvalidInput(f"unsupported special use {special_use}")
    with transaction() as t:
        existing = set(t.s.scalars(select(Mailbox.name).where(Mailbox.user_id == user_id)))
        if name in existing:
            raise Conflict(f"mailbox {name} already exists")
        if special_use is not None and t.s.scalar(
            select(Mailbox.id).where(Mailbox.user_id == user_id, Mailbox.special_use == special_use)
        ):
            raise Conflict(f"a mailbox with {special_use} already exists")
        parts = name.split(DELIMITER)
        for depth in range(1, len(parts)):
            parent = DELIMITER.join(parts[:depth])
            if parent not in existing:
                _add(t, user_id, parent, None)
        return _info(_add(t, user_id, name, special_use))


def _children(t: Tx, user_id: int, name: str) -> list[Mailbox]:
    prefix = name + DELIMITER
    return [
        m
        for m in t.s.scalars(select(Mailbox).where(Mailbox.user_id == user_id, Mailbox.name.startswith(prefix, autoescape=True)))
    ]


def delete_mailbox(user_id: int, name: str) -> None:
    name = normalise_name(name)
    if name == "INBOX":
        raise Forbidden("INBOX cannot be deleted")
    with transaction() as t:
        box = t.s.scalar(select(Mailbox).where(Mailbox.user_id == user_id, Mailbox.name == name).with_for_update())
        if box is None:
            raise NotFound(f"no mailbox named {name}")
        if _children(t, user_id, name):
            raise Conflict(f"mailbox {name} has child mailboxes")  # RFC 9051 [HASCHILDREN]
        t.s.execute(delete(Entry).where(Entry.mailbox_id == box.id))
        t.s.delete(box)
        t.emit(ev.Change(ev.MAILBOX_DELETED, user_id, box.id, mailbox=name))


def rename_mailbox(user_id: int, old: str, new: str) -> MailboxInfo:
    """Rename a mailbox and its children. Renaming INBOX moves its messages instead (RFC 9051 §6.3.6)."""
    old, new = normalise_name(old), normalise_name(new)
    if new == "INBOX":
        raise Forbidden("cannot rename to INBOX")
    if old == new:
        raise Conflict(f"mailbox {new} already exists")
    with transaction() as t:
        box = t.s.scalar(select(Mailbox).where(Mailbox.user_id == user_id, Mailbox.name == old).with_for_update())
        if box is None:
            raise NotFound(f"no mailbox named {old}")
        existing = set(t.s.scalars(select(Mailbox.name).where(Mailbox.user_id == user_id)))
        if new in existing:
            raise Conflict(f"mailbox {new} already exists")
        if old != "INBOX" and new.startswith(old + DELIMITER):
            raise InvalidInput("cannot move a mailbox into itself")
        parts = new.split(DELIMITER)
        for depth in range(1, len(parts)):
            parent = DELIMITER.join(parts[:depth])
            if parent not in existing:
                _add(t, user_id, parent, None)
                existing.add(parent)
        if old == "INBOX":
            from relate.store.messages import move_all

            target = _add(t, user_id, new, None)
            move_all(t, box, target)
            return _info(target)
        for child in _children(t, user_id, old):
            child_old = child.name
            child.name = new + child.name[len(old):]
            t.emit(ev.Change(ev.MAILBOX_RENAMED, user_id, child.id, mailbox=child.name, old_name=child_old))
        box.name = new
        t.emit(ev.Change(ev.MAILBOX_RENAMED, user_id, box.id, mailbox=new, old_name=old))
        t.s.flush()
        return _info(box)


def set_subscribed(user_id: int, name: str, subscribed: bool) -> None:
    name = normalise_name(name)
    with transaction() as t:
        box = t.s.scalar(select(Mailbox).where(Mailbox.user_id == user_id, Mailbox.name == name))
        if box is None:
            raise NotFound(f"no mailbox named {name}")
        if box.subscribed != subscribed:
            box.subscribed = subscribed
            t.emit(ev.Change(ev.MAILBOX_SUBSCRIBED, user_id, box.id, mailbox=name))


def status(user_id: int, mailbox_id: int) -> MailboxStatus:
    return status_all(user_id, [mailbox_id])[0]


def status_all(user_id: int, mailbox_ids: list[int] | None = None) -> list[MailboxStatus]:
    """Counts for the user's mailboxes (all, or the given ones) in one query each."""
    with read() as s:
        q = select(Mailbox).where(Mailbox.user_id == user_id).order_by(Mailbox.name)
        if mailbox_ids is not None:
            q = q.where(Mailbox.id.in_(mailbox_ids))
        boxes = list(s.scalars(q))
        if mailbox_ids is not None and len(boxes) != len(set(mailbox_ids)):
            raise NotFound("no such mailbox")
        counts = {
            row.mailbox_id: row
            for row in s.execute(
                select(
                    Entry.mailbox_id,
                    func.count(Entry.id).label("messages"),
                    func.sum(case((Entry.seen.is_(False), 1), else_=0)).label("unseen"),
                    func.sum(case((Entry.deleted.is_(True), 1), else_=0)).label("deleted"),
                    func.coalesce(func.sum(Entry.size), 0).label("size"),
                )
                .where(Entry.user_id == user_id, Entry.mailbox_id.in_([b.id for b in boxes]))
                .group_by(Entry.mailbox_id)
            )
        }
        out = []
        for b in boxes:
            row = counts.get(b.id)
            out.append(
                MailboxStatus(
                    mailbox=_info(b),
                    messages=int(row.messages) if row else 0,
                    unseen=int(row.unseen or 0) if row else 0,
                    deleted=int(row.deleted or 0) if row else 0,
                    size=int(row.size or 0) if row else 0,
                )
            )
    return out


def lock_mailbox(t: Tx, mailbox_id: int) -> None:
    """Take the mailbox row lock for the rest of the transaction (no-op beyond SQLite's lock)."""
    if t.postgres:
        t.s.execute(select(Mailbox.id).where(Mailbox.id == mailbox_id).with_for_update())


def user_exists(t: Tx, user_id: int) -> bool:
    return t.s.get(User, user_id) is not None
