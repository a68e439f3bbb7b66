"""Group commit: concurrent deliveries stored together, a few statements for many messages.

`deliver(raw, envelope)` here means exactly what `messages.deliver` means — the message is
stored for every local recipient (after their filters) and in the sender's Sent, the change
events go out, and it returns only after the commit — but while a batch is being stored,
the deliveries that arrive queue up and are stored together in the next one. On PostgreSQL
that turns a dozen round trips and one WAL flush per message into one round trip and one
flush per batch, which is what lets one SMTP process keep up with a busy submission port.

How a batch is stored (PostgreSQL; on a connection the worker keeps):
1. the recipients' owners, their filters and every mailbox of the users involved, from the
   directory (`_Directory`: what earlier batches read, remembered) or, when any of it is not
   remembered, from one read; filters and the choice of mailbox then run here, exactly as
   `messages.deliver` runs them;
2. one write statement (its own transaction). Its guard first checks, in the statement's own
   snapshot, that every owner and every user's mailboxes and filters are still the ones the
   batch was placed with; if not, it stores nothing, and the batch is read afresh and written
   again. Then the bodies are inserted or found by SHA-256 (content-addressed, like
   `_store_body`; a new body is inserted unindexed, so the statement computes no search
   document: relate.store.searchindex does, after the commit), the target mailboxes locked
   in id order, a UID range and a MODSEQ reserved in each, the entries inserted and their
   change events NOTIFYed. Being one statement, it commits entries and events together,
   costs one WAL flush for the whole batch, and holds row locks only while PostgreSQL runs
   it, never across a round trip to this process.

Invariants:
- A caller is answered only after the statement holding its message committed (or with the
  exception that stopped it). Nothing acknowledged is ever lost.
- Per mailbox, UIDs ascend strictly in commit order (the row lock serialises writers; a
  deadlock with another writer is detected by PostgreSQL and the batch retried). Messages of
  one batch in the same mailbox share its MODSEQ, as several messages appended by one
  command may (RFC 7162 §3).
- The stored rows and change events are the ones `messages.deliver` would produce, with the
  owners, filters and mailboxes as they are when the write runs (the guard), never as an
  earlier batch saw them.
- If a batch fails for any reason but the database being unavailable, each of its messages
  is retried alone through `messages.deliver`, so one bad message fails alone.
- Batches are bounded in messages and octets; big messages bypass batching. SQLite (one
  writer at a time, in-process) gains nothing: there `deliver` is `messages.deliver`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import gevent
import gevent.event
import psycopg2
from sqlalchemy.exc import DBAPIError, OperationalError

from relate.db import get_engine
from relate.message import ParsedMessage, parse_message
from relate.store import events as ev
from relate.store import filters, mailboxes, messages
from relate.store.errors import NotFound, RetryableConflict, TemporaryFailure
from relate.store.events import CHANNEL, NOTIFY_LIMIT
from relate.store.mailboxes import DEFAULT_NAMES
from relate.store.session import RETRYABLE_PGCODES
from relate.store.types import Delivered, Envelope

log = logging.getLogger("relate.store.groupcommit")

MAX_BATCH_MESSAGES = 64  # messages per batch
MAX_BATCH_OCTETS = 16 * 1024 * 1024  # raw octets per batch
SOLO_OCTETS = 1024 * 1024  # messages at least this big are delivered on their own
RETRIES = 4  # attempts of a batch after a deadlock or serialisation failure
WORKERS = 2  # batches in flight at once (each uses one database connection)
MAX_REMEMBERED = 10_000  # addresses (and users) the directory holds before it starts afresh

Item = tuple[bytes, Envelope, ParsedMessage]


@dataclass
class _Pending:
    raw: bytes
    envelope: Envelope
    parsed: ParsedMessage
    result: gevent.event.AsyncResult = field(default_factory=gevent.event.AsyncResult)
    queued: float = field(default_factory=time.monotonic)  # when deliver() was called


class GroupCommit:
    """Coalesces the deliveries of every greenlet of this process into batches.

    `workers` batches may be in flight at once, so one batch's round trips and WAL flush
    overlap with the next one's; whichever worker is free takes everything queued so far.
    """

    def __init__(
        self, max_messages: int = MAX_BATCH_MESSAGES, max_octets: int = MAX_BATCH_OCTETS, workers: int = WORKERS
    ) -> None:
        self.max_messages = max_messages
        self.max_octets = max_octets
        self.workers = workers
        self._queue: deque[_Pending] = deque()
        self._wakeup = gevent.event.Event()
        self._workers: list[gevent.Greenlet] = []
        self.batches = 0  # batches stored, for tests and the benchmark
        self.delivered = 0  # messages stored through batches

    def deliver(self, raw: bytes, envelope: Envelope, *, parsed: ParsedMessage | None = None) -> Delivered:
        """Store one message; returns after the statement that holds it committed."""
        parsed = parsed or parse_message(raw)
        if len(raw) >= SOLO_OCTETS or get_engine().dialect.name != "postgresql":
            return messages.deliver(raw, envelope, parsed=parsed)
        pending = _Pending(raw, envelope, parsed)
        self._queue.append(pending)
        self._wakeup.set()
        self._workers = [worker for worker in self._workers if not worker.dead]
        while len(self._workers) < self.workers:
            self._workers.append(gevent.spawn(self._run))
        result: Delivered = pending.result.get()
        return result

    def _run(self) -> None:
        connection = _Connection()
        try:
            while True:
                if not self._queue:
                    self._wakeup.clear()
                    self._wakeup.wait()
                    continue
                batch = self._take()
                try:
                    self._store(batch, connection)
                except BaseException as error:  # a killed worker must not strand its callers
                    for pending in batch:
                        if not pending.result.ready():
                            pending.result.set_exception(TemporaryFailure(f"delivery interrupted: {error!r}"))
                    raise
        finally:
            connection.close()

    def _take(self) -> list[_Pending]:
        batch: list[_Pending] = []
        octets = 0
        while self._queue and len(batch) < self.max_messages:
            size = len(self._queue[0].raw)
            if batch and octets + size > self.max_octets:
                break
            batch.append(self._queue.popleft())
            octets += size
        return batch

    def _store(self, batch: list[_Pending], connection: _Connection) -> None:
        started = time.monotonic()
        try:
            results = _with_retries([(p.raw, p.envelope, p.parsed) for p in batch], connection)
        except TemporaryFailure as error:
            for pending in batch:
                pending.result.set_exception(error)
            return
        except Exception:
            log.exception("batch of %d messages failed; delivering them one by one", len(batch))
            for pending in batch:
                _deliver_alone(pending)
            return
        self.batches += 1
        self.delivered += len(batch)
        log.debug("batch of %d messages stored in %.1f ms (waited %.1f ms)", len(batch),
                  (time.monotonic() - started) * 1000, (started - min(p.queued for p in batch)) * 1000)
        for pending, delivered in zip(batch, results, strict=True):
            pending.result.set(delivered)


def _deliver_alone(pending: _Pending) -> None:
    try:
        pending.result.set(messages.deliver(pending.raw, pending.envelope, parsed=pending.parsed))
    except Exception as error:
        pending.result.set_exception(error)


class _Connection:
    """A worker's database connection, kept between batches (no pool checkout per batch) and
    replaced when it broke or the engine changed."""

    def __init__(self) -> None:
        self._conn: Any = None
        self._engine: Any = None

    def get(self) -> Any:
        if self._engine is not get_engine():
            self.close()
        if self._conn is None:
            self._engine = get_engine()
            self._conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        return self._conn

    def close(self, *, invalidate: bool = False) -> None:
        """Give the connection back; `invalidate`: its state is in doubt, so it is discarded."""
        if self._conn is not None:
            try:
                if invalidate:
                    self._conn.invalidate()
                self._conn.close()
            except Exception:
                log.debug("closing a group-commit connection failed", exc_info=True)
        self._conn = None
        self._engine = None


def _with_retries(items: list[Item], connection: _Connection | None = None) -> list[Delivered]:
    for attempt in range(RETRIES):
        try:
            return deliver_many(items, connection)
        except RetryableConflict:
            if attempt == RETRIES - 1:
                raise
            gevent.sleep(0.01 * (attempt + 1))
    raise AssertionError("unreachable")


# --- one batch -----------------------------------------------------------------------------


@dataclass
class _Placed:
    """One entry a batch writes."""

    item: int  # index of the message in the batch
    user_id: int
    mailbox: tuple[int, int, str, str | None]  # (id, user_id, name, special_use)
    seen: bool
    flagged: bool
    keywords: list[str]
    sent: bool  # the sender's Sent copy
    position: int = 0  # index among this batch's entries in the same mailbox
    uid: int = 0
    modseq: int = 0
    entry_id: int = 0
    summary: dict[str, object] = field(default_factory=dict)


# What a user's deliveries depend on besides the message: the mailboxes (where filters and
# the Sent copy file it) and the enabled filters, in the order they run. The read below and
# the write's guard compute it with this one expression, so equal means unchanged.
_FINGERPRINT = (
    "md5(coalesce((SELECT json_agg(json_build_array(m.id, m.name, m.special_use) ORDER BY m.id)::text "
    "FROM mailboxes m WHERE m.user_id = {user}), '') || '|' || "
    "coalesce((SELECT json_agg(json_build_array(f.conditions, f.actions) ORDER BY f.position, f.id)::text "
    "FROM filters f WHERE f.user_id = {user} AND f.enabled), ''))"
)

_READ = """
WITH owners AS (
    SELECT a.address, a.user_id FROM addresses a JOIN domains d ON d.name = a.domain
    WHERE a.address = ANY(%(addresses)s) AND a.confirmed
), users AS (
    SELECT user_id FROM owners UNION SELECT unnest(%(senders)s::integer[])
)
SELECT
    (SELECT coalesce(json_agg(json_build_array(address, user_id)), '[]') FROM owners),
    (SELECT coalesce(json_agg(json_build_array(
        u.user_id,
        (SELECT coalesce(json_agg(json_build_array(m.id, m.user_id, m.name, m.special_use) ORDER BY m.id), '[]')
         FROM mailboxes m WHERE m.user_id = u.user_id),
        (SELECT coalesce(json_agg(json_build_array(f.conditions, f.actions) ORDER BY f.position, f.id), '[]')
         FROM filters f WHERE f.user_id = u.user_id AND f.enabled),
        """ + _FINGERPRINT.format(user="u.user_id") + """
    )), '[]') FROM users u)
"""

# The whole write of a batch, one statement (so one commit): `guard` checks what the batch
# was placed with (see _Directory) and, when it no longer holds, nothing below writes a row
# (no body, no mailbox lock, no entry: the statement returns no rows); `inserted` also
# writes nothing unless every wanted mailbox was locked. Then the bodies are inserted or
# found by SHA-256 first (`locked` waits for `bodies` through its InitPlan, so no mailbox row
# is locked while the bodies are written; a new body takes the column default indexed =
# false, see relate.store.searchindex), then the target mailboxes are locked in id order,
# a UID range and a MODSEQ reserved in each, the entries inserted, and their change events
# NOTIFYed. Row locks are held only while PostgreSQL runs it, never across a round trip.
# `notes` carries each entry's change event around the values only PostgreSQL knows (uid,
# modseq, entry id); `full_form` is false when the event had to be cut to fit NOTIFY.
_WRITE = """
WITH guard (ok) AS (
    SELECT (SELECT coalesce(string_agg(a.address || ':' || a.user_id, ',' ORDER BY a.address COLLATE "C"), '')
            FROM addresses a JOIN domains d ON d.name = a.domain
            WHERE a.address = ANY({addresses}) AND a.confirmed) = {owners}
       AND NOT EXISTS (SELECT 1 FROM (VALUES {fingerprints}) p (user_id, fingerprint)
                       WHERE """ + _FINGERPRINT.format(user="p.user_id") + """ <> p.fingerprint)
),
bodies AS (
    INSERT INTO message_bodies (sha256, size, raw, meta, message_id, subject, from_address, from_display,
                                to_text, sent_date, preview, has_attachments, attachment_count, thread_id,
                                search_text, created_at, wire_size)
    SELECT * FROM (VALUES {bodies}) v WHERE (SELECT ok FROM guard)
    ON CONFLICT (sha256) DO UPDATE SET sha256 = EXCLUDED.sha256
    RETURNING id, sha256
),
wanted (mailbox_id, n) AS (VALUES {wanted}),
locked AS (
    SELECT id FROM mailboxes
    WHERE id IN (SELECT mailbox_id FROM wanted) AND (SELECT count(*) FROM bodies) > 0
    ORDER BY id FOR UPDATE
),
alloc AS (
    UPDATE mailboxes m SET uid_next = m.uid_next + w.n, highest_modseq = m.highest_modseq + 1
    FROM locked l JOIN wanted w ON w.mailbox_id = l.id
    WHERE m.id = l.id
    RETURNING m.id, m.uid_next - w.n AS first_uid, m.highest_modseq AS modseq
),
new_entries (mailbox_id, position, user_id, sha256, size, thread_id, envelope_from, seen, flagged, keywords)
    AS (VALUES {entries}),
inserted AS (
    INSERT INTO entries (user_id, mailbox_id, body_id, uid, modseq, size, thread_id, internal_date, envelope_from,
                         seen, answered, flagged, deleted, draft, keywords)
    SELECT e.user_id, e.mailbox_id, b.id, a.first_uid + e.position, a.modseq, e.size, e.thread_id,
           {now}, e.envelope_from, e.seen, false, e.flagged, false, false, e.keywords
    FROM new_entries e JOIN alloc a ON a.id = e.mailbox_id JOIN bodies b ON b.sha256 = e.sha256
    WHERE (SELECT count(*) FROM alloc) = {boxes}
    RETURNING id, mailbox_id, uid, modseq, body_id
),
notes (mailbox_id, position, full_form, p1, p2, p3, p4) AS (VALUES {notes})
SELECT i.id, i.mailbox_id, i.uid, i.modseq, i.body_id,
       pg_notify({channel}, CASE WHEN n.full_form
           THEN n.p1 || i.uid || ',' || i.uid || n.p2 || i.modseq || n.p3 || i.id || n.p4
           ELSE n.p1 || i.modseq || n.p4 END)
FROM inserted i JOIN alloc a ON a.id = i.mailbox_id
JOIN notes n ON n.mailbox_id = i.mailbox_id AND n.position = i.uid - a.first_uid
"""
_BODY_ROW = (
    "(%s::varchar, %s::bigint, %s::bytea, %s::jsonb, %s::varchar, %s::text, %s::varchar, %s::varchar, %s::text,"
    " %s::timestamptz, %s::varchar, %s::boolean, %s::integer, %s::varchar, %s::text, %s::timestamptz, %s::bigint)"
)
_FINGERPRINT_ROW = "(%s::integer, %s::text)"
_WANTED_ROW = "(%s::integer, %s::bigint)"
_ENTRY_ROW = "(%s::integer, %s::bigint, %s::integer, %s, %s::bigint, %s, %s, %s::boolean, %s::boolean, %s::jsonb)"
_NOTE_ROW = "(%s::integer, %s::bigint, %s::boolean, %s, %s, %s, %s)"


def deliver_many(items: list[Item], connection: _Connection | None = None) -> list[Delivered]:
    """Deliver several messages on PostgreSQL; one Delivered per item, in order.

    `connection` is a worker's kept connection; without one, a pooled connection is used.
    """
    now = dt.datetime.now(dt.UTC)
    own = connection is None
    holder = connection or _Connection()
    try:
        conn = holder.get()
        try:
            users_of, placed, body_ids = _attempt(conn, items, now)
        except _Stale:  # remembered answers went out of date: read them again
            _directory.forget(items)
            try:
                users_of, placed, body_ids = _attempt(conn, items, now)
            except _Stale:
                _directory.forget(items)
                raise RetryableConflict("owners, mailboxes or filters changing under the batch; retry") from None
    except DBAPIError as error:
        holder.close(invalidate=True)  # in doubt about the connection's state: never reuse it
        if getattr(error.orig, "pgcode", None) in RETRYABLE_PGCODES:
            raise RetryableConflict("concurrent update; retry") from error
        if error.connection_invalidated or isinstance(error, OperationalError):
            raise TemporaryFailure("database temporarily unavailable") from error
        raise
    except psycopg2.Error as error:  # from the raw cursor: not wrapped by SQLAlchemy
        holder.close(invalidate=True)
        if error.pgcode in RETRYABLE_PGCODES:
            raise RetryableConflict("concurrent update; retry") from error
        if isinstance(error, psycopg2.OperationalError | psycopg2.InterfaceError):
            raise TemporaryFailure("database temporarily unavailable") from error
        raise
    except BaseException:
        holder.close(invalidate=True)
        raise
    finally:
        if own:
            holder.close()
    return _results(items, users_of, body_ids, placed)


def _attempt(conn: Any, items: list[Item], now: dt.datetime) -> tuple[list[list[int]], list[_Placed], dict[int, int]]:
    view = _directory.view(conn, items)
    users_of = [_users(envelope, view.owners) for _, envelope, _ in items]
    stored = [i for i, (_, e, _) in enumerate(items) if users_of[i] or e.sender_user_id is not None]
    placed = _place(items, stored, users_of, view.rules, view.boxes)
    return users_of, placed, _write(conn, items, stored, placed, now, view)


def _cursor(conn: Any) -> Any:
    return conn.connection.dbapi_connection.cursor()


class _Stale(Exception):
    """The directory's answers no longer held when the batch was written; nothing was filed."""


@dataclass
class _View:
    """What one batch knows of its recipients and senders (see _Directory)."""

    owners: dict[str, int]  # recipient address (lowercase) -> user id, for the batch's owned addresses
    rules: dict[int, list[Any]]  # user id -> enabled filters, in order
    boxes: dict[int, list[Any]]  # user id -> mailbox rows
    fingerprints: dict[int, str]  # user id -> _FINGERPRINT of the mailboxes and filters above


@dataclass
class _User:
    boxes: list[Any]
    rules: list[Any]
    fingerprint: str


class _Directory:
    """Recipient owners, filters and mailboxes, remembered between batches.

    Remembering is safe because nothing remembered is trusted: the write statement's guard
    checks, in the snapshot the write itself runs in, that every owner is still the owner and
    every user's mailboxes and filters are still the ones the batch was placed with
    (_FINGERPRINT), and files nothing when one is not (_Stale: forgotten, read again,
    retried). Only owned addresses are remembered; a batch with any address or user not
    remembered reads them all.
    """

    def __init__(self) -> None:
        self._engine: Any = None
        self._owners: dict[str, int] = {}
        self._users: dict[int, _User] = {}
        self.reads = 0  # for tests
        self.stale = 0  # batches whose remembered answers the guard refused, for tests

    def view(self, conn: Any, items: list[Item]) -> _View:
        if self._engine is not get_engine() or len(self._owners) + len(self._users) > MAX_REMEMBERED:
            self._engine, self._owners, self._users = get_engine(), {}, {}
        addresses = sorted({r.lower() for _, envelope, _ in items for r in envelope.recipients})
        senders = sorted({e.sender_user_id for _, e, _ in items if e.sender_user_id is not None})
        owners = {a: self._owners[a] for a in addresses if a in self._owners}
        users = set(owners.values()) | set(senders)
        if len(owners) < len(addresses) or not users <= self._users.keys():
            owners = self._read(conn, addresses, senders)
            users = set(owners.values()) | set(senders)
        known = {user_id: self._users[user_id] for user_id in users if user_id in self._users}
        return _View(
            owners=owners,
            rules={user_id: user.rules for user_id, user in known.items()},
            boxes={user_id: user.boxes for user_id, user in known.items()},
            fingerprints={user_id: user.fingerprint for user_id, user in known.items()},
        )

    def forget(self, items: list[Item]) -> None:
        self.stale += 1
        for _, envelope, _ in items:
            for recipient in envelope.recipients:
                self._users.pop(self._owners.pop(recipient.lower(), -1), None)
            if envelope.sender_user_id is not None:
                self._users.pop(envelope.sender_user_id, None)

    def _read(self, conn: Any, addresses: list[str], senders: list[int]) -> dict[str, int]:
        row = conn.exec_driver_sql(_READ, {"addresses": addresses, "senders": senders}).one()
        self.reads += 1
        owners = {address: int(user_id) for address, user_id in row[0]}
        self._owners.update(owners)
        for user_id, boxes, rules, fingerprint in row[1]:
            self._users[int(user_id)] = _User([tuple(box) for box in boxes], [tuple(rule) for rule in rules], fingerprint)
        return owners


_directory = _Directory()


def _users(envelope: Envelope, owners: dict[str, int]) -> list[int]:
    users: list[int] = []
    for recipient in envelope.recipients:
        user_id = owners.get(recipient.lower())
        if user_id is not None and user_id not in users:
            users.append(user_id)
    return sorted(users)  # messages.deliver's order: it locks mailboxes by user


def _mailbox_for(boxes: dict[int, list[Any]], user_id: int, name: str | None, special: str | None) -> Any:
    """messages._mailbox_for over rows already read: by name, else by special use, else INBOX.
    A role every user is given but this one deleted (Trash, Sent) is created again first, and
    the batch is then read afresh (_Stale), as messages._mailbox_for would create it."""
    mine = boxes.get(user_id, [])
    if special in DEFAULT_NAMES and not any(box[3] == special or (name and box[2] == name) for box in mine):
        mailboxes.ensure_special(user_id, special)
        raise _Stale
    for wanted, column in ((name, 2), (special, 3), ("INBOX", 2)):
        if wanted:
            for box in mine:
                if box[column] == wanted:
                    return box
    raise NotFound("user has no INBOX")


def _place(
    items: list[Item], stored: list[int], users_of: list[list[int]], rules: dict[int, list[Any]],
    boxes: dict[int, list[Any]],
) -> list[_Placed]:
    placed: list[_Placed] = []
    for i in stored:
        _, envelope, parsed = items[i]
        for user_id in users_of[i]:
            plan = filters.run(rules.get(user_id, []), parsed)
            box = _mailbox_for(boxes, user_id, plan.mailbox, plan.special_use)
            placed.append(_Placed(i, user_id, box, plan.seen, plan.flagged, list(plan.keywords), False))
        if envelope.sender_user_id is not None:
            box = _mailbox_for(boxes, envelope.sender_user_id, None, "\\Sent")
            placed.append(_Placed(i, envelope.sender_user_id, box, True, False, [], True))
    counts: dict[int, int] = {}
    for entry in placed:  # in batch order: UIDs follow the order the messages arrived
        entry.position = counts.get(entry.mailbox[0], 0)
        counts[entry.mailbox[0]] = entry.position + 1
    return placed


def _write(
    conn: Any, items: list[Item], stored: list[int], placed: list[_Placed], now: dt.datetime, view: _View
) -> dict[int, int]:
    """Run the write statement; fills in each entry's uid, modseq, id and summary and returns
    item index -> body id. Raises _Stale when the guard found `view` out of date."""
    if not placed:
        return {}
    cursor = _cursor(conn)
    digests = {i: hashlib.sha256(items[i][0]).hexdigest() for i in stored}
    bodies: dict[str, bytes] = {}
    for i, digest in digests.items():
        if digest not in bodies:  # the same content twice in one batch is one body
            bodies[digest] = cursor.mogrify(_BODY_ROW, _body_values(items[i], digest, now))
    counts: dict[int, int] = {}
    for entry in placed:
        counts[entry.mailbox[0]] = counts.get(entry.mailbox[0], 0) + 1
    entries = (
        cursor.mogrify(_ENTRY_ROW, (
            p.mailbox[0], p.position, p.user_id, digests[p.item], len(items[p.item][0]),
            items[p.item][2].thread_id, items[p.item][1].mail_from, p.seen, p.flagged, json.dumps(p.keywords),
        ))
        for p in placed
    )
    addresses = sorted({r.lower() for _, envelope, _ in items for r in envelope.recipients})
    owners = ",".join(f"{a}:{view.owners[a]}" for a in addresses if a in view.owners)
    users = sorted({p.user_id for p in placed})
    cursor.execute(_fill(
        _WRITE,
        addresses=cursor.mogrify("%s", (addresses,)),
        owners=cursor.mogrify("%s", (owners,)),
        fingerprints=b",".join(
            cursor.mogrify(_FINGERPRINT_ROW, (user_id, view.fingerprints[user_id])) for user_id in users
        ),
        boxes=cursor.mogrify("%s", (len(counts),)),
        bodies=b",".join(bodies[digest] for digest in sorted(bodies)),  # one order for every writer
        wanted=b",".join(cursor.mogrify(_WANTED_ROW, (box_id, n)) for box_id, n in sorted(counts.items())),
        entries=b",".join(entries),
        notes=b",".join(cursor.mogrify(_NOTE_ROW, (p.mailbox[0], p.position, *_note(items, p, now))) for p in placed),
        now=cursor.mogrify("%s", (now,)),
        channel=cursor.mogrify("%s", (CHANNEL,)),
    ))
    rows = cursor.fetchall()  # the statement committed: from here on nothing may fail the batch
    if not rows:
        raise _Stale("the batch's owners, mailboxes or filters changed before it was written")
    body_ids: dict[int, int] = {}
    try:
        first: dict[int, int] = {}
        for _, box_id, uid, _, _, _ in rows:
            first[box_id] = min(first.get(box_id, uid), uid)
        by_key = {(p.mailbox[0], p.position): p for p in placed}
        for entry_id, box_id, uid, modseq, body_id, _ in rows:
            entry = by_key[(box_id, uid - first[box_id])]
            entry.entry_id, entry.uid, entry.modseq = int(entry_id), int(uid), int(modseq)
            entry.summary = _summary(entry.entry_id, items[entry.item][2], now)
            body_ids[entry.item] = int(body_id)
        if len(rows) != len(placed):
            raise RuntimeError(f"{len(rows)} entries came back for {len(placed)}")
    except Exception:
        # Stored, so the callers must hear "stored" (a retry would store it twice); only the
        # details for the API notification are missing.
        log.exception("a batch was stored but its result could not be read back")
        for entry in placed:
            body_ids.setdefault(entry.item, 0)
    return body_ids


def _body_values(item: Item, digest: str, now: dt.datetime) -> tuple[Any, ...]:
    """The message_bodies row, as messages._store_body writes it (columns in _WRITE's order)."""
    raw, _, parsed = item
    row = messages.body_row(raw, parsed, now)
    row["sha256"] = digest
    row["meta"] = json.dumps(row["meta"])
    return tuple(row.values())


def _fill(template: str, **parts: bytes) -> bytes:
    """`template` with each {name} replaced by parts[name], in one pass: octets already put in
    (mogrified client data) are never searched for placeholders again."""
    pieces = re.split(r"\{(\w+)\}", template)
    return b"".join(parts[piece] if index % 2 else piece.encode() for index, piece in enumerate(pieces))


def _summary(entry_id: int, parsed: ParsedMessage, now: dt.datetime) -> dict[str, object]:
    """messages.summary without an ORM object."""
    return {
        "id": entry_id,
        "from": parsed.from_addr,
        "fromDisplay": parsed.from_display,
        "subject": parsed.subject[:300],
        "receivedAt": now.isoformat().replace("+00:00", "Z"),
        "hasAttachments": parsed.has_attachments,
    }


_MARK_UID, _MARK_MODSEQ, _MARK_ID = 999_999_937, 999_999_929, 999_999_893  # never real values


def _note(items: list[Item], entry: _Placed, now: dt.datetime) -> tuple[bool, str, str, str, str]:
    """The NEW change of `entry` as Change.to_json writes it, cut around the uid, modseq and
    entry id that PostgreSQL fills in: (full form?, p1, p2, p3, p4)."""
    change = ev.Change(
        ev.NEW, entry.user_id, entry.mailbox[0], (_MARK_UID,), _MARK_MODSEQ, entry.mailbox[2],
        origin=items[entry.item][1].origin, extra=_summary(_MARK_ID, items[entry.item][2], now),
    )
    text = change.to_json()
    full = f"[[{_MARK_UID},{_MARK_UID}]]" in text
    # Leave room for the real numbers (up to 19 digits each) within the NOTIFY limit.
    if full and len(text.encode()) + 3 * 19 > NOTIFY_LIMIT:
        text = ev.Change(ev.NEW, entry.user_id, entry.mailbox[0], (), _MARK_MODSEQ, entry.mailbox[2],
                         origin=items[entry.item][1].origin).to_json()
        full = False
    if full:
        p1, rest = text.split(f"[[{_MARK_UID},{_MARK_UID}]]", 1)
        p2, rest = rest.split(str(_MARK_MODSEQ), 1)
        p3, p4 = rest.split(str(_MARK_ID), 1)
        return True, p1 + "[[", "]]" + p2, p3, p4
    p1, p4 = text.split(str(_MARK_MODSEQ), 1)
    return False, p1, "", "", p4


def _results(
    items: list[Item], users_of: list[list[int]], body_ids: dict[int, int], placed: list[_Placed]
) -> list[Delivered]:
    by_item: dict[int, list[_Placed]] = {}
    for entry in placed:
        by_item.setdefault(entry.item, []).append(entry)
    results = []
    for i, (raw, _, _) in enumerate(items):
        if i not in body_ids:
            results.append(Delivered(body_id=0, size=len(raw), entries=()))
            continue
        mine = by_item.get(i, [])
        inbox = [p for p in mine if not p.sent]
        sent = next((p for p in mine if p.sent), None)
        results.append(
            Delivered(
                body_id=body_ids[i],
                size=len(raw),
                entries=tuple((p.user_id, p.mailbox[0], p.uid) for p in inbox),
                sent_entry=(sent.user_id, sent.mailbox[0], sent.uid) if sent else None,
                user_ids=tuple(users_of[i]),
                summaries=tuple((p.user_id, p.summary) for p in mine),
            )
        )
    return results


_group: GroupCommit | None = None


def group() -> GroupCommit:
    """This process's group commit."""
    global _group
    if _group is None:
        _group = GroupCommit()
    return _group


def deliver(raw: bytes, envelope: Envelope, *, parsed: ParsedMessage | None = None) -> Delivered:
    """`messages.deliver`, batched with the concurrent deliveries of this process."""
    return group().deliver(raw, envelope, parsed=parsed)
