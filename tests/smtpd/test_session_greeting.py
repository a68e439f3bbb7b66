"""Greeting, EHLO/HELO and what each listener advertises; the simple commands; protocol
violations before and between commands (talking first, pipelining without PIPELINING)."""

from __future__ import annotations

import re
import socket as stdlib_socket
from collections.abc import Callable

import gevent.monkey
import pytest

from tests.protocol.conftest import Client
from tests.smtpd.conftest import Server, Smtp, World

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)

BASE = ["PIPELINING", "SIZE 52428800", "8BITMIME", "ENHANCEDSTATUSCODES", "SMTPUTF8", "CHUNKING"]
ENHANCED = re.compile(r"\d{3}[ -][245]\.\d{1,3}\.\d{1,3} \S")


@pytest.mark.parametrize("listener", ["submission", "mx"])
def test_greeting_names_the_server(server: Server, listener: str) -> None:
    client = Client.connect(getattr(server, listener))
    assert client.line() == b"220 mail.example.test ESMTP Relate Mail ready\r\n"


def test_submission_before_tls_offers_starttls_and_no_auth(server: Server) -> None:
    smtp = Smtp.connect(server.submission)
    assert smtp.ehlo() == [*BASE, "STARTTLS"]


def test_submission_after_starttls_offers_auth_and_no_starttls(server: Server) -> None:
    smtp = Smtp.connect(server.submission)
    smtp.ehlo()
    smtp.starttls()
    assert smtp.ehlo() == [*BASE, "AUTH PLAIN LOGIN"]


def test_implicit_tls_submission_offers_auth(server: Server) -> None:
    smtp = Smtp.connect(server.submissions, implicit_tls=True)
    assert smtp.ehlo() == [*BASE, "AUTH PLAIN LOGIN"]


def test_mx_offers_starttls_and_never_auth(server: Server) -> None:
    smtp = Smtp.connect(server.mx)
    assert smtp.ehlo() == [*BASE, "STARTTLS"]
    smtp.starttls()
    assert smtp.ehlo() == BASE


def test_insecure_auth_setting_offers_auth_before_tls(smtp_server: Callable[..., Server]) -> None:
    server = smtp_server(allow_insecure_auth=True)
    smtp = Smtp.connect(server.submission)
    assert smtp.ehlo() == [*BASE, "STARTTLS", "AUTH PLAIN LOGIN"]


def test_size_advertises_the_configured_limit(smtp_server: Callable[..., Server]) -> None:
    server = smtp_server(smtp={"max_message_size": 10_000})
    assert "SIZE 10000" in Smtp.connect(server.mx).ehlo()


def test_auth_is_not_offered_again_once_authenticated(submitter: Callable[[], Smtp]) -> None:
    smtp = submitter()
    assert smtp.ehlo() == BASE


def test_sessions_in_different_states_on_one_listener_get_their_own_keywords(
    server: Server, submitter: Callable[[], Smtp]
) -> None:
    # EHLO's keyword lines are built once per listener and state: interleaved sessions in
    # every state of one listener must each still get what their own state offers.
    plain = Smtp.connect(server.submission)
    assert plain.ehlo() == [*BASE, "STARTTLS"]
    secured = Smtp.connect(server.submission)
    secured.ehlo()
    secured.starttls()
    assert secured.ehlo() == [*BASE, "AUTH PLAIN LOGIN"]
    authenticated = submitter()
    assert authenticated.ehlo() == BASE
    assert plain.ehlo() == [*BASE, "STARTTLS"]
    assert secured.ehlo() == [*BASE, "AUTH PLAIN LOGIN"]
    assert Smtp.connect(server.submission).ehlo() == [*BASE, "STARTTLS"]


def test_ehlo_first_line_greets_the_client(server: Server) -> None:
    smtp = Smtp.connect(server.mx)
    smtp.send("EHLO client.example\r\n")
    assert smtp.reply_lines()[0] == "250-mail.example.test Hello [127.0.0.1]"


def test_helo_is_one_line_without_extensions(server: Server) -> None:
    smtp = Smtp.connect(server.mx)
    assert smtp.cmd("HELO client.example") == "250 mail.example.test Hello [127.0.0.1]"


@pytest.mark.parametrize(
    "line",
    ["EHLO", "EHLO two words", "HELO", "EHLO bad..name", "EHLO [999.1.1.1]", "EHLO -leading.example"],
    ids=["empty", "two-words", "helo-empty", "empty-label", "bad-literal", "leading-hyphen"],
)
def test_hello_syntax_errors(server: Server, line: str) -> None:
    smtp = Smtp.connect(server.mx)
    assert smtp.cmd(line) == "501 5.5.4 Syntax: EHLO domain or address literal"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("NOOP", "250 2.0.0 OK"),
        ("NOOP anything at all", "250 2.0.0 OK"),
        ("RSET", "250 2.0.0 OK"),
        ("HELP", "214 2.0.0 Relate Mail SMTP; see RFC 5321"),
        ("VRFY bob@example.test", "252 2.0.0 Cannot VRFY user, but will accept message and attempt delivery"),
        ("VRFY", "501 5.5.4 Invalid command arguments"),
        ("EXPN staff", "502 5.5.1 Command not implemented"),
        ("TURN", "502 5.5.1 Command not implemented"),
        ("XYZZY", "500 5.5.1 Command not recognized"),
        ("RSET now", "501 5.5.4 This command takes no arguments"),
        ("", "500 5.5.2 Syntax error"),
        ("MAIL\x00FROM:<a@b.example>", "500 5.5.2 Command line contains invalid characters"),
    ],
    ids=["noop", "noop-args", "rset", "help", "vrfy", "vrfy-empty", "expn", "turn", "unknown", "rset-args",
         "empty-line", "nul"],
)
def test_simple_commands(server: Server, line: str, expected: str) -> None:
    smtp = Smtp.connect(server.mx)
    assert smtp.cmd(line) == expected


def test_quit_says_bye_and_closes(server: Server) -> None:
    smtp = Smtp.connect(server.mx)
    assert smtp.cmd("QUIT") == "221 2.0.0 Bye"
    assert smtp.at_eof()


def test_auth_on_mx_is_not_implemented(server: Server, world: World) -> None:
    smtp = Smtp.connect(server.mx)
    smtp.ehlo()
    assert smtp.cmd("AUTH PLAIN AGFsaWNlAHNlY3JldA==") == "502 5.5.1 Command not implemented"


def test_http_request_is_answered_once_and_closed(server: Server) -> None:
    smtp = Smtp.connect(server.mx)
    smtp.send("GET / HTTP/1.1\r\n")
    assert smtp.reply() == "500 5.5.1 Command not recognized"
    assert smtp.at_eof()


def test_bare_lf_command_is_refused(server: Server) -> None:
    smtp = Smtp.connect(server.mx)
    smtp.ehlo()
    smtp.send("NOOP\n")
    assert smtp.reply() == "500 5.5.2 Bare CR or LF in command line; lines must end with CRLF"
    assert smtp.cmd("NOOP") == "250 2.0.0 OK"


def test_client_talking_before_the_greeting_is_refused(server: Server) -> None:
    # A blocking stdlib socket: connect and send complete before the server's greenlet runs,
    # so the command is already waiting when the server would greet.
    original = gevent.monkey.get_original("socket", "socket")
    sock = original(stdlib_socket.AF_INET, stdlib_socket.SOCK_STREAM)
    sock.connect(("127.0.0.1", server.mx))
    sock.sendall(b"EHLO spammer.example\r\n")
    cooperative = stdlib_socket.socket(fileno=sock.detach())  # gevent's socket in this process
    cooperative.settimeout(5)
    data = b""
    while True:
        chunk = cooperative.recv(4096)
        if not chunk:
            break
        data += chunk
    cooperative.close()
    assert data == b"554 5.5.0 Protocol error: client sent data before the greeting\r\n"


def test_pipelining_before_ehlo_is_refused(server: Server) -> None:
    smtp = Smtp.connect(server.mx)
    smtp.send("EHLO client.example\r\nMAIL FROM:<someone@remote.test>\r\n")
    assert smtp.reply() == "554 5.5.0 Protocol error: command pipelining was not negotiated"
    assert smtp.at_eof()


def test_pipelining_after_helo_is_refused(server: Server) -> None:
    smtp = Smtp.connect(server.mx)
    assert smtp.cmd("HELO client.example").startswith("250 ")
    smtp.send("MAIL FROM:<someone@remote.test>\r\nRCPT TO:<bob@example.test>\r\n")
    assert smtp.reply() == "554 5.5.0 Protocol error: command pipelining was not negotiated"
    assert smtp.at_eof()


def test_pipelined_group_after_ehlo_gets_every_reply_in_order(submitter: Callable[[], Smtp]) -> None:
    smtp = submitter()
    smtp.send(
        "MAIL FROM:<alice@example.test>\r\nRCPT TO:<bob@example.test>\r\n"
        "RCPT TO:<nobody@example.test>\r\nRCPT TO:<carol@other.test>\r\nDATA\r\n"
    )
    assert [smtp.reply() for _ in range(5)] == [
        "250 2.1.0 Sender OK",
        "250 2.1.5 Recipient OK",
        "550 5.1.1 Mailbox unavailable: no such user here",
        "250 2.1.5 Recipient OK",
        "354 End data with <CR><LF>.<CR><LF>",
    ]
    smtp.send("Subject: pipelined\r\n\r\nhello\r\n.\r\nNOOP\r\nQUIT\r\n")
    assert smtp.reply() == "250 2.6.0 Message accepted"
    assert smtp.reply() == "250 2.0.0 OK"
    assert smtp.reply() == "221 2.0.0 Bye"


def test_every_reply_of_a_session_carries_an_enhanced_code(submitter: Callable[[], Smtp]) -> None:
    smtp = submitter()
    replies = [
        smtp.cmd("NOOP"),
        smtp.cmd("RCPT TO:<bob@example.test>"),
        smtp.cmd("MAIL FROM:<bob@example.test>"),
        smtp.cmd("MAIL FROM:<alice@example.test> SIZE=100"),
        smtp.cmd("RCPT TO:<someone@remote.test>"),
        smtp.cmd("RCPT TO:<bob@example.test> NOTIFY=NEVER"),
        smtp.cmd("RCPT TO:<bob@example.test>"),
        smtp.data(b"Subject: x\r\n\r\nbody\r\n.\r\n"),
        smtp.cmd("VRFY bob"),
        smtp.cmd("FOO"),
        smtp.cmd("QUIT"),
    ]
    for reply in replies:
        assert ENHANCED.match(reply), reply
