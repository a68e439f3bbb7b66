"""Messages: delivery, APPEND, flags and keywords, COPY, MOVE, EXPUNGE.

Invariants:
- UIDs and MODSEQs are allocated by one UPDATE ... RETURNING on the mailbox row, inside the
  transaction that inserts or changes the entries: the row lock serialises writers to one
  mailbox across processes and hosts, so UIDs ascend strictly in commit order.
- The raw bytes are stored exactly as given, once per distinct content (SHA-256), and parsed
  once here; FETCH and the API read the stored metadata.
- Each user's entry is independent: flags, moves and deletes touch only that user's rows.
- Every mutation emits change events through its transaction (see relate.store.session).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import delete, func, insert, select, text

from relate.db.models import Address, Domain, Entry, Expunged, Mailbox, MessageBody
from relate.message import ParsedMessage, parse_message
from relate.store import events as ev
from relate.store import filters
from relate.store.errors import InvalidInput, NotFound
from relate.store.mailboxes import lock_mailbox
from relate.store.session import Tx, read, retrying, transaction
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
    delivery, APPEND, group commit and bulk loading all store."""
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


def summary(entry: Entry, parsed: ParsedMessage) -> dict[str, object]:
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
    q = select(Mailbox).where(Mailbox.user_id == user_id)
    box = None
    if name:
        box = t.s.scalar(q.where(Mailbox.name == name))
    if box is None and special:
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
    from relate.store.mailboxes import _info as mailbox_info

    system, keywords = split_flags(flags)
    parsed = parsed or parse_message(raw)
    when = (internal_date or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    with transaction() as t:
        box = t.s.get(Mailbox, mailbox_id)
        if box is None or box.user_id != user_id:
            raise NotFound("no such mailbox")
        body_id = _store_body(t, raw, parsed)
        first, modseq = allocate(t, mailbox_id, 1)
        entry = _insert_entry(t, user_id, mailbox_id, body_id, len(raw), parsed.thread_id, first, modseq, when, system,
                              keywords, envelope_from)
        t.emit(ev.Change(ev.NEW, user_id, mailbox_id, (first,), modseq, box.name, origin=origin,
                         extra=summary(entry, parsed)))
        t.s.refresh(box)
        return mailbox_info(box), entry_info(entry)


# -- reading -------------------------------------------------------------------------------


def list_entries(user_id: int, mailbox_id: int) -> list[EntryInfo]:
    """Every entry of a mailbox in UID order (the IMAP SELECT view)."""
    with read() as s:
        rows = s.scalars(
            select(Entry).where(Entry.mailbox_id == mailbox_id, Entry.user_id == user_id).order_by(Entry.uid)
        )
        return [entry_info(e) for e in rows]


def get_entries(user_id: int, mailbox_id: int, uids: Sequence[int]) -> list[EntryInfo]:
    out: list[EntryInfo] = []
    with read() as s:
        for chunk in _chunks(sorted(set(uids))):
            rows = s.scalars(
                select(Entry)
                .where(Entry.mailbox_id == mailbox_id, Entry.user_id == user_id, Entry.uid.in_(chunk))
                .order_by(Entry.uid)
            )
            out.extend(entry_info(e) for e in rows)
    return out


def get_entry(user_id: int, entry_id: int) -> EntryInfo:
    with read() as s:
        e = s.get(Entry, entry_id)
        if e is None or e.user_id != user_id:
            raise NotFound("no such message")
        return entry_info(e)


def raw_message(body_id: int) -> bytes:
    with read() as s:
        raw = s.scalar(select(MessageBody.raw).where(MessageBody.id == body_id))
        if raw is None:
            raise NotFound("no such message body")
        return bytes(raw)


def parsed_message(body_id: int) -> ParsedMessage:
    with read() as s:
        meta = s.scalar(select(MessageBody.meta).where(MessageBody.id == body_id))
        if meta is None:
            raise NotFound("no such message body")
        return ParsedMessage.from_json(meta)


def changes_since(user_id: int, mailbox_id: int, modseq: int) -> tuple[list[EntryInfo], list[int]]:
    """Entries changed after `modseq` and UIDs expunged after it (RFC 7162 CHANGEDSINCE/VANISHED)."""
    with read() as s:
        changed = [
            entry_info(e)
            for e in s.scalars(
                select(Entry)
                .where(Entry.mailbox_id == mailbox_id, Entry.user_id == user_id, Entry.modseq > modseq)
                .order_by(Entry.uid)
            )
        ]
        vanished = sorted(
            s.scalars(select(Expunged.uid).where(Expunged.mailbox_id == mailbox_id, Expunged.modseq > modseq))
        )
        return changed, vanished


# -- mutation ------------------------------------------------------------------------------


def _owned_box(t: Tx, user_id: int, mailbox_id: int) -> Mailbox:
    box = t.s.get(Mailbox, mailbox_id)
    if box is None or box.user_id != user_id:
        raise NotFound("no such mailbox")
    return box


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
    kw_lower = {k.lower() for k in keywords}
    with transaction() as t:
        box = _owned_box(t, user_id, mailbox_id)
        lock_mailbox(t, mailbox_id)  # no EXPUNGE or other STORE between our read and our write
        modseq = 0
        changed: list[EntryInfo] = []
        failed: list[int] = []
        for chunk in _chunks(sorted(set(uids))):
            rows = list(
                t.s.scalars(
                    select(Entry).where(Entry.mailbox_id == mailbox_id, Entry.uid.in_(chunk)).order_by(Entry.uid)
                )
            )
            for e in rows:
                if unchanged_since is not None and e.modseq > unchanged_since:
                    failed.append(e.uid)
                    continue
                new_cols = {}
                for col in _COLUMN_FLAGS:
                    cur = getattr(e, col)
                    want = system.get(col, False)
                    new = want if mode == "set" else (cur or want) if mode == "add" else (cur and not want)
                    if new != cur:
                        new_cols[col] = new
                current_kw = list(e.keywords or [])
                if mode == "set":
                    new_kw = keywords
                elif mode == "add":
                    have = {k.lower() for k in current_kw}
                    new_kw = sorted(current_kw + [k for k in keywords if k.lower() not in have], key=str.lower)
                else:
                    new_kw = [k for k in current_kw if k.lower() not in kw_lower]
                if not new_cols and sorted(new_kw, key=str.lower) == sorted(current_kw, key=str.lower):
                    continue
                if not modseq:
                    modseq = _bump_modseq(t, mailbox_id)
                for col, value in new_cols.items():
                    setattr(e, col, value)
                e.keywords = list(new_kw)
                e.modseq = modseq
                changed.append(entry_info(e))
        if changed:
            t.emit(ev.Change(ev.FLAGS, user_id, mailbox_id, tuple(c.uid for c in changed), modseq, box.name, origin=origin))
    return FlagResult(changed, failed, modseq)


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
    t.s.execute(insert(Expunged), [{"mailbox_id": box.id, "uid": u, "modseq": modseq} for u in uids])
    # The entry ids go along so the API can say which emails went (its ids are entry ids).
    t.emit(ev.Change(ev.EXPUNGE, user_id, box.id, tuple(uids), modseq, box.name, origin=origin,
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
    with transaction() as t:
        box = _owned_box(t, user_id, mailbox_id)
        lock_mailbox(t, mailbox_id)
        q = select(Entry.uid).where(Entry.mailbox_id == mailbox_id)
        if only_deleted:
            q = q.where(Entry.deleted.is_(True))
        gone: list[int] = []
        if uids is None:
            if not only_deleted:
                raise InvalidInput("expunging everything needs explicit UIDs")
            gone = sorted(t.s.scalars(q))
        else:
            for chunk in _chunks(sorted(set(uids))):
                gone.extend(t.s.scalars(q.where(Entry.uid.in_(chunk))))
            gone.sort()
        _remove(t, user_id, box, gone, origin)
        return gone


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


