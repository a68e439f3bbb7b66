"""SEARCH criteria as a typed tree (RFC 9051 §6.4.4, RFC 3501 §6.4.4, RFC 7162 §3.1.5).

Nodes: And, Or, Not over the leaves AllKey, FlagKey, DateKey, SizeKey, TextKey,
HeaderKey, SeqKey, UidKey, ModSeqKey. The parser shapes only; what "FROM" matches is the
search module's business.

Invariants:
- Keys with the same meaning get the same leaf: SEEN is FlagKey("\\Seen", True), UNSEEN
  FlagKey("\\Seen", False), KEYWORD $X FlagKey("$X", True); NEW is And(RECENT, UNSEEN) and
  OLD is NOT RECENT (RFC 3501 §6.4.4), so the session never sees NEW or OLD.
- String arguments are decoded with the CHARSET the client named, quoted ones with 8-bit
  octets included (see _Decoder). A charset outside SEARCH_CHARSETS is not a syntax error
  but a NO [BADCHARSET] (RFC 9051 §6.4.4): the parser still returns the command, with
  charset_supported false and strings decoded leniently.
- The tree is at most MAX_SEARCH_DEPTH deep (parentheses, NOT and OR all count), so
  neither the parser nor the evaluator can be driven into deep recursion.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from datetime import date

from relate.imapd.grammar import Reader
from relate.imapd.seqset import SequenceSet, read_seqset

MAX_SEARCH_DEPTH = 64

# Charsets SEARCH accepts; RFC 9051 §6.4.4 requires US-ASCII and UTF-8. Listed in BADCHARSET.
SEARCH_CHARSETS = (
    "UTF-8",
    "US-ASCII",
    "ISO-8859-1",
    "ISO-8859-2",
    "ISO-8859-15",
    "WINDOWS-1252",
)


class SearchKey:
    """Base of the search tree."""

    __slots__ = ()


@dataclass(frozen=True)
class And(SearchKey):
    keys: tuple[SearchKey, ...]


@dataclass(frozen=True)
class Or(SearchKey):
    left: SearchKey
    right: SearchKey


@dataclass(frozen=True)
class Not(SearchKey):
    key: SearchKey


@dataclass(frozen=True)
class AllKey(SearchKey):
    pass


@dataclass(frozen=True)
class FlagKey(SearchKey):
    """The message has (present) or lacks (not present) a system flag or keyword."""

    flag: str
    present: bool = True


@dataclass(frozen=True)
class DateKey(SearchKey):
    """field: "internal" (BEFORE/ON/SINCE) or "sent" (SENTBEFORE/...); op: before/on/since.

    Dates compare without time and timezone (RFC 9051 §6.4.4).
    """

    field: str
    op: str
    date: date


@dataclass(frozen=True)
class SizeKey(SearchKey):
    """LARGER n (larger=True) or SMALLER n, on RFC822.SIZE."""

    larger: bool
    size: int


@dataclass(frozen=True)
class TextKey(SearchKey):
    """field: BCC, BODY, CC, FROM, SUBJECT, TEXT or TO; case-insensitive substring match."""

    field: str
    value: str


@dataclass(frozen=True)
class HeaderKey(SearchKey):
    """HEADER name value; an empty value matches every message having that header."""

    name: str
    value: str


@dataclass(frozen=True)
class SeqKey(SearchKey):
    """A message-number sequence set (possibly `$`)."""

    seqset: SequenceSet


@dataclass(frozen=True)
class UidKey(SearchKey):
    """UID set (possibly `$`)."""

    seqset: SequenceSet


@dataclass(frozen=True)
class ModSeqKey(SearchKey):
    """MODSEQ [entry-name entry-type] n (RFC 7162 §3.1.5): mod-sequence >= n.

    flag is the flag named by the "/flags/<flag>" entry, entry_type "priv", "shared" or
    "all"; both None when the client gave no entry.
    """

    modseq: int
    flag: str | None = None
    entry_type: str | None = None


_FLAG_KEYS = {
    "ANSWERED": ("\\Answered", True),
    "DELETED": ("\\Deleted", True),
    "DRAFT": ("\\Draft", True),
    "FLAGGED": ("\\Flagged", True),
    "RECENT": ("\\Recent", True),
    "SEEN": ("\\Seen", True),
    "UNANSWERED": ("\\Answered", False),
    "UNDELETED": ("\\Deleted", False),
    "UNDRAFT": ("\\Draft", False),
    "UNFLAGGED": ("\\Flagged", False),
    "UNSEEN": ("\\Seen", False),
}
_TEXT_KEYS = ("BCC", "BODY", "CC", "FROM", "SUBJECT", "TEXT", "TO")
_DATE_KEYS = {
    "BEFORE": ("internal", "before"),
    "ON": ("internal", "on"),
    "SINCE": ("internal", "since"),
    "SENTBEFORE": ("sent", "before"),
    "SENTON": ("sent", "on"),
    "SENTSINCE": ("sent", "since"),
}
_ENTRY_TYPES = ("priv", "shared", "all")
_SEQ_START = frozenset(b"0123456789*$")
_HEADER_NAME = re.compile(r"[!-9;-~]+")  # RFC 5322 §3.6.8 ftext


class _Decoder:
    """Reads string arguments and decodes them with the SEARCH CHARSET.

    The CHARSET "indicates the charset of the strings that appear in the search criteria"
    (RFC 9051 §6.4.4), quoted strings as well as literals: under one, a quoted string may
    hold 8-bit octets in that charset (Python's `imaplib.search("UTF-8", ...)` sends them
    so). Octets the charset does not allow (any 8-bit one under US-ASCII) are BAD. Without
    a CHARSET the grammar's rule holds: 8-bit in a quoted string needs UTF8=ACCEPT.
    """

    def __init__(self, charset: str | None) -> None:
        self.codec = "utf-8"
        self.errors = "strict"
        self.name = charset or "UTF-8"  # for the client, as it spelled it (upper-cased)
        self.eight_bit = charset is not None
        if charset is not None:
            if charset in SEARCH_CHARSETS:
                self.codec = codecs.lookup(charset).name
            else:
                self.errors = "replace"  # the command is refused with BADCHARSET anyway

    def string(self, r: Reader, what: str = "string") -> str:
        raw = r.astring(what, eight_bit=self.eight_bit)
        try:
            return raw.decode(self.codec, self.errors)
        except UnicodeDecodeError:
            raise r.error(f"search string is not valid {self.name}") from None


def read_search_keys(r: Reader, charset: str | None) -> SearchKey:
    """`search-key *(SP search-key)` up to the end of the line; several keys AND together."""
    decode = _Decoder(charset)
    keys = [_key(r, decode, 1)]
    while r.take_sp():
        keys.append(_key(r, decode, 1))
    return keys[0] if len(keys) == 1 else And(tuple(keys))


def _key(r: Reader, decode: _Decoder, depth: int) -> SearchKey:
    if depth > MAX_SEARCH_DEPTH:
        raise r.error("search criteria nested too deeply")
    c = r.peek()
    if c == 0x28:
        keys = r.paren_list(lambda: _key(r, decode, depth + 1))
        return keys[0] if len(keys) == 1 else And(tuple(keys))
    if c in _SEQ_START:
        return SeqKey(read_seqset(r))
    name = r.keyword("search key")
    if name == "ALL":
        return AllKey()
    if name in _FLAG_KEYS:
        flag, present = _FLAG_KEYS[name]
        return FlagKey(flag, present)
    if name == "NEW":
        return And((FlagKey("\\Recent"), FlagKey("\\Seen", False)))
    if name == "OLD":
        return FlagKey("\\Recent", False)
    if name in ("KEYWORD", "UNKEYWORD"):
        r.sp()
        return FlagKey(r.atom("keyword"), name == "KEYWORD")
    if name in _TEXT_KEYS:
        r.sp()
        return TextKey(name, decode.string(r))
    if name == "HEADER":
        r.sp()
        field = decode.string(r, "header field name")
        if not _HEADER_NAME.fullmatch(field):
            raise r.error("invalid header field name")
        r.sp()
        return HeaderKey(field, decode.string(r))
    if name in _DATE_KEYS:
        r.sp()
        field, op = _DATE_KEYS[name]
        return DateKey(field, op, r.date())
    if name in ("LARGER", "SMALLER"):
        r.sp()
        return SizeKey(name == "LARGER", r.number64("size"))
    if name == "NOT":
        r.sp()
        return Not(_key(r, decode, depth + 1))
    if name == "OR":
        r.sp()
        left = _key(r, decode, depth + 1)
        r.sp()
        return Or(left, _key(r, decode, depth + 1))
    if name == "UID":
        r.sp()
        return UidKey(read_seqset(r))
    if name == "MODSEQ":
        return _modseq(r)
    raise r.error(f"unknown search key {name}")


def _modseq(r: Reader) -> ModSeqKey:
    """RFC 7162 §3.1.5: `MODSEQ [SP entry-name SP entry-type-req] SP mod-sequence-valzer`."""
    r.sp()
    flag = entry_type = None
    if r.peek() == 0x22:
        entry = r.text(r.quoted(), "entry name")
        if not entry.lower().startswith("/flags/"):
            raise r.error("MODSEQ entry name must be /flags/<flag>")
        flag_reader = Reader(entry[len("/flags/") :].encode("utf-8"))
        flag_reader.tag = r.tag
        flag = flag_reader.flag()
        if flag_reader.pos != len(flag_reader.buf):
            raise r.error("invalid flag in MODSEQ entry name")
        r.sp()
        entry_type = r.atom("entry type").lower()
        if entry_type not in _ENTRY_TYPES:
            raise r.error("MODSEQ entry type must be priv, shared or all")
        r.sp()
    return ModSeqKey(r.number64("mod-sequence"), flag, entry_type)
