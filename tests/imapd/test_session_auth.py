"""Greeting, capabilities, STARTTLS, LOGIN, AUTHENTICATE, throttling and the per-user cap."""

from __future__ import annotations

import base64
import imaplib
from collections.abc import Callable

import pytest

from relate.imapd.grammar import MAX_INLINE_LITERAL
from relate.imapd.responses import AUTHENTICATED_CAPABILITIES
from tests.imapd.conftest import Account, ImapServer, make_account


def plain(account: Account, authzid: str = "") -> str:
    return base64.b64encode(f"{authzid}\0{account.address}\0{account.key}".encode()).decode()


def capabilities(line: bytes) -> set[str]:
    text = line.decode()
    start = text.index("CAPABILITY ") + len("CAPABILITY ")
    end = text.index("]", start) if "]" in text[start:] else len(text.rstrip())
    return set(text[start:end].split())


def test_greeting_before_tls_offers_starttls_and_disables_login(server: ImapServer) -> None:
    client = server.raw(greeting=False)
    greeting = client.line()
    assert greeting.startswith(b"* OK [CAPABILITY ")
    caps = capabilities(greeting)
    assert {"IMAP4rev2", "IMAP4rev1", "STARTTLS", "LOGINDISABLED", "SASL-IR", "LITERAL+", "ID", "ENABLE"} <= caps
    assert "AUTH=PLAIN" not in caps


def test_login_and_authenticate_refused_before_tls(server: ImapServer, account: Account) -> None:
    client = server.raw()
    reply = client.command(f'a LOGIN {account.address} "{account.key}"')
    assert reply[-1].startswith(b"a NO [PRIVACYREQUIRED]")
    reply = client.command(f"b AUTHENTICATE PLAIN {plain(account)}")
    assert reply[-1].startswith(b"b NO [PRIVACYREQUIRED]")


# LOGIN lines that end in a synchronising literal, by id (what the literal would carry).
LITERAL_LOGINS = {
    "user": b"a LOGIN {15}\r\n",
    "password": b"a LOGIN alice@imap.test {43}\r\n",
    "password-after-literal-plus": b"a LOGIN {15+}\r\nalice@imap.test {43}\r\n",
}


@pytest.mark.parametrize("wire", LITERAL_LOGINS.values(), ids=LITERAL_LOGINS.keys())
def test_literal_login_before_tls_is_refused_instead_of_continued(server: ImapServer, wire: bytes) -> None:
    """RFC 9051 §4.3, §7.5: the NO comes instead of "+", so the password is never sent in the clear."""
    client = server.raw()
    client.send(wire)
    assert client.line() == b"a NO [PRIVACYREQUIRED] use STARTTLS before logging in\r\n"
    assert client.command("b NOOP") == [b"b OK NOOP completed\r\n"]  # the client abandoned the LOGIN


@pytest.mark.parametrize(
    "wire",
    [
        pytest.param(b"a LOGIN alice@imap.test {10+}\r\nsecret-key\r\n", id="password"),
        pytest.param(b"a LOGIN {15+}\r\nalice@imap.test {10+}\r\nsecret-key\r\n", id="user-and-password"),
        pytest.param(
            b"a LOGIN alice@imap.test {%d+}\r\n%s\r\n" % (MAX_INLINE_LITERAL + 1, b"k" * (MAX_INLINE_LITERAL + 1)),
            id="over-the-argument-budget",
        ),
    ],
)
def test_literal_plus_login_before_tls_is_skipped_and_refused(server: ImapServer, wire: bytes) -> None:
    """The client sends a LITERAL+ without waiting: it is read and dropped, and the session stays in step."""
    client = server.raw()
    client.send(wire + b"b NOOP\r\n")
    assert client.line() == b"a NO [PRIVACYREQUIRED] use STARTTLS before logging in\r\n"
    assert client.line() == b"b OK NOOP completed\r\n"


def test_authenticate_takes_no_literal(server: ImapServer) -> None:
    """RFC 4959 §7: the initial response is base64, never a literal, so no "+" asks for one."""
    client = server.raw()
    client.send(b"a AUTHENTICATE PLAIN {20}\r\n")
    assert client.line().startswith(b"a BAD")
    client.send(b"b AUTHENTICATE PLAIN {20+}\r\n\0alice@imap.test\0key\r\nc NOOP\r\n")
    assert client.line().startswith(b"b BAD")
    assert client.line() == b"c OK NOOP completed\r\n"


@pytest.mark.parametrize("secure", ["starttls", "insecure-auth-allowed"])
def test_literal_login_asks_for_each_literal_when_allowed(
    server_factory: Callable[..., ImapServer], server: ImapServer, account: Account, secure: str
) -> None:
    if secure == "starttls":
        client = server.raw()
        assert client.command("s STARTTLS")[-1].startswith(b"s OK")
        client.starttls()
    else:
        client = server_factory(Tls__AllowInsecureAuth="true").raw()
    user, key = account.address.encode(), account.key.encode()
    client.send(b"a LOGIN {%d}\r\n" % len(user))
    assert client.line().startswith(b"+ ")
    client.send(user + b" {%d}\r\n" % len(key))
    assert client.line().startswith(b"+ ")
    client.send(key + b"\r\n")
    assert client.line().startswith(b"a OK [CAPABILITY ")


def test_starttls_discards_pipelined_commands_and_changes_capabilities(server: ImapServer, account: Account) -> None:
    client = server.raw()
    # A command pipelined after STARTTLS was sent in plaintext: it must never run.
    client.send(b"a STARTTLS\r\nb LOGIN x y\r\n")
    assert client.line().startswith(b"a OK")
    client.starttls()
    reply = client.command("c CAPABILITY")
    assert [line for line in reply if line.startswith(b"b ")] == []
    caps = capabilities(reply[0])
    assert "AUTH=PLAIN" in caps and "STARTTLS" not in caps and "LOGINDISABLED" not in caps
    client.login(account)
    reply = client.command("d STARTTLS")
    assert reply[-1].startswith(b"d BAD")  # not after login


def test_login_answers_with_full_capabilities(server: ImapServer, account: Account) -> None:
    client = server.raw(tls=True)
    reply = client.command(f'a LOGIN {account.address} "{account.key}"')
    assert reply[-1].startswith(b"a OK [CAPABILITY ")
    caps = capabilities(reply[-1])
    assert set(AUTHENTICATED_CAPABILITIES) <= caps
    assert f"APPENDLIMIT={server.settings.smtp.max_message_size}" in caps
    reply = client.command("b CAPABILITY")
    assert capabilities(reply[0]) == caps


def test_insecure_auth_setting_allows_login_without_tls(server_factory: Callable[..., ImapServer],
                                                        account: Account) -> None:
    server = server_factory(Tls__AllowInsecureAuth="true")
    client = server.raw(greeting=False)
    caps = capabilities(client.line())
    assert "AUTH=PLAIN" in caps and "LOGINDISABLED" not in caps
    client.login(account)


def test_authenticate_plain_with_and_without_initial_response(server: ImapServer, account: Account) -> None:
    client = server.raw(tls=True)
    reply = client.command(f"a AUTHENTICATE PLAIN {plain(account)}")
    assert reply[-1].startswith(b"a OK [CAPABILITY")
    client = server.raw(tls=True)
    client.send(b"b AUTHENTICATE PLAIN\r\n")
    assert client.line() == b"+ \r\n"
    client.send(plain(account).encode() + b"\r\n")
    assert client.line().startswith(b"b OK")


def test_authenticate_cancel_and_bad_mechanism(server: ImapServer, account: Account) -> None:
    client = server.raw(tls=True)
    client.send(b"a AUTHENTICATE PLAIN\r\n")
    assert client.line().startswith(b"+")
    client.send(b"*\r\n")
    assert client.line().startswith(b"a BAD")
    assert client.command("b AUTHENTICATE CRAM-MD5")[-1].startswith(b"b NO")
    reply = client.command(f"c AUTHENTICATE PLAIN {plain(account, authzid='someone@else.test')}")
    assert reply[-1].startswith(b"c NO [AUTHORIZATIONFAILED]")


def test_wrong_key_fails_and_three_failures_close(server: ImapServer, account: Account) -> None:
    client = server.raw(tls=True)
    for tag in ("a", "b"):
        reply = client.command(f'{tag} LOGIN {account.address} "rm_wrongwrong_{"x" * 43}"')
        assert reply[-1].startswith(f"{tag} NO [AUTHENTICATIONFAILED]".encode())
    reply = client.command(f"c LOGIN {account.address} nope")
    assert reply[-1].startswith(b"c NO [AUTHENTICATIONFAILED]")
    assert client.line().startswith(b"* BYE")
    assert client.at_eof()


def test_key_without_imap_scope_is_refused(server: ImapServer) -> None:
    other = make_account("smtp-only@imap.test", scopes="smtp")
    client = server.raw(tls=True)
    reply = client.command(f'a LOGIN {other.address} "{other.key}"')
    assert reply[-1].startswith(b"a NO [AUTHENTICATIONFAILED]")


def test_connections_per_user_are_capped(server_factory: Callable[..., ImapServer], account: Account) -> None:
    server = server_factory(Imap__MaxConnectionsPerUser="2")
    first, second, third = (server.raw(tls=True) for _ in range(3))
    first.login(account)
    second.login(account)
    reply = third.command(f'a LOGIN {account.address} "{account.key}"')
    assert reply[-1].startswith(b"a NO [LIMIT]")
    first.command("z LOGOUT")
    third.login(account)


def test_commands_in_the_wrong_state_are_bad(server: ImapServer, account: Account) -> None:
    client = server.raw(tls=True)
    assert client.command("a SELECT INBOX")[-1].startswith(b"a BAD")
    assert client.command("b FETCH 1 FLAGS")[-1].startswith(b"b BAD")
    client.login(account)
    assert client.command("c FETCH 1 FLAGS")[-1].startswith(b"c BAD")
    assert client.command(f'd LOGIN {account.address} "{account.key}"')[-1].startswith(b"d BAD")


@pytest.mark.parametrize(
    "first_line",
    [
        pytest.param(b"GET / HTTP/1.1\r\n", id="http"),
        pytest.param(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n", id="tls-hello"),
        pytest.param(b"EHLO mail.example.test\r\n", id="smtp"),
    ],
)
def test_garbage_first_line_closes(server: ImapServer, first_line: bytes) -> None:
    client = server.raw()
    client.send(first_line)
    assert client.line().startswith(b"* BYE")
    assert client.at_eof()


def test_unknown_command_later_is_just_bad(server: ImapServer) -> None:
    client = server.raw()
    assert client.command("a NOOP")[-1].startswith(b"a OK")
    assert client.command("b XYZZY")[-1].startswith(b"b BAD")
    assert client.command("c NOOP")[-1].startswith(b"c OK")


def test_logout_says_bye_then_ok(server: ImapServer) -> None:
    client = server.raw()
    reply = client.command("a LOGOUT")
    assert reply[0].startswith(b"* BYE") and reply[-1].startswith(b"a OK")
    assert client.at_eof()


def test_id_and_noop_in_any_state(server: ImapServer) -> None:
    client = server.raw()
    reply = client.command('a ID ("name" "test client" "version" "1")')
    assert reply[0].startswith(b'* ID ("name" "Relate Mail"')
    assert client.command("b ID NIL")[-1].startswith(b"b OK")


def test_enable_reports_what_it_enabled(server: ImapServer, account: Account) -> None:
    client = server.raw(tls=True)
    client.login(account)
    reply = client.command("a ENABLE CONDSTORE X-UNKNOWN UTF8=ACCEPT")
    assert reply[0] == b"* ENABLED CONDSTORE UTF8=ACCEPT\r\n"
    reply = client.command("b ENABLE CONDSTORE QRESYNC IMAP4rev2")
    assert reply[0] == b"* ENABLED QRESYNC IMAP4rev2\r\n"


def test_imaplib_starttls_login(server: ImapServer, account: Account) -> None:
    imap = server.imaplib(tls=False, login=False)
    assert "LOGINDISABLED" in imap.capabilities
    from tests.imapd.conftest import insecure_context

    imap.starttls(ssl_context=insecure_context())
    assert "AUTH=PLAIN" in imap.capabilities
    typ, _ = imap.login(account.address, account.key)
    assert typ == "OK"
    with pytest.raises(imaplib.IMAP4.error):
        imap.starttls(ssl_context=insecure_context())
