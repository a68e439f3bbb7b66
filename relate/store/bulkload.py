"""Appending many messages to one mailbox fast: batches of bodies and entries per statement.

For large imports and the API benchmark's 100,000-message mailbox. The result is what
`messages.append` would store one message at a time: the same body rows (content-addressed,
parsed once), entries with ascending UIDs allocated on the mailbox row, and one `new`
change event per batch. Each batch is its own transaction. Unlike a delivery, a batch
computes its bodies' search documents in its own commit (they are inserted indexed).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import cast

from sqlalchemy import Table, insert, select
from sqlalchemy.dialects import postgresql, sqlite

from relate.db.models import Entry, Mailbox, MessageBody
from relate.message import ParsedMessage, parse_message
from relate.store import events as ev
from relate.store.errors import NotFound
from relate.store.messages import allocate, body_row, split_flags
from relate.store.session import Tx, transaction


@dataclass
class Item:
    raw: bytes
    flags: list[str] = field(default_factory=list)
    internal_date: dt.datetime | None = None
    envelope_from: str | None = None


def _batches(items: Iterable[Item], size: int) -> Iterator[list[Item]]:
    batch: list[Item] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def append_many(user_id: int, mailbox_id: int, items: Iterable[Item], *, batch: int = 500, origin: str = "") -> int:
    """Append every item to the user's mailbox, `batch` per transaction. Returns how many."""
    count = 0
    for chunk in _batches(items, max(1, batch)):
        parsed = [parse_message(item.raw) for item in chunk]
        with transaction() as t:
            _append_batch(t, user_id, mailbox_id, chunk, parsed, origin)
        count += len(chunk)
    return count


def _append_batch(t: Tx, user_id: int, mailbox_id: int, chunk: list[Item], parsed: list[ParsedMessage],
                  origin: str) -> None:
    box = t.s.get(Mailbox, mailbox_id)
    if box is None or box.user_id != user_id:
        raise NotFound("no such mailbox")
    now = dt.datetime.now(dt.UTC)
    # Indexed as they are inserted (relate.store.searchindex): a bulk load wants throughput,
    # not a short commit, and leaves no backlog behind.
    bodies = [{**body_row(item.raw, p, now), "indexed": True} for item, p in zip(chunk, parsed, strict=True)]
    dialect = postgresql if t.postgres else sqlite
    unique = list({str(b["sha256"]): b for b in bodies}.values())
    # Core statements on the tables: batched executemany, no ORM bookkeeping per row.
    table = cast(Table, MessageBody.__table__)
    t.s.connection().execute(dialect.insert(table).on_conflict_do_nothing(index_elements=["sha256"]), unique)
    digests = [str(b["sha256"]) for b in unique]
    ids = dict(t.s.execute(select(MessageBody.sha256, MessageBody.id).where(MessageBody.sha256.in_(digests))).all())
    first, modseq = allocate(t, mailbox_id, len(chunk))
    entries = []
    for offset, (item, p, body) in enumerate(zip(chunk, parsed, bodies, strict=True)):
        system, keywords = split_flags(item.flags)
        entries.append({
            "user_id": user_id,
            "mailbox_id": mailbox_id,
            "body_id": ids[str(body["sha256"])],
            "uid": first + offset,
            "modseq": modseq,
            "size": len(item.raw),
            "thread_id": p.thread_id[:64],
            "internal_date": (item.internal_date or now).astimezone(dt.UTC),
            "envelope_from": item.envelope_from,
            "seen": system.get("seen", False),
            "answered": system.get("answered", False),
            "flagged": system.get("flagged", False),
            "deleted": system.get("deleted", False),
            "draft": system.get("draft", False),
            "keywords": keywords,
        })
    t.s.connection().execute(insert(cast(Table, Entry.__table__)), entries)
    uids = tuple(range(first, first + len(chunk)))
    t.emit(ev.Change(ev.NEW, user_id, mailbox_id, uids, modseq, box.name, origin=origin))
