"""Messages: delivery, APPEND, flags and keywords, COPY, MOVE, EXPUNGE.

Invariants:
- UIDs and MODSEQs are allocated by one UPDATE ... RETURNING on the mailbox row, inside the
  transaction that inserts or changes the entries: the row lock serialises writers to one
  mailbox across processes and hosts, so UIDs ascend strictly in commit order.
- The raw bytes are stored exactly as given, once per distinct content (SHA-256), and parsed
  once here; FETCH and the API read the stored metadata.
- Each user's entry is independent: flags, moves and deletes touch only that user's rows.
- Every mutation emits change events through its transaction (see relate.store.session).
- STORE, EXPUNGE and APPEND take the mailbox row lock before they read or write any entry,
  so every writer locks in the same order (mailbox, then entries) and UIDs and MODSEQs commit
  in ascending order. Entries are read and written set-wise (one statement for any number of
  messages, never row by row). When nothing changed no MODSEQ is spent and no event is sent.
- On PostgreSQL each of these writes is one message to the server
  (relate.store.session.pg_write), so the mailbox lock is held only while PostgreSQL runs it,
  never across a round trip to this process. STORE and EXPUNGE are "lock; one statement":
  the lock (`_pg_lock_if`, taken only when the write will change something: a no-op takes no
  lock and waits for no WAL flush), then, with a snapshot taken once the lock is ours, one statement that
  computes the new flags in SQL (`_pg_new_flags`, the rules of `_new_flags`), writes the
  changed entries, spends a MODSEQ only if any changed, and NOTIFYs the change with the payload
  Change.to_json() gives (relate.store.pgnotify). APPEND is one statement whose claim of a UID
  and MODSEQ (an UPDATE of the mailbox row) takes the lock. The implicit transaction commits
  before the server answers, so nothing is acknowledged before commit. On SQLite the same
  functions run through SQLAlchemy (`_claim_modseq` first) with the same results. Each
  statement is prepared once per connection (relate.store.session.prepared).
- Those three writes send complete changes (events.Change.complete): every UID, and for
  FLAGS and NEW the entries as a view needs them (`event_flags`, `event_new_entries`), so
  the other sessions on the mailbox apply the change without reading the store.
- The hot reads (the IMAP view at SELECT, its changes, message bodies) run prepared on bare
  psycopg2 cursors (relate.store.session.pg_read).
- A view's changes (`mailbox_changes`) are one statement: the entries changed, the UIDs
  expunged and the mailbox HIGHESTMODSEQ come from one snapshot in one round trip.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import (
    Table,
    bindparam,
    delete,
    func,
    insert,
    literal,
    literal_column,
    null,
    select,
    text,
    union_all,
    update,
)

from relate.db import get_engine
from relate.db.models import Address, Domain, Entry, Expunged, Mailbox, MessageBody
from relate.message import ParsedMessage, crlf, parse_message
from relate.store import events as ev
from relate.store import filters, pgnotify
from relate.store.errors import InvalidInput, NotFound
from relate.store.mailboxes import (
    DEFAULT_NAMES,
    PG_MAILBOX_COLUMNS,
    get_mailbox,
    lock_mailbox,
    normalise_name,
    pg_info,
    special_mailbox,
)
from relate.store.session import Tx, pg_read, pg_write, read, retrying, transaction
from relate.store.sql import insert_ignore, rowcount
from relate.store.types import Delivered, EntryInfo, Envelope, MailboxInfo

CHUNK = 1000  # bound for IN (...) lists
_FLAG_COLUMNS = {"\\seen": "seen", "\\answered": "answered", "\\flagged": "flagged", "\\deleted": "deleted", "\\draft": "draft"}
_COLUMN_FLAGS = {col: flag for flag, col in zip(("\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft"), _FLAG_COLUMNS.values(), strict=True)}
MAX_KEYWORDS = 100
MAX_KEYWORD_LEN = 200


@dataclass(frozen=True)
class FlagResult:
    changed: list[EntryInfo]  # entries whose flags changed, with their new MODSEQ
    failed: list[int]  # UIDs refused by UNCHANGEDSINCE (RFC 7162 §3.2 MODIFIED)
    modseq: int  # the MODSEQ of this change (0 when nothing changed)


@dataclass(frozen=True)
class CopyResult:
    uid_validity: int
    pairs: list[tuple[int, int]]  # (source UID, destination UID), source order


def _chunks(values: Sequence[int]) -> Iterable[Sequence[int]]:
    for i in range(0, len(values), CHUNK):
        yield values[i : i + CHUNK]


def split_flags(flags: Iterable[str]) -> tuple[dict[str, bool], list[str]]:
    """System flags as column values, and keywords (deduplicated case-insensitively, sorted)."""
    system: dict[str, bool] = {}
    keywords: dict[str, str] = {}
    for flag in flags:
        if flag.startswith("\\"):
            col = _FLAG_COLUMNS.get(flag.lower())
            if col is None:
                raise InvalidInput(f"flag {flag} cannot be stored")
            system[col] = True
        else:
            if not flag or len(flag) > MAX_KEYWORD_LEN or any(c in flag for c in ' (){%*"\\]') or any(ord(c) < 0x21 or ord(c) == 0x7F for c in flag):
                raise InvalidInput(f"invalid keyword {flag!r}")
            keywords.setdefault(flag.lower(), flag)
    if len(keywords) > MAX_KEYWORDS:
        raise InvalidInput("too many keywords")
    return system, sorted(keywords.values(), key=str.lower)


def entry_flags(e: Entry) -> frozenset[str]:
    flags = {flag for col, flag in _COLUMN_FLAGS.items() if getattr(e, col)}
    flags.update(e.keywords or ())
    return frozenset(flags)


def entry_info(e: Entry) -> EntryInfo:
    return EntryInfo(
        id=e.id,
        mailbox_id=e.mailbox_id,
        uid=e.uid,
        modseq=e.modseq,
        body_id=e.body_id,
        size=e.size,
        internal_date=e.internal_date,
        flags=entry_flags(e),
        thread_id=e.thread_id,
        envelope_from=e.envelope_from,
    )


_ENTRY_COLUMNS = (
    Entry.id, Entry.mailbox_id, Entry.uid, Entry.modseq, Entry.body_id, Entry.size, Entry.internal_date,
    Entry.seen, Entry.answered, Entry.flagged, Entry.deleted, Entry.draft, Entry.keywords, Entry.thread_id,
    Entry.envelope_from,
)
_SYSTEM_FLAG_NAMES = tuple(_COLUMN_FLAGS.values())  # in the column order of _ENTRY_COLUMNS[7:12]


_ENTRIES = cast(Table, Entry.__table__)
_PG_ENTRY_COLUMNS = ("id, mailbox_id, uid, modseq, body_id, size, internal_date, seen, answered, flagged, deleted, "
                     "draft, keywords, thread_id, envelope_from")  # _ENTRY_COLUMNS for bare cursors
_PG_RETURNED = ", ".join(f"e.{c.strip()}" for c in _PG_ENTRY_COLUMNS.split(","))  # the same, of "e"


def bare_cursors() -> bool:
    """Whether the hot IMAP paths run on bare psycopg2 cursors (PostgreSQL; see relate.store.session)."""
    return get_engine().dialect.name == "postgresql"


def _pg_row(row: Sequence[Any]) -> tuple[Any, ...]:
    """A bare cursor's entry row as SQLAlchemy's types would give it: UTC dates, keyword lists."""
    keywords = row[12]
    if isinstance(keywords, str):
        keywords = json.loads(keywords)
    return (*row[:6], row[6].astimezone(dt.UTC), *row[7:12], keywords, *row[13:])


def row_flags(columns: Sequence[bool], keywords: Iterable[str] | None) -> frozenset[str]:
    """IMAP flags from the five system flag columns (seen, answered, flagged, deleted, draft)
    and the keywords."""
    flags = {name for name, on in zip(_SYSTEM_FLAG_NAMES, columns, strict=True) if on}
    flags.update(keywords or ())
    return frozenset(flags)


def row_info(row: Sequence[Any]) -> EntryInfo:
    """EntryInfo from a row of _ENTRY_COLUMNS (Core reads: no ORM object per message)."""
    return EntryInfo(
        id=row[0], mailbox_id=row[1], uid=row[2], modseq=row[3], body_id=row[4], size=row[5], internal_date=row[6],
        flags=row_flags(row[7:12], row[12]), thread_id=row[13] or "", envelope_from=row[14],
    )


# What a complete change (events.Change.complete) carries per entry, written in SQL by the
# writes sent as one message and read back by the IMAP views that apply it without a re-read:
# FLAGS: [uid, flag bits, keywords]; NEW: [id, uid, body id, size, internal date (ISO 8601),
# flag bits, keywords, thread id, envelope sender]. Bit i is the i-th system flag column.
def _pg_flag_bits(prefix: str = "") -> str:
    return " + ".join(f"{prefix}{col}::int * {1 << i}" for i, col in enumerate(_COLUMN_FLAGS))


def _bits_flags(bits: int, keywords: Iterable[str] | None) -> frozenset[str]:
    return _flag_set(int(bits), tuple(str(k) for k in keywords or ()))


@functools.lru_cache(maxsize=1024)
def _flag_set(bits: int, keywords: tuple[str, ...]) -> frozenset[str]:
    """The flags of a change's flag bits and keywords; every session on the mailbox applies the
    same change, and most entries carry one of a few flag sets, so each is built once."""
    return row_flags([bool(bits >> i & 1) for i in range(len(_COLUMN_FLAGS))], keywords)


def event_flags(change: ev.Change) -> list[tuple[int, frozenset[str]]]:
    """(UID, new flags) of every entry of a complete FLAGS change. ValueError when malformed."""
    try:
        return [(int(uid), _bits_flags(bits, keywords)) for uid, bits, keywords in change.entries]
    except (TypeError, ValueError) as exc:
        raise ValueError(f"malformed flag change: {exc}") from None


def event_new_entries(change: ev.Change) -> list[EntryInfo]:
    """The entries of a complete NEW change, as a view of the mailbox sees them."""
    if change.mailbox_id is None:
        raise ValueError("a new-message change without a mailbox")
    try:
        return [
            EntryInfo(id=int(entry_id), mailbox_id=change.mailbox_id, uid=int(uid), modseq=change.modseq,
                      body_id=int(body_id), size=int(size),
                      internal_date=dt.datetime.fromisoformat(str(when)).astimezone(dt.UTC),
                      flags=_bits_flags(bits, keywords), thread_id=str(thread_id or ""),
                      envelope_from=None if sender is None else str(sender))
            for entry_id, uid, body_id, size, when, bits, keywords, thread_id, sender in change.entries
        ]
    except (TypeError, ValueError) as exc:
        raise ValueError(f"malformed new-message change: {exc}") from None


# -- allocation ----------------------------------------------------------------------------


def allocate(t: Tx, mailbox_id: int, count: int) -> tuple[int, int]:
    """Reserve `count` UIDs and one new MODSEQ; returns (first UID, MODSEQ)."""
    row = t.s.execute(
        text(
            "UPDATE mailboxes SET uid_next = uid_next + :n, highest_modseq = highest_modseq + 1 "
            "WHERE id = :id RETURNING uid_next, highest_modseq"
        ),
        {"n": count, "id": mailbox_id},
    ).one()
    return int(row.uid_next) - count, int(row.highest_modseq)


def _bump_modseq(t: Tx, mailbox_id: int) -> int:
    return allocate(t, mailbox_id, 0)[1]


def meta_json(parsed: ParsedMessage) -> dict[str, object]:
    """What is kept of the parse: everything but the search text, which has its own column."""
    data = parsed.to_json()
    data.pop("text", None)
    return data


def body_row(raw: bytes, parsed: ParsedMessage, now: dt.datetime) -> dict[str, object]:
    """The message_bodies row for one message, in column order. The one definition that
    delivery, APPEND, group commit and bulk loading all store. It carries the POP3 size
    (`wire_size`, relate.message.crlf), so POP3 reads no body for STAT or LIST. It leaves
    `indexed` to the column's default: on PostgreSQL a new body is stored unindexed, so its
    commit computes no search document, and relate.store.searchindex indexes it afterwards."""
    addresses = [parsed.from_addr, *(a for _, a in parsed.to), *(a for _, a in parsed.cc)]
    names = [n for n, _ in (*parsed.to, *parsed.cc) if n]
    return {
        "sha256": hashlib.sha256(raw).hexdigest(),
        "size": len(raw),
        "raw": raw,
        "meta": meta_json(parsed),
        "message_id": (parsed.message_id or "")[:998] or None,
        "subject": parsed.subject,
        "from_address": parsed.from_addr[:320],
        "from_display": parsed.from_display[:500],
        "to_text": " ".join([*addresses, *names]),
        "sent_date": parsed.date,
        "preview": parsed.preview[:400],
        "has_attachments": parsed.has_attachments,
        "attachment_count": len(parsed.attachments),
        "thread_id": parsed.thread_id[:64],
        "search_text": parsed.text,
        "created_at": now,
        "wire_size": crlf.wire_size(raw),
    }


def _store_body(t: Tx, raw: bytes, parsed: ParsedMessage) -> int:
    row = body_row(raw, parsed, dt.datetime.now(dt.UTC))
    digest = str(row["sha256"])
    insert_ignore(t, MessageBody, row, ["sha256"])
    q = select(MessageBody.id).where(MessageBody.sha256 == digest)
    if t.postgres:
        q = q.with_for_update(read=True)  # keep a concurrent body GC away until we commit
    return int(t.s.scalar(q))  # type: ignore[arg-type]


def _insert_entry(
    t: Tx,
    user_id: int,
    mailbox_id: int,
    body_id: int,
    size: int,
    thread_id: str,
    uid: int,
    modseq: int,
    internal_date: dt.datetime,
    system: dict[str, bool],
    keywords: list[str],
    envelope_from: str | None = None,
) -> Entry:
    entry = Entry(
        envelope_from=envelope_from,
        user_id=user_id,
        mailbox_id=mailbox_id,
        body_id=body_id,
        uid=uid,
        modseq=modseq,
        size=size,
        thread_id=thread_id,
        internal_date=internal_date,
        seen=system.get("seen", False),
        answered=system.get("answered", False),
        flagged=system.get("flagged", False),
        deleted=system.get("deleted", False),
        draft=system.get("draft", False),
        keywords=keywords,
    )
    t.s.add(entry)
    t.s.flush()
    return entry


def summary(entry: Entry | EntryInfo, parsed: ParsedMessage) -> dict[str, object]:
    """The small JSON the API and the internal notification carry for a new message."""
    return {
        "id": entry.id,
        "from": parsed.from_addr,
        "fromDisplay": parsed.from_display,
        "subject": parsed.subject[:300],
        "receivedAt": entry.internal_date.isoformat().replace("+00:00", "Z"),
        "hasAttachments": parsed.has_attachments,
    }


def _mailbox_for(t: Tx, user_id: int, name: str | None, special: str | None) -> Mailbox:
    """Where a delivery goes: the mailbox `name`, else the one with the role `special` (created
    again when the user deleted it: a filter's delete still goes to Trash), else INBOX."""
    q = select(Mailbox).where(Mailbox.user_id == user_id)
    box = None
    if name:
        box = t.s.scalar(q.where(Mailbox.name == name))
    if box is None and special in DEFAULT_NAMES:
        box = special_mailbox(t, user_id, special)
    elif box is None and special:
        box = t.s.scalar(q.where(Mailbox.special_use == special))
    if box is None:
        box = t.s.scalar(q.where(Mailbox.name == "INBOX"))
    if box is None:
        raise NotFound("user has no INBOX")
    return box


# -- delivery ------------------------------------------------------------------------------


def deliver(raw: bytes, envelope: Envelope, *, parsed: ParsedMessage | None = None) -> Delivered:
    """Store one message for every local recipient (after their filters) and, for an
    authenticated submission, a \\Seen copy in the sender's Sent. Returns after commit."""
    parsed = parsed or parse_message(raw)
    return retrying(lambda: _deliver(raw, envelope, parsed))


def _deliver(raw: bytes, envelope: Envelope, parsed: ParsedMessage) -> Delivered:
    now = dt.datetime.now(dt.UTC)
    with transaction() as t:
        users: list[int] = []
        if envelope.recipients:
            wanted = sorted({r.lower() for r in envelope.recipients})
            rows = t.s.execute(
                select(Address.address, Address.user_id)
                .join(Domain, Domain.name == Address.domain)
                .where(Address.address.in_(wanted), Address.confirmed.is_(True))
            ).all()
            by_addr = {a: u for a, u in rows}
            for rcpt in envelope.recipients:
                uid_ = by_addr.get(rcpt.lower())
                if uid_ is not None and uid_ not in users:
                    users.append(uid_)
            users.sort()  # lock mailbox rows in one global order: no deadlocks between deliveries
        if not users and envelope.sender_user_id is None:
            return Delivered(body_id=0, size=len(raw), entries=())
        body_id = _store_body(t, raw, parsed)
        stored: list[tuple[int, int, int]] = []
        summaries: list[tuple[int, dict[str, object]]] = []
        for user_id in users:
            plan = filters.plan_for(t, user_id, parsed)
            box = _mailbox_for(t, user_id, plan.mailbox, plan.special_use)
            first, modseq = allocate(t, box.id, 1)
            system = {"seen": plan.seen, "flagged": plan.flagged}
            entry = _insert_entry(t, user_id, box.id, body_id, len(raw), parsed.thread_id, first, modseq, now, system,
                                  plan.keywords, envelope.mail_from)
            stored.append((user_id, box.id, first))
            summaries.append((user_id, summary(entry, parsed)))
            t.emit(ev.Change(ev.NEW, user_id, box.id, (first,), modseq, box.name, origin=envelope.origin,
                             extra=summaries[-1][1]))
        sent: tuple[int, int, int] | None = None
        if envelope.sender_user_id is not None:
            box = _mailbox_for(t, envelope.sender_user_id, None, "\\Sent")
            first, modseq = allocate(t, box.id, 1)
            entry = _insert_entry(t, envelope.sender_user_id, box.id, body_id, len(raw), parsed.thread_id, first, modseq,
                                  now, {"seen": True}, [], envelope.mail_from)
            sent = (envelope.sender_user_id, box.id, first)
            summaries.append((envelope.sender_user_id, summary(entry, parsed)))
            t.emit(ev.Change(ev.NEW, envelope.sender_user_id, box.id, (first,), modseq, box.name,
                             origin=envelope.origin, extra=summaries[-1][1]))
    return Delivered(body_id=body_id, size=len(raw), entries=tuple(stored), sent_entry=sent, user_ids=tuple(users),
                     summaries=tuple(summaries))


def append(
    user_id: int,
    mailbox_id: int,
    raw: bytes,
    flags: Iterable[str] = (),
    internal_date: dt.datetime | None = None,
    *,
    origin: str = "",
    parsed: ParsedMessage | None = None,
    envelope_from: str | None = None,
) -> tuple[MailboxInfo, EntryInfo]:
    """IMAP APPEND / import: add a message to one mailbox. Returns after commit."""
    system, keywords = split_flags(flags)
    parsed = parsed or parse_message(raw)
    when = (internal_date or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    if bare_cursors():
        return retrying(lambda: _pg_append(user_id, mailbox_id, raw, system, keywords, when, origin, parsed,
                                           envelope_from))
    with transaction() as t:
        body_id = _store_body(t, raw, parsed)  # before the mailbox lock: the body may be big
        box = _claim_modseq(t, user_id, mailbox_id, 1)
        uid, modseq = box.uid_next - 1, box.highest_modseq
        columns = {col: system.get(col, False) for col in _COLUMN_FLAGS}
        entry_id = t.s.execute(
            insert(_ENTRIES).values(
                envelope_from=envelope_from, user_id=user_id, mailbox_id=mailbox_id, body_id=body_id, uid=uid,
                modseq=modseq, size=len(raw), thread_id=parsed.thread_id, internal_date=when, keywords=keywords,
                **columns,
            ).returning(_ENTRIES.c.id)
        ).scalar_one()
        entry = EntryInfo(id=entry_id, mailbox_id=mailbox_id, uid=uid, modseq=modseq, body_id=body_id, size=len(raw),
                          internal_date=when, flags=row_flags(list(columns.values()), keywords),
                          thread_id=parsed.thread_id, envelope_from=envelope_from)
        t.emit(ev.Change(ev.NEW, user_id, mailbox_id, (uid,), modseq, box.name, origin=origin,
                         extra=summary(entry, parsed)))
        return box, entry


_PG_APPEND = (
    # One statement: the body (an existing one is locked, not rewritten, which keeps a
    # concurrent body GC away until we commit), the claim of one UID and a MODSEQ, the entry.
    "WITH body AS (INSERT INTO message_bodies (sha256, size, raw, meta, message_id, subject, from_address, "
    "from_display, to_text, sent_date, preview, has_attachments, attachment_count, thread_id, search_text, created_at, "
    "wire_size) "
    "VALUES (%(sha256)s, %(size)s, %(raw)s, %(meta)s::jsonb, %(message_id)s, %(subject)s, %(from_address)s, "
    "%(from_display)s, %(to_text)s, %(sent_date)s, %(preview)s, %(has_attachments)s, %(attachment_count)s, "
    "%(thread_id)s, %(search_text)s, %(created_at)s, %(wire_size)s) "
    "ON CONFLICT (sha256) DO UPDATE SET sha256 = EXCLUDED.sha256 RETURNING id), "
    "box AS ({claim}), "
    "entry AS (INSERT INTO entries (user_id, mailbox_id, body_id, uid, modseq, size, thread_id, internal_date, "
    "envelope_from, seen, answered, flagged, deleted, draft, keywords) "
    "SELECT %(b_user)s, box.id, body.id, box.uid_next - 1, box.highest_modseq, %(size)s, %(thread_id)s, %(when)s, "
    "%(envelope_from)s, %(seen)s, %(answered)s, %(flagged)s, %(deleted)s, %(draft)s, %(keywords)s::jsonb "
    "FROM box, body RETURNING id, body_id) "
    "SELECT box.*, entry.id, entry.body_id, {note}::text FROM box, entry"
)


def _pg_append(user_id: int, mailbox_id: int, raw: bytes, system: dict[str, bool], keywords: list[str],
               when: dt.datetime, origin: str, parsed: ParsedMessage, envelope_from: str | None,
               ) -> tuple[MailboxInfo, EntryInfo]:
    """append() as one message to PostgreSQL: the one statement of _PG_APPEND, which also
    NOTIFYs; committed when the answer comes back."""
    params: dict[str, Any] = body_row(raw, parsed, dt.datetime.now(dt.UTC))
    params["meta"] = json.dumps(params["meta"])
    columns = {col: system.get(col, False) for col in _COLUMN_FLAGS}
    flags = row_flags(list(columns.values()), keywords)
    params.update(columns, b_mailbox=mailbox_id, b_user=user_id, b_uids=1, when=when, envelope_from=envelope_from,
                  keywords=json.dumps(keywords), thread_id=parsed.thread_id)
    marked = EntryInfo(id=pgnotify.MARK_ID, mailbox_id=mailbox_id, uid=pgnotify.MARK_UID, modseq=pgnotify.MARK_MODSEQ,
                       body_id=0, size=len(raw), internal_date=when, flags=flags, thread_id=parsed.thread_id,
                       envelope_from=envelope_from)
    change = ev.Change(ev.NEW, user_id, mailbox_id, (pgnotify.MARK_UID,), pgnotify.MARK_MODSEQ, pgnotify.MARK_NAME,
                       origin=origin, extra=summary(marked, parsed), entries=(pgnotify.MARK_ENTRIES,), complete=True)
    note = pgnotify.payload(change, [
        (pgnotify.UIDS, "'[[' || (box.uid_next - 1) || ',' || (box.uid_next - 1) || ']]'"),
        (pgnotify.MODSEQ, "box.highest_modseq"), (pgnotify.NAME, "to_json(box.name)"), (pgnotify.ID, "entry.id"),
        (pgnotify.ENTRIES, "json_build_array(json_build_array(entry.id, box.uid_next - 1, entry.body_id, "
                           "%(size)s::bigint, to_json(%(when)s::timestamptz), %(event_bits)s::integer, "
                           "%(keywords)s::jsonb, %(thread_id)s::text, %(envelope_from)s::text))"),
    ])
    params.update(note.params, event_bits=sum(1 << i for i, on in enumerate(columns.values()) if on))
    rows = pg_write([_PG_APPEND.replace("{claim}", _pg_claim_sql()).replace("{note}", note.notify("box, entry"))],
                    params)
    if not rows:
        raise NotFound("no such mailbox")
    row = rows[0]
    box = MailboxInfo(id=row[0], user_id=row[1], name=row[2], special_use=row[3], uid_validity=row[4],
                      uid_next=row[5], highest_modseq=row[6], subscribed=bool(row[7]))
    entry = EntryInfo(id=int(row[8]), mailbox_id=mailbox_id, uid=box.uid_next - 1, modseq=box.highest_modseq,
                      body_id=int(row[9]), size=len(raw), internal_date=when, flags=flags, thread_id=parsed.thread_id,
                      envelope_from=envelope_from)
    return box, entry


# -- reading -------------------------------------------------------------------------------


def list_entries(user_id: int, mailbox_id: int) -> list[EntryInfo]:
    """Every entry of a mailbox in UID order (the IMAP SELECT view)."""
    if bare_cursors():
        with pg_read(prepare=True) as cursor:
            cursor.execute(f"SELECT {_PG_ENTRY_COLUMNS} FROM entries WHERE mailbox_id = %s AND user_id = %s "
                           "ORDER BY uid", (mailbox_id, user_id))
            return [row_info(_pg_row(r)) for r in cursor.fetchall()]
    with read() as s:
        rows = s.execute(
            select(*_ENTRY_COLUMNS).where(Entry.mailbox_id == mailbox_id, Entry.user_id == user_id).order_by(Entry.uid)
        )
        return [row_info(r) for r in rows]


_PG_VIEW = (
    f"WITH box AS (SELECT {PG_MAILBOX_COLUMNS} FROM mailboxes m WHERE m.user_id = %(u)s AND m.name = %(n)s) "
    f"SELECT box.*, {_PG_RETURNED} FROM box LEFT JOIN entries e ON e.mailbox_id = box.id AND e.user_id = %(u)s "
    "ORDER BY e.uid"
)


def open_view(user_id: int, name: str) -> tuple[MailboxInfo, list[EntryInfo]]:
    """The mailbox named `name` and every entry of it in UID order (the IMAP SELECT view);
    on PostgreSQL both in one statement (one snapshot, one round trip)."""
    name = normalise_name(name)
    if not bare_cursors():
        box = get_mailbox(user_id, name)
        return box, list_entries(user_id, box.id)
    with pg_read(prepare=True) as cursor:
        cursor.execute(_PG_VIEW, {"u": user_id, "n": name})
        rows = cursor.fetchall()
    if not rows:
        raise NotFound(f"no mailbox named {name}")
    return pg_info(rows[0]), [row_info(_pg_row(r[8:])) for r in rows if r[8] is not None]


def count_above(user_id: int, mailbox_id: int, uid: int) -> int:
    """How many entries of the mailbox have a UID above `uid` (STATUS RECENT), in one statement."""
    if bare_cursors():
        with pg_read(prepare=True) as cursor:
            cursor.execute("SELECT count(*) FROM entries WHERE mailbox_id = %s AND user_id = %s AND uid > %s",
                           (mailbox_id, user_id, uid))
            return int(cursor.fetchone()[0])
    with read() as s:
        return int(s.scalar(select(func.count(Entry.id)).where(Entry.mailbox_id == mailbox_id, Entry.user_id == user_id,
                                                               Entry.uid > uid)) or 0)


def get_entries(user_id: int, mailbox_id: int, uids: Sequence[int]) -> list[EntryInfo]:
    out: list[EntryInfo] = []
    with read() as s:
        for chunk in _chunks(sorted(set(uids))):
            rows = s.execute(
                select(*_ENTRY_COLUMNS)
                .where(Entry.mailbox_id == mailbox_id, Entry.user_id == user_id, Entry.uid.in_(chunk))
                .order_by(Entry.uid)
            )
            out.extend(row_info(r) for r in rows)
    return out


def get_entry(user_id: int, entry_id: int) -> EntryInfo:
    with read() as s:
        e = s.get(Entry, entry_id)
        if e is None or e.user_id != user_id:
            raise NotFound("no such message")
        return entry_info(e)


def raw_message(body_id: int) -> bytes:
    if bare_cursors():
        with pg_read(prepare=True) as cursor:
            cursor.execute("SELECT raw FROM message_bodies WHERE id = %s", (body_id,))
            row = cursor.fetchone()
        if row is None:
            raise NotFound("no such message body")
        return bytes(row[0])
    with read() as s:
        raw = s.scalar(select(MessageBody.raw).where(MessageBody.id == body_id))
        if raw is None:
            raise NotFound("no such message body")
        return bytes(raw)


def parsed_message(body_id: int) -> ParsedMessage:
    if bare_cursors():
        with pg_read(prepare=True) as cursor:
            cursor.execute("SELECT meta::text FROM message_bodies WHERE id = %s", (body_id,))
            row = cursor.fetchone()
        if row is None or row[0] is None:
            raise NotFound("no such message body")
        return ParsedMessage.from_json(json.loads(row[0]))
    with read() as s:
        meta = s.scalar(select(MessageBody.meta).where(MessageBody.id == body_id))
        if meta is None:
            raise NotFound("no such message body")
        return ParsedMessage.from_json(meta)


def changes_since(user_id: int, mailbox_id: int, modseq: int) -> tuple[list[EntryInfo], list[int]]:
    """Entries changed after `modseq` and UIDs expunged after it (RFC 7162 CHANGEDSINCE/VANISHED)."""
    found = mailbox_changes(user_id, mailbox_id, modseq)
    if found is None:
        return [], []
    return found.changed, found.vanished


@dataclass(frozen=True)
class MailboxChanges:
    highest_modseq: int  # the mailbox's HIGHESTMODSEQ in the same snapshot as the changes
    changed: list[EntryInfo]  # entries with a MODSEQ above the one asked, in UID order
    vanished: list[int]  # UIDs expunged above it, ascending


_KIND_MAILBOX, _KIND_ENTRY, _KIND_EXPUNGED = 0, 1, 2


def mailbox_changes(user_id: int, mailbox_id: int, modseq: int) -> MailboxChanges | None:
    """What changed in a mailbox after `modseq`, and its HIGHESTMODSEQ, in one statement (one
    snapshot, one round trip). None when the mailbox does not exist (or is not the user's)."""
    if bare_cursors():
        return _pg_mailbox_changes(user_id, mailbox_id, modseq)
    blank = [null()] * (len(_ENTRY_COLUMNS) - 4)
    entries = select(literal(_KIND_ENTRY).label("kind"), *_ENTRY_COLUMNS).where(
        Entry.mailbox_id == mailbox_id, Entry.user_id == user_id, Entry.modseq > modseq
    )
    box = select(literal(_KIND_MAILBOX), null(), null(), null(), Mailbox.highest_modseq, *blank).where(
        Mailbox.id == mailbox_id, Mailbox.user_id == user_id
    )
    gone = select(literal(_KIND_EXPUNGED), null(), null(), Expunged.uid, null(), *blank).where(
        Expunged.mailbox_id == mailbox_id, Expunged.modseq > modseq
    )
    statement: Any = union_all(entries, box, gone)
    with read() as s:
        return _fold_changes(s.execute(statement), lambda row: row)


def _fold_changes(rows: Any, entry_row: Any) -> MailboxChanges | None:
    """The rows of a changes statement (kind, then columns) as MailboxChanges; None when the
    mailbox row is missing. `entry_row` turns an entry's columns into what row_info reads."""
    highest: int | None = None
    changed: list[EntryInfo] = []
    vanished: list[int] = []
    for row in rows:
        kind = row[0]
        if kind == _KIND_ENTRY:
            changed.append(row_info(entry_row(row[1:])))
        elif kind == _KIND_MAILBOX:
            highest = int(row[4])
        else:
            vanished.append(int(row[3]))
    if highest is None:
        return None
    changed.sort(key=lambda e: e.uid)
    vanished.sort()
    return MailboxChanges(highest, changed, vanished)


_PG_CHANGES = (
    f"SELECT 1, {_PG_ENTRY_COLUMNS} FROM entries WHERE mailbox_id = %(m)s AND user_id = %(u)s AND modseq > %(s)s "
    "UNION ALL SELECT 0, NULL, NULL, NULL, highest_modseq, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, "
    "NULL, NULL FROM mailboxes WHERE id = %(m)s AND user_id = %(u)s "
    "UNION ALL SELECT 2, NULL, NULL, uid, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL "
    "FROM expunged WHERE mailbox_id = %(m)s AND modseq > %(s)s"
)


def _pg_mailbox_changes(user_id: int, mailbox_id: int, modseq: int) -> MailboxChanges | None:
    with pg_read(prepare=True) as cursor:
        cursor.execute(_PG_CHANGES, {"m": mailbox_id, "u": user_id, "s": modseq})
        rows = cursor.fetchall()
    return _fold_changes(rows, _pg_row)


# -- mutation ------------------------------------------------------------------------------


def _owned_box(t: Tx, user_id: int, mailbox_id: int) -> Mailbox:
    box = t.s.get(Mailbox, mailbox_id)
    if box is None or box.user_id != user_id:
        raise NotFound("no such mailbox")
    return box


class _NothingChanged(Exception):
    """Raised inside a transaction to roll it back (and its MODSEQ claim) when it changed nothing."""


_CLAIM = (
    update(Mailbox)
    .where(Mailbox.id == bindparam("b_mailbox"), Mailbox.user_id == bindparam("b_user"))
    .values(uid_next=Mailbox.uid_next + bindparam("b_uids"), highest_modseq=Mailbox.highest_modseq + literal_column("1"))
    .returning(Mailbox.id, Mailbox.user_id, Mailbox.name, Mailbox.special_use, Mailbox.uid_validity,
               Mailbox.uid_next, Mailbox.highest_modseq, Mailbox.subscribed)
)
_claim_sql: list[str] = []  # _CLAIM compiled for PostgreSQL, once


def _pg_claim_sql() -> str:
    """_CLAIM for a bare cursor (pyformat parameters b_mailbox, b_user, b_uids)."""
    if not _claim_sql:
        _claim_sql.append(str(_CLAIM.compile(dialect=get_engine().dialect)))
    return _claim_sql[0]


def _claim_modseq(t: Tx, user_id: int, mailbox_id: int, uids: int = 0) -> MailboxInfo:
    """Lock the user's mailbox row by reserving `uids` UIDs and one new MODSEQ (one statement).

    Returns the mailbox as updated: its `highest_modseq` is this transaction's MODSEQ and its
    UIDs are `uid_next - uids` .. `uid_next - 1`. Every writer takes this lock before it
    touches entries, so concurrent writers queue here and never deadlock on entry rows.
    """
    params = {"b_mailbox": mailbox_id, "b_user": user_id, "b_uids": uids}
    row = t.s.execute(_CLAIM, params).one_or_none()
    if row is None:
        raise NotFound("no such mailbox")
    return MailboxInfo(id=row[0], user_id=row[1], name=row[2], special_use=row[3], uid_validity=row[4],
                       uid_next=row[5], highest_modseq=row[6], subscribed=bool(row[7]))


def _new_flags(row: Sequence[Any], mode: str, system: dict[str, bool], keywords: list[str],
               kw_lower: set[str]) -> tuple[tuple[bool, ...], list[str]] | None:
    """The entry's system flag columns and keywords after the STORE, or None if unchanged."""
    current = tuple(bool(v) for v in row[7:12])
    if mode == "set":
        columns = tuple(system.get(col, False) for col in _COLUMN_FLAGS)
    elif mode == "add":
        columns = tuple(cur or system.get(col, False) for cur, col in zip(current, _COLUMN_FLAGS, strict=True))
    else:
        columns = tuple(cur and not system.get(col, False) for cur, col in zip(current, _COLUMN_FLAGS, strict=True))
    current_kw = list(row[12] or [])
    if mode == "set":
        new_kw = list(keywords)
    elif mode == "add":
        have = {k.lower() for k in current_kw}
        new_kw = sorted(current_kw + [k for k in keywords if k.lower() not in have], key=str.lower)
    else:
        new_kw = [k for k in current_kw if k.lower() not in kw_lower]
    if columns == current and sorted(new_kw, key=str.lower) == sorted(current_kw, key=str.lower):
        return None
    return columns, new_kw


_FlagUpdate = tuple[int, tuple[bool, ...], list[str]]  # entry id, system flag columns, keywords


@dataclass
class _FlagPlan:
    """What one STORE does to the rows it read (in _ENTRY_COLUMNS order)."""

    mode: str
    system: dict[str, bool]
    keywords: list[str]
    unchanged_since: int | None
    updates: list[_FlagUpdate] = dataclasses.field(default_factory=list)
    changed: list[EntryInfo] = dataclasses.field(default_factory=list)
    failed: list[int] = dataclasses.field(default_factory=list)

    def start(self) -> None:
        """Forget what an earlier attempt planned."""
        self.updates.clear()
        self.changed.clear()
        self.failed.clear()

    def add(self, row: Sequence[Any], modseq: int) -> None:
        if self.unchanged_since is not None and row[3] > self.unchanged_since:
            self.failed.append(row[2])
            return
        new = _new_flags(row, self.mode, self.system, self.keywords, {k.lower() for k in self.keywords})
        if new is None:
            return
        columns, new_kw = new
        self.updates.append((row[0], columns, new_kw))
        self.changed.append(dataclasses.replace(row_info(row), modseq=modseq, flags=row_flags(columns, new_kw)))


def _write_flags(t: Tx, modseq: int, updates: list[_FlagUpdate]) -> None:
    """Set the flags of many entries at once (SQLite: one executemany)."""
    t.s.connection().execute(
        update(_ENTRIES).where(_ENTRIES.c.id == bindparam("b_id")),
        [
            {"b_id": entry_id, **dict(zip(_COLUMN_FLAGS, columns, strict=True)), "keywords": kw, "modseq": modseq}
            for entry_id, columns, kw in updates
        ],
    )


def store_flags(
    user_id: int,
    mailbox_id: int,
    uids: Sequence[int],
    mode: str,
    flags: Iterable[str],
    *,
    unchanged_since: int | None = None,
    origin: str = "",
) -> FlagResult:
    """Set (`mode`='set'), add ('add') or remove ('remove') flags and keywords on `uids`."""
    if mode not in ("set", "add", "remove"):
        raise InvalidInput(f"bad flag mode {mode}")
    system, keywords = split_flags(flags)
    wanted = sorted(set(uids))
    plan = _FlagPlan(mode, system, keywords, unchanged_since)
    if bare_cursors():
        return retrying(lambda: _pg_store_flags(user_id, mailbox_id, wanted, plan, origin))
    try:
        with transaction() as t:
            _store_flags_orm(t, user_id, mailbox_id, wanted, plan, origin)
    except _NothingChanged:
        return FlagResult([], plan.failed, 0)
    return FlagResult(plan.changed, plan.failed, plan.changed[0].modseq)




def _pg_lock_if(condition: str) -> str:
    """The first statement of a STORE or EXPUNGE: lock the user's mailbox row, but only when
    `condition` (SQL on this statement's snapshot) says the write will change something. A
    write that changes nothing then takes no lock, gets no transaction id and commits without
    a WAL flush, and the write's second statement does nothing (`_PG_HELD`): it answers as of
    this snapshot, when it was a no-op."""
    return (f"SELECT 1 FROM mailboxes AS m WHERE m.id = %(m)s AND m.user_id = %(u)s AND ({condition}) "
            "FOR NO KEY UPDATE OF m")


# In the second statement: whether the first one locked the mailbox (locking a row is what
# gives this transaction its id; nothing else before it writes).
_PG_HELD = "held AS (SELECT 1 WHERE txid_current_if_assigned() IS NOT NULL)"
# An entry's keywords as a JSON list (a stored JSON null reads as no keywords).
_PG_KEYWORDS = "CASE WHEN jsonb_typeof(e.keywords) = 'array' THEN e.keywords ELSE '[]'::jsonb END"


def _pg_new_flags(mode: str) -> tuple[list[str], str]:
    """SQL for an entry's five system flag columns and its keywords after a STORE (`_new_flags`
    in SQL). Keywords compare case-insensitively with lower(), sort as `str.lower` sorts (code
    point order of the lowered text), and keep their first spelling. lower() is Python's
    str.lower for ASCII, which is all an IMAP keyword (an atom) can be; for other keywords
    (the API's labels) the database's locale decides what differs only in case."""
    if mode == "set":
        return [f"CAST(%({col})s AS boolean)" for col in _COLUMN_FLAGS], "CAST(%(kw)s AS jsonb)"
    if mode == "add":
        keywords = (
            "(SELECT COALESCE(jsonb_agg(a.k ORDER BY lower(a.k) COLLATE \"C\"), '[]'::jsonb) FROM ("
            f"SELECT t.k FROM jsonb_array_elements_text({_PG_KEYWORDS}) AS t(k) UNION ALL "
            "SELECT r.k FROM unnest(CAST(%(kws)s AS text[])) AS r(k) WHERE lower(r.k) NOT IN "
            f"(SELECT lower(x.k) FROM jsonb_array_elements_text({_PG_KEYWORDS}) AS x(k))) AS a)"
        )
        return [f"(e.{col} OR %({col})s)" for col in _COLUMN_FLAGS], keywords
    keywords = (
        f"(SELECT COALESCE(jsonb_agg(t.k ORDER BY t.n), '[]'::jsonb) FROM jsonb_array_elements_text({_PG_KEYWORDS}) "
        "WITH ORDINALITY AS t(k, n) WHERE lower(t.k) <> ALL (SELECT lower(r.k) FROM unnest(CAST(%(kws)s AS text[])) AS r(k)))"
    )
    return [f"(e.{col} AND NOT %({col})s)" for col in _COLUMN_FLAGS], keywords


_PG_BLANK = ", ".join(["NULL"] * len(_ENTRY_COLUMNS))
_KIND_FAILED = 2  # a row of _pg_store_sql: a UID refused by UNCHANGEDSINCE


def _pg_store_sql(mode: str, since: bool, note: str) -> tuple[str, str]:
    """STORE as one message: the lock (when something will change, `_pg_lock_if`); then one
    statement that computes the new flags of the entries as they are once the lock is ours,
    writes the changed ones with a new MODSEQ (none is spent when nothing changes) and
    NOTIFYs. Rows: (kind, name, MODSEQ, -, entry...)."""
    columns, keywords = _pg_new_flags(mode)
    new = ", ".join(f"{sql} AS n_{col}" for sql, col in zip(columns, _COLUMN_FLAGS, strict=True))
    old = ", ".join(f"e.{col} AS o_{col}" for col in _COLUMN_FLAGS)
    changes = " OR ".join(f"n_{col} IS DISTINCT FROM o_{col}" for col in _COLUMN_FLAGS) + (
        " OR NOT (n_keywords @> o_keywords AND o_keywords @> n_keywords "
        "AND jsonb_array_length(n_keywords) = jsonb_array_length(o_keywords))")
    assignments = ", ".join(f"{col} = chg.n_{col}" for col in _COLUMN_FLAGS)
    named = "e.mailbox_id = %(m)s AND e.uid = ANY(%(uids)s)"
    unchanged = " AND e.modseq <= %(since)s" if since else ""
    computed = f"e.id, {new}, {keywords} AS n_keywords, {old}, {_PG_KEYWORDS} AS o_keywords"
    lock_if = f"EXISTS (SELECT 1 FROM (SELECT {computed} FROM entries AS e WHERE {named}{unchanged}) AS c WHERE {changes})"
    wanted = f"{named} AND EXISTS (SELECT 1 FROM box) AND EXISTS (SELECT 1 FROM held)"
    failed = ""
    if since:
        lock_if += f" OR EXISTS (SELECT 1 FROM entries AS e WHERE {named} AND e.modseq > %(since)s)"
        failed = (f" UNION ALL SELECT {_KIND_FAILED}, NULL, NULL, NULL, NULL, NULL, e.uid, "
                  f"{', '.join(['NULL'] * (len(_ENTRY_COLUMNS) - 3))} FROM entries AS e "
                  f"WHERE {wanted} AND e.modseq > %(since)s")
    return (
        _pg_lock_if(lock_if),
        f"WITH {_PG_HELD}, box AS (SELECT id, name, highest_modseq FROM mailboxes WHERE id = %(m)s AND user_id = %(u)s), "
        f"cur AS (SELECT {computed} FROM entries AS e WHERE {wanted}{unchanged}), "
        f"chg AS (SELECT * FROM cur WHERE {changes}), "
        "bump AS (UPDATE mailboxes SET highest_modseq = highest_modseq + 1 "
        "WHERE id = %(m)s AND EXISTS (SELECT 1 FROM chg) RETURNING highest_modseq), "
        f"upd AS (UPDATE entries AS e SET {assignments}, keywords = chg.n_keywords, modseq = bump.highest_modseq "
        f"FROM chg, bump WHERE e.id = chg.id RETURNING {_PG_RETURNED}) "
        f"SELECT {_KIND_ENTRY}, NULL, NULL, NULL, upd.* FROM upd "
        f"UNION ALL SELECT {_KIND_MAILBOX}, box.name, COALESCE(bump.highest_modseq, box.highest_modseq), "
        f"{note}::text, {_PG_BLANK} FROM box LEFT JOIN bump ON true" + failed
    )


def _pg_store_flags(user_id: int, mailbox_id: int, uids: list[int], plan: _FlagPlan, origin: str) -> FlagResult:
    """store_flags() as one message to PostgreSQL (see _pg_store_sql)."""
    change = ev.Change(ev.FLAGS, user_id, mailbox_id, (pgnotify.MARK_UID,), pgnotify.MARK_MODSEQ, pgnotify.MARK_NAME,
                       origin=origin, entries=(pgnotify.MARK_ENTRIES,), complete=True)
    entries = (f"(SELECT json_agg(json_build_array(uid, {_pg_flag_bits()}, CASE WHEN jsonb_typeof(keywords) = 'array' "
               "THEN keywords ELSE '[]'::jsonb END) ORDER BY uid) FROM upd)")
    note = pgnotify.payload(change, [(pgnotify.UIDS, pgnotify.uid_ranges("upd")),
                                     (pgnotify.MODSEQ, "bump.highest_modseq"), (pgnotify.NAME, "to_json(box.name)"),
                                     (pgnotify.ENTRIES, entries)])
    params: dict[str, Any] = {"m": mailbox_id, "u": user_id, "uids": uids, "since": plan.unchanged_since,
                              "kw": json.dumps(plan.keywords), "kws": plan.keywords, **note.params}
    params.update({col: plan.system.get(col, False) for col in _COLUMN_FLAGS})
    sql = _pg_store_sql(plan.mode, plan.unchanged_since is not None, note.notify("bump, box"))
    found = False
    modseq = 0
    changed: list[EntryInfo] = []
    failed: list[int] = []
    for row in pg_write(sql, params):
        if row[0] == _KIND_MAILBOX:
            found, modseq = True, int(row[2])
        elif row[0] == _KIND_ENTRY:
            changed.append(row_info(_pg_row(row[4:])))
        else:
            failed.append(int(row[6]))
    if not found:
        raise NotFound("no such mailbox")
    changed.sort(key=lambda e: e.uid)
    failed.sort()
    return FlagResult(changed, failed, modseq if changed else 0)


def _store_flags_orm(t: Tx, user_id: int, mailbox_id: int, uids: list[int], plan: _FlagPlan, origin: str) -> None:
    plan.start()
    box = _claim_modseq(t, user_id, mailbox_id)
    for chunk in _chunks(uids):
        rows = t.s.execute(
            select(*_ENTRY_COLUMNS).where(Entry.mailbox_id == mailbox_id, Entry.uid.in_(chunk)).order_by(Entry.uid)
        )
        for row in rows:
            plan.add(row, box.highest_modseq)
    if not plan.updates:
        raise _NothingChanged()
    _write_flags(t, box.highest_modseq, plan.updates)
    t.emit(ev.Change(ev.FLAGS, user_id, mailbox_id, tuple(c.uid for c in plan.changed), box.highest_modseq,
                     box.name, origin=origin))


def copy(user_id: int, src_mailbox_id: int, uids: Sequence[int], dst_mailbox_id: int, *, origin: str = "") -> CopyResult:
    with transaction() as t:
        return _copy(t, user_id, src_mailbox_id, uids, dst_mailbox_id, origin)


def _copy(t: Tx, user_id: int, src_id: int, uids: Sequence[int], dst_id: int, origin: str) -> CopyResult:
    _owned_box(t, user_id, src_id)
    dst = _owned_box(t, user_id, dst_id)
    for box_id in sorted({src_id, dst_id}):  # one global lock order: no deadlock between copies
        lock_mailbox(t, box_id)
    sources: list[Entry] = []
    for chunk in _chunks(sorted(set(uids))):
        sources.extend(t.s.scalars(select(Entry).where(Entry.mailbox_id == src_id, Entry.uid.in_(chunk)).order_by(Entry.uid)))
    if not sources:
        return CopyResult(dst.uid_validity, [])
    first, modseq = allocate(t, dst_id, len(sources))
    pairs = []
    for offset, e in enumerate(sources):
        new_uid = first + offset
        t.s.add(
            Entry(
                user_id=user_id, mailbox_id=dst_id, body_id=e.body_id, uid=new_uid, modseq=modseq, size=e.size,
                thread_id=e.thread_id, internal_date=e.internal_date, envelope_from=e.envelope_from, seen=e.seen, answered=e.answered,
                flagged=e.flagged, deleted=e.deleted, draft=e.draft, keywords=list(e.keywords or []),
            )
        )
        pairs.append((e.uid, new_uid))
    t.s.flush()
    t.emit(ev.Change(ev.NEW, user_id, dst_id, tuple(p[1] for p in pairs), modseq, dst.name, origin=origin))
    return CopyResult(dst.uid_validity, pairs)


def _remove(t: Tx, user_id: int, box: Mailbox, uids: list[int], origin: str) -> None:
    if not uids:
        return
    modseq = _bump_modseq(t, box.id)
    ids: list[int] = []
    for chunk in _chunks(uids):
        ids.extend(t.s.scalars(delete(Entry).where(Entry.mailbox_id == box.id, Entry.uid.in_(chunk)).returning(Entry.id)))
    _record_expunged(t, user_id, box.id, box.name, uids, ids, modseq, origin)


def _record_expunged(t: Tx, user_id: int, mailbox_id: int, name: str, uids: list[int], ids: list[int], modseq: int,
                     origin: str) -> None:
    """Remember removed UIDs for VANISHED (RFC 7162 §3.2.10) and announce them."""
    t.s.execute(insert(Expunged), [{"mailbox_id": mailbox_id, "uid": u, "modseq": modseq} for u in uids])
    # The entry ids go along so the API can say which emails went (its ids are entry ids).
    t.emit(ev.Change(ev.EXPUNGE, user_id, mailbox_id, tuple(uids), modseq, name, origin=origin,
                     extra={"ids": sorted(ids)}))


def move(user_id: int, src_mailbox_id: int, uids: Sequence[int], dst_mailbox_id: int, *, origin: str = "") -> CopyResult:
    """RFC 6851 MOVE: copy and expunge the sources in one transaction (atomic)."""
    if src_mailbox_id == dst_mailbox_id:
        raise InvalidInput("source and destination are the same mailbox")
    with transaction() as t:
        result = _copy(t, user_id, src_mailbox_id, uids, dst_mailbox_id, origin)
        src = _owned_box(t, user_id, src_mailbox_id)
        _remove(t, user_id, src, [p[0] for p in result.pairs], origin)
        return result


def expunge(user_id: int, mailbox_id: int, uids: Sequence[int] | None = None, *, only_deleted: bool = True,
            origin: str = "") -> list[int]:
    """Remove messages flagged \\Deleted (optionally only among `uids`; with only_deleted=False,
    exactly `uids`). Returns the removed UIDs in ascending order."""
    return expunge_with_modseq(user_id, mailbox_id, uids, only_deleted=only_deleted, origin=origin)[0]


def expunge_with_modseq(user_id: int, mailbox_id: int, uids: Sequence[int] | None = None, *,
                        only_deleted: bool = True, origin: str = "") -> tuple[list[int], int]:
    """expunge(), and the MODSEQ the removal spent (0 when nothing was removed)."""
    if uids is None and not only_deleted:
        raise InvalidInput("expunging everything needs explicit UIDs")
    if bare_cursors():
        return retrying(lambda: _pg_expunge(user_id, mailbox_id, uids, only_deleted, origin))
    try:
        with transaction() as t:
            box = _claim_modseq(t, user_id, mailbox_id)  # lock, and the MODSEQ of the removal
            q = delete(Entry).where(Entry.mailbox_id == mailbox_id).returning(Entry.uid, Entry.id)
            if only_deleted:
                q = q.where(Entry.deleted.is_(True))
            gone: list[tuple[int, int]] = []
            if uids is None:
                gone = [(r.uid, r.id) for r in t.s.execute(q)]
            else:
                for chunk in _chunks(sorted(set(uids))):
                    gone.extend((r.uid, r.id) for r in t.s.execute(q.where(Entry.uid.in_(chunk))))
            if not gone:
                raise _NothingChanged()
            gone.sort()
            _record_expunged(t, user_id, mailbox_id, box.name, [u for u, _ in gone], [i for _, i in gone],
                             box.highest_modseq, origin)
    except _NothingChanged:
        return [], 0
    return [u for u, _ in gone], box.highest_modseq


def _pg_expunge_sql(only_deleted: bool, some: bool, note: str) -> tuple[str, str]:
    """EXPUNGE as one message: the lock (when there is something to remove, `_pg_lock_if`);
    then one statement that deletes the entries, spends a
    MODSEQ only when it removed any, records the UIDs for VANISHED and NOTIFYs. One row: the
    mailbox name, the MODSEQ (NULL when nothing went), the UIDs and entry ids removed."""
    named = "mailbox_id = %(m)s" + (" AND deleted" if only_deleted else "")
    if some:
        named += " AND uid = ANY(%(uids)s)"
    where = named + " AND EXISTS (SELECT 1 FROM box) AND EXISTS (SELECT 1 FROM held)"
    return (
        _pg_lock_if(f"EXISTS (SELECT 1 FROM entries WHERE {named})"),
        f"WITH {_PG_HELD}, box AS (SELECT id, name FROM mailboxes WHERE id = %(m)s AND user_id = %(u)s), "
        f"gone AS (DELETE FROM entries WHERE {where} RETURNING id, uid), "
        "bump AS (UPDATE mailboxes SET highest_modseq = highest_modseq + 1 "
        "WHERE id = %(m)s AND EXISTS (SELECT 1 FROM gone) RETURNING highest_modseq), "
        "kept AS (INSERT INTO expunged (mailbox_id, uid, modseq) "
        "SELECT %(m)s, gone.uid, bump.highest_modseq FROM gone, bump) "
        f"SELECT box.name, bump.highest_modseq, {note}::text, "
        "(SELECT array_agg(uid ORDER BY uid) FROM gone), (SELECT array_agg(id ORDER BY id) FROM gone) "
        "FROM box LEFT JOIN bump ON true"
    )


def _pg_expunge(user_id: int, mailbox_id: int, uids: Sequence[int] | None, only_deleted: bool,
                origin: str) -> tuple[list[int], int]:
    """expunge() as one message to PostgreSQL (see _pg_expunge_sql)."""
    change = ev.Change(ev.EXPUNGE, user_id, mailbox_id, (pgnotify.MARK_UID,), pgnotify.MARK_MODSEQ,
                       pgnotify.MARK_NAME, origin=origin, extra={"ids": [pgnotify.MARK_ID]}, complete=True)
    note = pgnotify.payload(change, [
        (pgnotify.UIDS, pgnotify.uid_ranges("gone")), (pgnotify.MODSEQ, "bump.highest_modseq"),
        (pgnotify.NAME, "to_json(box.name)"), (f"[{pgnotify.ID}]", pgnotify.id_list("gone")),
    ])
    params = {"m": mailbox_id, "u": user_id, "uids": sorted(set(uids or ())), **note.params}
    rows = pg_write(_pg_expunge_sql(only_deleted, uids is not None, note.notify("bump, box")), params)
    if not rows:
        raise NotFound("no such mailbox")
    return [int(uid) for uid in rows[0][3] or ()], int(rows[0][1] or 0)


def move_all(t: Tx, src: Mailbox, dst: Mailbox) -> None:
    """Move every message of `src` into the (new, empty) `dst`: RENAME INBOX (RFC 9051 §6.3.6)."""
    uids = list(t.s.scalars(select(Entry.uid).where(Entry.mailbox_id == src.id).order_by(Entry.uid)))
    if uids:
        _copy(t, src.user_id, src.id, uids, dst.id, "")
        _remove(t, src.user_id, src, uids, "")


def gc_bodies(older_than: dt.timedelta = dt.timedelta(hours=1)) -> int:
    """Delete stored bodies no entry refers to any more. Returns how many were removed."""
    cutoff = dt.datetime.now(dt.UTC) - older_than
    with transaction() as t:
        orphan = ~select(Entry.id).where(Entry.body_id == MessageBody.id).exists()
        result = t.s.execute(delete(MessageBody).where(orphan, MessageBody.created_at < cutoff))
        return rowcount(result)


def count_entries(user_id: int) -> int:
    with read() as s:
        return int(s.scalar(select(func.count(Entry.id)).where(Entry.user_id == user_id)) or 0)


