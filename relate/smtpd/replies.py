"""Every reply the SMTP daemon sends, in one table, and the one error type that carries them.

Invariants:
- No reply text is written anywhere else: handlers and parsers name a constant from this
  module (or raise `SmtpError` with one), and the session turns it into bytes in one place.
- Every 2xx, 4xx and 5xx reply carries an RFC 3463 enhanced status code whose class digit
  equals the reply's first digit (RFC 2034 §4), except the greeting and the answer to
  HELO/EHLO, which RFC 2034 §4 exempts. 3xx replies (354, 334) never carry one: RFC 2034
  only covers 2xx/4xx/5xx, and a 334 text is the SASL challenge itself.
- `format()` always yields well-formed reply lines: CR, LF and every other byte outside
  printable US-ASCII in a substituted value become "?", and a line is cut to
  `MAX_REPLY_LINE` octets. A client-supplied value can therefore never inject a line.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

MAX_REPLY_LINE = 512  # RFC 5321 §4.5.3.1.5: reply line including the reply code and CRLF

_UNSAFE = re.compile(r"[^\x20-\x7e]")


def _clean(value: object) -> str:
    return _UNSAFE.sub("?", str(value))


@dataclass(frozen=True, slots=True)
class Reply:
    """One SMTP reply: `code` (RFC 5321 §4.2), `enhanced` (RFC 3463, or None), `text`.

    `text` may hold `{name}` placeholders; `fields` lists them and `format(**values)` fills
    them (a missing value raises KeyError: a bug the reply tests catch).
    """

    code: int
    enhanced: str | None
    text: str

    @property
    def fields(self) -> frozenset[str]:
        return frozenset(name for _, name, _, _ in string.Formatter().parse(self.text) if name)

    def _line(self, separator: str, text: str) -> bytes:
        if self.enhanced is None:
            line = f"{self.code}{separator}{text}"
        else:
            line = f"{self.code}{separator}{self.enhanced} {text}"
        data = _clean(line).encode("ascii")
        return data[: MAX_REPLY_LINE - 2] + b"\r\n"

    def _text(self, values: dict[str, object]) -> str:
        if not values and not self.fields:
            return self.text
        return self.text.format(**{name: _clean(value) for name, value in values.items()})

    def format(self, **values: object) -> bytes:
        """The reply as one CRLF-terminated line, e.g. b"250 2.0.0 OK\\r\\n"."""
        if values:
            return self._line(" ", self._text(values))
        data = _FIXED.get(self)
        if data is None:
            data = self._line(" ", self._text(values))  # KeyError for a reply that needs values
            if len(_FIXED) < MAX_FIXED:
                _FIXED[self] = data
        return data

    def format_multiline(self, lines: Iterable[str], **values: object) -> bytes:
        """This reply's text as the first line, then `lines`, as one multi-line reply.

        Every line but the last uses "code-" and the last "code " (RFC 5321 §4.2.1); when
        the reply has an enhanced code every line repeats it (RFC 2034 §4). For EHLO:
        `HELLO.format_multiline(["PIPELINING", "SIZE 52428800"], host=..., client=...)`.
        """
        more = list(lines)
        if not more:
            return self.format(**values)
        return self.format_first(**values) + self.format_rest(more)

    def format_first(self, **values: object) -> bytes:
        """The first line of a multi-line reply ("code-"), e.g. EHLO's greeting line."""
        return self._line("-", self._text(values))

    def format_rest(self, lines: Sequence[str]) -> bytes:
        """The lines after `format_first`, the last one with "code ". They take no values, so
        a caller may build them once and reuse them (EHLO's keywords)."""
        last = len(lines) - 1
        return b"".join(self._line("-" if index < last else " ", text) for index, text in enumerate(lines))


# Replies without values, as bytes: each is formatted once (the constants below, most of a
# session's replies), not once per use.
_FIXED: dict[Reply, bytes] = {}
MAX_FIXED = 1024


class SmtpError(Exception):
    """Raised by a parser or handler: the session sends `to_bytes()` and, if `close`, hangs up.

    `close` is for errors after which the byte stream cannot be trusted to be in step
    (e.g. a BDAT whose chunk size is unreadable). `values` fill the reply's placeholders.
    """

    def __init__(self, reply: Reply, *, close: bool = False, **values: object) -> None:
        super().__init__(f"{reply.code} {reply.text}")
        self.reply = reply
        self.close = close
        self.values = values

    def to_bytes(self) -> bytes:
        return self.reply.format(**self.values)


# --- connection, greeting, session -------------------------------------------------------
# RFC 2034 §4: no enhanced code on the greeting or on the answer to HELO/EHLO.
GREETING = Reply(220, None, "{host} ESMTP Relate Mail ready")
HELLO = Reply(250, None, "{host} Hello {client}")  # EHLO: first line of format_multiline
BYE = Reply(221, "2.0.0", "Bye")
OK = Reply(250, "2.0.0", "OK")  # RSET, NOOP
HELP = Reply(214, "2.0.0", "Relate Mail SMTP; see RFC 5321")
CANNOT_VERIFY = Reply(252, "2.0.0", "Cannot VRFY user, but will accept message and attempt delivery")
START_TLS = Reply(220, "2.0.0", "Ready to start TLS")  # RFC 3207 §4
NO_SERVICE = Reply(554, "5.3.2", "No SMTP service here")  # RFC 5321 §3.1 greeting refusal
TOO_MANY_CONNECTIONS = Reply(421, "4.7.0", "Too many connections, try again later")
TIMEOUT = Reply(421, "4.4.2", "Timeout exceeded, closing connection")
TOO_MANY_ERRORS = Reply(421, "4.7.0", "Too many errors, closing connection")
SHUTTING_DOWN = Reply(421, "4.3.2", "Service shutting down, closing connection")
EARLY_TALKER = Reply(554, "5.5.0", "Protocol error: client sent data before the greeting")
PIPELINING_NOT_OFFERED = Reply(554, "5.5.0", "Protocol error: command pipelining was not negotiated")

# --- transaction --------------------------------------------------------------------------
SENDER_OK = Reply(250, "2.1.0", "Sender OK")
RECIPIENT_OK = Reply(250, "2.1.5", "Recipient OK")
START_INPUT = Reply(354, None, "End data with <CR><LF>.<CR><LF>")  # RFC 5321 §4.1.1.4
BDAT_CHUNK_OK = Reply(250, "2.0.0", "{size} octets received")  # RFC 3030 §2
MESSAGE_ACCEPTED = Reply(250, "2.6.0", "Message accepted")  # only after the commit (DESIGN §6.3)

# --- temporary failures -------------------------------------------------------------------
STORE_FAILURE = Reply(451, "4.3.0", "Temporary failure storing the message, try again later")
LOOKUP_FAILURE = Reply(451, "4.3.0", "Temporary failure looking up the recipient, try again later")
SENDER_LOOKUP_FAILURE = Reply(451, "4.3.0", "Temporary failure checking the sender, try again later")
INSUFFICIENT_STORAGE = Reply(452, "4.3.1", "Insufficient system storage, try again later")
TOO_MANY_RECIPIENTS = Reply(452, "4.5.3", "Too many recipients")  # RFC 5321 §4.5.3.1.10
TLS_NOT_AVAILABLE = Reply(454, "4.7.0", "TLS not available due to temporary reason")  # RFC 3207 §4
AUTH_TEMPORARY_FAILURE = Reply(454, "4.7.0", "Temporary authentication failure")  # RFC 4954 §6

# --- syntax (RFC 5321 §4.2.4, RFC 3463 X.5.x) ---------------------------------------------
SYNTAX_ERROR = Reply(500, "5.5.2", "Syntax error")
COMMAND_UNRECOGNIZED = Reply(500, "5.5.1", "Command not recognized")
LINE_TOO_LONG = Reply(500, "5.5.2", "Line too long")
COMMAND_BARE_LINE_ENDING = Reply(500, "5.5.2", "Bare CR or LF in command line; lines must end with CRLF")
COMMAND_INVALID_CHARACTERS = Reply(500, "5.5.2", "Command line contains invalid characters")
AUTH_LINE_TOO_LONG = Reply(500, "5.5.6", "Authentication exchange line is too long")  # RFC 4954 §4
BAD_ARGUMENTS = Reply(501, "5.5.4", "Invalid command arguments")
NO_ARGUMENTS_ALLOWED = Reply(501, "5.5.4", "This command takes no arguments")
HELO_SYNTAX = Reply(501, "5.5.4", "Syntax: EHLO domain or address literal")
MAIL_SYNTAX = Reply(501, "5.5.4", "Syntax: MAIL FROM:<address> [parameters]")
RCPT_SYNTAX = Reply(501, "5.5.4", "Syntax: RCPT TO:<address> [parameters]")
AUTH_SYNTAX = Reply(501, "5.5.4", "Syntax: AUTH mechanism [initial-response]")
BDAT_SYNTAX = Reply(501, "5.5.4", "Syntax: BDAT size [LAST]")
DUPLICATE_PARAMETER = Reply(501, "5.5.4", "Duplicate MAIL/RCPT parameter")
BAD_PARAMETER_VALUE = Reply(501, "5.5.4", "Invalid MAIL/RCPT parameter value")
AUTH_BAD_BASE64 = Reply(501, "5.5.2", "Cannot decode base64 response")  # RFC 4954 §4
AUTH_CANCELLED = Reply(501, "5.7.0", "Authentication cancelled")  # RFC 4954 §4, client sent "*"
NOT_IMPLEMENTED = Reply(502, "5.5.1", "Command not implemented")
UNSUPPORTED_BODY_TYPE = Reply(504, "5.5.4", "Unsupported BODY type")  # RFC 5321 §4.2.4 504
UNRECOGNIZED_AUTH_MECHANISM = Reply(504, "5.5.4", "Unrecognized authentication mechanism")  # RFC 4954 §4
PARAMETER_NOT_SUPPORTED = Reply(555, "5.5.4", "MAIL/RCPT parameter not recognized or not implemented")

# --- bad sequence of commands (503 5.5.1) -------------------------------------------------
NEED_HELO = Reply(503, "5.5.1", "Send EHLO or HELO first")
NEED_EHLO_AFTER_TLS = Reply(503, "5.5.1", "Send EHLO again after STARTTLS")  # RFC 3207 §4.2
NEED_MAIL = Reply(503, "5.5.1", "Need MAIL before RCPT")
NEED_RCPT = Reply(503, "5.5.1", "Need RCPT before DATA")
NEED_MAIL_BEFORE_DATA = Reply(503, "5.5.1", "Need MAIL and RCPT before DATA")
NEED_MAIL_BEFORE_BDAT = Reply(503, "5.5.1", "Need MAIL and RCPT before BDAT")
NEED_RCPT_BEFORE_BDAT = Reply(503, "5.5.1", "Need RCPT before BDAT")
NESTED_MAIL = Reply(503, "5.5.1", "MAIL already given; send RSET to start over")
ALREADY_AUTHENTICATED = Reply(503, "5.5.1", "Already authenticated")  # RFC 4954 §4
AUTH_IN_TRANSACTION = Reply(503, "5.5.1", "AUTH is not allowed during a mail transaction")  # RFC 4954 §4
TLS_ALREADY_ACTIVE = Reply(503, "5.5.1", "TLS already active")
DATA_AFTER_BDAT = Reply(503, "5.5.1", "DATA is not allowed after BDAT in the same transaction")  # RFC 3030 §2
BINARYMIME_NEEDS_BDAT = Reply(503, "5.5.1", "BODY=BINARYMIME requires BDAT, not DATA")  # RFC 3030 §3
NO_VALID_RECIPIENTS = Reply(554, "5.5.1", "No valid recipients")  # RFC 5321 §3.3

# --- authentication and TLS policy (RFC 4954 §6, RFC 3207 §4) -----------------------------
AUTH_SUCCESS = Reply(235, "2.7.0", "Authentication successful")
AUTH_CHALLENGE = Reply(334, None, "{challenge}")  # base64 text; "" gives "334 " as RFC 4954 §4 asks
AUTH_REQUIRED = Reply(530, "5.7.0", "Authentication required")
STARTTLS_REQUIRED = Reply(530, "5.7.0", "Must issue a STARTTLS command first")
AUTH_MECHANISM_TOO_WEAK = Reply(534, "5.7.9", "Authentication mechanism is too weak")
BAD_CREDENTIALS = Reply(535, "5.7.8", "Authentication credentials invalid")
ENCRYPTION_REQUIRED_FOR_AUTH = Reply(
    538, "5.7.11", "Encryption required for requested authentication mechanism"
)

# --- envelope addresses -------------------------------------------------------------------
NO_SUCH_USER = Reply(550, "5.1.1", "Mailbox unavailable: no such user here")
# RFC 5321 §4.5.1: postmaster must be accepted; only a server with neither a postmaster
# address nor any administrator to stand in for one refuses it.
NO_POSTMASTER = Reply(550, "5.1.1", "Mailbox unavailable: no postmaster is configured here")
REMOTE_DELIVERY_UNAVAILABLE = Reply(
    550, "5.7.1", "Delivery to remote domains is not available on this server"
)
# Every destination Relate Mail does not host gets 554 5.7.1, relay tricks included, each
# with a text that says which trick (RFC 5321 §3.6.1: a server may decline to relay and to
# take source routes). Senders are never routed to: these are for recipients only.
RELAY_DENIED = Reply(554, "5.7.1", "Relay access denied")  # MX: never a relay for anyone
RELAY_SOURCE_ROUTE = Reply(554, "5.7.1", "Relay access denied: source routes are not accepted")
RELAY_ADDRESS_LITERAL = Reply(
    554, "5.7.1", "Relay access denied: IP addresses and address literals are not accepted as recipients"
)
RELAY_ROUTING_CHARACTERS = Reply(554, "5.7.1", "Relay access denied: recipient local part may not contain %, ! or @")
RELAY_TRAILING_DOT = Reply(554, "5.7.1", "Relay access denied: recipient domain may not end with a dot")
SENDER_NOT_OWNED = Reply(553, "5.7.1", "Sender address is not one of the authenticated user's addresses")
SENDER_SOURCE_ROUTE = Reply(553, "5.7.1", "Source routes are not accepted")
BAD_SENDER_SYNTAX = Reply(553, "5.1.7", "Bad sender address syntax")
BAD_RECIPIENT_SYNTAX = Reply(553, "5.1.3", "Bad recipient address syntax")
# A non-ASCII address without SMTPUTF8 (RFC 6531 §3.5): X.6.7, "non-ASCII addresses not
# permitted for that sender/recipient", with 553, RFC 5321 §4.2.2's "mailbox name not
# allowed (e.g., mailbox syntax incorrect)": the name itself is what this transaction cannot
# carry, whichever side it is on. One code for sender and recipient alike (550 would say the
# mailbox is unavailable, which it may not be), so a client handles both the same way.
NON_ASCII_SENDER = Reply(553, "5.6.7", "Non-ASCII sender address requires SMTPUTF8")
NON_ASCII_RECIPIENT = Reply(553, "5.6.7", "Non-ASCII recipient address requires SMTPUTF8")

# --- message content ----------------------------------------------------------------------
MESSAGE_TOO_BIG = Reply(552, "5.3.4", "Message size exceeds fixed maximum message size")  # RFC 1870 §6
BARE_LINE_ENDING = Reply(554, "5.6.0", "Message contains bare CR or LF; lines must end with CRLF")
