"""Command-line parsing: verbs, MAIL/RCPT, AUTH, EHLO/HELO, BDAT."""

from __future__ import annotations

import pytest

from relate.smtpd import replies
from relate.smtpd.address import AddressError, Mailbox, Refusal
from relate.smtpd.command import (
    DEFAULT_MAX_RECIPIENTS,
    MAX_AUTH_LINE,
    MAX_COMMAND_LINE,
    MAX_TEXT_LINE,
    RFC_MIN_COMMAND_LINE,
    AuthCommand,
    BdatCommand,
    Command,
    UnknownParameter,
    parse_auth,
    parse_bdat,
    parse_command,
    parse_helo,
    parse_mail_from,
    parse_rcpt_to,
)
from relate.smtpd.replies import Reply, SmtpError


def case(id_: str, *values: object) -> object:
    return pytest.param(*values, id=id_)


def test_limits() -> None:
    assert RFC_MIN_COMMAND_LINE == 512
    assert RFC_MIN_COMMAND_LINE <= MAX_COMMAND_LINE <= MAX_TEXT_LINE == 1000
    assert MAX_AUTH_LINE == 12288
    assert DEFAULT_MAX_RECIPIENTS == 100


# --- parse_command --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "verb", "arg"),
    [
        case("crlf", b"QUIT\r\n", "QUIT", ""),
        case("no-terminator", b"QUIT", "QUIT", ""),
        case("lowercase-verb", b"ehlo client.example\r\n", "EHLO", "client.example"),
        case("mixed-case-verb", b"MaIl FROM:<a@b.com>\r\n", "MAIL", "FROM:<a@b.com>"),
        case("arg-case-kept", b"EHLO Client.Example", "EHLO", "Client.Example"),
        case("trailing-space", b"DATA \r\n", "DATA", ""),
        case("extra-spaces", b"RCPT  TO:<a@b.com>  \r\n", "RCPT", "TO:<a@b.com>"),
        case(
            "arg-inner-spaces-kept",
            b"MAIL FROM:<a@b.com> SIZE=1  BODY=8BITMIME",
            "MAIL",
            "FROM:<a@b.com> SIZE=1  BODY=8BITMIME",
        ),
        case("unknown-verb", b"XYZZY\r\n", "XYZZY", ""),
        case("http-probe", b"GET / HTTP/1.1\r\n", "GET", "/ HTTP/1.1"),
        case("utf8-arg", "RCPT TO:<jörg@example.com>\r\n".encode(), "RCPT", "TO:<jörg@example.com>"),
        case("auth", b"AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n", "AUTH", "PLAIN AGFsaWNlAHNlY3JldA=="),
    ],
)
def test_parse_command(line: bytes, verb: str, arg: str) -> None:
    assert parse_command(line) == Command(verb=verb, arg=arg)


@pytest.mark.parametrize(
    ("line", "reply"),
    [
        case("empty", b"\r\n", replies.SYNTAX_ERROR),
        case("only-spaces", b"   \r\n", replies.SYNTAX_ERROR),
        case("bare-lf-terminator", b"QUIT\n", replies.COMMAND_BARE_LINE_ENDING),
        case("bare-cr-terminator", b"QUIT\r", replies.COMMAND_BARE_LINE_ENDING),
        case("lf-inside", b"MAIL FROM:<a@b>\nRCPT TO:<c@d>\r\n", replies.COMMAND_BARE_LINE_ENDING),
        case("cr-inside", b"NOOP a\rb\r\n", replies.COMMAND_BARE_LINE_ENDING),
        case("double-crlf", b"QUIT\r\n\r\n", replies.COMMAND_BARE_LINE_ENDING),
        case("invalid-utf8", b"EHLO \xff\xfe\r\n", replies.COMMAND_INVALID_CHARACTERS),
        case("nul", b"NOOP \x00\r\n", replies.COMMAND_INVALID_CHARACTERS),
        case("tab", b"MAIL\tFROM:<a@b.com>\r\n", replies.COMMAND_INVALID_CHARACTERS),
        case("del", b"NOOP \x7f\r\n", replies.COMMAND_INVALID_CHARACTERS),
        case("digit-verb", b"123 abc\r\n", replies.COMMAND_UNRECOGNIZED),
        case("punctuated-verb", b"MAIL:FROM<a@b.com>\r\n", replies.COMMAND_UNRECOGNIZED),
        case("non-ascii-verb", "QUÏT\r\n".encode(), replies.COMMAND_UNRECOGNIZED),
        case("overlong-verb", b"A" * 17 + b"\r\n", replies.COMMAND_UNRECOGNIZED),
    ],
)
def test_parse_command_errors(line: bytes, reply: Reply) -> None:
    with pytest.raises(SmtpError) as raised:
        parse_command(line)
    assert raised.value.reply is reply


# --- MAIL FROM ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arg", "smtputf8_allowed", "address", "params", "size", "body", "smtputf8"),
    [
        case("plain", "FROM:<alice@example.com>", False, "alice@example.com", {}, None, None, False),
        case("lowercase-from", "from:<alice@example.com>", False, "alice@example.com", {}, None, None, False),
        case(
            "space-after-colon",
            "FROM: <alice@example.com>",
            False,
            "alice@example.com",
            {},
            None,
            None,
            False,
        ),
        case("null-path", "FROM:<>", False, "", {}, None, None, False),
        case("null-path-with-size", "FROM:<> SIZE=1000", False, "", {"SIZE": "1000"}, 1000, None, False),
        case(
            "size",
            "FROM:<a@example.com> SIZE=52428800",
            False,
            "a@example.com",
            {"SIZE": "52428800"},
            52428800,
            None,
            False,
        ),
        case(
            "size-zero", "FROM:<a@example.com> SIZE=0", False, "a@example.com", {"SIZE": "0"}, 0, None, False
        ),
        case(
            "body-8bit",
            "FROM:<a@example.com> BODY=8BITMIME",
            False,
            "a@example.com",
            {"BODY": "8BITMIME"},
            None,
            "8BITMIME",
            False,
        ),
        case(
            "body-lowercase",
            "FROM:<a@example.com> body=7bit",
            False,
            "a@example.com",
            {"BODY": "7bit"},
            None,
            "7BIT",
            False,
        ),
        case(
            "all-params",
            "FROM:<a@example.com> SIZE=10 BODY=8BITMIME SMTPUTF8 AUTH=<>",
            True,
            "a@example.com",
            {"SIZE": "10", "BODY": "8BITMIME", "SMTPUTF8": None, "AUTH": "<>"},
            10,
            "8BITMIME",
            True,
        ),
        case(
            "smtputf8-address",
            "FROM:<jörg@bücher.example> SMTPUTF8",
            True,
            "jörg@bücher.example",
            {"SMTPUTF8": None},
            None,
            None,
            True,
        ),
        case(
            "keyword-case-insensitive",
            "FROM:<a@example.com> SmtpUtf8",
            True,
            "a@example.com",
            {"SMTPUTF8": None},
            None,
            None,
            True,
        ),
        case(
            "domain-lowercased", "FROM:<Alice@Example.COM>", False, "Alice@example.com", {}, None, None, False
        ),
        case("quoted-local", 'FROM:<"a b"@example.com>', False, '"a b"@example.com', {}, None, None, False),
        case(
            "quoted-gt-in-local",
            'FROM:<"a>b"@example.com> SIZE=5',
            False,
            '"a>b"@example.com',
            {"SIZE": "5"},
            5,
            None,
            False,
        ),
        case(
            "percent-sender-is-fine",
            "FROM:<a%b@example.com>",
            False,
            "a%b@example.com",
            {},
            None,
            None,
            False,
        ),
        case("literal-sender-is-fine", "FROM:<a@[192.0.2.1]>", False, "a@[192.0.2.1]", {}, None, None, False),
    ],
)
def test_parse_mail_from(
    arg: str,
    smtputf8_allowed: bool,
    address: str,
    params: dict[str, str | None],
    size: int | None,
    body: str | None,
    smtputf8: bool,
) -> None:
    mail = parse_mail_from(arg, smtputf8_allowed=smtputf8_allowed)
    assert mail.address == address
    assert mail.params == params
    assert mail.size == size
    assert mail.body == body
    assert mail.smtputf8 is smtputf8
    assert (mail.mailbox is None) is (address == "")


def test_binarymime_when_offered() -> None:
    mail = parse_mail_from(
        "FROM:<a@example.com> BODY=BINARYMIME", smtputf8_allowed=False, binarymime_allowed=True
    )
    assert mail.body == "BINARYMIME"


@pytest.mark.parametrize(
    ("arg", "smtputf8_allowed", "reply"),
    [
        case("empty", "", False, replies.MAIL_SYNTAX),
        case("no-from", "<a@example.com>", False, replies.MAIL_SYNTAX),
        case("to-instead", "TO:<a@example.com>", False, replies.MAIL_SYNTAX),
        case("space-before-colon", "FROM :<a@example.com>", False, replies.MAIL_SYNTAX),
        case("no-colon", "FROM <a@example.com>", False, replies.MAIL_SYNTAX),
        case("no-brackets", "FROM:a@example.com", False, replies.MAIL_SYNTAX),
        case("no-path", "FROM:", False, replies.MAIL_SYNTAX),
        case("unclosed-bracket", "FROM:<a@example.com", False, replies.MAIL_SYNTAX),
        case("junk-after-path", "FROM:<a@example.com>x", False, replies.MAIL_SYNTAX),
        case("bad-keyword", "FROM:<a@example.com> -SIZE=1", False, replies.MAIL_SYNTAX),
        case("empty-value", "FROM:<a@example.com> SIZE=", False, replies.MAIL_SYNTAX),
        case("duplicate-param", "FROM:<a@example.com> SIZE=1 size=2", False, replies.DUPLICATE_PARAMETER),
        case("size-not-number", "FROM:<a@example.com> SIZE=big", False, replies.BAD_PARAMETER_VALUE),
        case("size-negative", "FROM:<a@example.com> SIZE=-1", False, replies.BAD_PARAMETER_VALUE),
        case("size-21-digits", "FROM:<a@example.com> SIZE=" + "9" * 21, False, replies.BAD_PARAMETER_VALUE),
        case("size-no-value", "FROM:<a@example.com> SIZE", False, replies.BAD_PARAMETER_VALUE),
        case("size-unicode-digits", "FROM:<a@example.com> SIZE=\u0663", True, replies.BAD_PARAMETER_VALUE),
        case("body-unknown", "FROM:<a@example.com> BODY=9BIT", False, replies.BAD_PARAMETER_VALUE),
        case(
            "body-binarymime-not-offered",
            "FROM:<a@example.com> BODY=BINARYMIME",
            False,
            replies.UNSUPPORTED_BODY_TYPE,
        ),
        case("smtputf8-with-value", "FROM:<a@example.com> SMTPUTF8=yes", True, replies.BAD_PARAMETER_VALUE),
        case("auth-no-value", "FROM:<a@example.com> AUTH", False, replies.BAD_PARAMETER_VALUE),
        case("value-with-equals", "FROM:<a@example.com> AUTH=a=b", False, replies.BAD_PARAMETER_VALUE),
        case(
            "non-ascii-value-without-smtputf8",
            "FROM:<a@example.com> AUTH=jörg",
            False,
            replies.BAD_PARAMETER_VALUE,
        ),
        case("smtputf8-not-offered", "FROM:<a@example.com> SMTPUTF8", False, replies.PARAMETER_NOT_SUPPORTED),
        case("unknown-param", "FROM:<a@example.com> RET=HDRS", False, replies.PARAMETER_NOT_SUPPORTED),
        case("utf8-address-without-smtputf8", "FROM:<jörg@example.com>", True, replies.NON_ASCII_SENDER),
        case("bad-address", "FROM:<a b@example.com>", False, replies.BAD_SENDER_SYNTAX),
        case("source-route", "FROM:<@relay.example:a@example.com>", False, replies.SENDER_SOURCE_ROUTE),
    ],
)
def test_parse_mail_from_errors(arg: str, smtputf8_allowed: bool, reply: Reply) -> None:
    with pytest.raises(SmtpError) as raised:
        parse_mail_from(arg, smtputf8_allowed=smtputf8_allowed)
    assert raised.value.reply is reply


def test_unknown_parameter_is_typed() -> None:
    with pytest.raises(UnknownParameter) as raised:
        parse_mail_from("FROM:<a@example.com> ENVID=x", smtputf8_allowed=True)
    assert raised.value.keyword == "ENVID"
    assert raised.value.to_bytes().startswith(b"555 5.5.4 ")


# --- RCPT TO ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arg", "smtputf8", "address", "mailbox"),
    [
        case("plain", "TO:<bob@hosted.com>", False, "bob@hosted.com", Mailbox("bob", "hosted.com")),
        case("lowercase-to", "to:<bob@hosted.com>", False, "bob@hosted.com", Mailbox("bob", "hosted.com")),
        case(
            "space-after-colon", "TO: <bob@hosted.com>", False, "bob@hosted.com", Mailbox("bob", "hosted.com")
        ),
        case("postmaster", "TO:<Postmaster>", False, "postmaster", None),
        case("postmaster-lowercase", "TO:<postmaster>", False, "postmaster", None),
        case(
            "postmaster-with-domain",
            "TO:<postmaster@hosted.com>",
            False,
            "postmaster@hosted.com",
            Mailbox("postmaster", "hosted.com"),
        ),
        case(
            "utf8-under-smtputf8",
            "TO:<jörg@hosted.com>",
            True,
            "jörg@hosted.com",
            Mailbox("jörg", "hosted.com"),
        ),
        case(
            "percent-hack-parses",
            "TO:<a%b.com@hosted.com>",
            False,
            "a%b.com@hosted.com",
            Mailbox("a%b.com", "hosted.com"),
        ),
    ],
)
def test_parse_rcpt_to(arg: str, smtputf8: bool, address: str, mailbox: Mailbox | None) -> None:
    rcpt = parse_rcpt_to(arg, smtputf8=smtputf8)
    assert rcpt.address == address
    assert rcpt.mailbox == mailbox
    assert rcpt.is_postmaster is (mailbox is None)
    assert rcpt.params == {}


@pytest.mark.parametrize(
    ("arg", "smtputf8", "reply"),
    [
        case("empty", "", False, replies.RCPT_SYNTAX),
        case("from-instead", "FROM:<a@hosted.com>", False, replies.RCPT_SYNTAX),
        case("no-brackets", "TO:bob@hosted.com", False, replies.RCPT_SYNTAX),
        case("no-brackets-postmaster", "TO:Postmaster", False, replies.RCPT_SYNTAX),
        case("unclosed", "TO:<bob@hosted.com", False, replies.RCPT_SYNTAX),
        case("junk-after-path", "TO:<bob@hosted.com>junk", False, replies.RCPT_SYNTAX),
        case("null-path", "TO:<>", False, replies.BAD_RECIPIENT_SYNTAX),
        case("dsn-param", "TO:<bob@hosted.com> NOTIFY=NEVER", False, replies.PARAMETER_NOT_SUPPORTED),
        case("bad-param-syntax", "TO:<bob@hosted.com> =x", False, replies.RCPT_SYNTAX),
        case("duplicate-param", "TO:<bob@hosted.com> A=1 a=2", False, replies.DUPLICATE_PARAMETER),
        case("utf8-without-smtputf8", "TO:<jörg@hosted.com>", False, replies.NON_ASCII_RECIPIENT),
        case("source-route", "TO:<@hosted.com:user@other.com>", False, replies.RELAY_SOURCE_ROUTE),
        case("multiple-at", "TO:<user@other.com@hosted.com>", False, replies.RELAY_ROUTING_CHARACTERS),
        case("trailing-dot", "TO:<user@hosted.com.>", False, replies.RELAY_TRAILING_DOT),
        case("percent-hack-without-domain", "TO:<user%other.com>", False, replies.RELAY_ROUTING_CHARACTERS),
        case("bare-ip-as-domain", "TO:<user@192.0.2.1>", False, replies.RELAY_ADDRESS_LITERAL),
        case("space-inside-brackets", "TO:< user@hosted.com>", False, replies.BAD_RECIPIENT_SYNTAX),
    ],
)
def test_parse_rcpt_to_errors(arg: str, smtputf8: bool, reply: Reply) -> None:
    with pytest.raises(SmtpError) as raised:
        parse_rcpt_to(arg, smtputf8=smtputf8)
    assert raised.value.reply is reply


def test_rcpt_address_errors_keep_their_reason() -> None:
    with pytest.raises(AddressError) as raised:
        parse_rcpt_to("TO:<user@hosted.com.>")
    assert raised.value.reason is Refusal.TRAILING_DOT


# --- AUTH -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arg", "expected"),
    [
        case("mechanism-only", "PLAIN", AuthCommand("PLAIN", None)),
        case("lowercase-mechanism", "login", AuthCommand("LOGIN", None)),
        case("initial-response", "PLAIN AGFsaWNlAHNlY3JldA==", AuthCommand("PLAIN", "AGFsaWNlAHNlY3JldA==")),
        case("empty-initial-response", "PLAIN =", AuthCommand("PLAIN", "=")),
        case("unpadded-response", "LOGIN YWxpY2U", AuthCommand("LOGIN", "YWxpY2U")),
        case("mechanism-with-dash", "SCRAM-SHA-256", AuthCommand("SCRAM-SHA-256", None)),
    ],
)
def test_parse_auth(arg: str, expected: AuthCommand) -> None:
    assert parse_auth(arg) == expected


@pytest.mark.parametrize(
    ("arg", "reply"),
    [
        case("empty", "", replies.AUTH_SYNTAX),
        case("three-words", "PLAIN abc def", replies.AUTH_SYNTAX),
        case("mechanism-too-long", "A" * 21, replies.AUTH_SYNTAX),
        case("mechanism-punctuation", "PL@IN", replies.AUTH_SYNTAX),
        case("response-not-base64", "PLAIN not*base64", replies.AUTH_BAD_BASE64),
        case("response-cancel-star", "PLAIN *", replies.AUTH_BAD_BASE64),
        case("too-much-padding", "PLAIN YQ===", replies.AUTH_BAD_BASE64),
    ],
)
def test_parse_auth_errors(arg: str, reply: Reply) -> None:
    with pytest.raises(SmtpError) as raised:
        parse_auth(arg)
    assert raised.value.reply is reply


# --- EHLO / HELO ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "arg",
    [
        pytest.param("client.example.com", id="fqdn"),
        pytest.param("localhost", id="single-label"),
        pytest.param("MYPC", id="uppercase"),
        pytest.param("my_pc.lan", id="underscore"),
        pytest.param("mail.example.com.", id="trailing-dot"),
        pytest.param("[192.0.2.1]", id="ipv4-literal"),
        pytest.param("[IPv6:2001:db8::1]", id="ipv6-literal"),
        pytest.param("a1b2c3d4e5f6", id="container-id"),
        pytest.param("xn--bcher-kva.example", id="a-label"),
    ],
)
def test_parse_helo(arg: str) -> None:
    assert parse_helo(arg) == arg


@pytest.mark.parametrize(
    "arg",
    [
        pytest.param("", id="empty"),
        pytest.param("two words", id="two-words"),
        pytest.param("bücher.example", id="u-label"),
        pytest.param("a..b", id="empty-label"),
        pytest.param(".", id="only-dot"),
        pytest.param("-host.example", id="leading-hyphen"),
        pytest.param("host-.example", id="trailing-hyphen"),
        pytest.param("host/example", id="slash"),
        pytest.param("192.0.2.1]", id="half-literal"),
        pytest.param("[192.0.2.300]", id="bad-literal"),
        pytest.param("[localhost]", id="bracketed-name"),
        pytest.param("a" * 64 + ".example", id="label-64"),
        pytest.param(".".join(["a" * 63] * 5), id="name-over-255"),
    ],
)
def test_parse_helo_errors(arg: str) -> None:
    with pytest.raises(SmtpError) as raised:
        parse_helo(arg)
    assert raised.value.reply is replies.HELO_SYNTAX


# --- BDAT -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arg", "expected"),
    [
        case("chunk", "1000", BdatCommand(1000, False)),
        case("last", "1000 LAST", BdatCommand(1000, True)),
        case("last-lowercase", "12 last", BdatCommand(12, True)),
        case("zero-last", "0 LAST", BdatCommand(0, True)),
        case("zero", "0", BdatCommand(0, False)),
        case("leading-zeros", "007", BdatCommand(7, False)),
        case("twenty-digits", "9" * 20, BdatCommand(10**20 - 1, False)),
    ],
)
def test_parse_bdat(arg: str, expected: BdatCommand) -> None:
    assert parse_bdat(arg) == expected


@pytest.mark.parametrize(
    "arg",
    [
        pytest.param("", id="empty"),
        pytest.param("-1", id="negative"),
        pytest.param("+1", id="plus-sign"),
        pytest.param("abc", id="not-a-number"),
        pytest.param("1.5", id="decimal"),
        pytest.param("0x10", id="hex"),
        pytest.param("\u0663", id="unicode-digit"),
        pytest.param("9" * 21, id="huge"),
        pytest.param("10 FIRST", id="bad-marker"),
        pytest.param("10 LAST x", id="extra-word"),
        pytest.param("LAST", id="marker-only"),
    ],
)
def test_parse_bdat_errors_close_the_connection(arg: str) -> None:
    with pytest.raises(SmtpError) as raised:
        parse_bdat(arg)
    assert raised.value.reply is replies.BDAT_SYNTAX
    assert raised.value.close is True
