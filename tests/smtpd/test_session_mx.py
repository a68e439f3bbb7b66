"""MX (port 25): mail for existing users of hosted domains only; never a relay, whatever the
trick; a Received trace on every message."""

from __future__ import annotations

import dataclasses

import pytest

from relate.smtpd import service
from tests.smtpd.conftest import Server, Smtp, World, body_of, message, stored

RELAY = "554 5.7.1 Relay access denied"
NO_USER = "550 5.1.1 Mailbox unavailable: no such user here"
BAD_SYNTAX = "553 5.1.3 Bad recipient address syntax"
ROUTING = "554 5.7.1 Relay access denied: recipient local part may not contain %, ! or @"
LITERAL = "554 5.7.1 Relay access denied: IP addresses and address literals are not accepted as recipients"
SOURCE_ROUTE = "554 5.7.1 Relay access denied: source routes are not accepted"
TRAILING_DOT = "554 5.7.1 Relay access denied: recipient domain may not end with a dot"

# Every destination not hosted here, whatever the trick, is 554 5.7.1 (only the text says
# which trick); an address that names no destination at all is a syntax error.
RELAY_TRICKS = [
    ("friend@remote.test", RELAY),
    ("bob%remote.test@example.test", ROUTING),
    ("remote.test!bob@example.test", ROUTING),
    ("bob%remote.test", ROUTING),
    ("remote.test!bob", ROUTING),
    ('"bob@remote.test"@example.test', ROUTING),
    ('"bob%remote.test"@example.test', ROUTING),
    ("@example.test:bob@remote.test", SOURCE_ROUTE),
    ("@example.test,@relay.test:bob@remote.test", SOURCE_ROUTE),
    ("bob@[127.0.0.1]", LITERAL),
    ("bob@[IPv6:::1]", LITERAL),
    ("bob@127.0.0.1", LITERAL),
    ("bob@example.test.", TRAILING_DOT),
    ("bob@example.test..", TRAILING_DOT),
    ("bob@example.test@remote.test", ROUTING),
    ("bob@mail.example.test", RELAY),
    ("bob@example.test.remote.test", RELAY),
    ("bob@example-test.remote.test", RELAY),
    ("bob@examp1e.test", RELAY),
    ("bob@example.tes", RELAY),
    ("bob@localhost", RELAY),
    ("postmaster@remote.test", RELAY),
    ("Postmaster@example.test.", TRAILING_DOT),
    ("postmaster%remote.test@example.test", ROUTING),
    ("bob@ex\u0430mple.test", "553 5.6.7 Non-ASCII recipient address requires SMTPUTF8"),
    ("bob", BAD_SYNTAX),
    ("", BAD_SYNTAX),
]


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize(("address", "expected"), RELAY_TRICKS, ids=[a or "empty" for a, _ in RELAY_TRICKS])
def test_relay_tricks_are_refused(server: Server, world: World, address: str, expected: str) -> None:
    smtp = server.mx_transaction()
    assert smtp.cmd(f"RCPT TO:<{address}>") == expected
    assert smtp.cmd("DATA") in ("503 5.5.1 Need RCPT before DATA", "554 5.5.1 No valid recipients")


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_look_alike_unicode_domain_is_remote_even_with_smtputf8(server: Server) -> None:
    smtp = Smtp.connect(server.mx)
    smtp.ehlo()
    smtp.cmd("MAIL FROM:<someone@remote.test> SMTPUTF8")
    assert smtp.cmd("RCPT TO:<bob@ex\u0430mple.test>") == RELAY
    assert smtp.cmd("RCPT TO:<bob@example\uff0etest>") == BAD_SYNTAX  # a fullwidth dot is no dot


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_non_ascii_without_smtputf8_is_553_for_sender_and_recipient(server: Server) -> None:
    smtp = Smtp.connect(server.mx)
    smtp.ehlo()
    assert smtp.cmd("MAIL FROM:<j\u00f6rg@remote.test>") == "553 5.6.7 Non-ASCII sender address requires SMTPUTF8"
    assert smtp.cmd("MAIL FROM:<jorg@remote.test>") == "250 2.1.0 Sender OK"
    assert smtp.cmd("RCPT TO:<j\u00f6rg@example.test>") == "553 5.6.7 Non-ASCII recipient address requires SMTPUTF8"


def test_unknown_user_in_hosted_domain(server: Server) -> None:
    smtp = server.mx_transaction()
    assert smtp.cmd("RCPT TO:<nobody@example.test>") == NO_USER
    assert smtp.cmd("RCPT TO:<nobody@other.test>") == NO_USER
    assert smtp.cmd("RCPT TO:<NOBODY@EXAMPLE.TEST>") == NO_USER


@pytest.mark.parametrize(
    "address", ["bob@example.test", "BOB@EXAMPLE.TEST", "Bob@Example.Test", "bOb@eXaMpLe.TeSt"],
    ids=["lower", "upper", "title", "mixed"],
)
def test_case_of_a_real_user_does_not_matter(server: Server, world: World, address: str) -> None:
    client = server.smtp(server.mx, starttls=False)
    assert client.sendmail("someone@remote.test", [address], message()) == {}
    client.quit()
    assert len(stored(world.bob)) == 1


def test_inbound_message_with_trace_header(server: Server, world: World) -> None:
    raw = message(sender="someone@remote.test")
    client = server.smtp(server.mx, starttls=False)
    client.sendmail("someone@remote.test", ["carol@other.test"], raw)
    client.quit()
    [received] = stored(world.carol)
    lines = received.split(b"\r\n")
    assert lines[0] == b"Received: from client.example ([127.0.0.1])"
    assert lines[1].startswith(b"\tby mail.example.test (Relate Mail) with ESMTP id ")
    assert lines[2].startswith(b"\tfor <carol@other.test>; ")
    assert body_of(received) == raw
    assert stored(world.alice, "Sent") == []


def test_inbound_over_starttls_is_recorded(server: Server, world: World) -> None:
    client = server.smtp(server.mx)
    client.sendmail("someone@remote.test", ["bob@example.test"], message())
    client.quit()
    assert b" with ESMTPS id " in stored(world.bob)[0]


def test_helo_client_gets_smtp_keyword(server: Server, world: World) -> None:
    smtp = Smtp.connect(server.mx)
    smtp.cmd("HELO old.example")
    smtp.cmd("MAIL FROM:<>")
    smtp.cmd("RCPT TO:<bob@example.test>")
    assert smtp.data(b"Subject: bounce\r\n\r\nhi\r\n.\r\n") == "250 2.6.0 Message accepted"
    assert b"Received: from old.example ([127.0.0.1])\r\n\tby mail.example.test (Relate Mail) with SMTP id" in (
        stored(world.bob)[0]
    )


def test_mix_of_good_and_bad_recipients(server: Server, world: World) -> None:
    client = server.smtp(server.mx, starttls=False)
    refused = client.sendmail("someone@remote.test", ["bob@example.test", "friend@remote.test",
                                                       "nobody@example.test", "carol@other.test"], message())
    client.quit()
    assert refused == {
        "friend@remote.test": (554, b"5.7.1 Relay access denied"),
        "nobody@example.test": (550, b"5.1.1 Mailbox unavailable: no such user here"),
    }
    assert len(stored(world.bob)) == 1 and len(stored(world.carol)) == 1


def test_mx_never_relays_even_for_a_local_sender(server: Server, world: World) -> None:
    smtp = server.mx_transaction("alice@example.test")
    assert smtp.cmd("RCPT TO:<friend@remote.test>") == RELAY


def test_disabled_listeners_are_not_built(world: World) -> None:
    settings = dataclasses.replace(world.settings, smtp=dataclasses.replace(world.settings.smtp, mx_enabled=False))
    assert [listener.name for listener in service.listeners(settings)] == ["smtp-submission", "smtp-submissions"]
    settings = dataclasses.replace(settings, smtp=dataclasses.replace(settings.smtp, secure_port=0))
    assert [listener.name for listener in service.listeners(settings)] == ["smtp-submission"]
