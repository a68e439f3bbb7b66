"""Labels: named, coloured IMAP keywords (DESIGN.md §5).

Invariants:
- A label is an IMAP keyword on the messages it labels, so a label set through the API is a
  keyword (a tag) in every IMAP client and a keyword set over IMAP shows as a label.
- Keywords are 7-bit atoms (RFC 9051 §9 flag-keyword); a name is what the user typed, any
  text without spaces, control characters or ( ) { % * " \\ ]. A name's keyword
  (`keyword_of`) is the name itself when it is ASCII, else its modified UTF-7 form (RFC 3501
  §5.1.3, the encoding of mailbox names, which IMAP clients already know): "Büro" is
  `B&APw-ro`. A keyword reads as a name (`name_of`) decoded when it is the modified UTF-7 form
  of a non-ASCII name, else as it is (a keyword stored as raw UTF-8 before alembic 0010 too).
  So name_of(keyword_of(n)) == n for every valid name n; an ASCII name that would read as
  another one (`&ANw-` reads "Ü") is refused.
- The labels table keeps the keyword (`Label.name`); LabelInfo carries it and the name.
- Labels are unique per user by keyword without regard to case, as keywords compare (RFC 9051
  §2.3.2): "Work" and "work" are one label, "Büro" and "büro" too, but "BÜRO" is another
  (in a keyword, "Ü" and "ü" are different BASE64 runs).
- Renaming a label renames the keyword on every message of the user and in the user's
  filters; deleting one removes the keyword from every message and the filters' addLabel.
  Each affected mailbox gets one new MODSEQ and one `flags` change event, in one transaction.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from relate.db.models import Entry, Filter, Label
from relate.message.mutf7 import mutf7_decode, mutf7_encode
from relate.store import events as ev
from relate.store.errors import Conflict, InvalidInput, NotFound
from relate.store.messages import MAX_KEYWORD_LEN, allocate
from relate.store.session import Tx, read, transaction

MAX_LABELS = 500  # per user
DEFAULT_COLOR = "#6b7280"
ATOM_SPECIALS = frozenset(' (){%*"\\]')  # RFC 9051 §9 atom-specials, besides CTL


@dataclass(frozen=True)
class LabelInfo:
    id: int
    user_id: int
    name: str  # as the user wrote it
    keyword: str  # the IMAP keyword on its messages (keyword_of(name))
    color: str
    created_at: dt.datetime


def _info(label: Label) -> LabelInfo:
    return LabelInfo(label.id, label.user_id, name_of(label.name), label.name, label.color, label.created_at)


def _unfit(name: str) -> str | None:
    """Why `name` cannot be a label's name, or None when it can."""
    if not name:
        return "label name must not be empty"
    if name.startswith("\\"):
        return "label name must not start with a backslash (that is a system flag)"
    if any(c in ATOM_SPECIALS or c.isspace() or unicodedata.category(c) in ("Cc", "Cs") for c in name):
        return 'label names cannot contain spaces, control characters or ( ) { % * " \\ ]'
    return None


def keyword_of(name: str) -> str:
    """The IMAP keyword of a label name: the name when it is ASCII, else its modified UTF-7."""
    if name.isascii():
        return name
    try:
        return mutf7_encode(name).decode("ascii")
    except UnicodeEncodeError:  # a lone surrogate
        raise InvalidInput("label name is not valid Unicode") from None


def name_of(keyword: str) -> str:
    """The label name a keyword shows as: the non-ASCII name it is the modified UTF-7 form of,
    else the keyword itself."""
    if "&" not in keyword or not keyword.isascii():
        return keyword
    try:
        name = mutf7_decode(keyword.encode("ascii"))
    except ValueError:
        return keyword
    if name.isascii() or _unfit(name) or keyword_of(name) != keyword:
        return keyword  # e.g. "R&-D", or two runs ("&ANw-&APw-") where the encoder writes one
    return name


def names_of(keywords: Iterable[str]) -> list[str]:
    return [name_of(k) for k in keywords]


def validate_name(name: str) -> str:
    """The label name (stripped); InvalidInput when it cannot be one."""
    name = (name or "").strip()
    problem = _unfit(name)
    if problem:
        raise InvalidInput(problem)
    keyword = keyword_of(name)
    if name_of(keyword) != name:
        raise InvalidInput(f"{name} is how IMAP writes the label {name_of(keyword)}: use that name")
    if len(keyword) > MAX_KEYWORD_LEN:
        raise InvalidInput(f"label name is too long: as an IMAP keyword it has {len(keyword)} characters, "
                           f"at most {MAX_KEYWORD_LEN}")
    return name


def list_labels(user_id: int) -> list[LabelInfo]:
    """The user's labels, by name without regard to case."""
    with read() as s:
        found = [_info(label) for label in s.scalars(select(Label).where(Label.user_id == user_id))]
    return sorted(found, key=lambda label: (label.name.casefold(), label.id))


def keywords_for(user_id: int, names: Iterable[str]) -> list[str]:
    """The keywords of label names a user gives: the user's own label's keyword when a name is
    one of theirs (without regard to case) — which may be a raw keyword alembic 0010 left as
    it was — else the name's keyword (keyword_of). InvalidInput for a name that is neither."""
    names = list(names)
    if not names:
        return []
    mine = {label.name.lower(): label.keyword for label in list_labels(user_id)}
    out = []
    for name in names:
        known = mine.get((name or "").strip().lower())
        out.append(known if known is not None else keyword_of(validate_name(name)))
    return out


def get_label(user_id: int, label_id: int) -> LabelInfo:
    with read() as s:
        label = s.get(Label, label_id)
        if label is None or label.user_id != user_id:
            raise NotFound("no such label")
        return _info(label)


def find_label(user_id: int, keyword: str) -> LabelInfo | None:
    """The user's label with this keyword (without regard to case), if any."""
    with read() as s:
        label = s.scalar(select(Label).where(Label.user_id == user_id, func.lower(Label.name) == keyword.lower()))
        return _info(label) if label else None


def _taken(t: Tx, user_id: int, keyword: str, except_id: int | None = None) -> bool:
    """Whether another label of the user has this keyword, without regard to case: IMAP
    keywords ignore case, so two names whose keywords differ only in case (possible between
    some non-Latin names: modified UTF-7's BASE64 has both cases) cannot both be labels."""
    q = select(Label.name).where(Label.user_id == user_id, func.lower(Label.name) == keyword.lower())
    if except_id is not None:
        q = q.where(Label.id != except_id)
    other = t.s.scalar(q)
    if other is None:
        return False
    if name_of(other).lower() != name_of(keyword).lower():
        raise Conflict(f"{name_of(keyword)} would be the same IMAP keyword as the label {name_of(other)} "
                       "(IMAP keywords ignore case)")
    return True


def create_label(user_id: int, name: str, color: str = DEFAULT_COLOR) -> LabelInfo:
    name = validate_name(name)
    try:
        return _create(user_id, name, color)
    except IntegrityError:  # created concurrently
        raise Conflict(f"a label named {name} already exists") from None


def _create(user_id: int, name: str, color: str) -> LabelInfo:
    keyword = keyword_of(name)
    with transaction() as t:
        if _taken(t, user_id, keyword):
            raise Conflict(f"a label named {name} already exists")
        if (t.s.scalar(select(func.count(Label.id)).where(Label.user_id == user_id)) or 0) >= MAX_LABELS:
            raise Conflict(f"at most {MAX_LABELS} labels")
        label = Label(user_id=user_id, name=keyword, color=color or DEFAULT_COLOR, created_at=dt.datetime.now(dt.UTC))
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
        new_keyword = keyword_of(new_name) if new_name is not None else label.name
        if new_keyword != label.name:
            if _taken(t, user_id, new_keyword, except_id=label.id):
                raise Conflict(f"a label named {new_name} already exists")
            _rewrite_keyword(t, user_id, label.name, new_keyword)
            _rewrite_filters(t, user_id, label.name, new_keyword)
            label.name = new_keyword
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
