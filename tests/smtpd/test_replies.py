"""The reply table: every constant well-formed, formatting safe and exact."""

from __future__ import annotations

import re

import pytest

from relate.smtpd import replies
from relate.smtpd.replies import MAX_REPLY_LINE, Reply, SmtpError

ALL = sorted((name, value) for name, value in vars(replies).items() if isinstance(value, Reply))
# RFC 2034 §4: the greeting and the answers to HELO/EHLO carry no enhanced code.
EXEMPT = {"GREETING", "HELLO"}
ENHANCED = re.compile(r"[245]\.[0-9]{1,3}\.[0-9]{1,3}\Z")


def sample_values(reply: Reply) -> dict[str, str]:
    return {name: "x" for name in reply.fields}


def test_the_table_is_not_empty() -> None:
    assert len(ALL) > 60


@pytest.mark.parametrize(("name", "reply"), ALL, ids=[name for name, _ in ALL])
def test_reply_constant_is_well_formed(name: str, reply: Reply) -> None:
    assert 200 <= reply.code <= 599
    if reply.code // 100 == 3 or name in EXEMPT:
        assert reply.enhanced is None
    else:
        assert reply.enhanced is not None
        assert ENHANCED.match(reply.enhanced)
        assert reply.enhanced[0] == str(reply.code)[0]
    assert reply.text
    assert "\r" not in reply.text and "\n" not in reply.text
    assert all(0x20 <= ord(char) <= 0x7E for char in reply.text)


@pytest.mark.parametrize(("name", "reply"), ALL, ids=[name for name, _ in ALL])
def test_reply_formats_as_one_crlf_line(name: str, reply: Reply) -> None:
    line = reply.format(**sample_values(reply))
    assert line.endswith(b"\r\n")
    assert line.count(b"\r") == 1 and line.count(b"\n") == 1
    assert line.startswith(f"{reply.code} ".encode())
    if reply.enhanced:
        assert line.startswith(f"{reply.code} {reply.enhanced} ".encode())
    assert len(line) <= MAX_REPLY_LINE


@pytest.mark.parametrize(
    ("reply", "values", "expected"),
    [
        (replies.OK, {}, b"250 2.0.0 OK\r\n"),
        (replies.SENDER_OK, {}, b"250 2.1.0 Sender OK\r\n"),
        (replies.RECIPIENT_OK, {}, b"250 2.1.5 Recipient OK\r\n"),
        (replies.MESSAGE_ACCEPTED, {}, b"250 2.6.0 Message accepted\r\n"),
        (replies.START_INPUT, {}, b"354 End data with <CR><LF>.<CR><LF>\r\n"),
        (replies.AUTH_CHALLENGE, {"challenge": ""}, b"334 \r\n"),
        (replies.AUTH_CHALLENGE, {"challenge": "VXNlcm5hbWU6"}, b"334 VXNlcm5hbWU6\r\n"),
        (replies.GREETING, {"host": "mx.example.com"}, b"220 mx.example.com ESMTP Relate Mail ready\r\n"),
        (replies.BDAT_CHUNK_OK, {"size": 1024}, b"250 2.0.0 1024 octets received\r\n"),
        (replies.MESSAGE_TOO_BIG, {}, b"552 5.3.4 Message size exceeds fixed maximum message size\r\n"),
        (
            replies.ENCRYPTION_REQUIRED_FOR_AUTH,
            {},
            b"538 5.7.11 Encryption required for requested authentication mechanism\r\n",
        ),
    ],
    ids=[
        "ok",
        "sender",
        "recipient",
        "accepted",
        "354",
        "334-empty",
        "334-login",
        "greeting",
        "bdat",
        "552",
        "538",
    ],
)
def test_format_exact(reply: Reply, values: dict[str, object], expected: bytes) -> None:
    assert reply.format(**values) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("evil\r\n250 OK", b"220 evil??250 OK ESMTP Relate Mail ready\r\n"),
        ("a\nb", b"220 a?b ESMTP Relate Mail ready\r\n"),
        ("nul\x00", b"220 nul? ESMTP Relate Mail ready\r\n"),
        ("caf\u00e9", b"220 caf? ESMTP Relate Mail ready\r\n"),
    ],
    ids=["crlf-injection", "bare-lf", "nul", "non-ascii"],
)
def test_values_cannot_inject_lines(value: str, expected: bytes) -> None:
    assert replies.GREETING.format(host=value) == expected


def test_long_values_are_cut_to_the_reply_line_limit() -> None:
    line = replies.HELLO.format(host="h" * 2000, client="[192.0.2.1]")
    assert len(line) == MAX_REPLY_LINE
    assert line.endswith(b"\r\n") and line.count(b"\n") == 1


def test_missing_value_is_a_bug() -> None:
    for _ in range(2):  # not remembered as a reply without values
        with pytest.raises(KeyError):
            replies.GREETING.format()


def test_replies_without_values_are_formatted_once_and_stay_the_same() -> None:
    first = replies.BYE.format()
    assert first == b"221 2.0.0 Bye\r\n"
    assert replies.BYE.format() is first
    assert Reply(221, "2.0.0", "Bye").format() is first  # equal replies share the bytes
    assert Reply(250, "2.0.0", "{size} octets").format(size=5) == b"250 2.0.0 5 octets\r\n"


@pytest.mark.parametrize(
    ("reply", "lines", "values", "expected"),
    [
        (
            replies.HELLO,
            ["PIPELINING", "SIZE 52428800", "8BITMIME"],
            {"host": "mx.example.com", "client": "[192.0.2.1]"},
            b"250-mx.example.com Hello [192.0.2.1]\r\n250-PIPELINING\r\n250-SIZE 52428800\r\n250 8BITMIME\r\n",
        ),
        (
            replies.HELLO,
            [],
            {"host": "mx.example.com", "client": "[192.0.2.1]"},
            b"250 mx.example.com Hello [192.0.2.1]\r\n",
        ),
        (
            replies.TOO_MANY_CONNECTIONS,
            ["Please come back later"],
            {},
            b"421-4.7.0 Too many connections, try again later\r\n421 4.7.0 Please come back later\r\n",
        ),
        (
            replies.HELLO,
            ["AUTH PLAIN\r\nLOGIN"],
            {"host": "h", "client": "c"},
            b"250-h Hello c\r\n250 AUTH PLAIN??LOGIN\r\n",
        ),
    ],
    ids=["ehlo", "ehlo-no-extensions", "enhanced-on-every-line", "line-injection"],
)
def test_format_multiline(reply: Reply, lines: list[str], values: dict[str, object], expected: bytes) -> None:
    assert reply.format_multiline(lines, **values) == expected
    if lines:  # the same reply in two parts, the second one reusable (EHLO's keywords)
        assert reply.format_first(**values) + reply.format_rest(lines) == expected


def test_fields_lists_placeholders() -> None:
    assert replies.HELLO.fields == {"host", "client"}
    assert replies.OK.fields == frozenset()


@pytest.mark.parametrize(
    ("error", "wire", "close"),
    [
        (SmtpError(replies.NEED_MAIL), b"503 5.5.1 Need MAIL before RCPT\r\n", False),
        (SmtpError(replies.BDAT_SYNTAX, close=True), b"501 5.5.4 Syntax: BDAT size [LAST]\r\n", True),
        (SmtpError(replies.BDAT_CHUNK_OK, size=7), b"250 2.0.0 7 octets received\r\n", False),
    ],
    ids=["plain", "close", "with-values"],
)
def test_smtp_error_carries_its_reply(error: SmtpError, wire: bytes, close: bool) -> None:
    assert error.to_bytes() == wire
    assert error.close is close


# The contract the session and its tests rely on: which code and enhanced code each reply has.
CONTRACT = {
    "GREETING": (220, None),
    "BYE": (221, "2.0.0"),
    "OK": (250, "2.0.0"),
    "SENDER_OK": (250, "2.1.0"),
    "RECIPIENT_OK": (250, "2.1.5"),
    "MESSAGE_ACCEPTED": (250, "2.6.0"),
    "START_TLS": (220, "2.0.0"),
    "START_INPUT": (354, None),
    "AUTH_CHALLENGE": (334, None),
    "AUTH_SUCCESS": (235, "2.7.0"),
    "TOO_MANY_CONNECTIONS": (421, "4.7.0"),
    "TIMEOUT": (421, "4.4.2"),
    "TOO_MANY_ERRORS": (421, "4.7.0"),
    "SHUTTING_DOWN": (421, "4.3.2"),
    "STORE_FAILURE": (451, "4.3.0"),
    "TOO_MANY_RECIPIENTS": (452, "4.5.3"),
    "TLS_NOT_AVAILABLE": (454, "4.7.0"),
    "AUTH_TEMPORARY_FAILURE": (454, "4.7.0"),
    "LINE_TOO_LONG": (500, "5.5.2"),
    "SYNTAX_ERROR": (500, "5.5.2"),
    "AUTH_LINE_TOO_LONG": (500, "5.5.6"),
    "BAD_ARGUMENTS": (501, "5.5.4"),
    "NOT_IMPLEMENTED": (502, "5.5.1"),
    "NEED_MAIL": (503, "5.5.1"),
    "NEED_RCPT": (503, "5.5.1"),
    "ALREADY_AUTHENTICATED": (503, "5.5.1"),
    "NESTED_MAIL": (503, "5.5.1"),
    "NEED_EHLO_AFTER_TLS": (503, "5.5.1"),
    "DATA_AFTER_BDAT": (503, "5.5.1"),
    "BINARYMIME_NEEDS_BDAT": (503, "5.5.1"),
    "UNRECOGNIZED_AUTH_MECHANISM": (504, "5.5.4"),
    "AUTH_REQUIRED": (530, "5.7.0"),
    "AUTH_MECHANISM_TOO_WEAK": (534, "5.7.9"),
    "BAD_CREDENTIALS": (535, "5.7.8"),
    "ENCRYPTION_REQUIRED_FOR_AUTH": (538, "5.7.11"),
    "NO_SUCH_USER": (550, "5.1.1"),
    "NO_POSTMASTER": (550, "5.1.1"),
    "REMOTE_DELIVERY_UNAVAILABLE": (550, "5.7.1"),
    "MESSAGE_TOO_BIG": (552, "5.3.4"),
    "SENDER_NOT_OWNED": (553, "5.7.1"),
    "SENDER_SOURCE_ROUTE": (553, "5.7.1"),
    "BAD_SENDER_SYNTAX": (553, "5.1.7"),
    "BAD_RECIPIENT_SYNTAX": (553, "5.1.3"),
    "NON_ASCII_SENDER": (553, "5.6.7"),
    "NON_ASCII_RECIPIENT": (553, "5.6.7"),
    "RELAY_DENIED": (554, "5.7.1"),
    "RELAY_SOURCE_ROUTE": (554, "5.7.1"),
    "RELAY_ADDRESS_LITERAL": (554, "5.7.1"),
    "RELAY_ROUTING_CHARACTERS": (554, "5.7.1"),
    "RELAY_TRAILING_DOT": (554, "5.7.1"),
    "BARE_LINE_ENDING": (554, "5.6.0"),
    "EARLY_TALKER": (554, "5.5.0"),
    "NO_VALID_RECIPIENTS": (554, "5.5.1"),
    "PARAMETER_NOT_SUPPORTED": (555, "5.5.4"),
}


@pytest.mark.parametrize(("name", "codes"), sorted(CONTRACT.items()), ids=sorted(CONTRACT))
def test_reply_contract(name: str, codes: tuple[int, str | None]) -> None:
    reply = getattr(replies, name)
    assert (reply.code, reply.enhanced) == codes
