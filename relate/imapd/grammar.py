"""IMAP lexical grammar: the cursor the command parsers read with, and its inverse for replies.

Reading (RFC 9051 §4 and §9, RFC 3501 §4 and §9):
- `Reader` walks the bytes of ONE command as the session assembled them (lines, in-buffer
  literal data, rest of line; the contract is described in `relate.imapd.parse`). Each method
  reads one token or raises `ParseError`; nothing is read past the end of the buffer.
- A literal header that ends the buffer suspends parsing: the reader raises `LiteralPending`,
  which `parse_command` turns into the `NeedLiteral` it returns. An APPEND message literal is
  never in the buffer; the reader hands out a `LiteralRef` for it instead.
- Every loop is bounded by the buffer's length, digit strings are length-checked before int(),
  parenthesis depth is capped at MAX_NESTING, literals per command at MAX_LITERALS.
- Atoms are 7-bit. 8-bit octets in a quoted string are valid only once the client enabled
  UTF8=ACCEPT or IMAP4rev2 (RFC 6855 §3, RFC 9051 §9 QUOTED-CHAR), and must then be UTF-8;
  the one exception is a string its caller decodes in a charset the client named (`eight_bit`:
  a SEARCH string under CHARSET, see relate.imapd.searchkeys).

Writing: `quote_string`, `format_astring`, `format_mailbox`, `format_flags`, `imap_datetime`.
Mailbox names: modified UTF-7 (relate.message.mutf7, RFC 3501 §5.1.3) and INBOX normalisation.
A printable US-ASCII name that is not valid modified UTF-7 is still a name, not a syntax
error (RFC 3501 §5.1.3 makes modified UTF-7 a convention): the reader returns it as an
`UndecodableName`, taken literally, which no command may create.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from typing import TypeVar

from relate.message.mutf7 import mutf7_decode, mutf7_encode

T = TypeVar("T")

MAX_NESTING = 16  # parenthesised-list depth in one command; deeper is BAD
MAX_LITERALS = 100  # literals in one command; each one costs a re-parse
MAX_INLINE_LITERAL = 65_536  # literal octets held in the parse buffer per command (not APPEND data)
MAX_NUMBER = 4_294_967_295  # RFC 9051 §9 number: unsigned 32-bit
MAX_NUMBER64 = 2**63 - 1  # RFC 9051 §9 number64 (and RFC 7162 mod-sequence-value)
HIERARCHY_DELIMITER = "/"  # DESIGN.md §5: mailboxes nest with "/"

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTH_NUMBER = {name.upper(): index + 1 for index, name in enumerate(MONTHS)}

# Canonical spelling of the system flags (RFC 9051 §2.3.2); flags compare case-insensitively.
SYSTEM_FLAGS = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft", "\\Recent")
_SYSTEM_FLAG_BY_UPPER = {flag.upper(): flag for flag in SYSTEM_FLAGS}


def _char_class(excluded: bytes, extra: bytes = b"") -> bytes:
    chars = bytes(c for c in range(0x21, 0x7F) if c not in excluded) + extra
    return b"[" + b"".join(re.escape(bytes([c])) for c in chars) + b"]"


# RFC 9051 §9: ATOM-CHAR is any CHAR except atom-specials: ( ) { SP CTL % * " \ ]
_ATOM_SPECIALS = b'(){%*"\\]'
_ATOM = re.compile(_char_class(_ATOM_SPECIALS) + b"+")
_ASTRING_ATOM = re.compile(_char_class(_ATOM_SPECIALS, b"]") + b"+")  # ASTRING-CHAR adds "]"
_LIST_ATOM = re.compile(_char_class(_ATOM_SPECIALS, b"%*]") + b"+")  # list-char adds wildcards
_DIGITS = re.compile(rb"[0-9]+")
_EOL = re.compile(rb"\r?\n")
_QUOTED_RUN = re.compile(rb'[^"\\\r\n\x00]*')
_LITERAL = re.compile(rb"(~?)\{([0-9]+)(\+?)\}\r?\n")
_DATE = re.compile(rb"([0-9]{1,2})-([A-Za-z]{3})-([0-9]{4})")
_DATE_TIME = re.compile(
    rb'"( [0-9]|[0-9]{1,2})-([A-Za-z]{3})-([0-9]{4}) '
    rb'([0-9]{2}):([0-9]{2}):([0-9]{2}) ([+-])([0-9]{2})([0-9]{2})"'
)


class ParseError(Exception):
    """A command the session must answer with BAD (RFC 9051 §7.1.3).

    `tag` is the command's tag, or None when none could be read (then the reply is
    `* BAD`). `garbage` is true when the line is not a recognisable IMAP command at all: no
    tag, no command word, or a command word Relate Mail does not know. A session closes the
    connection when its very first line is garbage (or after several in a row) instead of
    talking IMAP to a web browser or a TLS handshake.
    """

    def __init__(self, message: str, tag: str | None = None, *, garbage: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.tag = tag
        self.garbage = garbage


@dataclass(frozen=True)
class LiteralRef:
    """A literal the session received out of band (an APPEND message, see parse.py).

    `index` counts the out-of-band literals of the command from 0, in wire order; `size` is
    the octet count from the header; `binary` is true for literal8 (`~{N}`, RFC 3516).
    """

    index: int
    size: int
    binary: bool = False


@dataclass(frozen=True)
class NeedLiteral:
    """The command is suspended at a literal header that ends the buffer.

    size: octets announced. synchronizing: `{N}` (send "+ Ready" first) rather than `{N+}`
    (LITERAL+, RFC 7888). binary: literal8 `~{N}`. is_append_message: the APPEND message
    data, to be received into a sink and not appended to the buffer. too_big: above the
    applicable limit (max_literal for messages; for other literals also the per-command
    in-buffer budget); refuse it without a continuation. tag: the command's tag, for the
    refusal. verb: the command's name as a tagged reply gives it ("LOGIN", "UID SEARCH"),
    for a refusal that depends on the command (a LOGIN before TLS); None when unknown.
    """

    size: int
    synchronizing: bool
    binary: bool
    is_append_message: bool
    too_big: bool
    tag: str | None
    verb: str | None = None


class LiteralPending(Exception):
    """Internal: raised by Reader at a literal header that ends the buffer."""

    def __init__(self, need: NeedLiteral) -> None:
        super().__init__("literal pending")
        self.need = need


class Reader:
    """Cursor over one command's bytes; every method reads one grammar element."""

    def __init__(
        self,
        buf: bytes,
        *,
        utf8: bool = False,
        max_literal: int = MAX_NUMBER,
        max_inline_literal: int = MAX_INLINE_LITERAL,
    ) -> None:
        self.buf = buf
        self.pos = 0
        self.utf8 = utf8  # UTF8=ACCEPT or IMAP4rev2 enabled: UTF-8 in quoted strings and names
        self.max_literal = max_literal
        self.max_inline_literal = max_inline_literal
        self.tag: str | None = None  # set once read, so every later error carries it
        self.verb: str | None = None  # the command's name, set once read (for NeedLiteral)
        self.depth = 0  # open parentheses
        self.literal_count = 0
        self.inline_bytes = 0  # literal octets taken from buf so far
        self.message_count = 0  # out-of-band (APPEND message) literals so far

    # -- cursor -------------------------------------------------------------------------

    def error(self, message: str) -> ParseError:
        return ParseError(message, self.tag)

    def peek(self) -> int:
        """The next octet, or -1 at the end of the buffer."""
        return self.buf[self.pos] if self.pos < len(self.buf) else -1

    def peek_is(self, prefix: bytes) -> bool:
        return self.buf.startswith(prefix, self.pos)

    def match(self, pattern: re.Pattern[bytes]) -> re.Match[bytes] | None:
        """Match `pattern` at the cursor and step over it; None (cursor unmoved) otherwise."""
        found = pattern.match(self.buf, self.pos)
        if found is not None:
            self.pos = found.end()
        return found

    def take(self, prefix: bytes) -> bool:
        if self.buf.startswith(prefix, self.pos):
            self.pos += len(prefix)
            return True
        return False

    def expect(self, prefix: bytes, what: str) -> None:
        if not self.take(prefix):
            raise self.error(f"expected {what}")

    def sp(self) -> None:
        self.expect(b" ", "SP")

    def take_sp(self) -> bool:
        return self.take(b" ")

    def at_eol(self) -> bool:
        return self.peek_is(b"\r\n") or self.peek_is(b"\n")

    def finish(self) -> None:
        """The command must end here: a line end that is also the end of the buffer."""
        end = _EOL.match(self.buf, self.pos)
        if end is None:
            if self.pos >= len(self.buf):
                raise self.error("command line not terminated")
            raise self.error("unexpected characters at end of command")
        if end.end() != len(self.buf):
            raise self.error("unexpected data after end of command")

    # -- atoms and numbers --------------------------------------------------------------

    def atom(self, what: str = "atom") -> str:
        found = self.match(_ATOM)
        if found is None:
            raise self.error(f"expected {what}")
        return found.group().decode("ascii")

    def keyword(self, what: str = "keyword") -> str:
        """An atom, upper-cased: command words, option names, search keys."""
        return self.atom(what).upper()

    def peek_keyword(self) -> str | None:
        """The upper-cased atom at the cursor without consuming it."""
        found = _ATOM.match(self.buf, self.pos)
        return found.group().decode("ascii").upper() if found else None

    def _digits(self, what: str, maximum: int) -> int:
        found = self.match(_DIGITS)
        if found is None:
            raise self.error(f"expected {what}")
        digits = found.group()
        if len(digits) > 20 or int(digits) > maximum:
            raise self.error(f"{what} out of range")
        return int(digits)

    def number(self, what: str = "number") -> int:
        return self._digits(what, MAX_NUMBER)

    def nz_number(self, what: str = "non-zero number") -> int:
        value = self._digits(what, MAX_NUMBER)
        if value == 0:
            raise self.error(f"{what} must not be zero")
        return value

    def number64(self, what: str = "number") -> int:
        return self._digits(what, MAX_NUMBER64)

    # -- strings ------------------------------------------------------------------------

    def quoted(self, *, eight_bit: bool = False) -> bytes:
        """RFC 9051 §4.3: only \\\\ and \\" are escapes; CR, LF and NUL never appear.

        eight_bit: 8-bit octets are returned as they are, for the caller to decode in the
        charset the client named; otherwise they need UTF8=ACCEPT and must be UTF-8.
        """
        self.expect(b'"', "quoted string")
        out = bytearray()
        while True:
            run = _QUOTED_RUN.match(self.buf, self.pos)
            assert run is not None  # the pattern matches the empty string
            out += run.group()
            self.pos = run.end()
            c = self.peek()
            if c == 0x22:  # closing "
                self.pos += 1
                break
            if c == 0x5C:  # backslash
                escaped = self.buf[self.pos + 1 : self.pos + 2]
                if escaped not in (b'"', b"\\"):
                    raise self.error("invalid escape in quoted string")
                out += escaped
                self.pos += 2
                continue
            raise self.error("unterminated quoted string")
        data = bytes(out)
        if not (eight_bit or data.isascii()):
            if not self.utf8:
                raise self.error("8-bit characters in a quoted string need UTF8=ACCEPT")
            try:
                data.decode("utf-8")
            except UnicodeDecodeError:
                raise self.error("quoted string is not valid UTF-8") from None
        return data

    def _literal_header(self) -> tuple[int, bool, bool]:
        found = self.match(_LITERAL)
        if found is None:
            raise self.error("malformed literal")
        self.literal_count += 1
        if self.literal_count > MAX_LITERALS:
            raise self.error("too many literals in one command")
        binary = found.group(1) == b"~"
        digits = found.group(2)
        if len(digits) > 20 or int(digits) > (MAX_NUMBER64 if binary else MAX_NUMBER):
            raise self.error("literal size out of range")
        return int(digits), not found.group(3), binary

    def literal(self) -> bytes:
        """A literal whose data the session appended to the buffer (anything but APPEND data)."""
        if self.peek_is(b"~"):
            raise self.error("literal8 is only allowed for APPEND message data")
        size, synchronizing, _ = self._literal_header()
        budget = min(self.max_literal, self.max_inline_literal - self.inline_bytes)
        too_big = size > budget
        if self.pos == len(self.buf):
            raise LiteralPending(NeedLiteral(size, synchronizing, False, False, too_big, self.tag, self.verb))
        if too_big:
            raise self.error("literal too big")
        end = self.pos + size
        if end > len(self.buf):
            raise self.error("literal data incomplete")
        data = self.buf[self.pos : end]
        if b"\x00" in data:
            raise self.error("NUL in literal")  # RFC 9051 §4.3: CHAR8 excludes NUL
        self.pos = end
        self.inline_bytes += size
        return data

    def message_literal(self) -> LiteralRef:
        """APPEND message data: `{N}`, `{N+}` or literal8 `~{N}`; its octets are out of band."""
        size, synchronizing, binary = self._literal_header()
        too_big = size > self.max_literal
        if self.pos == len(self.buf):
            raise LiteralPending(NeedLiteral(size, synchronizing, binary, True, too_big, self.tag, self.verb))
        if too_big:
            raise self.error("literal too big")
        ref = LiteralRef(self.message_count, size, binary)
        self.message_count += 1
        return ref

    def string(self, *, eight_bit: bool = False) -> bytes:
        """A quoted string or a literal; eight_bit as for quoted (a literal may always hold 8-bit)."""
        if self.peek() == 0x22:
            return self.quoted(eight_bit=eight_bit)
        if self.peek_is(b"{") or self.peek_is(b"~{"):
            return self.literal()
        raise self.error("expected string")

    def astring(self, what: str = "string", *, eight_bit: bool = False) -> bytes:
        if self.peek() == 0x22 or self.peek_is(b"{") or self.peek_is(b"~{"):
            return self.string(eight_bit=eight_bit)
        found = self.match(_ASTRING_ATOM)
        if found is None:
            raise self.error(f"expected {what}")
        return found.group()

    def nstring(self) -> bytes | None:
        if self.peek_keyword() == "NIL":
            self.atom()
            return None
        return self.string()

    def text(self, raw: bytes, what: str = "string") -> str:
        """Decode a string argument as UTF-8 (a superset of the US-ASCII IMAP4rev1 requires)."""
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise self.error(f"{what} is not valid UTF-8") from None

    # -- lists ----------------------------------------------------------------------------

    def open_paren(self) -> None:
        self.expect(b"(", "(")
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise self.error("parenthesised lists nested too deeply")

    def close_paren(self) -> None:
        self.expect(b")", ")")
        self.depth -= 1

    def paren_list(self, item: Callable[[], T], *, allow_empty: bool = False) -> list[T]:
        """`"(" item *(SP item) ")"`, or `"()"` when allow_empty."""
        self.open_paren()
        items: list[T] = []
        if self.peek() == 0x29:
            if not allow_empty:
                raise self.error("empty list")
        else:
            items.append(item())
            while self.take_sp():
                items.append(item())
        self.close_paren()
        return items

    # -- dates ----------------------------------------------------------------------------

    def date(self) -> date:
        """RFC 9051 §9 date: `1-Feb-1994`, optionally in double quotes."""
        quoted = self.take(b'"')
        found = self.match(_DATE)
        if found is None:
            raise self.error("expected date (d-Mon-yyyy)")
        if quoted:
            self.expect(b'"', "closing quote of date")
        month = _MONTH_NUMBER.get(found.group(2).decode("ascii").upper())
        try:
            if month is None:
                raise ValueError("month")
            return date(int(found.group(3)), month, int(found.group(1)))
        except ValueError:
            raise self.error("invalid date") from None

    def date_time(self) -> datetime:
        """RFC 9051 §9 date-time: `"17-Jul-1996 02:44:25 -0700"`, returned timezone-aware."""
        found = self.match(_DATE_TIME)
        if found is None:
            raise self.error('expected date-time ("dd-Mon-yyyy hh:mm:ss +zzzz")')
        day, mon, year, hour, minute, second, sign, zone_h, zone_m = (
            g.decode("ascii") for g in found.groups()
        )
        month = _MONTH_NUMBER.get(mon.upper())
        try:
            if month is None or int(zone_m) > 59:
                raise ValueError("month or zone")
            offset = timedelta(hours=int(zone_h), minutes=int(zone_m))
            zone = timezone(-offset if sign == "-" else offset)
            return datetime(int(year), month, int(day), int(hour), int(minute), int(second), tzinfo=zone)
        except (ValueError, OverflowError):
            raise self.error("invalid date-time") from None

    # -- flags and mailbox names ---------------------------------------------------------

    def flag(self) -> str:
        """A flag: system flags get their canonical spelling, keywords stay as sent."""
        if self.take(b"\\"):
            name = self.atom("flag")
            return _SYSTEM_FLAG_BY_UPPER.get("\\" + name.upper(), "\\" + name)
        return self.atom("flag")

    def flag_list(self) -> tuple[str, ...]:
        """RFC 9051 §9 flag-list `"(" [flag *(SP flag)] ")"`, duplicates dropped."""
        return tuple(dict.fromkeys(self.paren_list(self.flag, allow_empty=True)))

    def mailbox(self) -> str:
        """RFC 9051 §9 mailbox, decoded (see decode_mailbox) with INBOX normalised."""
        name = self.mailbox_text(self.astring("mailbox name"))
        return name if isinstance(name, UndecodableName) else normalise_inbox(name)

    def list_mailbox(self) -> str:
        """RFC 9051 §9 list-mailbox: a LIST/LSUB pattern, wildcards allowed unquoted."""
        if self.peek() == 0x22 or self.peek_is(b"{") or self.peek_is(b"~{"):
            return self.mailbox_text(self.string())
        found = self.match(_LIST_ATOM)
        if found is None:
            raise self.error("expected mailbox pattern")
        return self.mailbox_text(found.group())

    def mailbox_text(self, raw: bytes) -> str:
        """A mailbox name or pattern as text; an UndecodableName for printable US-ASCII that
        is not modified UTF-7, BAD for anything else that cannot be decoded."""
        try:
            return decode_mailbox(raw, utf8=self.utf8)
        except ValueError as exc:
            if not self.utf8 and _PRINTABLE_ASCII.fullmatch(raw):
                return UndecodableName(raw.decode("ascii"))
            raise self.error(str(exc)) from None


# -- mailbox names ----------------------------------------------------------------------

_PRINTABLE_ASCII = re.compile(rb"[\x20-\x7e]*")


class UndecodableName(str):
    """A mailbox name as the client sent it (printable US-ASCII) that is not valid modified
    UTF-7 (RFC 3501 §5.1.3): a name, not a syntax error.

    It is taken literally: commands look it up as this text (there is normally no such
    mailbox, so NO [NONEXISTENT]) and as a LIST pattern it matches that text. The server
    SHOULD NOT create such a name (RFC 3501 §5.1.3), so CREATE, the new name of RENAME and
    SUBSCRIBE refuse it (NO [CANNOT]). The text is safe to quote in a reply.
    """

    __slots__ = ()


def normalise_inbox(name: str) -> str:
    """INBOX is case-insensitive (RFC 9051 §5.1), also as the first level of a hierarchy."""
    head, sep, rest = name.partition(HIERARCHY_DELIMITER)
    if head.upper() == "INBOX":
        return "INBOX" + sep + rest
    return name


def decode_mailbox(raw: bytes, *, utf8: bool) -> str:
    """Wire mailbox name to text: UTF-8 once UTF8=ACCEPT/IMAP4rev2 is on, else modified UTF-7.

    Raises ValueError (with a message fit for the client) for undecodable names and for
    names containing control characters (RFC 5198 Net-Unicode, RFC 6855 §3).
    """
    if utf8:
        try:
            name = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError("mailbox name is not valid UTF-8") from None
    else:
        try:
            name = mutf7_decode(raw)
        except ValueError:
            raise ValueError("mailbox name is not valid modified UTF-7") from None
    if any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in name):
        raise ValueError("control character in mailbox name")
    return name


# -- serialisation (server responses) --------------------------------------------------


def _quotable(data: bytes, utf8: bool) -> bool:
    if b"\r" in data or b"\n" in data or b"\x00" in data:
        return False
    if data.isascii():
        return True
    if not utf8:
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def quote_string(value: str | bytes, *, utf8: bool = False) -> bytes:
    """A string for a response: quoted when it can be, else a literal `{N}\\r\\n<data>`.

    Quoted needs no CR, LF or NUL and, unless `utf8` (the client enabled UTF8=ACCEPT or
    IMAP4rev2), 7-bit only. NUL data belongs in a literal8 (BINARY), which is the caller's
    business.
    """
    data = value.encode("utf-8") if isinstance(value, str) else value
    if _quotable(data, utf8):
        return b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    return b"{%d}\r\n" % len(data) + data


def format_astring(value: str, *, utf8: bool = False) -> bytes:
    """An astring for a response: a bare atom when every character allows it, else quoted."""
    data = value.encode("utf-8")
    if data and _ASTRING_ATOM.fullmatch(data) and data.upper() != b"NIL":
        return data
    return quote_string(data, utf8=utf8)


def format_mailbox(name: str, *, utf8: bool = False) -> bytes:
    """A mailbox name for a response (LIST, STATUS...): modified UTF-7 unless `utf8`, quoted."""
    return quote_string(name.encode("utf-8") if utf8 else mutf7_encode(name), utf8=utf8)


def format_flags(flags: Iterable[str]) -> str:
    """`(\\Seen $Label1)`: a flag-list for FLAGS responses and PERMANENTFLAGS."""
    return "(" + " ".join(flags) + ")"


def imap_datetime(dt: datetime) -> str:
    """`"17-Jul-1996 02:44:25 -0700"`, double quotes included (RFC 9051 §9 date-time).

    A naive datetime is taken as UTC. Day numbers are zero-padded (2DIGIT form).
    """
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    offset = dt.utcoffset() or timedelta(0)
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    hours, mins = divmod(abs(minutes), 60)
    return (
        f'"{dt.day:02d}-{MONTHS[dt.month - 1]}-{dt.year:04d} '
        f'{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d} {sign}{hours:02d}{mins:02d}"'
    )
