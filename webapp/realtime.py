"""The WebSocket hub: every change to a user's mail, pushed to that user's open sockets.

How an event gets to a browser (DESIGN.md §6 step 5):

    store commit ──NOTIFY──▶ every API process's bus listener ──▶ Hub (one bus subscription
    per process) ──▶ translated once per user ──▶ each of that user's Connections (bounded)
    ──▶ the socket's own greenlet writes it

- The WebSockets are fed from the change bus, which reaches every replica (PostgreSQL
  LISTEN/NOTIFY) or, on SQLite, this process. So a delivery by the SMTP daemon, an IMAP STORE
  in another process or a REST call here all arrive the same way.
- A daemon's new-email notification (`POST /api/internal/notifications/new-email`) reaches
  one replica. That replica re-announces it on the bus (kind `new-email-notice`), so every
  replica's hub sees it; a hub that already sent NewEmail for that email (from the bus's own
  `new` event, which PostgreSQL delivers first because it committed first) drops it. The
  notification also triggers web push, from that one replica only (webapp.push), so a
  browser is not woken once per replica.

Invariants:
- A user's events are built from that user's rows only (every read takes the user id), and
  are offered only to connections registered under that user id.
- Nothing is buffered without limit: the hub's bus subscription is bounded (overflow → every
  socket is told to resynchronise), and each connection holds at most CONNECTION_QUEUE frames;
  a socket that cannot keep up is closed (1013), never buffered.
- The hub never writes to a socket: each socket's greenlet does, with a deadline, so one slow
  client cannot stall the others.
- A socket authenticated by an API key is closed (1008) when that key is revoked, on every
  replica (the store announces revocations on the bus; after a resync the keys are checked).

Wire format: every frame is a JSON text message `{"type": ..., "data": {...}}`; the types and
their data are listed in webapp/api/realtime.py.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import gevent
import gevent.event
import gevent.lock
import gevent.pool

from relate import store
from relate.store import events as ev
from relate.store import listing
from relate.store import realtime as rt
from relate.store.realtime import EmailState
from webapp.api import shapes

log = logging.getLogger("relate.webapp.realtime")

HEARTBEAT_SECONDS = 25.0  # a Heartbeat frame this often, so clients can tell a dead line
CONNECTION_QUEUE = 256  # frames waiting for one socket; beyond that it is closed as too slow
HUB_QUEUE = 20_000  # changes waiting for the hub (overflow: every socket resynchronises)
SEND_TIMEOUT = 10.0  # seconds one frame may take to leave; longer and the socket is closed
MAX_EMAILS_PER_CHANGE = 200  # a change touching more emails becomes Resync for its mailbox
MAX_CONNECTIONS_PER_USER = 100
RECENT_NEW = 50_000  # (user, email id) pairs remembered, to send NewEmail once per email
DISPATCH_CONCURRENCY = 16  # users whose changes are translated at the same time
SYNC_MAX_MAILBOXES = 500  # mailboxes one Sync request may name

# RFC 6455 §7.4.1 close codes.
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008  # credentials revoked or expired
CLOSE_TRY_LATER = 1013  # too slow to read its events


def frame(kind: str, data: dict[str, Any], modseq: int | None = None) -> str:
    """One frame. `modseq` (beside the data, which keeps the REST API's shape) is the mailbox's
    MODSEQ after the change: what a client keeps to ask for a Sync later."""
    body: dict[str, Any] = {"type": kind, "data": data}
    if modseq is not None:
        body["modseq"] = modseq
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def email_frame(kind: str, state: EmailState) -> str:
    """NewEmail / EmailUpdated: the email exactly as `GET /api/emails` lists it."""
    return frame(kind, shapes.email_summary(state.row), state.modseq)


def notice_email_json(summary: dict[str, Any]) -> dict[str, Any]:
    """NewEmail data from a daemon's notification alone (the email could not be read back:
    it is already gone, or this API cannot see the daemon's database); the email list's
    fields it has, and null for the others."""
    data = dict.fromkeys(shapes.EMAIL_SUMMARY["properties"])
    data.update({
        "id": summary.get("id"),
        "fromAddress": summary.get("from") or "",
        "fromDisplayName": summary.get("fromDisplay") or None,
        "subject": summary.get("subject") or "",
        "receivedAt": summary.get("receivedAt"),
        "hasAttachments": bool(summary.get("hasAttachments")),
        "isRead": False,
        "labels": [],
    })
    return data


class Socket(Protocol):
    """What a Connection needs of a simple_websocket server connection."""

    connected: bool
    event: Any

    def send(self, data: str) -> None: ...
    def receive(self, timeout: float | None = None) -> Any: ...
    def close(self, reason: int | None = None, message: str | None = None) -> None: ...


@dataclass(eq=False)
class Connection:
    """One open WebSocket, as the hub sees it."""

    user_id: int  # whose events it receives; fixed at the handshake
    key_id: int | None  # the API key it authenticated with (closed when that key is revoked)
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])  # for log lines
    frames: deque[str] = field(default_factory=deque)  # waiting to be written (bounded by offer)
    wake: gevent.event.Event = field(default_factory=gevent.event.Event)  # set by hub and reader
    closing: tuple[int, str] | None = None  # (close code, reason) once the hub decided to close it

    def offer(self, text: str) -> None:
        """Queue one frame; a connection that has CONNECTION_QUEUE unsent is closed instead."""
        if self.closing is not None:
            return
        if len(self.frames) >= CONNECTION_QUEUE:
            log.info("ws %s user=%d: too slow, closing", self.id, self.user_id)
            self.close_soon(CLOSE_TRY_LATER, "too slow: events were not read in time")
            return
        self.frames.append(text)
        self.wake.set()

    def close_soon(self, code: int, reason: str) -> None:
        self.closing = (code, reason)
        self.frames.clear()
        self.wake.set()

    def take(self) -> list[str]:
        out = list(self.frames)
        self.frames.clear()
        return out


class Hub:
    """This process's fan-out from the change bus to its WebSocket connections."""

    def __init__(self) -> None:
        self.by_user: dict[int, set[Connection]] = {}
        self._sub: store.Subscription | None = None
        self._loop: gevent.Greenlet | None = None
        self._start_lock = gevent.lock.Semaphore()
        self._pool = gevent.pool.Pool(DISPATCH_CONCURRENCY)
        self._recent: OrderedDict[tuple[int, int], None] = OrderedDict()  # NewEmail already sent
        self._unread: dict[int, dict[int, tuple[int, int]]] = {}  # user → mailbox → (unread, total) sent
        self._inbox: dict[int, int] = {}  # user → INBOX mailbox id (it never changes)
        self.delivered = 0  # frames offered to connections, for /metrics and tests

    # -- connections ------------------------------------------------------------------------

    @property
    def connection_count(self) -> int:
        return sum(len(c) for c in self.by_user.values())

    def register(self, conn: Connection) -> bool:
        """Add a connection; False when its user already has MAX_CONNECTIONS_PER_USER."""
        self.start()
        conns = self.by_user.setdefault(conn.user_id, set())
        if len(conns) >= MAX_CONNECTIONS_PER_USER:
            return False
        conns.add(conn)
        return True

    def unregister(self, conn: Connection) -> None:
        conns = self.by_user.get(conn.user_id)
        if conns is None:
            return
        conns.discard(conn)
        if not conns:
            del self.by_user[conn.user_id]
            self._unread.pop(conn.user_id, None)
            self._inbox.pop(conn.user_id, None)

    def send_to_user(self, user_id: int, frames: Iterable[str]) -> None:
        frames = list(frames)
        for conn in list(self.by_user.get(user_id, ())):
            for text in frames:
                conn.offer(text)
                self.delivered += 1

    # -- the loop ---------------------------------------------------------------------------

    def start(self) -> None:
        """Subscribe to the bus (once per process); the first call waits for LISTEN."""
        if self._loop is not None and not self._loop.dead:
            return
        with self._start_lock:
            if self._loop is not None and not self._loop.dead:
                return
            if self._sub is None:
                self._sub = store.bus.subscribe(None, maxsize=HUB_QUEUE)
            self._loop = gevent.spawn(self._run, self._sub)

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.kill(block=False)
            self._loop = None
        if self._sub is not None:
            self._sub.close()
            self._sub = None
        for conns in list(self.by_user.values()):
            for conn in list(conns):
                conn.close_soon(CLOSE_GOING_AWAY, "server stopping")
        self.by_user.clear()
        self._recent.clear()
        self._unread.clear()
        self._inbox.clear()

    def _run(self, sub: store.Subscription) -> None:
        while True:
            first = sub.get()
            if first is None:
                continue
            batch = [first, *sub.drain()]
            try:
                self.dispatch(batch)
            except Exception:
                log.exception("real-time dispatch failed; telling every socket to resynchronise")
                self._resync_everyone("server error")

    def dispatch(self, batch: list[store.Change]) -> None:
        """Translate and fan out one batch of changes: users in parallel, each user's in order."""
        per_user: dict[int, list[store.Change]] = {}
        for change in batch:
            if change.kind == ev.RESYNC and change.user_id == 0:
                # Everything before it may be incomplete; everyone starts over from here.
                per_user.clear()
                self._resync_everyone("events may have been missed")
                continue
            if change.user_id in self.by_user:
                per_user.setdefault(change.user_id, []).append(change)
        jobs = [self._pool.spawn(self._dispatch_user, user_id, changes) for user_id, changes in per_user.items()]
        gevent.joinall(jobs)

    def _resync_everyone(self, reason: str) -> None:
        self._unread.clear()
        text = frame("Resync", {"mailboxId": None, "reason": reason})
        for user_id in list(self.by_user):
            self.send_to_user(user_id, [text])
        self._pool.spawn(self._check_keys)

    def _check_keys(self) -> None:
        """Close sockets whose API key was revoked (after a resync, revocations may be missed)."""
        key_ids = {c.key_id for conns in self.by_user.values() for c in conns if c.key_id is not None}
        if not key_ids:
            return
        try:
            gone = rt.revoked_keys(key_ids)
        except store.StoreError as exc:
            log.warning("could not check API keys of open sockets: %s", exc)
            return
        if gone:
            self._close_keys(gone)

    def _close_keys(self, key_ids: set[int]) -> None:
        for conns in list(self.by_user.values()):
            for conn in list(conns):
                if conn.key_id in key_ids:
                    log.info("ws %s user=%d: API key revoked, closing", conn.id, conn.user_id)
                    conn.close_soon(CLOSE_POLICY, "credentials revoked")

    def remember_new(self, user_id: int, email_id: int) -> bool:
        """True the first time NewEmail for this email goes to this user (from this process)."""
        key = (user_id, email_id)
        if key in self._recent:
            self._recent.move_to_end(key)
            return False
        self._recent[key] = None
        while len(self._recent) > RECENT_NEW:
            self._recent.popitem(last=False)
        return True

    # -- translation ------------------------------------------------------------------------

    def _dispatch_user(self, user_id: int, changes: list[store.Change]) -> None:
        try:
            frames, touched = self.translate(user_id, changes)
            frames += self.unread_frames(user_id, touched)
        except store.StoreError as exc:
            log.warning("real-time events for user %d not built (%s); asking for a resync", user_id, exc)
            self._unread.pop(user_id, None)
            frames = [frame("Resync", {"mailboxId": None, "reason": "server error"})]
        self.send_to_user(user_id, frames)

    def translate(self, user_id: int, changes: list[store.Change]) -> tuple[list[str], dict[int, str]]:
        """The frames for one user's changes, and the mailboxes (id → name) whose counts may
        have moved."""
        frames: list[str] = []
        touched: dict[int, str] = {}
        for c in changes:
            box = c.mailbox_id
            if c.kind in (ev.NEW, ev.FLAGS) and box is not None:
                touched[box] = c.mailbox
                if not c.uids or len(c.uids) > MAX_EMAILS_PER_CHANGE:
                    frames.append(frame("Resync", {"mailboxId": box, "reason": "many emails changed"}, c.modseq))
                    continue
                for state in rt.emails_by_uid(user_id, box, c.uids):
                    if c.kind == ev.FLAGS:
                        frames.append(email_frame("EmailUpdated", state))
                    elif self.remember_new(user_id, state.row.id):
                        frames.append(email_frame("NewEmail", state))
            elif c.kind == ev.EXPUNGE and box is not None:
                touched[box] = c.mailbox
                if not c.uids:
                    frames.append(frame("Resync", {"mailboxId": box, "reason": "many emails changed"}, c.modseq))
                    continue
                frames.append(frame("EmailDeleted", {
                    "ids": list(c.extra.get("ids", [])),
                    "mailboxId": box,
                    "mailbox": c.mailbox,
                    "uids": list(c.uids),
                }, c.modseq))
            elif c.kind == ev.NEW_EMAIL_NOTICE:
                email_id = c.extra.get("id")
                if not isinstance(email_id, int) or not self.remember_new(user_id, email_id):
                    continue
                found = rt.email_by_id(user_id, email_id)
                if found is None:
                    frames.append(frame("NewEmail", notice_email_json(c.extra)))
                else:
                    touched[found.row.mailbox_id] = found.row.mailbox
                    frames.append(email_frame("NewEmail", found))
            elif c.kind in MAILBOX_CHANGES:
                frames.append(frame("MailboxChanged", mailbox_change_json(user_id, c)))
                if c.kind == ev.MAILBOX_DELETED and box is not None:
                    self._unread.get(user_id, {}).pop(box, None)
            elif c.kind == ev.KEY_REVOKED:
                key_id = c.extra.get("keyId")
                if isinstance(key_id, int):
                    self._close_keys({key_id})
            elif c.kind == ev.RESYNC:
                self._unread.pop(user_id, None)
                frames.append(frame("Resync", {"mailboxId": None, "reason": "events may have been missed"}))
        return frames, touched

    def _inbox_id(self, user_id: int) -> int:
        inbox = self._inbox.get(user_id)
        if inbox is None:
            inbox = self._inbox[user_id] = store.mailboxes.get_mailbox(user_id, "INBOX").id
        return inbox

    def unread_frames(self, user_id: int, touched: dict[int, str]) -> list[str]:
        """UnreadCountChanged for each touched mailbox whose counts differ from what was sent."""
        if not touched:
            return []
        counts = listing.mailbox_counts(user_id)  # id → (messages, unseen), kept by the database
        inbox_unread = counts.get(self._inbox_id(user_id), (0, 0))[1]
        sent = self._unread.setdefault(user_id, {})
        frames = []
        for box_id, name in touched.items():
            if box_id not in counts:
                continue  # deleted meanwhile
            total, unread = counts[box_id]
            if sent.get(box_id) == (unread, total):
                continue
            sent[box_id] = (unread, total)
            frames.append(frame("UnreadCountChanged", {
                "mailboxId": box_id,
                "mailbox": name,
                "unreadCount": unread,
                "totalCount": total,
                "inboxUnreadCount": inbox_unread,
            }))
        return frames


MAILBOX_CHANGES = {
    ev.MAILBOX_CREATED: "created",
    ev.MAILBOX_RENAMED: "renamed",
    ev.MAILBOX_DELETED: "deleted",
    ev.MAILBOX_SUBSCRIBED: "subscription",
}


def mailbox_change_json(user_id: int, c: store.Change) -> dict[str, Any]:
    data: dict[str, Any] = {"change": MAILBOX_CHANGES[c.kind], "id": c.mailbox_id, "name": c.mailbox}
    if c.kind == ev.MAILBOX_RENAMED:
        data["oldName"] = c.old_name
    if c.kind == ev.MAILBOX_SUBSCRIBED and c.mailbox_id is not None:
        try:
            data["subscribed"] = store.mailboxes.get_mailbox_by_id(user_id, c.mailbox_id).subscribed
        except store.NotFound:
            data["subscribed"] = False
    return data


hub = Hub()


# -- one socket -------------------------------------------------------------------------------


def _send(ws: Socket, text: str) -> bool:
    """Write one frame with a deadline; False when the socket is gone or too slow."""
    try:
        with gevent.Timeout(SEND_TIMEOUT):
            ws.send(text)
        return True
    except gevent.Timeout:
        return False
    except Exception as exc:  # ConnectionClosed, OSError: the client went away
        log.debug("ws send failed: %r", exc)
        return False


def _close(ws: Socket, code: int, reason: str) -> None:
    try:
        with gevent.Timeout(2.0):
            ws.close(code, reason)
    except (Exception, gevent.Timeout):  # the socket is being abandoned either way
        pass


def serve(ws: Socket, user_id: int, key_id: int | None, valid_until: float | None = None) -> None:
    """Run one WebSocket until either side closes it. Called on the socket's own greenlet.

    A socket opened with an expiring credential (an OIDC access token: `valid_until`, epoch
    seconds) is closed with 1008 when the credential would no longer be accepted by a request;
    the client signs in again and reconnects."""
    conn = Connection(user_id, key_id)
    expires = time.monotonic() + (valid_until - time.time()) if valid_until is not None else None
    # The socket's reader sets ws.event when a client message arrives; sharing the one event
    # lets this greenlet wait for either kind of work at once.
    ws.event = conn.wake
    if not hub.register(conn):
        _close(ws, CLOSE_TRY_LATER, "too many open sockets for this user")
        return
    log.info("ws %s user=%d: open (%d on this process)", conn.id, user_id, hub.connection_count)
    try:
        try:
            boxes = [{"id": b.id, "name": b.name, "modseq": b.highest_modseq, "uidValidity": b.uid_validity}
                     for b in store.mailboxes.list_mailboxes(user_id)]
        except store.StoreError:
            boxes = []
        hello = {"connectionId": conn.id, "userId": user_id, "heartbeatSeconds": HEARTBEAT_SECONDS,
                 "mailboxes": boxes}
        if not _send(ws, frame("Hello", hello)):
            return
        next_beat = time.monotonic() + HEARTBEAT_SECONDS
        while True:
            # Client messages first (a Sync reply may go out before newer events, which is
            # fine: events are idempotent), then queued events, then the heartbeat when due.
            while True:
                try:
                    message = ws.receive(timeout=0)  # may yield, and clears the shared event
                except Exception:  # ConnectionClosed
                    return
                if message is None:
                    break
                for text in handle_client_message(conn, message):
                    if not _send(ws, text):
                        return
            if conn.closing is not None:
                _close(ws, *conn.closing)
                return
            if not ws.connected:
                return
            for text in conn.take():
                if not _send(ws, text):
                    return
            now = time.monotonic()
            if expires is not None and now >= expires:
                _close(ws, CLOSE_POLICY, "credentials expired: sign in again")
                return
            if now >= next_beat:
                if not _send(ws, frame("Heartbeat", {"time": iso_now()})):
                    return
                next_beat = now + HEARTBEAT_SECONDS
            # Sleep only when nothing is pending: a wake-up consumed by receive() above must
            # not leave queued frames, a close or a client message waiting for the heartbeat.
            if not conn.frames and conn.closing is None and ws.connected and not getattr(ws, "input_buffer", None):
                due = next_beat if expires is None else min(next_beat, expires)
                conn.wake.wait(timeout=max(0.0, due - time.monotonic()))
            conn.wake.clear()
    finally:
        hub.unregister(conn)
        log.info("ws %s user=%d: closed", conn.id, user_id)


def iso_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# -- what a client may ask --------------------------------------------------------------------


def _error(message: str) -> list[str]:
    return [frame("Error", {"error": message})]


def handle_client_message(conn: Connection, message: Any) -> list[str]:
    """The frames answering one client message: Ping → Pong, Sync → what changed since."""
    try:
        data = json.loads(message)
    except (TypeError, ValueError):
        return _error("expected a JSON text message")
    if not isinstance(data, dict):
        return _error("expected a JSON object")
    kind = data.get("type")
    if kind == "Ping":
        return [frame("Pong", {"time": iso_now()})]
    if kind == "Sync":
        return sync(conn.user_id, data.get("mailboxes"))
    return _error(f"unknown message type {kind!r}")


def _int_field(item: dict[str, Any], name: str, required: bool = True) -> int | None:
    value = item.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"mailboxes[].{name} must be a non-negative integer")
    return value


def sync(user_id: int, mailboxes: Any) -> list[str]:
    """Catch-up after a reconnect: for each {id, modseq[, lastUid][, uidValidity]} the client
    names, what changed after that MODSEQ (RFC 7162 CHANGEDSINCE/VANISHED, as events)."""
    if not isinstance(mailboxes, list) or len(mailboxes) > SYNC_MAX_MAILBOXES:
        return _error(f"Sync needs mailboxes: a list of at most {SYNC_MAX_MAILBOXES} objects")
    try:
        wanted = []
        for item in mailboxes:
            if not isinstance(item, dict):
                raise ValueError("mailboxes[] must be objects")
            wanted.append((_int_field(item, "id"), _int_field(item, "modseq"),
                           _int_field(item, "lastUid", False), _int_field(item, "uidValidity", False)))
    except ValueError as exc:
        return _error(str(exc))
    frames: list[str] = []
    synced: list[dict[str, Any]] = []
    touched: dict[int, str] = {}
    try:
        for box_id, modseq, last_uid, uid_validity in wanted:
            assert box_id is not None and modseq is not None
            changes = rt.changes_since(user_id, box_id, modseq)
            if changes is None:
                frames.append(frame("MailboxChanged", {"change": "deleted", "id": box_id, "name": None}))
                continue
            touched[box_id] = changes.mailbox
            if changes.truncated or (uid_validity is not None and uid_validity != changes.uid_validity):
                frames.append(frame("Resync", {"mailboxId": box_id, "reason": "too much changed"},
                                    changes.highest_modseq))
            else:
                for state in changes.changed:
                    new = last_uid is not None and state.row.uid > last_uid
                    frames.append(email_frame("NewEmail" if new else "EmailUpdated", state))
                if changes.vanished:
                    frames.append(frame("EmailDeleted", {"ids": [], "mailboxId": box_id, "mailbox": changes.mailbox,
                                                         "uids": changes.vanished}, changes.highest_modseq))
            synced.append({"id": box_id, "modseq": changes.highest_modseq, "uidValidity": changes.uid_validity})
        if touched:
            sent = hub._unread.get(user_id, {})
            for box_id in touched:
                sent.pop(box_id, None)  # this client needs the counts whether or not they moved
            frames += hub.unread_frames(user_id, touched)
    except store.StoreError as exc:
        return _error(f"could not read changes: {exc}")
    frames.append(frame("Synced", {"mailboxes": synced}))
    return frames
