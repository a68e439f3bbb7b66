"""Web push: subscriptions, and notifications a local push-service stand-in receives and decrypts
with the subscription's own keys (RFC 8291 aes128gcm), signed with our VAPID key (RFC 8292)."""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import gevent
import http_ece
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from gevent.pywsgi import WSGIServer
from werkzeug.wrappers import Request, Response

from relate.store import mailboxes, messages
from relate.store import push as push_store
from tests.realtime.conftest import INTERNAL_KEY, Api, User, deliver, http, make_message, make_user
from webapp import push

pytestmark = pytest.mark.timeout(60)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def vapid_pair() -> tuple[str, str]:
    """(public, private) base64url, the form Push__VapidPublicKey / Push__VapidPrivateKey take."""
    key = ec.generate_private_key(ec.SECP256R1())
    private = key.private_numbers().private_value.to_bytes(32, "big")
    public = key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return b64url(public), b64url(private)


VAPID_PUBLIC, VAPID_PRIVATE = vapid_pair()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def es256_valid(token: str, public: str) -> bool:
    """Whether a JWT's ES256 signature (raw r || s, RFC 7518 §3.4) verifies with `public`."""
    head, body, signature = token.split(".")
    raw = b64url_decode(signature)
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b64url_decode(public))
    try:
        key.verify(der, f"{head}.{body}".encode(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class PushService:
    """Stands in for a browser vendor's push service: records each POST and answers `status`
    (201 Created, or what a test sets for a path)."""

    received: list[Received] = field(default_factory=list)
    status: dict[str, int] = field(default_factory=dict)  # path → status to answer
    server: WSGIServer | None = None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        self.received.append(Received(request.path, dict(request.headers), request.get_data()))
        return Response(status=self.status.get(request.path, 201))(environ, start_response)

    @property
    def base(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_port}"

    def wait(self, count: int, timeout: float = 5.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            gevent.sleep(0.02)
        return self.received


@dataclass
class Browser:
    """A browser's subscription: its ECDH key pair and auth secret (RFC 8291 §3)."""

    endpoint: str
    key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    auth: bytes = field(default_factory=lambda: os.urandom(16))

    def subscription(self) -> dict[str, Any]:
        public = self.key.public_key().public_bytes(serialization.Encoding.X962,
                                                    serialization.PublicFormat.UncompressedPoint)
        return {"endpoint": self.endpoint, "keys": {"p256dh": b64url(public), "auth": b64url(self.auth)},
                "expirationTime": None}

    def decrypt(self, body: bytes) -> dict[str, Any]:
        plain = http_ece.decrypt(body, private_key=self.key, auth_secret=self.auth, version="aes128gcm")
        return dict(json.loads(plain))


@pytest.fixture
def push_service() -> Iterator[PushService]:
    service = PushService()
    service.server = WSGIServer(("127.0.0.1", 0), service, log=None, error_log=None)
    service.server.start()
    yield service
    service.server.stop(timeout=0.1)


@pytest.fixture
def api_env() -> dict[str, str]:
    return {"Push__VapidPublicKey": VAPID_PUBLIC, "Push__VapidPrivateKey": VAPID_PRIVATE,
            "Push__VapidSubject": "mailto:postmaster@example.test"}


def subscribe(api: Api, user: User, browser: Browser) -> int:
    status, body = http("POST", api.base + "/api/push-subscriptions", browser.subscription(), user.auth)
    assert status == 201, body
    return int(body["id"])


def notify(api: Api, user: User, email: dict[str, Any]) -> None:
    status, _ = http("POST", api.base + "/api/internal/notifications/new-email", {"userIds": [user.id], "email": email},
                     {"Authorization": f"ApiKey {INTERNAL_KEY}"})
    assert status == 202


def test_a_new_email_is_pushed_encrypted_for_the_subscription(api: Api, push_service: PushService):
    alice = make_user("alice")
    browser = Browser(push_service.base + "/push/alice-browser")
    subscribe(api, alice, browser)
    delivered = deliver(alice, "Lunch on Friday?")
    summary = delivered.summaries[0][1]
    notify(api, alice, summary)
    (got,) = push_service.wait(1)
    assert got.path == "/push/alice-browser"
    assert got.headers["Content-Encoding"] == "aes128gcm"
    assert int(got.headers["Ttl"]) == push.TTL_SECONDS
    message = browser.decrypt(got.body)
    assert message == {"type": "NewEmail", "title": "Some One", "body": "Lunch on Friday?",
                       "tag": f"email-{summary['id']}", "emailId": summary["id"], "url": f"/emails/{summary['id']}"}
    # RFC 8292: `vapid t=<JWT signed by our key>, k=<our public key>`, audience = the push service.
    scheme, _, params = got.headers["Authorization"].partition(" ")
    fields = dict(part.strip().split("=", 1) for part in params.split(","))
    assert scheme == "vapid" and fields["k"] == VAPID_PUBLIC
    assert es256_valid(fields["t"], VAPID_PUBLIC)
    claims = json.loads(b64url_decode(fields["t"].split(".")[1]))
    assert claims["aud"] == push_service.base and claims["sub"] == "mailto:postmaster@example.test"
    assert claims["exp"] > time.time()


def test_a_gone_subscription_is_removed(api: Api, push_service: PushService):
    alice = make_user("alice")
    gone, fine, missing = (Browser(push_service.base + p) for p in ("/push/gone", "/push/fine", "/push/missing"))
    for browser in (gone, fine, missing):
        subscribe(api, alice, browser)
    push_service.status["/push/gone"] = 410
    push_service.status["/push/missing"] = 404
    delivered = deliver(alice)
    notify(api, alice, delivered.summaries[0][1])
    push_service.wait(3)
    assert push.sender().flush(5)
    assert [s.endpoint for s in push_store.list_subscriptions(alice.id)] == [fine.endpoint]
    assert push.sender().removed == 2


def test_a_service_error_keeps_the_subscription(api: Api, push_service: PushService):
    alice = make_user("alice")
    browser = Browser(push_service.base + "/push/busy")
    subscribe(api, alice, browser)
    push_service.status["/push/busy"] = 500
    notify(api, alice, deliver(alice).summaries[0][1])
    push_service.wait(1)
    assert push.sender().flush(5)
    assert len(push_store.list_subscriptions(alice.id)) == 1


def test_sent_and_already_read_mail_is_not_pushed(api: Api, push_service: PushService):
    alice = make_user("alice")
    subscribe(api, alice, Browser(push_service.base + "/push/a"))
    sent = mailboxes.find_special(alice.id, "\\Sent")
    assert sent is not None
    _, entry = messages.append(alice.id, sent.id, make_message("my own"), [])
    notify(api, alice, {"id": entry.id, "subject": "my own"})
    inbox = mailboxes.get_mailbox(alice.id, "INBOX")
    _, read = messages.append(alice.id, inbox.id, make_message("read already"), ["\\Seen"])
    notify(api, alice, {"id": read.id, "subject": "read already"})
    assert push.sender().flush(5)
    assert push_service.received == []


def test_only_the_addressee_is_pushed(api: Api, push_service: PushService):
    alice, bob = make_user("alice"), make_user("bob")
    subscribe(api, alice, Browser(push_service.base + "/push/alice"))
    subscribe(api, bob, Browser(push_service.base + "/push/bob"))
    notify(api, alice, deliver(alice).summaries[0][1])
    assert push.sender().flush(5)
    assert [r.path for r in push_service.wait(1)] == ["/push/alice"]


def test_subscription_routes(api: Api):
    alice, bob = make_user("alice"), make_user("bob")
    status, body = http("GET", api.base + "/api/push-subscriptions/vapid-public-key", headers=alice.auth)
    assert status == 200 and body == {"enabled": True, "publicKey": VAPID_PUBLIC}
    browser = Browser("https://push.example.net/send/abc")
    first = subscribe(api, alice, browser)
    again = subscribe(api, alice, browser)  # the same browser subscribing again refreshes its row
    assert first == again
    status, listed = http("GET", api.base + "/api/push-subscriptions", headers=alice.auth)
    assert status == 200 and [s["endpoint"] for s in listed] == [browser.endpoint]
    assert http("GET", api.base + "/api/push-subscriptions", headers=bob.auth)[1] == []
    assert http("DELETE", api.base + f"/api/push-subscriptions/{first}", headers=bob.auth)[0] == 404
    assert http("DELETE", api.base + "/api/push-subscriptions", {"endpoint": browser.endpoint}, bob.auth)[0] == 404
    assert http("DELETE", api.base + "/api/push-subscriptions", {"endpoint": browser.endpoint}, alice.auth)[0] == 204
    second = subscribe(api, alice, browser)
    assert http("DELETE", api.base + f"/api/push-subscriptions/{second}", headers=alice.auth)[0] == 204
    assert push_store.list_subscriptions(alice.id) == []


@pytest.mark.parametrize(
    "change",
    [
        {"endpoint": "http://push.example.net/x"},
        {"endpoint": "ftp://push.example.net/x"},
        {"endpoint": "not a url"},
        {"keys": {"p256dh": "AAAA", "auth": b64url(os.urandom(16))}},
        {"keys": {"p256dh": Browser("x").subscription()["keys"]["p256dh"], "auth": b64url(b"short")}},
        {"keys": {"p256dh": "!!!", "auth": "!!!"}},
        {"extra": 1},
    ],
    ids=["plain-http", "ftp", "not-url", "short-point", "short-auth", "not-base64", "unknown-field"],
)
def test_bad_subscriptions_are_400(api: Api, change: dict[str, Any]):
    alice = make_user("alice")
    body = {**Browser("https://push.example.net/x").subscription(), **change}
    status, answer = http("POST", api.base + "/api/push-subscriptions", body, alice.auth)
    assert status == 400, answer


def test_subscribing_needs_api_write(api: Api):
    reader = make_user("reader", scopes="api:read")
    status, _ = http("POST", api.base + "/api/push-subscriptions", Browser("https://p.example/x").subscription(),
                     reader.auth)
    assert status == 403


def test_the_service_worker_is_served_from_the_root(api: Api):
    import urllib.request

    with urllib.request.urlopen(api.base + "/sw.js", timeout=5) as response:
        assert response.headers["Content-Type"].startswith("text/javascript")
        assert response.headers["Service-Worker-Allowed"] == "/"
        script = response.read().decode()
    assert "showNotification" in script and "notificationclick" in script


class TestWithoutVapid:
    @pytest.fixture
    def api_env(self) -> dict[str, str]:
        return {}

    def test_push_is_off_and_says_so(self, api: Api):
        alice = make_user("alice")
        status, body = http("GET", api.base + "/api/push-subscriptions/vapid-public-key", headers=alice.auth)
        assert status == 200 and body == {"enabled": False, "publicKey": None}
        status, body = http("POST", api.base + "/api/push-subscriptions",
                            Browser("https://p.example/x").subscription(), alice.auth)
        assert status == 501 and "Push__Vapid" in body["error"]


class TestMismatchedVapidKeys:
    @pytest.fixture
    def api_env(self) -> dict[str, str]:
        return {"Push__VapidPublicKey": vapid_pair()[0], "Push__VapidPrivateKey": VAPID_PRIVATE}

    def test_a_public_key_of_another_pair_turns_push_off(self, api: Api):
        assert push.sender().enabled is False
