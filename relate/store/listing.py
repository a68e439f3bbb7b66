"""Message lists for the REST API: one page of a mailbox (or of all of a user's mail) with the
stored metadata a list shows, filtered and sorted, with its total and unread counts.

Invariants:
- Every query is restricted to the caller's `user_id`; a mailbox id of another user finds
  nothing (NotFound), so no id leaks another user's mail.
- A page is one read session: the mailbox (by id or name) with the counters the database keeps
  on its row (alembic 0003), then one indexed page query. Only a filtered list counts its
  matches, and a text search does it in the page query itself (a window count).
- `q` means what relate.store.search.search_entries means: every term a case-insensitive
  substring of the subject, addresses or body text; on PostgreSQL the full-text index
  (search.FTS_DOCUMENT) finds the candidate bodies first, in a materialized CTE, so the planner
  never evaluates the document expression row by row (seconds on a large mailbox).
- Reads only; every function opens its own read session and returns plain values. Long
  walks (exports) read in batches, one short session each, so nothing is held open while a
  caller streams to a client.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import BigInteger, Select, Text, and_, case, cast, func, literal_column, or_, select, text
from sqlalchemy.orm import Session

from relate.db.models import Entry, Mailbox, MessageBody
from relate.store.errors import InvalidInput, NotFound
from relate.store.mailboxes import normalise_name
from relate.store.messages import entry_info
from relate.store.search import FIELD_COLUMNS, FTS_DOCUMENT, query_terms
from relate.store.session import read
from relate.store.types import EntryInfo

CHUNK = 1000  # bound for IN (...) lists
MAX_THREAD = 500  # messages returned for one thread
SORTS = {
    # name: (column expressions, descending)
    "receivedAt-desc": (("internal_date", "id"), True),
    "receivedAt-asc": (("internal_date", "id"), False),
    "subject-asc": (("subject", "id"), False),
    "subject-desc": (("subject", "id"), True),
    "from-asc": (("from_address", "id"), False),
    "from-desc": (("from_address", "id"), True),
    "size-asc": (("size", "id"), False),
    "size-desc": (("size", "id"), True),
}
DEFAULT_SORT = "receivedAt-desc"
# Kept by triggers (alembic 0003), not mapped on the Mailbox model.
MESSAGE_COUNT = literal_column("mailboxes.message_count", BigInteger())
UNSEEN_COUNT = literal_column("mailboxes.unseen_count", BigInteger())
_SORT_COLUMNS: dict[str, Any] = {
    "internal_date": Entry.internal_date,
    "id": Entry.id,
    "subject": MessageBody.subject,
    "from_address": MessageBody.from_address,
    "size": Entry.size,
}
_FLAG_COLUMNS = (("seen", "\\Seen"), ("answered", "\\Answered"), ("flagged", "\\Flagged"),
                 ("deleted", "\\Deleted"), ("draft", "\\Draft"))


@dataclass(frozen=True)
class EmailRow:
    """One entry with the stored metadata of its message: a line of a message list."""

    id: int  # the entry id: the API's email id
    mailbox_id: int
    mailbox: str
    uid: int
    body_id: int
    size: int
    internal_date: dt.datetime
    seen: bool
    answered: bool
    flagged: bool
    deleted: bool
    draft: bool
    keywords: tuple[str, ...]
    thread_id: str
    message_id: str | None
    subject: str
    from_address: str
    from_display: str
    preview: str
    has_attachments: bool
    attachment_count: int
    sent_date: dt.datetime | None
    envelope_from: str | None  # SMTP MAIL FROM (or the mbox From_ sender)

    @property
    def flags(self) -> frozenset[str]:
        return frozenset({flag for col, flag in _FLAG_COLUMNS if getattr(self, col)} | set(self.keywords))


@dataclass(frozen=True)
class Filters:
    """What narrows a list. None (or empty) means "don't care"."""

    mailbox_id: int | None = None  # None: every mailbox of the user (unless mailbox_name)
    mailbox_name: str | None = None  # or the mailbox by name, looked up in the page's own session
    text: str = ""  # the `q` search
    since: dt.datetime | None = None  # internal date >= since
    before: dt.datetime | None = None  # internal date <= before
    has_attachments: bool | None = None
    seen: bool | None = None
    flagged: bool | None = None
    label: str | None = None  # an IMAP keyword, compared without case
    from_address: str | None = None  # exact sender address (lowercase)

    @property
    def only_mailbox(self) -> bool:
        """True when nothing but the mailbox narrows the list (its counters answer the counts)."""
        return self.mailbox_id is not None and self == Filters(mailbox_id=self.mailbox_id)

    @property
    def names_mailbox(self) -> bool:
        return self.mailbox_id is not None or self.mailbox_name is not None


@dataclass(frozen=True)
class Page:
    rows: list[EmailRow]
    total: int  # messages matching the filters
    unseen: int  # of those, how many are not \Seen


_ROW_COLUMNS = (
    Entry.id,
    Entry.mailbox_id,
    Mailbox.name,
    Entry.uid,
    Entry.body_id,
    Entry.size,
    Entry.internal_date,
    Entry.seen,
    Entry.answered,
    Entry.flagged,
    Entry.deleted,
    Entry.draft,
    cast(Entry.keywords, Text),  # decoded only when not empty (most rows have no keywords)
    Entry.thread_id,
    MessageBody.message_id,
    MessageBody.subject,
    MessageBody.from_address,
    MessageBody.from_display,
    MessageBody.preview,
    MessageBody.has_attachments,
    MessageBody.attachment_count,
    MessageBody.sent_date,
    Entry.envelope_from,
)


def _keywords(value: str | None) -> tuple[str, ...]:
    return tuple(json.loads(value)) if value and value != "[]" else ()


def _row(r: Any) -> EmailRow:
    return EmailRow(
        id=int(r[0]),
        mailbox_id=int(r[1]),
        mailbox=r[2],
        uid=int(r[3]),
        body_id=int(r[4]),
        size=int(r[5]),
        internal_date=r[6],
        seen=bool(r[7]),
        answered=bool(r[8]),
        flagged=bool(r[9]),
        deleted=bool(r[10]),
        draft=bool(r[11]),
        keywords=_keywords(r[12]),
        thread_id=r[13] or "",
        message_id=r[14],
        subject=r[15] or "",
        from_address=r[16] or "",
        from_display=r[17] or "",
        preview=r[18] or "",
        has_attachments=bool(r[19]),
        attachment_count=int(r[20] or 0),
        sent_date=r[21],
        envelope_from=r[22],
    )


_ROWS = (
    select(*_ROW_COLUMNS)
    .join(MessageBody, MessageBody.id == Entry.body_id)
    .join(Mailbox, Mailbox.id == Entry.mailbox_id)
)


def _rows_query() -> Select[*tuple[Any, ...]]:
    return _ROWS  # statements are immutable: every .where() makes a new one


def _is_postgres(s: Session) -> bool:
    return s.get_bind().dialect.name == "postgresql"


def _like_pattern(value: str) -> str:
    escaped = value.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _text_conditions(s: Session, query: str) -> list[Any]:
    """Conditions for the `q` search (see the module docstring).

    On PostgreSQL a term that is one plain word (its only lexeme is the term itself, lowered
    as lower() lowers it) needs no substring check: a word of the indexed document starting
    with it is such a substring already, so the index answers alone. Other terms (phrases,
    punctuation) are checked with LIKE after the index narrowed the candidates."""
    terms = query_terms(query)
    if not terms:
        return []
    like = [_like_condition(term) for term in terms]
    if not _is_postgres(s):
        return like
    rows = s.execute(
        text(
            "SELECT lower(t.v), tsvector_to_array(to_tsvector('simple', t.v)) "
            "FROM unnest(CAST(:terms AS text[])) WITH ORDINALITY AS t(v, n) ORDER BY t.n"
        ),
        {"terms": terms},
    ).all()
    lexemes = [lx for _, found in rows for lx in (found or [])]
    if not lexemes:
        return like
    quoted = ("'" + lx.replace("\\", "\\\\").replace("'", "''") + "':*" for lx in dict.fromkeys(lexemes))
    fts = text(f"{FTS_DOCUMENT} @@ CAST(:fts_query AS tsquery)").bindparams(fts_query=" & ".join(quoted))
    like = [c for c, (lowered, found) in zip(like, rows, strict=True) if list(found or []) != [lowered]]
    # The matching bodies first, through the index, whatever the planner thinks of the rest:
    # evaluating the document expression row by row (walking entries in date order) takes
    # seconds on a large mailbox.
    hits = select(MessageBody.id).where(fts, *like).cte("text_hits").prefix_with("MATERIALIZED")
    return [MessageBody.id.in_(select(hits.c.id))]


def _like_condition(term: str) -> Any:
    pattern = _like_pattern(term)
    return or_(*(func.lower(getattr(MessageBody, c)).like(pattern, escape="\\") for c in FIELD_COLUMNS["text"]))


def _label_condition(s: Session, label: str) -> Any:
    """The entry carries keyword `label` (IMAP keywords compare without case)."""
    if _is_postgres(s):
        return text(
            "EXISTS (SELECT 1 FROM jsonb_array_elements_text(entries.keywords) AS k(v) WHERE lower(k.v) = :label_kw)"
        ).bindparams(label_kw=label.lower())
    return text(
        "EXISTS (SELECT 1 FROM json_each(entries.keywords) AS k WHERE lower(k.value) = :label_kw)"
    ).bindparams(label_kw=label.lower())


def _conditions(s: Session, user_id: int, f: Filters) -> list[Any]:
    conditions: list[Any] = [Entry.user_id == user_id]
    if f.mailbox_id is not None:
        conditions.append(Entry.mailbox_id == f.mailbox_id)
    if f.since is not None:
        conditions.append(Entry.internal_date >= f.since)
    if f.before is not None:
        conditions.append(Entry.internal_date <= f.before)
    if f.has_attachments is not None:
        conditions.append(MessageBody.has_attachments.is_(f.has_attachments))
    if f.seen is not None:
        conditions.append(Entry.seen.is_(f.seen))
    if f.flagged is not None:
        conditions.append(Entry.flagged.is_(f.flagged))
    if f.label:
        conditions.append(_label_condition(s, f.label))
    if f.from_address:
        conditions.append(MessageBody.from_address == f.from_address.lower())
    if f.text:
        conditions.extend(_text_conditions(s, f.text))
    return conditions


def _check_mailbox(s: Session, user_id: int, mailbox_id: int) -> tuple[int, int]:
    """The mailbox's (messages, unseen) counters; NotFound unless the user owns it."""
    return _resolve(s, user_id, Filters(mailbox_id=mailbox_id))[1:]


def _resolve(s: Session, user_id: int, f: Filters) -> tuple[int, int, int]:
    """(id, messages, unseen) of the mailbox `f` names by id or name; NotFound unless the
    user owns it."""
    q = select(Mailbox.id, MESSAGE_COUNT, UNSEEN_COUNT).where(Mailbox.user_id == user_id)
    if f.mailbox_id is not None:
        q = q.where(Mailbox.id == f.mailbox_id)
    else:
        assert f.mailbox_name is not None
        q = q.where(Mailbox.name == normalise_name(f.mailbox_name))
    row = s.execute(q).first()
    if row is None:
        raise NotFound("no such mailbox" if f.mailbox_id is not None else f"no mailbox named {f.mailbox_name}")
    return int(row[0]), int(row[1]), int(row[2])


def list_page(
    user_id: int, filters: Filters, *, sort: str = DEFAULT_SORT, limit: int = 50, offset: int = 0
) -> Page:
    """One page of the user's messages matching `filters`, with the counts of all matches."""
    if sort not in SORTS:
        raise InvalidInput(f"sort must be one of {', '.join(SORTS)}")
    names, descending = SORTS[sort]
    order = [_SORT_COLUMNS[n].desc() if descending else _SORT_COLUMNS[n].asc() for n in names]
    with read() as s:
        counters = None
        if filters.names_mailbox:
            box_id, *counts = _resolve(s, user_id, filters)
            filters = replace(filters, mailbox_id=box_id, mailbox_name=None)
            counters = (counts[0], counts[1])
        conditions = _conditions(s, user_id, filters)
        q = _rows_query().where(and_(*conditions)).order_by(*order).limit(max(0, limit)).offset(max(0, offset))
        windowed = bool(filters.text)
        if windowed:
            # A text search reads every match anyway (to sort them): count them in the same pass.
            q = q.add_columns(func.count().over(), func.sum(case((Entry.seen.is_(False), 1), else_=0)).over())
        result = list(s.execute(q))
        rows = [_row(r) for r in result]
        if counters is not None and filters.only_mailbox:
            total, unseen = counters
        elif offset == 0 and len(rows) < limit:
            total, unseen = len(rows), sum(1 for r in rows if not r.seen)
        elif windowed and result:
            total, unseen = int(result[0][-2]), int(result[0][-1] or 0)
        else:
            count = (
                select(func.count(Entry.id), func.coalesce(func.sum(case((Entry.seen.is_(False), 1), else_=0)), 0))
                .select_from(Entry)
                .join(MessageBody, MessageBody.id == Entry.body_id)
                .where(and_(*conditions))
            )
            total, unseen = (int(v or 0) for v in s.execute(count).one())
    return Page(rows, total, unseen)


def get_rows(user_id: int, entry_ids: Sequence[int]) -> list[EmailRow]:
    """The user's entries among `entry_ids` (others are silently absent), in id order."""
    out: list[EmailRow] = []
    with read() as s:
        ids = sorted(set(entry_ids))
        for i in range(0, len(ids), CHUNK):
            q = _rows_query().where(Entry.user_id == user_id, Entry.id.in_(ids[i : i + CHUNK])).order_by(Entry.id)
            out.extend(_row(r) for r in s.execute(q))
    return out


def get_row(user_id: int, entry_id: int) -> EmailRow:
    rows = get_rows(user_id, [entry_id])
    if not rows:
        raise NotFound("no such message")
    return rows[0]


def get_entries(user_id: int, entry_ids: Sequence[int]) -> list[EntryInfo]:
    """The user's entries among `entry_ids` as the store's EntryInfo, in id order."""
    out: list[EntryInfo] = []
    with read() as s:
        ids = sorted(set(entry_ids))
        for i in range(0, len(ids), CHUNK):
            q = select(Entry).where(Entry.user_id == user_id, Entry.id.in_(ids[i : i + CHUNK])).order_by(Entry.id)
            out.extend(entry_info(e) for e in s.scalars(q))
    return out


def thread(user_id: int, thread_id: str) -> list[EmailRow]:
    """The user's messages of one thread, in every mailbox, oldest first."""
    if not thread_id:
        return []
    with read() as s:
        q = (
            _rows_query()
            .where(Entry.user_id == user_id, Entry.thread_id == thread_id)
            .order_by(Entry.internal_date, Entry.id)
            .limit(MAX_THREAD)
        )
        return [_row(r) for r in s.execute(q)]


def sender_addresses(user_id: int, mailbox_id: int) -> list[str]:
    """The distinct From addresses of a mailbox's messages (the Sent mailbox's "sent as")."""
    with read() as s:
        _check_mailbox(s, user_id, mailbox_id)
        q = (
            select(MessageBody.from_address)
            .join(Entry, Entry.body_id == MessageBody.id)
            .where(Entry.user_id == user_id, Entry.mailbox_id == mailbox_id, MessageBody.from_address != "")
            .distinct()
            .order_by(MessageBody.from_address)
        )
        return [str(a) for a in s.scalars(q)]


def recent_rows(user_id: int, limit: int) -> list[EmailRow]:
    """The user's most recently received messages, in every mailbox."""
    with read() as s:
        q = _rows_query().where(Entry.user_id == user_id).order_by(Entry.internal_date.desc(), Entry.id.desc())
        return [_row(r) for r in s.execute(q.limit(max(0, limit)))]


def walk(user_id: int, filters: Filters, *, batch: int = 200) -> Iterator[EmailRow]:
    """Every matching entry in id order, read `batch` at a time, each batch in its own short
    read session (for streamed exports)."""
    after = 0
    while True:
        with read() as s:
            if filters.names_mailbox:
                filters = replace(filters, mailbox_id=_resolve(s, user_id, filters)[0], mailbox_name=None)
            conditions = [*_conditions(s, user_id, filters), Entry.id > after]
            rows = [_row(r) for r in s.execute(_rows_query().where(and_(*conditions)).order_by(Entry.id).limit(batch))]
        yield from rows
        if len(rows) < batch:
            return
        after = rows[-1].id


def mailbox_counts(user_id: int) -> dict[int, tuple[int, int]]:
    """(messages, unseen) of each of the user's mailboxes, from the counters."""
    with read() as s:
        q = select(Mailbox.id, MESSAGE_COUNT, UNSEEN_COUNT).where(
            Mailbox.user_id == user_id
        )
        return {int(i): (int(m), int(u)) for i, m, u in s.execute(q)}
