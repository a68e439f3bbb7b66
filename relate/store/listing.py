"""Message lists for the REST API: one page of a mailbox (or of all of a user's mail) with the
stored metadata a list shows, filtered and sorted, with its total and unread counts.

Invariants:
- Every query is restricted to the caller's `user_id`; a mailbox id of another user finds
  nothing (NotFound), so no id leaks another user's mail.
- A page is usually one statement, outside any transaction (relate.store.rawread): the
  mailbox named by id or name is found inside it, the counters the database keeps on the
  mailbox's row (alembic 0003) come along with the page's rows, and a text search counts its
  matches in the same pass (a window count over the entries, before the page's columns are
  read). Only a filtered list that is not a search counts its matches with a second one.
- Page statements are built from the models once per shape (which filters, which sort; see
  `_Shape`) with named parameters, and compiled once, so a list costs its round trip and
  little else. A plain list of one mailbox in date order (the API's default, by far the most
  frequent) is also planned once per connection by PostgreSQL (`_Shape.one_plan`).
- `q` means what relate.store.search.search_entries means: every term a case-insensitive
  substring of the subject, addresses or body text; on PostgreSQL the full-text index
  (search.FTS_DOCUMENT) finds the candidate bodies first, in a materialized CTE, so the planner
  never evaluates the document expression row by row (seconds on a large mailbox); bodies the
  search indexer has not been through yet are matched on the fly (search.indexed_arms).
- Reads only; every function opens its own read session (or runs one statement) and returns
  plain values. Long walks (exports) read in batches, one statement each, so nothing is held
  open while a caller streams to a client.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import (
    BigInteger,
    Engine,
    Select,
    Text,
    and_,
    bindparam,
    case,
    cast,
    func,
    literal_column,
    or_,
    select,
    text,
    union_all,
)
from sqlalchemy.orm import Session

from relate.db import get_engine
from relate.db.models import Entry, Mailbox, MessageBody
from relate.store import rawread
from relate.store.errors import InvalidInput, NotFound
from relate.store.mailboxes import normalise_name
from relate.store.messages import entry_info
from relate.store.search import FIELD_COLUMNS, FTS_DOCUMENT, indexed_arms, query_terms
from relate.store.session import read
from relate.store.types import EntryInfo

utc = rawread.utc

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
# Written into the SQL, not bound: a prepared statement's CASE ... THEN $n has no type.
_ONE, _ZERO = literal_column("1", BigInteger()), literal_column("0", BigInteger())
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


class EmailRow(NamedTuple):
    """One entry with the stored metadata of its message: a line of a message list (a named
    tuple: a page builds fifty of them)."""

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
_ROW_WIDTH = len(_ROW_COLUMNS)


def _keywords(value: str | None) -> tuple[str, ...]:
    return tuple(json.loads(value)) if value and value != "[]" else ()


_new_row = tuple.__new__


def _row(r: Sequence[Any]) -> EmailRow:
    """An EmailRow from a row of _ROW_COLUMNS (a page builds fifty: the database's types are
    the row's already, every column but message_id, sent_date and envelope_from is NOT NULL,
    so only the timestamps and the keywords are converted)."""
    values = list(r[:_ROW_WIDTH])
    values[6] = utc(values[6])
    values[12] = _keywords(values[12])
    values[21] = utc(values[21])
    return _new_row(EmailRow, values)


_ROWS = (
    select(*_ROW_COLUMNS)
    .join(MessageBody, MessageBody.id == Entry.body_id)
    .join(Mailbox, Mailbox.id == Entry.mailbox_id)
)


def _rows_query() -> Select[*tuple[Any, ...]]:
    return _ROWS  # statements are immutable: every .where() makes a new one


def _like_pattern(value: str) -> str:
    escaped = value.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


# -- the `q` search: which terms the index answers -----------------------------------------------

_LEXEMES = rawread.Statement(
    text(
        "SELECT lower(t.v), tsvector_to_array(to_tsvector('simple', t.v)) "
        "FROM unnest(CAST(:terms AS text[])) WITH ORDINALITY AS t(v, n) ORDER BY t.n"
    )
)
MAX_CACHED_TERMS = 4096
# term -> (the term as the database lowers it, its lexemes as the 'simple' parser finds them);
# both depend only on the term and the database's locale, so they are asked once per process.
_lexeme_cache: dict[str, tuple[str, tuple[str, ...]]] = {}
_lexeme_engine: list[Engine] = []  # the engine the cache belongs to


def _lexemes(terms: list[str]) -> list[tuple[str, tuple[str, ...]]]:
    engine = get_engine()
    if _lexeme_engine != [engine]:
        _lexeme_cache.clear()
        _lexeme_engine[:] = [engine]
    missing = [t for t in terms if t not in _lexeme_cache]
    if missing:
        if len(_lexeme_cache) + len(missing) > MAX_CACHED_TERMS:
            _lexeme_cache.clear()
        for term, (lowered, found) in zip(missing, rawread.rows(_LEXEMES, {"terms": missing}), strict=True):
            _lexeme_cache[term] = (lowered, tuple(found or ()))
    return [_lexeme_cache[t] for t in terms]


@dataclass(frozen=True)
class _TextPlan:
    """How a `q` search is answered: a prefix tsquery for the index (PostgreSQL) and LIKE
    patterns for the terms the index cannot answer alone."""

    fts_query: str | None
    likes: tuple[str, ...]


def _text_plan(query: str, postgres: bool) -> _TextPlan | None:
    """See the module docstring. On PostgreSQL a term that is one plain word (its only lexeme
    is the term itself, lowered as lower() lowers it) needs no substring check: a word of the
    indexed document starting with it is such a substring already, so the index answers
    alone. Other terms (phrases, punctuation) are checked with LIKE on the index's candidates."""
    terms = query_terms(query)
    if not terms:
        return None
    if not postgres:
        return _TextPlan(None, tuple(_like_pattern(t) for t in terms))
    found = _lexemes(terms)
    lexemes = [lx for _, lxs in found for lx in lxs]
    if not lexemes:
        return _TextPlan(None, tuple(_like_pattern(t) for t in terms))
    quoted = ("'" + lx.replace("\\", "\\\\").replace("'", "''") + "':*" for lx in dict.fromkeys(lexemes))
    likes = tuple(_like_pattern(t) for t, (lowered, lxs) in zip(terms, found, strict=True) if list(lxs) != [lowered])
    return _TextPlan(" & ".join(quoted), likes)


# -- page statements -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Shape:
    """Everything that decides the SQL of a page; the values travel as named parameters, so
    one compiled statement serves every list of the same shape."""

    postgres: bool
    sort: str
    mailbox: str | None  # "id", "name", or None (every mailbox of the user)
    since: bool = False
    before: bool = False
    has_attachments: bool = False
    seen: bool = False
    flagged: bool = False
    label: bool = False
    from_address: bool = False
    fts: bool = False  # the full-text index finds the candidate bodies
    likes: int = 0  # terms checked with LIKE

    @property
    def text(self) -> bool:
        return self.fts or self.likes > 0

    @property
    def only_mailbox(self) -> bool:
        """Nothing but the mailbox narrows the list: its counters are the counts."""
        return self.mailbox is not None and self == _Shape(self.postgres, self.sort, self.mailbox)

    @property
    def one_plan(self) -> bool:
        """Whether one plan serves every page of this shape on PostgreSQL: a single mailbox
        walked in date order through ix_entries_mailbox_date_id (alembic 0007), stopping at
        the page, whatever the mailbox and the page. Its statement is prepared (rawread), with
        LIMIT and OFFSET written into it."""
        return self.postgres and self.only_mailbox and SORTS[self.sort][0] == ("internal_date", "id")

    @property
    def needs_body(self) -> bool:
        """Whether the conditions or the order read message_bodies (beyond the text search's
        candidate list)."""
        return (self.has_attachments or self.from_address or (self.likes > 0 and not self.fts)
                or any(_SORT_COLUMNS[n].table is MessageBody.__table__ for n in SORTS[self.sort][0]))


def _shape_and_params(
    user_id: int, f: Filters, sort: str, postgres: bool
) -> tuple[_Shape, dict[str, Any]]:
    params: dict[str, Any] = {"user_id": user_id}
    mailbox = None
    if f.mailbox_id is not None:
        mailbox, params["mailbox_id"] = "id", f.mailbox_id
    elif f.mailbox_name is not None:
        mailbox, params["mailbox_name"] = "name", normalise_name(f.mailbox_name)
    optional = {
        "since": f.since,
        "before": f.before,
        "has_attachments": f.has_attachments,
        "seen": f.seen,
        "flagged": f.flagged,
        "label_kw": f.label.lower() if f.label else None,
        "from_address": f.from_address.lower() if f.from_address else None,
    }
    params.update({k: v for k, v in optional.items() if v is not None})
    plan = _text_plan(f.text, postgres) if f.text else None
    if plan is not None:
        if plan.fts_query is not None:
            params["fts_query"] = plan.fts_query
        params.update({f"like_{i}": pattern for i, pattern in enumerate(plan.likes)})
    shape = _Shape(
        postgres,
        sort,
        mailbox,
        since=f.since is not None,
        before=f.before is not None,
        has_attachments=f.has_attachments is not None,
        seen=f.seen is not None,
        flagged=f.flagged is not None,
        label=bool(f.label),
        from_address=bool(f.from_address),
        fts=plan is not None and plan.fts_query is not None,
        likes=len(plan.likes) if plan is not None else 0,
    )
    return shape, params


_NAMED_BOX = Mailbox.__table__.alias("named_box")
_MAILBOX_BY_NAME = (
    select(_NAMED_BOX.c.id)
    .where(_NAMED_BOX.c.user_id == bindparam("user_id"), _NAMED_BOX.c.name == bindparam("mailbox_name"))
    .correlate(None)
    .scalar_subquery()
)


def _like(name: str) -> Any:
    return or_(*(func.lower(getattr(MessageBody, c)).like(bindparam(name, type_=Text), escape="\\")
                 for c in FIELD_COLUMNS["text"]))


def _label(postgres: bool) -> Any:
    """The entry carries keyword :label_kw (IMAP keywords compare without case)."""
    if postgres:
        return text("EXISTS (SELECT 1 FROM jsonb_array_elements_text(entries.keywords) AS k(v) "
                    "WHERE lower(k.v) = :label_kw)")
    return text("EXISTS (SELECT 1 FROM json_each(entries.keywords) AS k WHERE lower(k.value) = :label_kw)")


def _text_hits(shape: _Shape) -> Any:
    """The bodies a full-text search matches, as a CTE of their ids (each id once).

    The matching bodies come first, through the index, whatever the planner thinks of the
    rest: evaluating the document expression row by row (walking entries in date order)
    takes seconds on a large mailbox. Bodies still waiting for the search indexer are
    matched on the fly, in an arm of their own (search.indexed_arms); the arms are disjoint."""
    likes = [_like(f"like_{i}") for i in range(shape.likes)]
    fts = and_(text(f"{FTS_DOCUMENT} @@ CAST(:fts_query AS tsquery)"), *likes)
    arms = indexed_arms(select(MessageBody.id), fts, bindparam("user_id"), shape.postgres)
    return union_all(*arms).cte("text_hits").prefix_with("MATERIALIZED")


def _conditions(shape: _Shape, *, hits_joined: bool = False) -> list[Any]:
    """The WHERE of a page of this shape, with named parameters (see _shape_and_params).
    With `hits_joined`, a search's matching bodies are joined by the caller (_text_hits)
    rather than asked for here."""
    conditions: list[Any] = [Entry.user_id == bindparam("user_id")]
    if shape.mailbox == "id":
        conditions.append(Entry.mailbox_id == bindparam("mailbox_id"))
    elif shape.mailbox == "name":
        conditions.append(Entry.mailbox_id == _MAILBOX_BY_NAME)
    if shape.since:
        conditions.append(Entry.internal_date >= bindparam("since"))
    if shape.before:
        conditions.append(Entry.internal_date <= bindparam("before"))
    if shape.has_attachments:
        conditions.append(MessageBody.has_attachments == bindparam("has_attachments"))
    if shape.seen:
        conditions.append(Entry.seen == bindparam("seen"))
    if shape.flagged:
        conditions.append(Entry.flagged == bindparam("flagged"))
    if shape.label:
        conditions.append(_label(shape.postgres))
    if shape.from_address:
        conditions.append(MessageBody.from_address == bindparam("from_address"))
    if shape.fts:
        if not hits_joined:
            conditions.append(Entry.body_id.in_(select(_text_hits(shape).c.id)))
    else:
        conditions.extend(_like(f"like_{i}") for i in range(shape.likes))
    return conditions


def _order(shape: _Shape, columns: Sequence[Any] | None = None) -> list[Any]:
    names, descending = SORTS[shape.sort]
    cols = columns if columns is not None else [_SORT_COLUMNS[n] for n in names]
    return [c.desc() if descending else c.asc() for c in cols]


def _page_select(shape: _Shape) -> Any:
    """One page with the mailbox's counters on every row; a text search also counts all its
    matches (a window count over the entries, before their columns are read).

    Unless the filters or the order read the message bodies, the page is found among the
    entries alone and only its rows are joined to their bodies: rows skipped by the offset,
    and a search's other matches, never are."""
    limit: Any = bindparam("limit")
    offset: Any = bindparam("offset")
    if shape.needs_body and not shape.text:
        conditions = _conditions(shape)
        return (
            _rows_query()
            .add_columns(MESSAGE_COUNT, UNSEEN_COUNT)
            .where(and_(*conditions))
            .order_by(*_order(shape))
            .limit(limit)
            .offset(offset)
        )
    names, _ = SORTS[shape.sort]
    # The entry id is a sort key of every order: the page's entry_id column is that key, so
    # the page comes out of the subquery in its final order (no sort after the joins).
    keys = [_SORT_COLUMNS[n].label(f"sort_{i}") for i, n in enumerate(names) if n != "id"]
    counts = []
    if shape.text:
        # A search reads every match anyway (to sort them): count them in the same pass.
        counts = [
            func.count().over().label("total"),
            func.sum(case((Entry.seen.is_(False), _ONE), else_=_ZERO)).over().label("unseen"),
        ]
    source: Any = Entry.__table__
    if shape.fts:
        # Joined, not `IN (SELECT ...)`: the ids are distinct already, and PostgreSQL would
        # otherwise hash them once more before looking up their entries.
        hits = _text_hits(shape)
        source = hits.join(source, Entry.body_id == hits.c.id)
    if shape.needs_body:
        source = source.join(MessageBody.__table__, MessageBody.id == Entry.body_id)
    page = (
        select(Entry.id.label("entry_id"), *keys, *counts)
        .select_from(source)
        .where(and_(*_conditions(shape, hits_joined=True)))
        .order_by(*_order(shape))
        .limit(limit)
        .offset(offset)
        .subquery("page")
    )
    extra = [page.c.total, page.c.unseen] if shape.text else []
    return (
        select(*_ROW_COLUMNS, MESSAGE_COUNT, UNSEEN_COUNT, *extra)
        .select_from(page)
        .join(Entry, Entry.id == page.c.entry_id)
        .join(MessageBody, MessageBody.id == Entry.body_id)
        .join(Mailbox, Mailbox.id == Entry.mailbox_id)
        .order_by(*_order(shape, [page.c.entry_id if n == "id" else page.c[f"sort_{i}"] for i, n in enumerate(names)]))
    )


def _count_select(shape: _Shape) -> Any:
    q = select(func.count(Entry.id), func.coalesce(func.sum(case((Entry.seen.is_(False), _ONE), else_=_ZERO)), 0))
    source: Any = Entry.__table__
    if shape.needs_body:
        source = source.join(MessageBody.__table__, MessageBody.id == Entry.body_id)
    return q.select_from(source).where(and_(*_conditions(shape)))


MAX_CACHED_SHAPES = 512
_pages: dict[_Shape, rawread.Statement] = {}
_counts: dict[_Shape, rawread.Statement] = {}


def _cached(cache: dict[_Shape, rawread.Statement], shape: _Shape, build: Any, *,
            prepared: bool = False) -> rawread.Statement:
    found = cache.get(shape)
    if found is None:
        if len(cache) >= MAX_CACHED_SHAPES:
            cache.clear()
        literals = ("limit", "offset") if prepared else ()
        found = cache[shape] = rawread.Statement(build(shape), prepared=prepared, literals=literals)
    return found


_BOX_COUNTS = rawread.Statement(
    select(Mailbox.id, MESSAGE_COUNT, UNSEEN_COUNT).where(
        Mailbox.user_id == bindparam("user_id"),
        or_(Mailbox.id == bindparam("mailbox_id"), Mailbox.name == bindparam("mailbox_name")),
    )
)


def _box_counts(user_id: int, f: Filters) -> tuple[int, int]:
    """(messages, unseen) of the mailbox `f` names; NotFound unless the user owns it."""
    name = normalise_name(f.mailbox_name) if f.mailbox_id is None and f.mailbox_name is not None else None
    found = rawread.rows(_BOX_COUNTS, {"user_id": user_id, "mailbox_id": f.mailbox_id, "mailbox_name": name})
    if not found:
        raise NotFound("no such mailbox" if f.mailbox_id is not None else f"no mailbox named {f.mailbox_name}")
    return int(found[0][1]), int(found[0][2])


def list_page(
    user_id: int, filters: Filters, *, sort: str = DEFAULT_SORT, limit: int = 50, offset: int = 0
) -> Page:
    """One page of the user's messages matching `filters`, with the counts of all matches.

    Usually one statement: the mailbox is found by the page statement itself, its counters
    come on the page's rows, and a text search counts its matches in the same pass. An empty
    page of a named mailbox asks once more (does the mailbox exist, what do its counters say),
    and so does a filtered list that is not a search and fills its page (its count)."""
    if sort not in SORTS:
        raise InvalidInput(f"sort must be one of {', '.join(SORTS)}")
    limit, offset = max(0, limit), max(0, offset)
    postgres = get_engine().dialect.name == "postgresql"
    shape, params = _shape_and_params(user_id, filters, sort, postgres)
    params["limit"], params["offset"] = limit, offset
    found = rawread.rows(_cached(_pages, shape, _page_select, prepared=shape.one_plan or shape.fts), params)
    rows = [_row(r) for r in found]
    if not found and shape.mailbox is not None:
        counters = _box_counts(user_id, filters)  # NotFound when there is no such mailbox
        if shape.only_mailbox:
            return Page(rows, *counters)
    if shape.only_mailbox:
        return Page(rows, int(found[0][_ROW_WIDTH]), int(found[0][_ROW_WIDTH + 1]))
    if offset == 0 and len(rows) < limit:
        return Page(rows, len(rows), sum(1 for r in rows if not r.seen))
    if shape.text and found:
        return Page(rows, int(found[0][_ROW_WIDTH + 2]), int(found[0][_ROW_WIDTH + 3] or 0))
    del params["limit"], params["offset"]
    total, unseen = rawread.rows(_cached(_counts, shape, _count_select), params)[0]
    return Page(rows, int(total or 0), int(unseen or 0))


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
    if filters.names_mailbox:
        _box_counts(user_id, filters)  # NotFound when there is no such mailbox
    shape, params = _shape_and_params(user_id, filters, DEFAULT_SORT, get_engine().dialect.name == "postgresql")
    statement = rawread.Statement(
        _rows_query()
        .where(and_(*_conditions(shape)), Entry.id > bindparam("after"))
        .order_by(Entry.id)
        .limit(bindparam("batch"))
    )
    after = 0
    while True:
        rows = [_row(r) for r in rawread.rows(statement, {**params, "after": after, "batch": batch})]
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
