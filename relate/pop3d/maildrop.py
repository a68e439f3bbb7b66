"""The maildrop of one POP3 session: the user's INBOX as it was at login (RFC 1939 §5).

Invariants:
- Messages are numbered 1..n oldest first (UID order) and keep their numbers for the whole
  session; messages that arrive later are not part of it.
- DELE only marks. Nothing is removed until `commit()` in the UPDATE state, which removes
  exactly the marked messages in one store transaction; a session that ends any other way
  removes nothing (RFC 1939 §6).
- RETR marks a message \\Seen. The flags are written in batches (`flush_seen`), through the
  store, which commits and emits the change events IMAP and the web follow. Batches go out
  when the client pauses, when many are pending, at QUIT and when the session ends.
- Sizes are the wire sizes of relate.message.crlf, stored with each body: STAT, LIST and UIDL
  read no message. A body stored before the size was kept (NULL) is read in batches at the
  first STAT/LIST, as every body once was, and its computed size is handed to the process's
  writer (relate.pop3d.sizes), which stores it in the background. Bodies read that way or read
  ahead at RETR are kept (dot-stuffed, ready to send) within a per-session and a
  process-wide budget; what does not fit is read again at RETR.
- Whatever the stored size says, a body read from the store sets its message's size from the
  octets it sends, so RETR's +OK always gives the size of what follows.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from relate import metrics
from relate.message import crlf
from relate.pop3d import sizes, wire
from relate.pop3d.errors import Pop3Error
from relate.pop3d.limits import Limits
from relate.store import TemporaryFailure, messages
from relate.store import pop3 as pop3_store

PROCESS_CACHE_BYTES = 512 << 20  # all sessions of a process together


class CacheBudget:
    """Octets of cached messages the whole process may hold. One gevent thread: no lock needed."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.used = 0

    def take(self, n: int) -> bool:
        if self.used + n > self.capacity:
            return False
        self.used += n
        return True

    def give(self, n: int) -> None:
        self.used = max(0, self.used - n)


process_budget = CacheBudget(PROCESS_CACHE_BYTES)


@dataclass
class Message:
    number: int  # 1-based message number in this session (RFC 1939 §5)
    uid: int  # the INBOX UID
    body_id: int  # the stored body
    stored_size: int  # octets as stored
    seen: bool  # \Seen as of login, or set by RETR in this session
    size: int | None = None  # wire size (relate.message.crlf): stored, or computed at first read
    deleted: bool = False  # marked by DELE, cleared by RSET


@dataclass
class Maildrop:
    user_id: int
    mailbox_id: int  # the INBOX
    uid_validity: int  # the INBOX's UIDVALIDITY, part of every UIDL
    messages: list[Message]  # index = number - 1
    limits: Limits
    origin: str = ""  # the session's id, carried on the change events it causes
    _cache: dict[int, bytes] = field(default_factory=dict)  # number -> dot-stuffed wire form
    _cached_bytes: int = 0  # sum of len() over _cache
    _pending_seen: list[int] = field(default_factory=list)  # UIDs RETR marked \Seen, not yet stored
    retrieved: int = 0  # RETR replies written in this session (for the metrics)
    log: logging.Logger | logging.LoggerAdapter[logging.Logger] = field(  # the session's, once logged in
        default_factory=lambda: logging.getLogger("relate.pop3d")
    )

    @classmethod
    def open(cls, user_id: int, limits: Limits, origin: str = "") -> Maildrop:
        """Snapshot the user's INBOX now."""
        inbox = pop3_store.inbox_listing(user_id)
        listed = [
            Message(number=i, uid=e.uid, body_id=e.body_id, stored_size=e.size, seen=e.seen, size=e.wire_size)
            for i, e in enumerate(inbox.entries, start=1)
        ]
        return cls(user_id, inbox.mailbox_id, inbox.uid_validity, listed, limits, origin)

    # -- reading ---------------------------------------------------------------------------

    def get(self, number: int) -> Message:
        """A message that exists and is not marked deleted (RFC 1939 §5)."""
        if not 1 <= number <= len(self.messages):
            raise Pop3Error(f"no message {number}")
        msg = self.messages[number - 1]
        if msg.deleted:
            raise Pop3Error(f"message {number} is deleted")
        return msg

    def visible(self) -> Iterator[Message]:
        """Messages not marked deleted, in number order."""
        return (m for m in self.messages if not m.deleted)

    def unique_id(self, msg: Message) -> str:
        return wire.unique_id(self.uid_validity, msg.uid)

    def ensure_sizes(self) -> None:
        """Compute the wire size of every visible message that has none stored."""
        missing = [m for m in self.visible() if m.size is None]
        for batch in self._batches(missing):
            self._fetch(batch)

    def size_of(self, msg: Message) -> int:
        if msg.size is None:
            self._fetch([msg])
        return msg.size if msg.size is not None else msg.stored_size

    def stuffed(self, msg: Message, *, keep: bool) -> bytes:
        """The dot-stuffed wire form of `msg`. Without `keep`, it leaves the cache (RETR: a
        message is usually retrieved once); with it, it stays (TOP)."""
        data = self._cache.pop(msg.number, None) if not keep else self._cache.get(msg.number)
        if data is not None:
            if not keep:
                self._uncache(len(data))
            return data
        batch = [msg]
        if self.limits.session_cache_bytes - self._cached_bytes >= self.limits.fetch_batch_bytes:
            # Room to keep more: read ahead, as clients retrieve in order (after UIDL, say).
            ahead = (m for m in itertools.islice(self.messages, msg.number, None)
                     if not m.deleted and m.number not in self._cache)
            batch = next(self._batches(itertools.chain(batch, ahead)))
        got = self._fetch(batch, wanted=msg)
        if keep and msg.number not in self._cache:
            self._remember(msg, got)
        return got

    def _batches(self, msgs: Iterable[Message]) -> Iterator[list[Message]]:
        """Consecutive runs of `msgs` whose stored sizes add up to one fetch."""
        batch: list[Message] = []
        octets = 0
        for m in msgs:
            if batch and octets + m.stored_size > self.limits.fetch_batch_bytes:
                yield batch
                batch, octets = [], 0
            batch.append(m)
            octets += m.stored_size
        if batch:
            yield batch

    def _fetch(self, batch: list[Message], wanted: Message | None = None) -> bytes:
        """Read `batch` from the store, set each size, cache what fits; returns `wanted`'s form.
        Sizes that were not stored go to the writer."""
        bodies = pop3_store.raw_bodies([m.body_id for m in batch])
        result = b""
        learned: dict[int, int] = {}  # body id -> wire size, for bodies stored without one
        for m in batch:
            raw = bodies.get(m.body_id)
            if raw is None:  # removed elsewhere and its body collected since login
                if m is wanted:
                    raise Pop3Error(f"message {m.number} was removed by another session")
                if m.size is None:
                    m.size = m.stored_size  # keeps STAT and LIST consistent for the session
                continue
            form = crlf.wire_form(raw)
            if m.size is None:
                learned[m.body_id] = len(form)
            elif m.size != len(form):
                self.log.warning("message %d: stored POP3 size %d, sending %d octets", m.number, m.size, len(form))
            m.size = len(form)
            stuffed = wire.dot_stuff(form)
            if m is wanted:
                result = stuffed
            else:
                self._remember(m, stuffed)
        if learned:
            sizes.writer.add(learned)
        return result

    def _remember(self, msg: Message, data: bytes) -> None:
        n = len(data)
        if msg.number in self._cache or n > self.limits.max_cached_message:
            return
        if self._cached_bytes + n > self.limits.session_cache_bytes or not process_budget.take(n):
            return
        self._cache[msg.number] = data
        self._cached_bytes += n

    def _uncache(self, n: int) -> None:
        self._cached_bytes -= n
        process_budget.give(n)

    # -- changing --------------------------------------------------------------------------

    def delete(self, msg: Message) -> None:
        msg.deleted = True
        data = self._cache.pop(msg.number, None)
        if data is not None:
            self._uncache(len(data))

    def reset(self) -> None:
        """RSET: unmark every message marked deleted."""
        for m in self.messages:
            m.deleted = False

    def mark_seen(self, msg: Message) -> None:
        """RETR has sent all of `msg`."""
        self.retrieved += 1
        if not msg.seen:
            msg.seen = True
            self._pending_seen.append(msg.uid)

    @property
    def pending_seen(self) -> int:
        return len(self._pending_seen)

    def flush_seen(self) -> None:
        """Store \\Seen for the messages retrieved since the last flush. Raises TemporaryFailure;
        the UIDs then stay pending for the next attempt."""
        if not self._pending_seen:
            return
        uids, self._pending_seen = self._pending_seen, []
        try:
            pop3_store.mark_seen(self.user_id, self.mailbox_id, uids, origin=self.origin)
        except BaseException:
            self._pending_seen = uids + self._pending_seen
            raise

    def commit(self) -> int:
        """The UPDATE state (RFC 1939 §6): store pending \\Seen, then remove every message marked
        deleted in one transaction. Returns how many were removed."""
        deleted = {m.uid for m in self.messages if m.deleted}
        self._pending_seen = [uid for uid in self._pending_seen if uid not in deleted]
        self.flush_seen()
        if not deleted:
            return 0
        removed = messages.expunge(self.user_id, self.mailbox_id, sorted(deleted), only_deleted=False,
                                   origin=self.origin)
        return len(removed)

    def close(self) -> None:
        """The session is over (after commit or not): store \\Seen for what was retrieved, give
        back the cache. Never raises."""
        metrics.incr("pop3", "messages_retrieved", self.retrieved)
        self.retrieved = 0
        try:
            self.flush_seen()
        except TemporaryFailure:
            self.log.warning("could not store \\Seen for %d retrieved message(s)", len(self._pending_seen))
        except Exception:
            self.log.exception("storing \\Seen at the end of the session failed")
        for data in self._cache.values():
            process_budget.give(len(data))
        self._cache.clear()
        self._cached_bytes = 0
