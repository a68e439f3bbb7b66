"""Searching stored messages: full-text candidates for IMAP SEARCH BODY/TEXT, the REST API's
`q` search, and the batch metadata reads IMAP FETCH and SEARCH need.

Invariants:
- Matching is what IMAP SEARCH means (RFC 9051 §6.4.4): a case-insensitive substring, after
  runs of white space in the value are collapsed to one space (the stored texts are collapsed
  the same way, see relate.message.text).
- The short columns (subject, sender, recipients) are checked on every entry in scope: they
  are small, and addresses are single lexemes to the text-search parser ("example" is not a
  word of "bob@example.com"), so the index cannot find a part of them.
- IMAP matches the body text (search_text, up to 256 KiB a message) by substring over the
  mailbox in scope, never through the word index (which cannot see into the middle of a
  word or an address); on PostgreSQL the trigram index on lower(search_text), created where
  the pg_trgm extension is available, serves that LIKE. The REST API's `q` search is word
  search and uses the full-text GIN index through FTS_DOCUMENT.
- Both GIN indexes hold only the bodies the search indexer has been through (`WHERE indexed`,
  alembic 0006; relate.store.searchindex). A query that uses one is two arms in one
  statement (`indexed_arms`): the indexed bodies through the index, and the few still waiting
  with the same expression evaluated on the fly, so a message is found from the moment its
  delivery committed. One statement sees one snapshot, in which each body is in exactly one
  arm. The arms are a UNION ALL, never an OR: PostgreSQL factors a condition common to both
  sides of an OR out of it, and the partial index's predicate could then no longer be proved.
  A waiting body's document is computed only if one of the searching user's entries holds
  it (`waiting_match`), so what other users were delivered meanwhile costs a search one
  index probe per body.
- An ASCII value is checked in SQL (lower() LIKE, escaped); IMAP's other values in Python
  with str.casefold on the candidate rows, so their case folding never depends on the
  database's locale. (The REST search stays in SQL for paging: there non-ASCII letters fold
  as the database's lower() folds them.)
- Reads only; every function opens its own read session and returns plain values.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterable, Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    bindparam,
    case,
    exists,
    false,
    func,
    or_,
    select,
    text,
    union_all,
)
from sqlalchemy.orm import Session

from relate.db import get_engine
from relate.db.models import Entry, MessageBody
from relate.message import ParsedMessage
from relate.message.headers import scan_header
from relate.store.session import pg_read, read

CHUNK = 1000  # bound for IN (...) lists
# The indexed document (alembic 0001, partial since 0006): the planner uses the full-text index
# only for a query written with exactly this expression (and `message_bodies.indexed`).
FTS_DOCUMENT = (
    "to_tsvector('simple', coalesce(message_bodies.subject, '') || ' ' || "
    "coalesce(message_bodies.from_address, '') || ' ' || coalesce(message_bodies.from_display, '') || ' ' || "
    "coalesce(message_bodies.to_text, '') || ' ' || coalesce(message_bodies.search_text, ''))"
)
BODY_COLUMN = "search_text"
# Which stored columns each search field looks at.
FIELD_COLUMNS: dict[str, tuple[str, ...]] = {
    "body": (BODY_COLUMN,),
    "text": ("subject", "from_address", "from_display", "to_text", BODY_COLUMN),
    "subject": ("subject",),
    "from": ("from_address", "from_display"),
    "to": ("to_text",),
}
# A header section is read from the first HEADER_PREFIX octets of the raw message, or up to
# MAX_HEADER_SECTION when it does not end there.
HEADER_PREFIX = 16 * 1024
MAX_HEADER_SECTION = 256 * 1024
MAX_QUERY_TERMS = 16  # REST search: more words than this are ignored

_SPACE = re.compile(r"\s+")
_PLAIN_WORD = re.compile(r"[a-z0-9]+")
_TERM = re.compile(r'"([^"]*)"?|(\S+)')


def normalise(value: str) -> str:
    """Collapse white space like the stored texts (relate.message.text) do."""
    return _SPACE.sub(" ", value)


def contains(haystack: str, needle: str) -> bool:
    """IMAP SEARCH matching: `needle` (already casefolded) is a substring, ignoring case."""
    return needle in haystack.casefold()


def _chunks(values: Sequence[int]) -> Iterable[Sequence[int]]:
    for i in range(0, len(values), CHUNK):
        yield values[i : i + CHUNK]


def _is_postgres(s: Session) -> bool:
    return s.get_bind().dialect.name == "postgresql"


_MINE = Entry.__table__.alias("mine")


def waiting_match(condition: Any, user_id: Any) -> ColumnElement[bool]:
    """`condition` on a body not in the search indexes yet, computed only when the body is
    one of `user_id`'s (a value or a bind parameter): CASE evaluates its test first."""
    mine = exists().where(_MINE.c.body_id == MessageBody.id, _MINE.c.user_id == user_id)
    return ~MessageBody.indexed & case((mine, condition), else_=false())


def indexed_arms(query: Select[Any], condition: Any, user_id: Any, postgres: bool) -> list[Select[Any]]:
    """`query` where `condition` (on message_bodies) holds, as the arms of a UNION ALL: on
    PostgreSQL the bodies in the partial GIN indexes, which serve `condition`, and the ones
    still waiting for the indexer (see the module's invariants); on SQLite just the one."""
    if not postgres:
        return [query.where(condition)]
    return [query.where(MessageBody.indexed, condition), query.where(waiting_match(condition, user_id))]


def _like_pattern(value: str) -> str:
    escaped = value.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _tsquery(s: Session, value: str) -> str | None:
    """A prefix tsquery over the plain words PostgreSQL finds in `value` (None if none).

    The lexemes come from the same parser as the index ('simple'); written as quoted tsquery
    operands they are taken as they are, not parsed again. Only plain ASCII words narrow: how
    PostgreSQL lowercases other letters depends on the database's locale (in the C locale
    not at all), and compound lexemes (host names, addresses, URLs) are not found inside the
    document's longer ones ("example.org" in "bob@example.org").
    """
    if not _is_postgres(s):
        return None
    found = s.scalar(text("SELECT tsvector_to_array(to_tsvector('simple', :v))"), {"v": value})
    lexemes = [lx for lx in found or [] if _PLAIN_WORD.fullmatch(lx)]
    if not lexemes:
        return None
    return " & ".join(f"'{lx}':*" for lx in lexemes)


def _fts_condition(tsquery: str, name: str = "fts_query") -> Any:
    """The index's document matches `tsquery` (`name` keeps several in one statement apart)."""
    return text(f"{FTS_DOCUMENT} @@ CAST(:{name} AS tsquery)").bindparams(bindparam(name, tsquery))


def _like(columns: Sequence[str], value: str) -> Any:
    """SQL substring test of an ASCII value on any of `columns`, ignoring ASCII case."""
    pattern = _like_pattern(value)
    return or_(*(func.lower(getattr(MessageBody, c)).like(pattern, escape="\\") for c in columns))


def _restricted(arms: list[Select[Any]], uids: Collection[int] | None) -> Iterable[Any]:
    """The statements that run `arms` (one UNION ALL) for `uids`, CHUNK at a time."""

    def union(restricted: list[Select[Any]]) -> Any:
        return restricted[0] if len(restricted) == 1 else union_all(*restricted)

    if uids is None:
        yield union(arms)
        return
    for chunk in _chunks(sorted(set(uids))):
        yield union([q.where(Entry.uid.in_(chunk)) for q in arms])


def fulltext_uids(
    user_id: int, mailbox_id: int, field: str, value: str, *, uids: Collection[int] | None = None
) -> set[int]:
    """UIDs of the mailbox's entries whose `field` ("body", "text", "subject", "from", "to")
    contains `value` (IMAP SEARCH semantics); only among `uids` when given."""
    columns = FIELD_COLUMNS[field]
    short = [c for c in columns if c != BODY_COLUMN]
    needle = normalise(value)
    found: set[int] = set()
    with read() as s:
        scope = (
            select(Entry.uid)
            .join(MessageBody, MessageBody.id == Entry.body_id)
            .where(Entry.user_id == user_id, Entry.mailbox_id == mailbox_id)
        )
        # Each query is a list of arms, run as one UNION ALL statement.
        if not needle:
            queries = [[scope]]
        else:
            # IMAP SEARCH is substring matching (RFC 9051 §6.4.4): the word index would miss
            # "voice" inside "invoice", so bodies are matched with LIKE, which PostgreSQL
            # serves from the trigram index on lower(search_text) where pg_trgm is available.
            if needle.isascii():
                queries = [[scope.where(_like(short, needle))]] if short else []
                if BODY_COLUMN in columns:
                    body = _like([BODY_COLUMN], needle)
                    queries.append(indexed_arms(scope, body, user_id, _is_postgres(s)))
            else:
                queries = [[scope.add_columns(*(getattr(MessageBody, c) for c in short))]] if short else []
                if BODY_COLUMN in columns:
                    queries.append([scope.add_columns(MessageBody.search_text)])
        folded = needle.casefold()
        for arms in queries:
            for q in _restricted(arms, uids):
                for row in s.execute(q):
                    if len(row) == 1 or any(t and contains(t, folded) for t in row[1:]):
                        found.add(int(row[0]))
    return found


def query_terms(query: str) -> list[str]:
    """The words of a REST search query; "double quotes" keep a phrase together."""
    terms: list[str] = []
    for m in _TERM.finditer(query):
        term = normalise(m.group(1) if m.group(1) is not None else m.group(2)).strip()
        if term and term not in terms:
            terms.append(term)
    return terms[:MAX_QUERY_TERMS]


def search_entries(
    user_id: int, query: str, mailbox_id: int | None = None, limit: int = 50, offset: int = 0
) -> list[int]:
    """The REST API's `q` search: ids of the user's entries (in one mailbox, or all) whose
    subject, addresses or body text contain every term of `query`, newest first (by internal
    date). Terms match as case-insensitive substrings (see the module's invariants)."""
    terms = query_terms(query)
    short = [c for c in FIELD_COLUMNS["text"] if c != BODY_COLUMN]
    with read() as s:
        scope = [Entry.user_id == user_id]
        if mailbox_id is not None:
            scope.append(Entry.mailbox_id == mailbox_id)
        conditions = []
        for n, term in enumerate(terms):
            in_body = _like([BODY_COLUMN], term)
            tsquery = _tsquery(s, term)
            if tsquery is not None:  # the index finds the bodies once, before the entries are read
                matching = select(Entry.id).join(MessageBody, MessageBody.id == Entry.body_id).where(*scope)
                document = and_(_fts_condition(tsquery, f"fts_query_{n}"), in_body)
                bodies = union_all(*indexed_arms(matching, document, user_id, True))
                conditions.append(or_(_like(short, term), Entry.id.in_(bodies)))
            else:
                conditions.append(or_(_like(short, term), in_body))
        q = (
            select(Entry.id)
            .join(MessageBody, MessageBody.id == Entry.body_id)
            .where(*scope, *conditions)
            .order_by(Entry.internal_date.desc(), Entry.id.desc())
            .limit(max(0, limit))
            .offset(max(0, offset))
        )
        return [int(i) for i in s.scalars(q)]


# -- batch metadata ---------------------------------------------------------------------------


def parsed_messages(body_ids: Sequence[int]) -> dict[int, ParsedMessage]:
    """The stored parse of many messages at once (what FETCH ENVELOPE/BODYSTRUCTURE reads):
    on PostgreSQL one prepared statement per chunk on a bare cursor."""
    out: dict[int, ParsedMessage] = {}
    if get_engine().dialect.name == "postgresql":
        with pg_read(prepare=True) as cursor:
            for chunk in _chunks(sorted(set(body_ids))):
                cursor.execute("SELECT id, meta::text FROM message_bodies WHERE id = ANY(%s)", (list(chunk),))
                for body_id, meta in cursor.fetchall():
                    if meta is not None:
                        out[int(body_id)] = ParsedMessage.from_json(json.loads(meta))
        return out
    with read() as s:
        for chunk in _chunks(sorted(set(body_ids))):
            for body_id, meta in s.execute(select(MessageBody.id, MessageBody.meta).where(MessageBody.id.in_(chunk))):
                out[int(body_id)] = ParsedMessage.from_json(meta)
    return out


def envelopes(body_ids: Sequence[int]) -> dict[int, list[Any]]:
    """The stored IMAP ENVELOPE of many messages (relate.message.envelope), without the rest
    of their metadata."""
    out: dict[int, list[Any]] = {}
    with read() as s:
        for chunk in _chunks(sorted(set(body_ids))):
            rows = s.execute(select(MessageBody.id, MessageBody.meta["envelope"]).where(MessageBody.id.in_(chunk)))
            for body_id, env in rows:
                out[int(body_id)] = list(env) if env else [None] * 10
    return out


def header_sections(body_ids: Sequence[int]) -> dict[int, bytes]:
    """The top header section (blank line included) of many messages, read from the start of
    their raw bytes only; a header longer than MAX_HEADER_SECTION is cut there."""
    out: dict[int, bytes] = {}
    with read() as s:
        longer: list[int] = []
        for chunk in _chunks(sorted(set(body_ids))):
            q = select(MessageBody.id, func.substr(MessageBody.raw, 1, HEADER_PREFIX), MessageBody.size)
            for body_id, prefix, size in s.execute(q.where(MessageBody.id.in_(chunk))):
                data = bytes(prefix or b"")
                _, end = scan_header(data, 0, len(data))
                if end == len(data) and size > len(data):
                    longer.append(int(body_id))
                out[int(body_id)] = data[:end]
        for chunk in _chunks(longer):
            q = select(MessageBody.id, func.substr(MessageBody.raw, 1, MAX_HEADER_SECTION))
            for body_id, prefix in s.execute(q.where(MessageBody.id.in_(chunk))):
                data = bytes(prefix or b"")
                out[int(body_id)] = data[: scan_header(data, 0, len(data))[1]]
    return out
