"""The internal channel from the daemons to the API (DESIGN.md §6 step 4).

After a commit a daemon calls `notify_new_email(...)`; a background greenlet POSTs the JSON to
`{Api__BaseUrl}/api/internal/notifications/new-email` with `Authorization: ApiKey
{Internal__ApiKey}`. The queue is bounded and the protocol reply never waits for it: when the
queue is full the oldest notification is dropped (the change bus still carries the event);
failures are logged and retried a bounded number of times with backoff.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import gevent
import gevent.event

from relate.config import Settings

log = logging.getLogger("relate.notify")

PATH = "/api/internal/notifications/new-email"
QUEUE_LIMIT = 10_000
ATTEMPTS = 4
BACKOFF = (0.5, 2.0, 8.0)  # seconds before the 2nd, 3rd and 4th attempt
TIMEOUT = 5.0


@dataclass
class Notifier:
    base_url: str  # Api__BaseUrl
    api_key: str  # Internal__ApiKey; empty disables the channel
    queue: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=QUEUE_LIMIT))
    wakeup: gevent.event.Event = field(default_factory=gevent.event.Event)
    worker: gevent.Greenlet | None = None
    sent: int = 0  # delivered notifications, for tests and metrics
    failed: int = 0  # notifications given up after ATTEMPTS

    @property
    def enabled(self) -> bool:
        return bool(self.api_key)

    def submit(self, payload: dict[str, Any]) -> None:
        """Queue one notification; never blocks and never raises."""
        if not self.enabled:
            return
        self.queue.append(payload)
        self.wakeup.set()
        if self.worker is None or self.worker.dead:
            self.worker = gevent.spawn(self._run)

    def _run(self) -> None:
        while True:
            if not self.queue:
                self.wakeup.clear()
                self.wakeup.wait()
                continue
            payload = self.queue.popleft()
            self._deliver(payload)

    def _deliver(self, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        for attempt in range(ATTEMPTS):
            try:
                request = urllib.request.Request(
                    self.base_url.rstrip("/") + PATH,
                    data=body,
                    method="POST",
                    headers={"Content-Type": "application/json", "Authorization": f"ApiKey {self.api_key}"},
                )
                with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
                    response.read()
                self.sent += 1
                return
            except urllib.error.HTTPError as exc:
                if 400 <= exc.code < 500 and exc.code not in (408, 429):
                    log.warning("API refused a new-email notification: HTTP %d", exc.code)
                    self.failed += 1
                    return
                reason = f"HTTP {exc.code}"
            except (OSError, ValueError) as exc:
                reason = str(exc)
            if attempt < ATTEMPTS - 1:
                gevent.sleep(BACKOFF[attempt])
            else:
                log.warning("new-email notification not delivered after %d attempts: %s", ATTEMPTS, reason)
                self.failed += 1

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until the queue is empty (tests, shutdown)."""
        with gevent.Timeout(timeout, False):
            while self.queue or (self.worker is not None and not self.worker.dead and self.wakeup.is_set()):
                gevent.sleep(0.01)
            return True
        return False


_notifier: Notifier | None = None


def notifier(settings: Settings) -> Notifier:
    """The process's notifier for these settings."""
    global _notifier
    if _notifier is None or (_notifier.base_url, _notifier.api_key) != (settings.api_base_url, settings.internal_api_key):
        _notifier = Notifier(settings.api_base_url, settings.internal_api_key)
    return _notifier


def new_email_payload(user_ids: list[int], summary: dict[str, Any]) -> dict[str, Any]:
    """The JSON of DESIGN.md §6: {"userIds": [...], "email": {id, from, fromDisplay, subject,
    receivedAt, hasAttachments}}."""
    keys = ("id", "from", "fromDisplay", "subject", "receivedAt", "hasAttachments")
    return {"userIds": list(user_ids), "email": {k: summary.get(k) for k in keys}}
