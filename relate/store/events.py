"""Change events and the bus that carries them to IMAP IDLE, WebSockets and notifications.

Invariants:
- Events leave a process only after the transaction that caused them committed: on
  PostgreSQL they are sent with NOTIFY inside that transaction (PostgreSQL delivers them at
  commit, to every listening process on every host, including this one); on SQLite they are
  published in-process right after commit.
- Every subscriber reads a bounded queue. A subscriber that falls behind is not buffered
  without limit: its queue is cleared and it receives one `resync` event instead, and so do
  all subscribers when the listener loses its database connection.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import gevent
import gevent.event
import gevent.queue

log = logging.getLogger("relate.store.events")

CHANNEL = "relate_changes"
NOTIFY_LIMIT = 7900  # PostgreSQL's NOTIFY payload limit is 8000 bytes
DEFAULT_QUEUE_SIZE = 1000
LISTEN_WAIT = 5.0  # seconds the first subscriber waits for the LISTEN connection
LISTEN_IDLE_CHECK = 30.0  # seconds without a notification before the listener checks its connection
# libpq TCP keepalives on the LISTEN connection, so a peer that vanished is noticed
LISTEN_KEEPALIVES = {"keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3}

# Event kinds.
NEW = "new"  # messages added to a mailbox (delivery, APPEND, COPY, MOVE)
FLAGS = "flags"  # flags or keywords changed
EXPUNGE = "expunge"  # messages removed from a mailbox
MAILBOX_CREATED = "mailbox-created"
MAILBOX_RENAMED = "mailbox-renamed"
MAILBOX_DELETED = "mailbox-deleted"
MAILBOX_SUBSCRIBED = "mailbox-subscribed"
KEY_REVOKED = "key-revoked"  # an API key was revoked: extra {"keyId": id}; its sessions end
NEW_EMAIL_NOTICE = "new-email-notice"  # the API received a daemon's new-email notification:
#   extra is the email summary; WebSockets that already had it from NEW ignore it
RESYNC = "resync"  # something may have been missed: re-read state from the store


@dataclass(frozen=True)
class Change:
    kind: str
    user_id: int  # 0 for RESYNC addressed to everyone
    mailbox_id: int | None = None
    uids: tuple[int, ...] = ()  # empty with kind NEW/FLAGS/EXPUNGE means "some; re-read"
    modseq: int = 0
    mailbox: str = ""  # mailbox name (new name for renames)
    old_name: str = ""
    origin: str = ""  # session id of the originator, so it can skip echoing its own change
    extra: dict[str, Any] = field(default_factory=dict)  # small payload (e.g. email summary)
    # complete: the change describes all of one write to the mailbox, the write that spent
    # MODSEQ `modseq`: every UID it touched, and in `entries` what a view needs to apply it
    # without reading the store (relate.store.messages.event_entries). Dropped, like uids,
    # when the payload is too long.
    entries: tuple[Any, ...] = ()
    complete: bool = False

    def to_json(self) -> str:
        data: dict[str, Any] = {"k": self.kind, "u": self.user_id}
        if self.mailbox_id is not None:
            data["m"] = self.mailbox_id
        if self.uids:
            data["i"] = _compress(self.uids)
        if self.modseq:
            data["s"] = self.modseq
        if self.mailbox:
            data["n"] = self.mailbox
        if self.old_name:
            data["o"] = self.old_name
        if self.origin:
            data["g"] = self.origin
        if self.extra:
            data["x"] = self.extra
        if self.entries:
            data["e"] = self.entries
        if self.complete:
            data["c"] = 1
        text = json.dumps(data, separators=(",", ":"))
        if len(text.encode()) > NOTIFY_LIMIT:
            # Too big for one NOTIFY: say "these mailbox contents changed; re-read them".
            for key in ("i", "x", "e", "c"):
                data.pop(key, None)
            text = json.dumps(data, separators=(",", ":"))
        return text

    @classmethod
    def from_json(cls, text: str) -> Change:
        data = json.loads(text)
        return cls(
            kind=data["k"],
            user_id=data["u"],
            mailbox_id=data.get("m"),
            uids=tuple(_expand(data.get("i", []))),
            modseq=data.get("s", 0),
            mailbox=data.get("n", ""),
            old_name=data.get("o", ""),
            origin=data.get("g", ""),
            extra=data.get("x", {}),
            entries=tuple(data.get("e", ())),
            complete=bool(data.get("c")),
        )


def _compress(uids: Iterable[int]) -> list[list[int]]:
    ranges: list[list[int]] = []
    for uid in sorted(set(uids)):
        if ranges and ranges[-1][1] + 1 == uid:
            ranges[-1][1] = uid
        else:
            ranges.append([uid, uid])
    return ranges


def _expand(ranges: list[list[int]]) -> Iterable[int]:
    for lo, hi in ranges:
        yield from range(lo, hi + 1)


class Subscription:
    """A bounded queue of changes for one consumer (an IDLE session, a WebSocket)."""

    def __init__(self, bus: Bus, user_id: int | None, maxsize: int):
        self.bus = bus
        self.user_id = user_id  # None: every user's changes (the API's fan-out)
        self.queue: gevent.queue.Queue[Change] = gevent.queue.Queue(maxsize)
        self.overflowed = False  # set when changes were dropped; cleared by the next get()

    def offer(self, change: Change) -> None:
        if self.user_id is not None and change.user_id not in (self.user_id, 0):
            return
        try:
            self.queue.put_nowait(change)
        except gevent.queue.Full:
            self.overflowed = True
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(Change(RESYNC, self.user_id or 0))

    def get(self, timeout: float | None = None) -> Change | None:
        """Next change, or None on timeout."""
        try:
            change = self.queue.get(timeout=timeout)
        except gevent.queue.Empty:
            return None
        self.overflowed = False
        return change

    def drain(self) -> list[Change]:
        """Every change queued now, without waiting."""
        out = []
        while not self.queue.empty():
            out.append(self.queue.get_nowait())
        self.overflowed = False
        return out

    def close(self) -> None:
        self.bus.unsubscribe(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Bus:
    """Fan-out of committed changes to this process's subscribers.

    On PostgreSQL, `start_listener(dsn)` runs a greenlet holding its own connection with
    LISTEN; it is started lazily by the first subscriber.
    """

    def __init__(self) -> None:
        # Subscribers by the user whose changes they want (None: everyone's), so a change is
        # offered only to its user's subscribers and the catch-all ones, not to every session.
        self._subs: dict[int | None, set[Subscription]] = {}
        self._lock = threading.Lock()
        self._listener: gevent.Greenlet | None = None
        self._dsn: str | None = None
        self.listening = gevent.event.Event()  # set while the LISTEN connection is up

    def configure_postgres(self, dsn: str | None) -> None:
        """Use PostgreSQL NOTIFY for cross-process delivery (None: in-process only)."""
        if self._dsn != dsn:
            self.stop_listener()
        self._dsn = dsn

    @property
    def uses_postgres(self) -> bool:
        return self._dsn is not None

    def subscribe(self, user_id: int | None = None, maxsize: int = DEFAULT_QUEUE_SIZE) -> Subscription:
        sub = Subscription(self, user_id, maxsize)
        with self._lock:
            self._subs.setdefault(user_id, set()).add(sub)
        if self._dsn is not None and self._listener is None:
            self._listener = gevent.spawn(self._listen_forever)
            # The first subscriber waits (briefly) for LISTEN, so nothing committed after
            # subscribe() returns is missed; if the database is down it gets RESYNC later.
            self.listening.wait(timeout=LISTEN_WAIT)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            subs = self._subs.get(sub.user_id)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._subs[sub.user_id]

    def publish_local(self, changes: Iterable[Change]) -> None:
        for change in changes:
            with self._lock:
                if change.user_id == 0:  # addressed to everyone (RESYNC)
                    subs = [sub for group in self._subs.values() for sub in group]
                else:
                    subs = [*self._subs.get(change.user_id, ()), *self._subs.get(None, ())]
            for sub in subs:
                sub.offer(change)

    def stop_listener(self) -> None:
        if self._listener is not None:
            self._listener.kill(block=False)
            self._listener = None
            self.listening.clear()

    def _listen_forever(self) -> None:
        import psycopg2
        import psycopg2.extensions
        from gevent.socket import wait_read

        backoff = 0.2
        lost = False  # a connection was lost: subscribers must resync once we are back
        while True:
            conn = None
            try:
                conn = psycopg2.connect(self._dsn, connect_timeout=5, application_name="relate-bus",
                                        **LISTEN_KEEPALIVES)
                conn.set_isolation_level(psycopg2.extensions.ISOLATION_LEVEL_AUTOCOMMIT)
                with conn.cursor() as cur:
                    cur.execute(f"LISTEN {CHANNEL}")
                self.listening.set()
                backoff = 0.2
                if lost:
                    lost = False
                    self.publish_local([Change(RESYNC, 0)])
                while True:
                    try:
                        wait_read(conn.fileno(), timeout=LISTEN_IDLE_CHECK)
                    except TimeoutError:
                        # Quiet is not loss: check the connection is alive (a dead one raises
                        # below) instead of telling every subscriber to resynchronise.
                        with conn.cursor() as cur:
                            cur.execute("SELECT 1")
                    conn.poll()
                    batch = []
                    while conn.notifies:
                        note = conn.notifies.pop(0)
                        try:
                            batch.append(Change.from_json(note.payload))
                        except (ValueError, KeyError, TypeError):
                            log.warning("ignoring malformed change event")
                    if batch:
                        self.publish_local(batch)
            except gevent.GreenletExit:
                raise
            except Exception as exc:  # the database went away: tell everyone to resync
                was_up = self.listening.is_set()
                self.listening.clear()
                lost = True
                if was_up:
                    log.warning("change listener lost its connection (%s); reconnecting", exc)
                    self.publish_local([Change(RESYNC, 0)])
                gevent.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                if conn is not None:
                    try:
                        conn.close()
                    except Exception:
                        pass


bus = Bus()
