"""Mailboxes: hierarchy with '/' as delimiter, special-use roles, UIDVALIDITY, subscriptions.

Invariants:
- "INBOX" is case-insensitive (RFC 9051 §5.1) and always stored as INBOX; it cannot be
  deleted, and renaming it moves its messages to the new mailbox and leaves it empty.
- UIDVALIDITY comes from the user's counter (never smaller than the clock in seconds), so a
  mailbox deleted and created again gets a new, greater value (RFC 9051 §2.3.1.1).
- A mailbox with children cannot be deleted ([HASCHILDREN]); creating a/b/c creates a and a/b.
- Every user is given the special-use roles of SPECIAL_MAILBOXES (RFC 6154). IMAP may delete
  those mailboxes (the REST API may not); a mailbox then created under a missing role's
  default name ("Trash" while there is no \\Trash) takes the role again, and the store
  re-creates a missing role's mailbox where it needs one (delete to Trash, the Sent copy).
- Subscriptions are a per-user list of names (RFC 9051 §6.3.7), not mailbox state: a name may
  be subscribed whether or not its mailbox exists, deleting a mailbox leaves its subscription
  (unless the caller asks otherwise), and renaming one renames the subscriptions of it and
  the names below it. A mailbox's `subscribed` is read from the list. The store subscribes
  what it creates unless the caller says otherwise (IMAP CREATE does); parents created for a
  RENAME are not subscribed.
- On PostgreSQL the reads the IMAP daemon makes on every command (a mailbox by name or id,
  the list, STATUS counts) are one statement each on a bare cursor (relate.store.session.pg_read),
  with the same columns and order as the ORM reads SQLite uses.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from sqlalchemy import case, delete, func, or_, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from relate.db import get_engine
from relate.db.models import Entry, Mailbox, Subscription, User
from relate.store import events as ev
from relate.store.errors import Conflict, Forbidden, InvalidInput, NotFound
from relate.store.session import Tx, pg_read, read, transaction
from relate.store.types import SPECIAL_MAILBOXES, SPECIAL_USES, MailboxInfo, MailboxStatus

DELIMITER = "/"
MAX_NAME = 1000
MAX_DEPTH = 32
MAX_SUBSCRIPTIONS = 10_000  # names one user may subscribe; SUBSCRIBE may name any mailbox, existing or not
DEFAULT_NAMES = {use: name for name, use in SPECIAL_MAILBOXES if use}  # '\\Trash' -> 'Trash'


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
    )
    t.s.add(box)
    t.s.flush()
    t.emit(ev.Change(ev.MAILBOX_CREATED, user_id, box.id, mailbox=name))
    return box


def create_special(t: Tx, user_id: int) -> None:
    """Create INBOX, Sent, Drafts, Trash, Junk and Archive for a new user."""
    for name, use in SPECIAL_MAILBOXES:
        _add(t, user_id, name, use)
    _subscribe(t, user_id, [name for name, _ in SPECIAL_MAILBOXES])


# The columns of MailboxInfo, `subscribed` read from the subscription list, for bare cursors.
PG_MAILBOX_COLUMNS = (
    "m.id, m.user_id, m.name, m.special_use, m.uid_validity, m.uid_next, m.highest_modseq, "
    "EXISTS (SELECT 1 FROM subscriptions s WHERE s.user_id = m.user_id AND s.name = m.name)"
)


def pg_info(row: Any) -> MailboxInfo:
    """MailboxInfo from a bare cursor's row of PG_MAILBOX_COLUMNS."""
    return MailboxInfo(id=row[0], user_id=row[1], name=row[2], special_use=row[3], uid_validity=row[4],
                       uid_next=row[5], highest_modseq=row[6], subscribed=bool(row[7]))


def _postgres() -> bool:
    return get_engine().dialect.name == "postgresql"


def _pg_mailbox(where: str, params: tuple[Any, ...], *, prepare: bool = False) -> MailboxInfo | None:
    """One mailbox row in one statement on a bare cursor (PostgreSQL; see relate.store.session);
    `prepare` where the parameters are names or the store's own ids (pg_read)."""
    with pg_read(prepare=prepare) as cursor:
        cursor.execute(f"SELECT {PG_MAILBOX_COLUMNS} FROM mailboxes m WHERE {where}", params)
        row = cursor.fetchone()
    return None if row is None else pg_info(row)


def list_mailboxes(user_id: int) -> list[MailboxInfo]:
    if _postgres():
        with pg_read(prepare=True) as cursor:
            cursor.execute(f"SELECT {PG_MAILBOX_COLUMNS} FROM mailboxes m WHERE m.user_id = %s ORDER BY m.name",
                           (user_id,))
            return [pg_info(row) for row in cursor.fetchall()]
    with read() as s:
        return [_info(m) for m in s.scalars(select(Mailbox).where(Mailbox.user_id == user_id).order_by(Mailbox.name))]


def get_mailbox(user_id: int, name: str) -> MailboxInfo:
    name = normalise_name(name)
    if _postgres():
        found = _pg_mailbox("m.user_id = %s AND m.name = %s", (user_id, name), prepare=True)
        if found is None:
            raise NotFound(f"no mailbox named {name}")
        return found
    with read() as s:
        box = s.scalar(select(Mailbox).where(Mailbox.user_id == user_id, Mailbox.name == name))
        if box is None:
            raise NotFound(f"no mailbox named {name}")
        return _info(box)


def get_mailbox_by_id(user_id: int, mailbox_id: int) -> MailboxInfo:
    if _postgres():
        found = _pg_mailbox("m.id = %s AND m.user_id = %s", (mailbox_id, user_id))
        if found is None:
            raise NotFound("no such mailbox")
        return found
    with read() as s:
        box = s.get(Mailbox, mailbox_id)
        if box is None or box.user_id != user_id:
            raise NotFound("no such mailbox")
        return _info(box)


def _with_use(user_id: int, use: str) -> Any:
    return select(Mailbox).where(Mailbox.user_id == user_id, Mailbox.special_use == use).order_by(Mailbox.id).limit(1)


def find_special(user_id: int, use: str) -> MailboxInfo | None:
    with read() as s:
        box = s.scalar(_with_use(user_id, use))
        return _info(box) if box else None


def _lock_roles(t: Tx, user_id: int) -> None:
    """One creator of a special-use mailbox per user at a time (special_mailbox, or a default
    name in create_mailbox): the second reads what the first made (PostgreSQL; SQLite has one
    writer anyway)."""
    if t.postgres:
        t.s.execute(select(User.id).where(User.id == user_id).with_for_update())


def special_mailbox(t: Tx, user_id: int, use: str) -> Mailbox:
    """The user's mailbox with the special use `use` (one of DEFAULT_NAMES), created again,
    subscribed, when the user has deleted it: under its default name, or "Trash 2", "Trash 3"...
    when another mailbox has that name."""
    box = t.s.scalar(_with_use(user_id, use))
    if box is None and t.postgres:
        _lock_roles(t, user_id)
        box = t.s.scalar(_with_use(user_id, use))
    if box is not None:
        return box
    existing = set(t.s.scalars(select(Mailbox.name).where(Mailbox.user_id == user_id)))
    name, n = DEFAULT_NAMES[use], 1
    while name in existing:
        n += 1
        name = f"{DEFAULT_NAMES[use]} {n}"
    box = _add(t, user_id, name, use)
    _subscribe(t, user_id, [name])
    t.s.flush()
    return box


def ensure_special(user_id: int, use: str) -> MailboxInfo:
    """find_special(), re-creating the mailbox (special_mailbox) when the user has none."""
    found = find_special(user_id, use)
    if found is not None:
        return found
    with transaction() as t:
        return _info(special_mailbox(t, user_id, use))


def _default_use(t: Tx, user_id: int, name: str) -> str | None:
    """The role a new mailbox called `name` takes: the one whose default name it is, when the
    user has no mailbox with that role (a client re-creating a deleted Trash)."""
    use = next((use for use, default in DEFAULT_NAMES.items() if default == name), None)
    if use is None or t.s.scalar(_with_use(user_id, use)) is not None:
        return None
    return use


def create_mailbox(user_id: int, name: str, special_use: str | None = None, *, subscribe: bool = True) -> MailboxInfo:
    """Create `name` and any missing parents. Conflict if it exists.

    subscribe: add what was created to the subscription list (a name already there stays).
    Without `special_use`, a default name of a role the user lacks takes that role (_default_use).
    """
    name = normalise_name(name)
    if special_use is not None and special_use not in SPECIAL_USES:
        raise InvalidInput(f"unsupported special use {special_use}")
    with transaction() as t:
        if special_use is None and name in DEFAULT_NAMES.values():
            _lock_roles(t, user_id)
        existing = set(t.s.scalars(select(Mailbox.name).where(Mailbox.user_id == user_id)))
        if name in existing:
            raise Conflict(f"mailbox {name} already exists")
        if special_use is not None and t.s.scalar(
            select(Mailbox.id).where(Mailbox.user_id == user_id, Mailbox.special_use == special_use)
        ):
            raise Conflict(f"a mailbox with {special_use} already exists")
        if special_use is None:
            special_use = _default_use(t, user_id, name)
        parts = name.split(DELIMITER)
        parents = [DELIMITER.join(parts[:depth]) for depth in range(1, len(parts))]
        created = [parent for parent in parents if parent not in existing]
        for parent in created:
            _add(t, user_id, parent, None)
        box = _add(t, user_id, name, special_use)
        if subscribe:
            _subscribe(t, user_id, [*created, name])
            t.s.flush()
        return _info(box)


def _children(t: Tx, user_id: int, name: str) -> list[Mailbox]:
    prefix = name + DELIMITER
    return [
        m
        for m in t.s.scalars(select(Mailbox).where(Mailbox.user_id == user_id, Mailbox.name.startswith(prefix, autoescape=True)))
    ]


def delete_mailbox(user_id: int, name: str, *, unsubscribe: bool = False, keep_special: bool = False) -> None:
    """Delete a mailbox and its entries. Its subscription stays (RFC 9051 §6.3.7) unless
    `unsubscribe` (the REST API, where the subscription is a property of the mailbox).

    INBOX is never deleted (Forbidden). With `keep_special` (the REST API) neither INBOX nor a
    mailbox with a role every user is given (DEFAULT_NAMES) is, and both are a Conflict; IMAP
    clients may delete those (RFC 6154 leaves it to them)."""
    name = normalise_name(name)
    if name == "INBOX":
        raise (Conflict if keep_special else Forbidden)("INBOX cannot be deleted")
    with transaction() as t:
        box = t.s.scalar(select(Mailbox).where(Mailbox.user_id == user_id, Mailbox.name == name).with_for_update())
        if box is None:
            raise NotFound(f"no mailbox named {name}")
        if keep_special and box.special_use in DEFAULT_NAMES:
            raise Conflict(f"{name} is the {box.special_use} mailbox and cannot be deleted")
        if _children(t, user_id, name):
            raise Conflict(f"mailbox {name} has child mailboxes")  # RFC 9051 [HASCHILDREN]
        t.s.execute(delete(Entry).where(Entry.mailbox_id == box.id))
        t.s.delete(box)
        if unsubscribe:
            t.s.execute(delete(Subscription).where(Subscription.user_id == user_id, Subscription.name == name))
        t.emit(ev.Change(ev.MAILBOX_DELETED, user_id, box.id, mailbox=name))


def rename_mailbox(user_id: int, old: str, new: str) -> MailboxInfo:
    """Rename a mailbox and its children. Renaming INBOX moves its messages instead (RFC 9051 §6.3.6).
    A mailbox keeps its role; one without a role renamed to the default name of a role the
    user lacks takes that role, as a mailbox created under that name would (_default_use)."""
    old, new = normalise_name(old), normalise_name(new)
    if new == "INBOX":
        raise Forbidden("cannot rename to INBOX")
    if old == new:
        raise Conflict(f"mailbox {new} already exists")
    with transaction() as t:
        if new in DEFAULT_NAMES.values():
            _lock_roles(t, user_id)
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
        role = _default_use(t, user_id, new) if old == "INBOX" or box.special_use is None else None
        if old == "INBOX":
            from relate.store.messages import move_all

            target = _add(t, user_id, new, role)
            move_all(t, box, target)
            if box.subscribed:  # INBOX stays, and so does its subscription; the new mailbox gets one too
                _subscribe(t, user_id, [new])
                t.s.flush()
            return _info(target)
        _rename_subscriptions(t, user_id, old, new)
        for child in _children(t, user_id, old):
            child_old = child.name
            child.name = new + child.name[len(old):]
            t.emit(ev.Change(ev.MAILBOX_RENAMED, user_id, child.id, mailbox=child.name, old_name=child_old))
        box.name = new
        if role is not None:
            box.special_use = role
        t.emit(ev.Change(ev.MAILBOX_RENAMED, user_id, box.id, mailbox=new, old_name=old))
        t.s.flush()
        t.s.expire(box, ["subscribed"])  # read again from the renamed subscriptions
        return _info(box)


# -- subscriptions ------------------------------------------------------------------------


def _subscribe(t: Tx, user_id: int, names: Iterable[str]) -> None:
    """Add `names` (normalised) to the user's subscriptions; a name already there (even one a
    concurrent transaction just added) stays as it is."""
    rows = [{"user_id": user_id, "name": name} for name in dict.fromkeys(names)]
    if rows:
        add = (pg_insert if t.postgres else sqlite_insert)(Subscription).on_conflict_do_nothing()
        t.s.execute(add, rows)


def _rename_subscriptions(t: Tx, user_id: int, old: str, new: str) -> None:
    """The subscriptions of `old` and of every name below it now name `new` and below."""
    moved = list(t.s.scalars(select(Subscription.name).where(
        Subscription.user_id == user_id,
        or_(Subscription.name == old, Subscription.name.startswith(old + DELIMITER, autoescape=True)),
    )))
    if not moved:
        return
    t.s.execute(delete(Subscription).where(Subscription.user_id == user_id, Subscription.name.in_(moved)))
    _subscribe(t, user_id, [new + name[len(old):] for name in moved])


def list_subscriptions(user_id: int) -> list[str]:
    """The user's subscribed names, sorted; some may name no mailbox."""
    with read() as s:
        return list(s.scalars(select(Subscription.name).where(Subscription.user_id == user_id)
                              .order_by(Subscription.name)))


def set_subscribed(user_id: int, name: str, subscribed: bool) -> None:
    """Add `name` to the user's subscriptions or remove it; the mailbox need not exist.

    Idempotent (RFC 9051 §6.3.7-8). InvalidInput for a name no mailbox could have, or when
    the list already holds MAX_SUBSCRIPTIONS names. A change to an existing mailbox's
    subscription is a MAILBOX_SUBSCRIBED event.
    """
    name = normalise_name(name)
    with transaction() as t:
        mine = (Subscription.user_id == user_id, Subscription.name == name)
        if (t.s.scalar(select(Subscription.name).where(*mine)) is not None) == subscribed:
            return
        if subscribed:
            count = t.s.scalar(select(func.count()).select_from(Subscription).where(Subscription.user_id == user_id))
            if (count or 0) >= MAX_SUBSCRIPTIONS:
                raise InvalidInput(f"too many subscriptions (at most {MAX_SUBSCRIPTIONS})")
            _subscribe(t, user_id, [name])
        else:
            t.s.execute(delete(Subscription).where(*mine))
        box_id = t.s.scalar(select(Mailbox.id).where(Mailbox.user_id == user_id, Mailbox.name == name))
        if box_id is not None:
            t.emit(ev.Change(ev.MAILBOX_SUBSCRIBED, user_id, box_id, mailbox=name))


def status(user_id: int, mailbox_id: int) -> MailboxStatus:
    return status_all(user_id, [mailbox_id])[0]


def status_all(user_id: int, mailbox_ids: list[int] | None = None) -> list[MailboxStatus]:
    """Counts for the user's mailboxes (all, or the given ones) in one statement."""
    if _postgres():
        return _pg_status_all(user_id, mailbox_ids)
    counts = (
        select(
            Entry.mailbox_id,
            func.count(Entry.id).label("messages"),
            func.sum(case((Entry.seen.is_(False), 1), else_=0)).label("unseen"),
            func.sum(case((Entry.deleted.is_(True), 1), else_=0)).label("deleted"),
            func.coalesce(func.sum(Entry.size), 0).label("size"),
        )
        .where(Entry.user_id == user_id)
        .group_by(Entry.mailbox_id)
    )
    q = select(Mailbox).where(Mailbox.user_id == user_id).order_by(Mailbox.name)
    if mailbox_ids is not None:
        counts = counts.where(Entry.mailbox_id.in_(mailbox_ids))
        q = q.where(Mailbox.id.in_(mailbox_ids))
    c = counts.subquery()
    q = q.outerjoin(c, c.c.mailbox_id == Mailbox.id).add_columns(c.c.messages, c.c.unseen, c.c.deleted, c.c.size)
    with read() as s:
        rows: list[Any] = list(s.execute(q).all())
        if mailbox_ids is not None and len(rows) != len(set(mailbox_ids)):
            raise NotFound("no such mailbox")
        return [
            MailboxStatus(
                mailbox=_info(box),
                messages=int(messages or 0),
                unseen=int(unseen or 0),
                deleted=int(deleted or 0),
                size=int(size or 0),
            )
            for box, messages, unseen, deleted, size in rows
        ]


def _pg_status_all(user_id: int, mailbox_ids: list[int] | None, name: str | None = None) -> list[MailboxStatus]:
    """status_all() (or the status of the mailbox `name`) in one statement on a bare cursor."""
    boxes = "m.user_id = %(u)s"
    if mailbox_ids is not None:
        boxes += " AND m.id = ANY(%(ids)s)"
    if name is not None:
        boxes += " AND m.name = %(n)s"
    sql = (
        f"WITH box AS (SELECT {PG_MAILBOX_COLUMNS} AS subscribed FROM mailboxes m WHERE {boxes}) "
        "SELECT box.*, c.messages, c.unseen, c.deleted, c.size FROM box LEFT JOIN "
        "(SELECT mailbox_id, count(*) AS messages, count(*) FILTER (WHERE NOT seen) AS unseen, "
        "count(*) FILTER (WHERE deleted) AS deleted, sum(size) AS size FROM entries "
        "WHERE user_id = %(u)s AND mailbox_id IN (SELECT id FROM box) GROUP BY mailbox_id) AS c "
        "ON c.mailbox_id = box.id ORDER BY box.name"
    )
    with pg_read(prepare=mailbox_ids is None) as cursor:  # ids may be a client's numbers
        cursor.execute(sql, {"u": user_id, "ids": mailbox_ids, "n": name})
        rows = cursor.fetchall()
    if mailbox_ids is not None and len(rows) != len(set(mailbox_ids)):
        raise NotFound("no such mailbox")
    return [MailboxStatus(mailbox=pg_info(row), messages=int(row[8] or 0), unseen=int(row[9] or 0),
                          deleted=int(row[10] or 0), size=int(row[11] or 0)) for row in rows]


def status_named(user_id: int, name: str) -> MailboxStatus:
    """The status of the user's mailbox `name` (IMAP STATUS); one statement on PostgreSQL."""
    name = normalise_name(name)
    if not _postgres():
        return status(user_id, get_mailbox(user_id, name).id)
    found = _pg_status_all(user_id, None, name)
    if not found:
        raise NotFound(f"no mailbox named {name}")
    return found[0]


def lock_mailbox(t: Tx, mailbox_id: int) -> None:
    """Take the mailbox row lock for the rest of the transaction (no-op beyond SQLite's lock)."""
    if t.postgres:
        t.s.execute(select(Mailbox.id).where(Mailbox.id == mailbox_id).with_for_update())


def user_exists(t: Tx, user_id: int) -> bool:
    return t.s.get(User, user_id) is not None
