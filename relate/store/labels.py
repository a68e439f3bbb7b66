"""Labels: named, coloured IMAP keywords (DESIGN.md §5).

Invariants:
- A label's name is the IMAP keyword on the messages it labels, so a label set through the
  API is a keyword (a tag) in every IMAP client and a keyword set over IMAP shows as a label.
  Names therefore follow RFC 9051 flag-keyword syntax (an atom: no spaces, no ( ) { % * " \\ ]).
- Names are unique per user without regard to case, as keywords compare (RFC 9051 §2.3.2).
- Renaming a label renames the keyword on every message of the user and in the user's
  filters; deleting one removes the keyword from every message and the filters' addLabel.
  Each affected mailbox gets one new MODSEQ and one `flags` change event, in one transaction.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from relate.db.models import Entry, Filter, Label
from relate.store import events as ev
from relate.store.errors import Conflict, InvalidInput, NotFound
from relate.store.messages import allocate, split_flags
from relate.store.session import Tx, read, transaction

MAX_LABELS = 500  # per user
DEFAULT_COLOR = "#6b7280"


@dataclass(frozen=True)
class LabelInfo:
    id: int
    user_id: int
    name: str
    color: str
    created_at: dt.datetime


def _info(label: Label) -> LabelInfo:
    return LabelInfo(label.id, label.user_id, label.name, label.color, label.created_at)


def validate_name(name: str) -> str:
    """The label name as a keyword; InvalidInput when it cannot be one."""
    name = (name or "").strip()
    if not name:
        raise InvalidInput("label name must not be empty")
    if name.startswith("\\"):
        raise InvalidInput("label name must not start with a backslash (that is a system flag)")
    try:
        split_flags([name])
    except InvalidInput:
        raise InvalidInput(
            'label names are IMAP keywords: no spaces, control characters or ( ) { % * " \\ ]'
        ) from None
    return name


def list_labels(user_id: int) -> list[LabelInfo]:
    with read() as s:
        rows = s.scalars(select(Label).where(Label.user_id == user_id).order_by(func.lower(Label.name), Label.id))
        return [_info(label) for label in rows]


def get_label(user_id: int, label_id: int) -> LabelInfo:
    with read() as s:
        label = s.get(Label, label_id)
        if label is None or label.user_id != user_id:
            raise NotFound("no such label")
        return _info(label)


def find_label(user_id: int, name: str) -> LabelInfo | None:
    """The user's label with this name (without regard to case), if any."""
    with read() as s:
        label = s.scalar(select(Label).where(Label.user_id == user_id, func.lower(Label.name) == name.lower()))
        return _info(label) if label else None


def _taken(t: Tx, user_id: int, name: str, except_id: int | None = None) -> bool:
    q = select(Label.id).where(Label.user_id == user_id, func.lower(Label.name) == name.lower())
    if except_id is not None:
        q = q.where(Label.id != except_id)
    return t.s.scalar(q) is not None


def create_label(user_id: int, name: str, color: str = DEFAULT_COLOR) -> LabelInfo:
    name = validate_name(name)
    try:
        return _create(user_id, name, color)
    except IntegrityError:  # created concurrently
        raise Conflict(f"a label named {name} already exists") from None


def _create(user_id: int, name: str, color: str) -> LabelInfo:
    with transaction() as t:
        if _taken(t, user_id, name):
            raise Conflict(f"a label named {name} already exists")
        if (t.s.scalar(select(func.count(Label.id)).where(Label.user_id == user_id)) or 0) >= MAX_LABELS:
            raise Conflict(f"at most {MAX_LABELS} labels")
        label = Label(user_id=user_id, name=name, color=color or DEFAULT_COLOR, created_at=dt.datetime.now(dt.UTC))
        t.s.add(label)
        t.s.flush()
        return _info(label)


def _entries_with(t: Tx, user_id: int, keyword: str) -> list[Entry]:
    if t.postgres:
        has = text(
            "EXISTS (SELECT 1 FROM jsonb_array_elements_text(entries.keywords) AS k(v) WHERE lower(k.v) = :kw)"
        )
    else:
        has = text("EXISTS (SELECT 1 FROM json_each(entries.keywords) AS k WHERE lower(k.value) = :kw)")
    q = select(Entry).where(Entry.user_id == user_id, has.bindparams(kw=keyword.lower()))
    return list(t.s.scalars(q.order_by(Entry.mailbox_id, Entry.uid)))


def _rewrite_keyword(t: Tx, user_id: int, old: str, new: str | None) -> None:
    """Replace keyword `old` by `new` (or remove it) on every entry of the user."""
    by_mailbox: dict[int, list[Entry]] = defaultdict(list)
    for e in _entries_with(t, user_id, old):
        by_mailbox[e.mailbox_id].append(e)
    for mailbox_id in sorted(by_mailbox):  # one lock order: no deadlock with other writers
        modseq = allocate(t, mailbox_id, 0)[1]
        for e in by_mailbox[mailbox_id]:
            kept = [k for k in (e.keywords or []) if k.lower() != old.lower()]
            if new is not None and new.lower() not in {k.lower() for k in kept}:
                kept.append(new)
            e.keywords = sorted(kept, key=str.lower)
            e.modseq = modseq
        uids = tuple(e.uid for e in by_mailbox[mailbox_id])
        t.emit(ev.Change(ev.FLAGS, user_id, mailbox_id, uids, modseq, origin="api"))


def _rewrite_filters(t: Tx, user_id: int, old: str, new: str | None) -> None:
    for f in t.s.scalars(select(Filter).where(Filter.user_id == user_id)):
        label = (f.actions or {}).get("addLabel")
        if isinstance(label, str) and label.lower() == old.lower():
            actions = dict(f.actions)
            if new is None:
                actions.pop("addLabel")
            else:
                actions["addLabel"] = new
            f.actions = actions


def update_label(user_id: int, label_id: int, *, name: str | None = None, color: str | None = None) -> LabelInfo:
    new_name = validate_name(name) if name is not None else None
    try:
        return _update(user_id, label_id, new_name, color)
    except IntegrityError:  # the name was taken concurrently
        raise Conflict(f"a label named {new_name} already exists") from None


def _update(user_id: int, label_id: int, new_name: str | None, color: str | None) -> LabelInfo:
    with transaction() as t:
        label = t.s.get(Label, label_id)
        if label is None or label.user_id != user_id:
            raise NotFound("no such label")
        if new_name is not None and new_name != label.name:
            if _taken(t, user_id, new_name, except_id=label.id):
                raise Conflict(f"a label named {new_name} already exists")
            _rewrite_keyword(t, user_id, label.name, new_name)
            _rewrite_filters(t, user_id, label.name, new_name)
            label.name = new_name
        if color is not None:
            label.color = color or DEFAULT_COLOR
        t.s.flush()
        return _info(label)


def delete_label(user_id: int, label_id: int) -> None:
    with transaction() as t:
        label = t.s.get(Label, label_id)
        if label is None or label.user_id != user_id:
            raise NotFound("no such label")
        _rewrite_keyword(t, user_id, label.name, None)
        _rewrite_filters(t, user_id, label.name, None)
        t.s.delete(label)
