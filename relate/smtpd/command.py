"""SMTP command lines: bytes in, typed commands out. No sockets, no state, no database.

Invariants:
- Every function here either returns a typed value or raises `SmtpError` (or a subclass)
  carrying the exact reply to send; the session maps errors to the wire in one place.
- Parsers check syntax only. Policy (is SMTPUTF8 advertised, is the mechanism offered, is
  the size over the limit, is the sender owned, is this the right state) is the session's,
  except where a parser needs the answer to read the line at all (`smtputf8_allowed`).
- Line length is enforced by the reader before a line reaches this module; the limits it
  uses live here, each with its RFC clause.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, NamedTuple

from relate.smtpd import replies
from relate.smtpd.address import Mailbox, is_address_literal, parse_forward_path, parse_reverse_path
from relate.smtpd.replies import Reply, SmtpError

# RFC 5321 §4.5.3.1.4 requires servers to take command lines of at least 512 octets
# (verb and CRLF included) and lets extensions raise it: SIZE, BODY, AUTH=, SMTPUTF8
# (RFC 6531 §3.1 item 5) and UTF-8 addresses (up to 4 octets a character) all lengthen MAIL
# and RCPT. Relate Mail takes command lines up to 1000 octets, the text-line limit.
RFC_MIN_COMMAND_LINE = 512
MAX_COMMAND_LINE = 1000
# RFC 4954 §4: an AUTH command line with its initial response, and each SASL response line,
# may be up to 12288 octets. A longer AUTH line gets LINE_TOO_LONG (500 5.5.2) like any
# command line (the reader cannot tell its verb once it stops reading), a longer response
# line AUTH_LINE_TOO_LONG (500 5.5.6).
MAX_AUTH_LINE = 12288
# RFC 5321 §4.5.3.1.6: 1000 octets per text line, CRLF included. Informational: DATA accepts
# longer lines (see data.py), as deployed servers do, rather than break real mail.
MAX_TEXT_LINE = 1000
# RFC 5321 §4.5.3.1.8: a server must take at least 100 recipients; beyond the configured
# maximum, RCPT gets TOO_MANY_RECIPIENTS (452 4.5.3, §4.5.3.1.10). Smtp__MaxRecipients.
DEFAULT_MAX_RECIPIENTS = 100

# MAIL FROM parameters Relate Mail understands. RCPT TO takes none (no DSN).
MAIL_PARAMETERS = frozenset({"SIZE", "BODY", "SMTPUTF8", "AUTH"})

Body = Literal["7BIT", "8BITMIME", "BINARYMIME"]
_BODIES: dict[str, Body] = {"7BIT": "7BIT", "8BITMIME": "8BITMIME", "BINARYMIME": "BINARYMIME"}

_VERB = re.compile(r"[A-Za-z]{1,16}\Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # C0 controls and DEL: never in a command line
_KEYWORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*\Z")  # RFC 5321 §4.1.2 esmtp-keyword
_DIGITS_20 = re.compile(r"[0-9]{1,20}\Z")  # RFC 1870 §3 size-value, RFC 3030 §2 chunk-size (bounded)
_MECHANISM = re.compile(r"[A-Za-z0-9_-]{1,20}\Z")  # RFC 4422 §3.1 sasl-mech
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}\Z")  # RFC 4648 alphabet; the SASL layer decodes strictly
_HELO_LABEL = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?\Z")


class UnknownParameter(SmtpError):
    """A MAIL/RCPT parameter Relate Mail does not implement: 555 5.5.4 (RFC 5321 §4.1.1.11)."""

    def __init__(self, keyword: str) -> None:
        super().__init__(replies.PARAMETER_NOT_SUPPORTED)
        self.keyword = keyword


@dataclass(frozen=True, slots=True)
class Command:
    verb: str  # uppercased, ASCII letters only
    arg: str  # the rest of the line without the separating and trailing spaces; may be ""


@dataclass(frozen=True, slots=True)
class MailFrom:
    address: str  # str(mailbox), or "" for the null reverse-path <>
    mailbox: Mailbox | None  # None for <>
    params: dict[str, str | None]  # keyword uppercased -> value as sent (None: no "=value")
    size: int | None  # SIZE= (RFC 1870), not yet compared with the limit
    body: Body | None  # BODY= (RFC 6152, RFC 3030)
    smtputf8: bool  # SMTPUTF8 given (RFC 6531): UTF-8 allowed in this transaction's addresses


@dataclass(frozen=True, slots=True)
class RcptTo:
    address: str  # str(mailbox), or "postmaster" for the bare <Postmaster>
    mailbox: Mailbox | None  # None only for the bare <Postmaster> (RFC 5321 §4.1.1.3)
    params: dict[str, str | None]

    @property
    def is_postmaster(self) -> bool:
        """The domain-less <Postmaster> every SMTP server must accept (RFC 5321 §4.5.1); the
        session delivers it to a hosted domain's postmaster or to the administrators."""
        return self.mailbox is None


class AuthCommand(NamedTuple):
    mechanism: str  # uppercased
    # As sent: base64 text, or "=" for an empty one (RFC 4954 §4); None if absent.
    initial_response: str | None


class BdatCommand(NamedTuple):
    size: int
    last: bool


def parse_command(line: bytes) -> Command:
    """Split one command line into verb and argument. A final CRLF, if present, is dropped.

    Raises SmtpError for an empty line, a bare CR or LF anywhere (commands end with CRLF
    only, as DATA does), bytes that are not UTF-8, control characters, or a verb that is not
    1-16 ASCII letters. An unknown but well-formed verb is returned: the session answers it
    with COMMAND_UNRECOGNIZED.
    """
    if line.endswith(b"\r\n"):
        line = line[:-2]
    if b"\r" in line or b"\n" in line:
        raise SmtpError(replies.COMMAND_BARE_LINE_ENDING)
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise SmtpError(replies.COMMAND_INVALID_CHARACTERS) from None
    if _CONTROL.search(text):
        raise SmtpError(replies.COMMAND_INVALID_CHARACTERS)
    verb, _, arg = text.strip(" ").partition(" ")
    if not verb:
        raise SmtpError(replies.SYNTAX_ERROR)
    if not _VERB.match(verb):
        raise SmtpError(replies.COMMAND_UNRECOGNIZED)
    return Command(verb=verb.upper(), arg=arg.strip(" "))


def parse_mail_from(arg: str, *, smtputf8_allowed: bool, binarymime_allowed: bool = False) -> MailFrom:
    """Parse the argument of MAIL: `FROM:<reverse-path> [SP Mail-parameters]` (RFC 5321 §4.1.1.2).

    `smtputf8_allowed`: SMTPUTF8 was advertised; `binarymime_allowed`: BINARYMIME was.
    Spaces after the colon are tolerated (real clients send one); the angle brackets are
    not optional. Parameters: SIZE=n, BODY=7BIT|8BITMIME|BINARYMIME, SMTPUTF8, and AUTH=
    (RFC 4954 §5; accepted and ignored). Others raise UnknownParameter (555).
    """
    path, params = _split_path_and_params(arg, "FROM:", replies.MAIL_SYNTAX)
    smtputf8 = "SMTPUTF8" in params
    _check_param_values(params, utf8=smtputf8)
    for keyword in params:
        if keyword not in MAIL_PARAMETERS:
            raise UnknownParameter(keyword)
    if smtputf8:
        if not smtputf8_allowed:
            raise UnknownParameter("SMTPUTF8")
        if params["SMTPUTF8"] is not None:
            raise SmtpError(replies.BAD_PARAMETER_VALUE)  # RFC 6531 §3.4: takes no value
    size = None
    if "SIZE" in params:
        value = params["SIZE"]
        if value is None or not _DIGITS_20.match(value):
            raise SmtpError(replies.BAD_PARAMETER_VALUE)
        size = int(value)
    body = None
    if "BODY" in params:
        value = params["BODY"]
        body = _BODIES.get((value or "").upper())
        if body is None:
            raise SmtpError(replies.BAD_PARAMETER_VALUE)
        if body == "BINARYMIME" and not binarymime_allowed:
            raise SmtpError(replies.UNSUPPORTED_BODY_TYPE)
    if "AUTH" in params and params["AUTH"] is None:
        raise SmtpError(replies.BAD_PARAMETER_VALUE)
    mailbox = parse_reverse_path(path, smtputf8=smtputf8)
    return MailFrom(
        address=str(mailbox) if mailbox else "",
        mailbox=mailbox,
        params=params,
        size=size,
        body=body,
        smtputf8=smtputf8,
    )


def parse_rcpt_to(arg: str, *, smtputf8: bool = False) -> RcptTo:
    """Parse the argument of RCPT: `TO:<forward-path> [SP Rcpt-parameters]` (RFC 5321 §4.1.1.3).

    `smtputf8` is the transaction's MailFrom.smtputf8. Any parameter raises UnknownParameter
    (555): Relate Mail implements none for RCPT. The address is checked for syntax only;
    `address.classify_recipient` decides local, remote or refused.
    """
    path, params = _split_path_and_params(arg, "TO:", replies.RCPT_SYNTAX)
    _check_param_values(params, utf8=smtputf8)
    if params:
        raise UnknownParameter(next(iter(params)))
    if path.lower() == "postmaster":
        return RcptTo(address="postmaster", mailbox=None, params=params)
    mailbox = parse_forward_path(path, smtputf8=smtputf8)
    return RcptTo(address=str(mailbox), mailbox=mailbox, params=params)


def parse_auth(arg: str) -> AuthCommand:
    """Parse `AUTH mechanism [SP initial-response]` (RFC 4954 §4).

    The initial response is checked to be base64 (or "=") but not decoded, and is returned
    as sent, "=" included: exactly what `relate.protocol.sasl.authenticate` takes. Decoding
    is the SASL layer's; whether the mechanism is offered is the session's
    (UNRECOGNIZED_AUTH_MECHANISM, 504 5.5.4).
    """
    parts = arg.split()
    if not 1 <= len(parts) <= 2 or not _MECHANISM.match(parts[0]):
        raise SmtpError(replies.AUTH_SYNTAX)
    mechanism = parts[0].upper()
    if len(parts) == 1:
        return AuthCommand(mechanism, None)
    response = parts[1]
    if response != "=" and not _BASE64.match(response):
        raise SmtpError(replies.AUTH_BAD_BASE64)
    return AuthCommand(mechanism, response)


def parse_helo(arg: str) -> str:
    """Check the argument of EHLO/HELO and return it as sent (for the Received header).

    RFC 5321 §4.1.1.1: a Domain or an address literal, ASCII only (RFC 6531 §3.7.1).
    Relate Mail is lenient where real clients are sloppy but harmless: "_" is accepted in
    labels (Windows host names), as is one trailing dot. Spaces, several words, empty
    labels and anything non-ASCII raise HELO_SYNTAX (501 5.5.4).
    """
    if not arg or " " in arg or not arg.isascii():
        raise SmtpError(replies.HELO_SYNTAX)
    if arg.startswith("["):
        if not is_address_literal(arg):
            raise SmtpError(replies.HELO_SYNTAX)
        return arg
    name = arg[:-1] if arg.endswith(".") else arg
    if (
        not name
        or len(name) > 255
        or not all(len(label) <= 63 and _HELO_LABEL.match(label) for label in name.split("."))
    ):
        raise SmtpError(replies.HELO_SYNTAX)
    return arg


def parse_bdat(arg: str) -> BdatCommand:
    """Parse `BDAT chunk-size [SP LAST]` (RFC 3030 §2).

    A size must be 1-20 ASCII digits: no sign, no space inside. On error the number of
    octets that follow the line is unknown, so the byte stream can't be resynchronised:
    the SmtpError has close=True and the session hangs up after BDAT_SYNTAX. A size over
    the message limit is not an error here; the session drains the chunk (see data.py).
    """
    parts = arg.split()
    if not 1 <= len(parts) <= 2 or not _DIGITS_20.match(parts[0]):
        raise SmtpError(replies.BDAT_SYNTAX, close=True)
    if len(parts) == 2 and parts[1].upper() != "LAST":
        raise SmtpError(replies.BDAT_SYNTAX, close=True)
    return BdatCommand(int(parts[0]), len(parts) == 2)


# --- helpers -----------------------------------------------------------------------------


def _split_path_and_params(arg: str, prefix: str, syntax: Reply) -> tuple[str, dict[str, str | None]]:
    """Split `FROM:<path> params` into the path (without brackets) and the parameter dict."""
    if arg[: len(prefix)].upper() != prefix:
        raise SmtpError(syntax)
    rest = arg[len(prefix) :].lstrip(" ")
    if not rest.startswith("<"):
        raise SmtpError(syntax)
    end = _path_end(rest)
    if end < 0:
        raise SmtpError(syntax)
    path, tail = rest[1:end], rest[end + 1 :]
    if tail and not tail.startswith(" "):
        raise SmtpError(syntax)
    return path, _parse_params(tail, syntax)


def _path_end(text: str) -> int:
    """Index of the ">" that closes the path opened at text[0], skipping quoted strings."""
    quoted = False
    index = 1
    while index < len(text):
        char = text[index]
        if quoted and char == "\\":
            index += 2
            continue
        if char == '"':
            quoted = not quoted
        elif char == ">" and not quoted:
            return index
        index += 1
    return -1


def _parse_params(text: str, syntax: Reply) -> dict[str, str | None]:
    """RFC 5321 §4.1.2 esmtp-param *(SP esmtp-param); keywords are case-insensitive."""
    params: dict[str, str | None] = {}
    for word in text.split(" "):
        if not word:
            continue  # tolerate repeated spaces
        keyword, equals, value = word.partition("=")
        if not _KEYWORD.match(keyword) or (equals and not value):
            raise SmtpError(syntax)
        keyword = keyword.upper()
        if keyword in params:
            raise SmtpError(replies.DUPLICATE_PARAMETER)
        params[keyword] = value if equals else None
    return params


def _check_param_values(params: dict[str, str | None], *, utf8: bool) -> None:
    """esmtp-value = 1*(%d33-60 / %d62-126), plus UTF-8 under SMTPUTF8 (RFC 6531 §3.3)."""
    for value in params.values():
        if value is None:
            continue
        for char in value:
            code = ord(char)
            if code == 61 or (code < 0x80 and not 33 <= code <= 126) or (code >= 0x80 and not utf8):
                raise SmtpError(replies.BAD_PARAMETER_VALUE)
