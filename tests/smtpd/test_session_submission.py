"""Submission: who may send as whom, the envelope deciding delivery (Bcc), the Sent copy,
filters, local-only delivery, and what happens after the commit (bus, API notification)."""

from __future__ import annotations

import json
import smtplib
import time
from collections.abc import Callable, Iterator

import gevent
import pytest
from gevent.pywsgi import WSGIServer
from sqlalchemy import insert, text

from relate import db
from relate.db.models import Filter
from relate.store import bus, mailboxes, messages
from tests.smtpd.conftest import Server, Smtp, World, body_of, message, stored

ALICE = "alice@example.test"


def login(server: Server, world: World) -> smtplib.SMTP:
    client = server.smtp()
    client.login(ALICE, world.alice_key)
    return client


def test_message_reaches_inbox_and_sent(server: Server, world: World) -> None:
    raw = message(subject="Lunch?")
    client = login(server, world)
    assert client.sendmail(ALICE, ["bob@example.test"], raw) == {}
    client.quit()
    [received] = stored(world.bob)
    assert body_of(received) == raw  # byte for byte, after our trace header
    [sent] = stored(world.alice, "Sent")
    assert sent == received
    box = mailboxes.get_mailbox(world.alice, "Sent")
    assert messages.list_entries(world.alice, box.id)[0].seen
    inbox = mailboxes.get_mailbox(world.bob, "INBOX")
    entry = messages.list_entries(world.bob, inbox.id)[0]
    assert not entry.seen and entry.envelope_from == ALICE


def test_bcc_follows_the_envelope(server: Server, world: World) -> None:
    raw = message(to="bob@example.test")  # carol is only in the envelope
    client = login(server, world)
    client.sendmail(ALICE, ["bob@example.test", "carol@other.test"], raw)
    client.quit()
    assert [body_of(m) for m in stored(world.bob)] == [raw]
    assert [body_of(m) for m in stored(world.carol)] == [raw]
    assert b"carol" not in stored(world.bob)[0]  # no "for <carol>" in the trace either


def test_repeated_and_differently_cased_recipients_get_one_copy(server: Server, world: World) -> None:
    client = login(server, world)
    client.sendmail(ALICE, ["bob@example.test", "BOB@EXAMPLE.TEST", "Bob@Example.Test"], message())
    client.quit()
    assert len(stored(world.bob)) == 1


def test_alias_reaches_its_owner(server: Server, world: World) -> None:
    client = server.smtp()
    client.login("bob@example.test", world.bob_key)
    client.sendmail("bob@example.test", ["alice.alias@example.test"], message(sender="bob@example.test"))
    client.quit()
    assert len(stored(world.alice)) == 1


@pytest.mark.parametrize(
    "sender", [ALICE, "alice.alias@example.test", "ALICE@Example.TEST"], ids=["primary", "alias", "case"]
)
def test_sender_may_be_any_confirmed_address(server: Server, world: World, sender: str) -> None:
    smtp = Smtp.connect(server.submission)
    smtp.ehlo()
    smtp.starttls()
    smtp.ehlo()
    smtp.login(ALICE, world.alice_key)
    assert smtp.cmd(f"MAIL FROM:<{sender}>") == "250 2.1.0 Sender OK"


@pytest.mark.parametrize(
    "sender",
    ["bob@example.test", "alice.pending@example.test", "alice@remote.test", "", "alice%remote.test@example.test"],
    ids=["other-user", "pending", "remote", "null", "percent"],
)
def test_sender_must_be_owned(submitter: Callable[[], Smtp], sender: str) -> None:
    smtp = submitter()
    assert smtp.cmd(f"MAIL FROM:<{sender}>") == (
        "553 5.7.1 Sender address is not one of the authenticated user's addresses"
    )


def test_mail_without_auth_is_refused(server: Server) -> None:
    client = server.smtp()
    with pytest.raises(smtplib.SMTPSenderRefused) as refused:
        client.sendmail(ALICE, ["bob@example.test"], message())
    assert refused.value.smtp_code == 530
    assert refused.value.smtp_error == b"5.7.0 Authentication required"


def test_unknown_local_recipient(submitter: Callable[[], Smtp]) -> None:
    smtp = submitter()
    smtp.cmd("MAIL FROM:<alice@example.test>")
    assert smtp.cmd("RCPT TO:<nobody@example.test>") == "550 5.1.1 Mailbox unavailable: no such user here"
    assert smtp.cmd("RCPT TO:<alice.pending@example.test>") == "550 5.1.1 Mailbox unavailable: no such user here"


def test_remote_recipient_is_refused_with_a_clear_reason(submitter: Callable[[], Smtp], world: World) -> None:
    smtp = submitter()
    smtp.cmd("MAIL FROM:<alice@example.test>")
    assert smtp.cmd("RCPT TO:<friend@remote.test>") == (
        "550 5.7.1 Delivery to remote domains is not available on this server"
    )
    assert smtp.cmd("RCPT TO:<bob@example.test>") == "250 2.1.5 Recipient OK"
    assert smtp.data(b"Subject: mixed\r\n\r\nhi\r\n.\r\n") == "250 2.6.0 Message accepted"
    assert len(stored(world.bob)) == 1


def test_filters_run_at_delivery(server: Server, world: World) -> None:
    mailboxes.create_mailbox(world.bob, "Invoices")
    with db.get_engine().begin() as conn:
        conn.execute(insert(Filter).values(
            user_id=world.bob, name="invoices", position=0,
            conditions={"subject": "invoice"}, actions={"moveTo": "Invoices", "markRead": True, "addLabel": "money"},
        ))
    client = login(server, world)
    client.sendmail(ALICE, ["bob@example.test"], message(subject="Your invoice"))
    client.sendmail(ALICE, ["bob@example.test"], message(subject="Hello"))
    client.quit()
    assert len(stored(world.bob)) == 1
    box = mailboxes.get_mailbox(world.bob, "Invoices")
    [entry] = messages.list_entries(world.bob, box.id)
    assert entry.seen and "money" in entry.flags
    assert len(stored(world.alice, "Sent")) == 2  # the sender's copy is not filtered by bob's rules


def test_postmaster_without_domain(submitter: Callable[[], Smtp], world: World) -> None:
    smtp = submitter()
    smtp.cmd("MAIL FROM:<alice@example.test>")
    assert smtp.cmd("RCPT TO:<Postmaster>") == "250 2.1.5 Recipient OK"
    assert smtp.data(b"Subject: help\r\n\r\nhi\r\n.\r\n") == "250 2.6.0 Message accepted"
    assert len(stored(world.postmaster)) == 1


def test_size_declared_over_the_limit(smtp_server: Callable[..., Server], world: World) -> None:
    server = smtp_server(smtp={"max_message_size": 5000})
    client = login(server, world)
    with pytest.raises(smtplib.SMTPSenderRefused) as refused:
        client.sendmail(ALICE, ["bob@example.test"], b"x" * 6000)  # smtplib declares SIZE
    assert (refused.value.smtp_code, refused.value.smtp_error) == (
        552, b"5.3.4 Message size exceeds fixed maximum message size")


def test_smtputf8_addresses(server: Server, world: World) -> None:
    from relate.store import accounts

    jorg = accounts.create_user("jörg@example.test", "Jörg")
    client = login(server, world)
    raw = "From: alice@example.test\r\nTo: jörg@example.test\r\nSubject: grüße\r\n\r\nhallo\r\n".encode()
    client.sendmail(ALICE, ["jörg@example.test"], raw, mail_options=["SMTPUTF8"])
    client.quit()
    [received] = stored(jorg.id)
    assert body_of(received) == raw
    assert b"with UTF8SMTPSA" in received


def test_eight_bit_content_is_kept_byte_for_byte(server: Server, world: World) -> None:
    raw = b"Subject: 8bit\r\nContent-Type: text/plain; charset=latin-1\r\n\r\nd\xe9j\xe0 vu \x00\xff\r\n"
    client = login(server, world)
    client.sendmail(ALICE, ["bob@example.test"], raw, mail_options=["BODY=8BITMIME"])
    client.quit()
    assert body_of(stored(world.bob)[0]) == raw


def test_implicit_tls_submission(server: Server, world: World) -> None:
    client = server.smtps()
    client.login(ALICE, world.alice_key)
    client.sendmail(ALICE, ["bob@example.test"], message())
    client.quit()
    assert b"with ESMTPSA" in stored(world.bob)[0]


def test_unauthenticated_submission_when_allowed_is_local_only(
    smtp_server: Callable[..., Server], world: World
) -> None:
    server = smtp_server(smtp={"require_authentication": False})
    smtp = Smtp.connect(server.submission)
    smtp.ehlo()
    assert smtp.cmd("MAIL FROM:<anyone@remote.test>") == "250 2.1.0 Sender OK"
    assert smtp.cmd("RCPT TO:<friend@remote.test>") == "554 5.7.1 Relay access denied"
    assert smtp.cmd("RCPT TO:<bob@example.test>") == "250 2.1.5 Recipient OK"
    assert smtp.data(b"Subject: local\r\n\r\nhi\r\n.\r\n") == "250 2.6.0 Message accepted"
    assert len(stored(world.bob)) == 1
    assert stored(world.alice, "Sent") == []


def test_received_header_on_submission(server: Server, world: World) -> None:
    client = login(server, world)
    client.sendmail(ALICE, ["bob@example.test"], message())
    client.quit()
    header = stored(world.bob)[0].split(b"\r\nFrom: ")[0].decode()
    assert header.startswith("Received: from client.example ([127.0.0.1])\r\n\t(using TLSv1.")
    assert "\r\n\tby mail.example.test (Relate Mail) with ESMTPSA id " in header
    assert "\r\n\tfor <bob@example.test>; " in header


def test_store_failure_is_temporary_and_the_session_goes_on(submitter: Callable[[], Smtp], world: World) -> None:
    with db.get_engine().begin() as conn:  # a broken account: bob has no mailboxes at all
        conn.execute(text("DELETE FROM mailboxes WHERE user_id = :u"), {"u": world.bob})
    smtp = submitter()
    smtp.cmd("MAIL FROM:<alice@example.test>")
    smtp.cmd("RCPT TO:<bob@example.test>")
    assert smtp.data(b"Subject: x\r\n\r\nhi\r\n.\r\n") == (
        "451 4.3.0 Temporary failure storing the message, try again later"
    )
    assert smtp.cmd("MAIL FROM:<alice@example.test>") == "250 2.1.0 Sender OK"


def test_new_message_goes_on_the_bus(server: Server, world: World) -> None:
    with bus.subscribe(world.bob) as subscription:
        client = login(server, world)
        client.sendmail(ALICE, ["bob@example.test"], message(subject="evented"))
        client.quit()
        change = subscription.get(timeout=5)
    assert change is not None and change.kind == "new" and change.user_id == world.bob
    assert change.extra["subject"] == "evented"


@pytest.fixture
def api(world: World) -> Iterator[tuple[int, list[tuple[dict[str, str], dict[str, object]]]]]:
    """A stand-in for the API's internal endpoint that records requests and answers slowly."""
    received: list[tuple[dict[str, str], dict[str, object]]] = []

    def app(environ: dict[str, object], start_response: Callable[..., object]) -> list[bytes]:
        body = environ["wsgi.input"].read(int(str(environ.get("CONTENT_LENGTH") or 0)))  # type: ignore[attr-defined]
        headers = {"path": str(environ["PATH_INFO"]), "authorization": str(environ.get("HTTP_AUTHORIZATION"))}
        gevent.sleep(0.5)  # a slow API must not delay the SMTP reply
        received.append((headers, json.loads(body)))
        start_response("204 No Content", [])
        return [b""]

    http = WSGIServer(("127.0.0.1", 0), app, log=None)
    http.start()
    yield http.server_port, received
    http.stop()


def test_api_is_notified_after_commit_without_delaying_the_reply(
    smtp_server: Callable[..., Server], world: World, api: tuple[int, list[tuple[dict[str, str], dict[str, object]]]]
) -> None:
    port, received = api
    server = smtp_server(api_base_url=f"http://127.0.0.1:{port}", internal_api_key="internal-secret")
    client = login(server, world)
    client.mail(ALICE)
    client.rcpt("bob@example.test")
    started = time.monotonic()
    code, _ = client.data(message(subject="notify me"))
    assert code == 250
    assert time.monotonic() - started < 0.4
    client.quit()
    deadline = time.monotonic() + 10
    while len(received) < 2 and time.monotonic() < deadline:
        gevent.sleep(0.05)
    by_user = {payload["userIds"][0]: (headers, payload) for headers, payload in received}  # type: ignore[index]
    assert set(by_user) == {world.bob, world.alice}  # bob's INBOX and alice's Sent
    headers, payload = by_user[world.bob]
    assert headers == {"path": "/api/internal/notifications/new-email", "authorization": "ApiKey internal-secret"}
    email = payload["email"]
    assert isinstance(email, dict)
    assert email["subject"] == "notify me" and email["from"] == ALICE and email["hasAttachments"] is False
