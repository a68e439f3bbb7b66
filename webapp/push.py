"""Web push for new mail: RFC 8030 delivery, RFC 8291 (aes128gcm) encryption, RFC 8292 VAPID.

Invariants:
- Enabled only when Push__VapidPublicKey and Push__VapidPrivateKey are set and the private key
  parses and matches the public one; otherwise the routes say so and nothing is sent.
- Sending never delays the request that caused it: notifications go to a bounded queue
  (PUSH_QUEUE; when it is full the oldest is dropped) drained by a few greenlets.
- One daemon notification reaches one API replica, and only that replica pushes, so a browser
  is told once. Mail that lands in Sent, Drafts, Trash or Junk, or is already read (a filter
  marked it), is not pushed.
- A push service answering 404 or 410 means the subscription is gone (RFC 8030 §7.3): it is
  removed. Other failures are logged and the notification is not retried (it is not mail).
- The payload (encrypted for the subscriber) is small JSON: title, body, tag, url, emailId.
"""

from __future__ import annotations

import base64
import json
import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import gevent
import gevent.event
import requests
from cryptography.hazmat.primitives import serialization
from flask import Flask
from py_vapid import Vapid, Vapid01
from pywebpush import WebPushException, webpush

from relate.config import Settings
from relate.store import StoreError, mailboxes
from relate.store import push as push_store
from relate.store import realtime as rt
from relate.store.push import PushSubscriptionInfo

log = logging.getLogger("relate.webapp.push")

TTL_SECONDS = 24 * 3600  # how long the push service keeps an undelivered notification
SEND_TIMEOUT = 10.0
PUSH_QUEUE = 5_000  # notifications waiting to be pushed
WORKERS = 8  # greenlets sending at once
GONE = (404, 410)  # RFC 8030 §7.3: the subscription expired or was removed
QUIET_SPECIAL_USES = frozenset({"\\Sent", "\\Drafts", "\\Trash", "\\Junk"})


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def load_vapid(settings: Settings) -> Vapid01 | None:
    """The VAPID signing key, or None (push off) when it is unset, unreadable or does not
    belong to Push__VapidPublicKey."""
    if not settings.push.enabled:
        return None
    try:
        vapid = Vapid.from_string(private_key=settings.push.vapid_private_key)
    except Exception as exc:
        log.error("Push__VapidPrivateKey is not a usable P-256 key (%s): web push is off", type(exc).__name__)
        return None
    public = vapid.public_key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    if _b64url(public) != settings.push.vapid_public_key.strip().rstrip("="):
        log.error("Push__VapidPublicKey does not belong to Push__VapidPrivateKey: web push is off")
        return None
    return vapid


def subject(settings: Settings) -> str:
    """The VAPID `sub` claim: Push__VapidSubject, else a postmaster address (RFC 8292 §2.1)."""
    value = settings.push.vapid_subject.strip()
    if value:
        return value if value.startswith(("mailto:", "https://")) else f"mailto:{value}"
    return f"mailto:postmaster@{settings.smtp.server_name or 'localhost'}"


def payload(email: dict[str, Any]) -> str:
    """What the service worker shows (static/sw.js)."""
    sender = email.get("fromDisplay") or email.get("from") or "Someone"
    email_id = email.get("id")
    return json.dumps({
        "type": "NewEmail",
        "title": str(sender)[:120],
        "body": str(email.get("subject") or "(no subject)")[:200],
        "tag": f"email-{email_id}",
        "emailId": email_id,
        "url": f"/emails/{email_id}",
    }, ensure_ascii=False)


@dataclass
class PushSender:
    settings: Settings
    vapid: Vapid01 | None
    queue: deque[tuple[int, dict[str, Any]]] = field(default_factory=lambda: deque(maxlen=PUSH_QUEUE))
    wakeup: gevent.event.Event = field(default_factory=gevent.event.Event)
    workers: list[gevent.Greenlet] = field(default_factory=list)
    session: requests.Session = field(default_factory=requests.Session)
    sent: int = 0  # notifications the push service accepted
    removed: int = 0  # subscriptions removed after 404/410
    busy: int = 0  # notifications being sent right now

    @property
    def enabled(self) -> bool:
        return self.vapid is not None

    def new_email(self, user_ids: list[int], email: dict[str, Any]) -> None:
        """Queue a push for each user; never blocks."""
        if not self.enabled:
            return
        for user_id in user_ids:
            self.queue.append((user_id, email))
        self.wakeup.set()
        self.workers = [w for w in self.workers if not w.dead]
        while len(self.workers) < min(WORKERS, len(self.queue)):
            self.workers.append(gevent.spawn(self._run))

    def _run(self) -> None:
        while True:
            if not self.queue:
                self.wakeup.clear()
                if not self.wakeup.wait(timeout=60):
                    return  # idle: let the greenlet go
                continue
            user_id, email = self.queue.popleft()
            self.busy += 1
            try:
                self.push_new_email(user_id, email)
            except StoreError as exc:
                log.warning("web push for user %d skipped: %s", user_id, exc)
            except Exception:
                log.exception("web push for user %d failed", user_id)
            finally:
                self.busy -= 1

    def push_new_email(self, user_id: int, email: dict[str, Any]) -> None:
        email_id = email.get("id")
        if isinstance(email_id, int):
            state = rt.email_by_id(user_id, email_id)
            if state is not None:
                box = mailboxes.get_mailbox_by_id(user_id, state.row.mailbox_id)
                if state.row.seen or box.special_use in QUIET_SPECIAL_USES:
                    return
        data = payload(email)
        for sub in push_store.list_subscriptions(user_id):
            self.send(sub, data)

    def send(self, sub: PushSubscriptionInfo, data: str) -> bool:
        """Encrypt and POST one notification; True when the push service accepted it."""
        assert self.vapid is not None
        try:
            webpush(
                subscription_info={"endpoint": sub.endpoint, "keys": {"p256dh": sub.p256dh, "auth": sub.auth}},
                data=data,
                vapid_private_key=self.vapid,
                vapid_claims={"sub": subject(self.settings)},  # a new dict each time: webpush adds aud and exp
                content_encoding="aes128gcm",
                ttl=TTL_SECONDS,
                timeout=SEND_TIMEOUT,
                requests_session=self.session,
            )
        except WebPushException as exc:
            status = exc.response.status_code if exc.response is not None else None
            if status in GONE:
                push_store.remove_endpoint(sub.endpoint)
                self.removed += 1
                log.info("push subscription %d of user %d is gone (HTTP %d): removed", sub.id, sub.user_id, status)
            else:
                log.warning("push to subscription %d of user %d failed: HTTP %s", sub.id, sub.user_id, status)
            return False
        except (requests.RequestException, OSError, ValueError) as exc:
            log.warning("push to subscription %d of user %d failed: %s", sub.id, sub.user_id, type(exc).__name__)
            return False
        self.sent += 1
        return True

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued was sent (tests, shutdown)."""
        with gevent.Timeout(timeout, False):
            while self.queue or self.busy:
                gevent.sleep(0.02)
            return True
        return False


_sender: PushSender | None = None


def init_app(app: Flask) -> None:
    """Read the VAPID key once at start (logging why push is off, when it is)."""
    global _sender
    settings: Settings = app.config["RELATE_SETTINGS"]
    if _sender is None or _sender.settings is not settings:
        _sender = PushSender(settings, load_vapid(settings))


def sender() -> PushSender:
    assert _sender is not None, "webapp.push.init_app was not called"
    return _sender
