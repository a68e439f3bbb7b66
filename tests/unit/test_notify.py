"""The internal notification channel against a real local HTTP server."""

import json

import gevent
import pytest
from gevent.pywsgi import WSGIServer

from relate import notify


class Api:
    def __init__(self, statuses):
        self.statuses = list(statuses)  # status to answer, one per request; last one repeats
        self.requests = []
        self.server = WSGIServer(("127.0.0.1", 0), self.app, log=None)
        self.server.start()

    def app(self, environ, start_response):
        body = environ["wsgi.input"].read()
        self.requests.append((environ["PATH_INFO"], environ.get("HTTP_AUTHORIZATION"), json.loads(body)))
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        start_response(f"{status} X", [("Content-Type", "application/json")])
        return [b"{}"]

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server.server_port}"


@pytest.fixture
def fast_backoff(monkeypatch):
    monkeypatch.setattr(notify, "BACKOFF", (0.01, 0.01, 0.01))


def test_payload_shape_and_header(fast_backoff):
    api = Api([200])
    n = notify.Notifier(api.url, "secret-key")
    summary = {"id": 7, "from": "a@x.test", "fromDisplay": "A", "subject": "Hi", "receivedAt": "2026-01-01T00:00:00Z",
               "hasAttachments": False, "extra": "dropped"}
    n.submit(notify.new_email_payload([3], summary))
    assert n.flush(5)
    gevent.sleep(0)
    path, auth, body = api.requests[0]
    assert path == notify.PATH and auth == "ApiKey secret-key"
    assert body == {"userIds": [3], "email": {k: v for k, v in summary.items() if k != "extra"}}
    assert n.sent == 1


def test_retries_server_errors_then_succeeds(fast_backoff):
    api = Api([500, 503, 200])
    n = notify.Notifier(api.url, "k")
    n.submit({"userIds": [1], "email": {}})
    with gevent.Timeout(5):
        while n.sent == 0:
            gevent.sleep(0.01)
    assert len(api.requests) == 3


def test_gives_up_on_refusal_and_after_bounded_attempts(fast_backoff):
    refused = Api([401])
    n = notify.Notifier(refused.url, "wrong")
    n.submit({"userIds": [1], "email": {}})
    with gevent.Timeout(5):
        while n.failed == 0:
            gevent.sleep(0.01)
    assert len(refused.requests) == 1
    down = notify.Notifier("http://127.0.0.1:9", "k")  # nothing listens on the discard port
    down.submit({"userIds": [1], "email": {}})
    with gevent.Timeout(5):
        while down.failed == 0:
            gevent.sleep(0.01)


def test_disabled_without_key_and_submit_never_blocks():
    n = notify.Notifier("http://127.0.0.1:9", "")
    n.submit({"userIds": [1], "email": {}})
    assert n.worker is None and not n.queue
    slow = notify.Notifier("http://127.0.0.1:9", "k")  # no worker started: the queue only fills
    for _ in range(notify.QUEUE_LIMIT + 50):
        slow.queue.append({})
    assert len(slow.queue) == notify.QUEUE_LIMIT
