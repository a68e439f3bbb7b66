"""IMAP command parser: one command's bytes in, a typed command out (RFC 9051 §9, RFC 3501 §9).

Pure: no sockets, no database, no clock. The session owns the connection and the state
checks; this module only shapes bytes into the objects of `relate.imapd.commands`.

The buffer
----------
`parse_command(buf, ...)` takes everything received so far for ONE command, in wire order:

    line 1             ends with a literal header: "{N}", "{N+}" (LITERAL+) or "~{N}"
    literal 1 data     N octets -- left out for an APPEND message literal, see below
    line 2             the rest of the command line; may end with another literal header
    ...
    last line          no literal header at its end

Lines end with CRLF (a bare LF is tolerated). The line reader bounds each line's length;
this module bounds the rest: MAX_LITERALS literals, MAX_INLINE_LITERAL literal octets in the
buffer, MAX_NESTING parentheses, MAX_SEQSET_RANGES ranges, MAX_SEARCH_DEPTH search levels.
Each call re-parses from the start; those bounds keep that cheap.

The read loop (how the session uses it)
---------------------------------------
    buf, sinks = b"", []
    loop:
        buf += read_line()
        result = parse_command(buf, max_literal=APPENDLIMIT, utf8=enabled_utf8)
        Parsed       -> dispatch result.command (sinks[i] holds LiteralRef(i)'s octets)
        NeedLiteral  -> need = result
            need.too_big and need.synchronizing:
                send "<tag> NO [TOOBIG] ..." and no continuation; the client sends nothing
                more for this command (RFC 9051 §7.1, RFC 7888 §4). Start a new command.
            need.too_big and not need.synchronizing (LITERAL+):
                the client is already sending the octets. Relate Mail does not read and
                discard an upload it has refused: it sends "<tag> BAD [TOOBIG] ...", then
                "* BYE" and closes, which RFC 7888 §4 allows. Clients learn the limit from
                APPENDLIMIT (RFC 7889) and use synchronising literals for big messages.
            the command is refused whatever its arguments (a LOGIN before TLS, known from
            need.verb): send the tagged NO instead of "+" (RFC 9051 §4.3, §7.5); for a
            LITERAL+ first read and discard its octets and the lines after it, as after a
            BAD (below). Start a new command.
            need.synchronizing: send "+ Ready" (RFC 9051 §7.5).
            need.is_append_message:
                copy exactly need.size octets into a new sink (a SpooledTemporaryFile),
                sinks.append(sink), and do NOT add them to buf.
            else: buf += read_exactly(need.size)
            continue the loop: the next line is the rest of the command line.

Literal streaming: the parser knows from the grammar which literal is the APPEND message, so
the session never decides it and a message never sits in buf. When the parser meets that
literal's header again on the next call, it does not look for data after it; it yields
`LiteralRef(index, size, binary)`, index counting such literals in the command from 0, and
`Append.message` carries it. Only literals that are command arguments (a password, a
search string, a mailbox name) are ever in buf, and they share MAX_INLINE_LITERAL.

Errors
------
`ParseError(message, tag, garbage)` is the only exception: the session sends
"<tag> BAD <message>", or "* BAD <message>" when tag is None; when `garbage` is set on the
first line of a connection it then closes (see ParseError). After a BAD, a
non-synchronising literal announced at the end of the failing line is still on its way:
`trailing_literal(line, max_literal)` gives its size; the session discards that many octets
and the next line, repeating while that line ends with another one, and closes instead when
one is too_big. (A synchronising literal needs nothing: the client waits for a "+" that
never comes and reads the BAD.)
"""

from __future__ import annotations

import logging
import re
import traceback
from collections.abc import Callable
from dataclasses import dataclass

from relate.imapd.commands import (
    LIST_RETURN_OPTIONS,
    LIST_SELECT_OPTIONS,
    SEARCH_RETURN_OPTIONS,
    SPECIAL_USE,
    STATUS_ITEMS,
    Append,
    Authenticate,
    Capability,
    Check,
    Close,
    Command,
    Copy,
    Create,
    Delete,
    Enable,
    Expunge,
    Fetch,
    Id,
    Idle,
    List,
    Login,
    Logout,
    Lsub,
    Move,
    Namespace,
    Noop,
    QResync,
    Rename,
    Search,
    Select,
    StartTls,
    Status,
    Store,
    StoreMode,
    Subscribe,
    Unselect,
    Unsubscribe,
)
from relate.imapd.fetchatt import read_fetch_atts
from relate.imapd.grammar import (
    MAX_INLINE_LITERAL,
    LiteralPending,
    LiteralRef,
    NeedLiteral,
    ParseError,
    Reader,
)
from relate.imapd.searchkeys import read_search_keys
from relate.imapd.seqset import SequenceSet, read_seqset

__all__ = [
    "INTERNAL_ERROR",
    "LiteralRef",
    "NeedLiteral",
    "ParseError",
    "Parsed",
    "is_idle_done",
    "parse_command",
    "trailing_literal",
]

_log = logging.getLogger(__name__)

INTERNAL_ERROR = "command could not be parsed"  # the message when the parser itself failed
MAX_ID_PARAMS = 30  # RFC 2971 §3.3: at most 30 field-value pairs,
MAX_ID_FIELD = 30  # field names of at most 30 octets,
MAX_ID_VALUE = 1024  # values of at most 1024 octets.

# RFC 9051 §9 tag: 1*<any ASTRING-CHAR except "+">
_TAG = re.compile(rb"[\x21\x23\x24\x26\x27\x2c-\x5b\x5d-\x7a\x7c-\x7e]+")
_INITIAL_RESPONSE = re.compile(rb"[A-Za-z0-9+/]+={0,2}|=")  # RFC 4959 §7 initial-resp
_STORE_ATT = re.compile(rb"([+-]?)FLAGS(\.SILENT)?(?= )", re.IGNORECASE)
_TRAILING_LITERAL = re.compile(rb"(~?)\{([0-9]{1,20})(\+?)\}\r?\n\Z")


@dataclass(frozen=True)
class Parsed:
    """A complete command and its tag."""

    tag: str
    command: Command


def parse_command(
    buf: bytes,
    max_literal: int,
    utf8: bool = False,
    *,
    max_inline_literal: int = MAX_INLINE_LITERAL,
) -> Parsed | NeedLiteral:
    """Parse one command from `buf` (see the module docstring for the buffer and the loop).

    max_literal: the largest literal accepted (APPENDLIMIT for messages; other literals are
    also held to max_inline_literal octets in total per command). utf8: the client enabled
    UTF8=ACCEPT or IMAP4rev2, so quoted strings and mailbox names are UTF-8 (no modified
    UTF-7) and the APPEND UTF8 form is allowed. Raises ParseError and nothing else.
    """
    r = Reader(buf, utf8=utf8, max_literal=max_literal, max_inline_literal=max_inline_literal)
    try:
        command = _command(r)
        r.finish()
    except LiteralPending as pending:
        return pending.need
    except ParseError:
        raise
    except Exception as exc:  # a parser bug must still end as BAD, never a dead session
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        # Type and place only: the message could quote the command, which may hold a password.
        _log.error("IMAP parser bug: %s at %s:%s", type(exc).__name__, frame.filename, frame.lineno)
        raise ParseError(INTERNAL_ERROR, r.tag) from None
    assert r.tag is not None
    return Parsed(r.tag, command)


def trailing_literal(line: bytes, max_literal: int) -> NeedLiteral | None:
    """The literal announced at the end of `line`, read as framing only (no grammar).

    For the session after a BAD: a non-synchronising literal there is still arriving and
    must be discarded (or the connection closed when too_big). tag, verb and
    is_append_message are unknown (None, None, False).
    """
    found = _TRAILING_LITERAL.search(line)
    if found is None:
        return None
    size = int(found.group(2))
    binary = found.group(1) == b"~"
    return NeedLiteral(size, not found.group(3), binary, False, size > max_literal, None)


def is_idle_done(line: bytes) -> bool:
    """Whether a line read during IDLE is the client's `DONE` (RFC 2177 §3, case-insensitive)."""
    return line.rstrip(b"\r\n").upper() == b"DONE"


# -- the command line --------------------------------------------------------------------


def _command(r: Reader) -> Command:
    if r.at_eol():
        raise ParseError("empty command line")
    tag = r.match(_TAG)
    if tag is None:
        raise ParseError("invalid tag", garbage=True)
    r.tag = tag.group().decode("ascii")
    if not r.take_sp() or r.peek_keyword() is None:
        raise ParseError("missing command", r.tag, garbage=True)
    verb = r.keyword()
    if verb == "UID":
        r.sp()
        sub = r.keyword("UID command")
        uid_parser = _UID_COMMANDS.get(sub)
        if uid_parser is None:
            raise r.error("UID must be followed by COPY, FETCH, MOVE, SEARCH, STORE or EXPUNGE")
        r.verb = f"UID {sub}"
        return uid_parser(r)
    parser = _COMMANDS.get(verb)
    if parser is None:
        raise ParseError(f"unknown command {verb[:40]}", r.tag, garbage=True)
    r.verb = verb
    return parser(r)


def _no_arguments(factory: Callable[[], Command]) -> Callable[[Reader], Command]:
    def parse(r: Reader) -> Command:
        return factory()

    return parse


def _space_separated(r: Reader, item: Callable[[], str]) -> list[str]:
    """`item *(SP item)`."""
    items = [item()]
    while r.take_sp():
        items.append(item())
    return items


# -- any state and not authenticated -------------------------------------------------------


def _authenticate(r: Reader) -> Command:
    """RFC 9051 §6.2.2, with the SASL-IR initial response (RFC 4959 §3).

    The response stays base64 text: relate.protocol.sasl decodes it, as for SMTP and POP3.
    """
    r.sp()
    mechanism = r.keyword("SASL mechanism")
    initial = None
    if r.take_sp():
        found = r.match(_INITIAL_RESPONSE)
        if found is None:
            raise r.error("expected base64 initial response")
        initial = found.group().decode("ascii")
    return Authenticate(mechanism, initial)


def _login(r: Reader) -> Command:
    r.sp()
    username = r.text(r.astring("user name"), "user name")
    r.sp()
    password = r.text(r.astring("password"), "password")
    return Login(username, password)


def _id(r: Reader) -> Command:
    """RFC 2971 §4: `ID ( "(" *(string SP nstring) ")" / NIL )`."""
    r.sp()
    if r.peek_keyword() == "NIL":
        r.atom()
        return Id(None)
    params: list[tuple[str, str | None]] = []

    def pair() -> None:
        name = r.string()
        r.sp()
        value = r.nstring()
        if len(name) > MAX_ID_FIELD or (value is not None and len(value) > MAX_ID_VALUE):
            raise r.error("ID field or value too long")
        params.append((r.text(name), None if value is None else r.text(value)))

    r.paren_list(pair, allow_empty=True)
    if len(params) > MAX_ID_PARAMS:
        raise r.error("too many ID parameters")
    return Id(tuple(params))


def _enable(r: Reader) -> Command:
    """RFC 5161 §3.1: `ENABLE 1*(SP capability)`."""
    r.sp()
    return Enable(tuple(_space_separated(r, lambda: r.keyword("capability"))))


# -- authenticated -----------------------------------------------------------------------


def _select(r: Reader, readonly: bool) -> Command:
    """RFC 9051 §6.3.2, with select-params CONDSTORE (RFC 7162 §3.1.8) and QRESYNC (§3.2.5)."""
    r.sp()
    mailbox = r.mailbox()
    condstore = False
    qresync = None
    if r.take_sp():
        seen: set[str] = set()

        def param() -> None:
            nonlocal condstore, qresync
            name = r.keyword("select parameter")
            if name in seen:
                raise r.error(f"duplicate select parameter {name}")
            seen.add(name)
            if name == "CONDSTORE":
                condstore = True
            elif name == "QRESYNC":
                r.sp()
                qresync = _qresync(r)
            else:
                raise r.error(f"unknown select parameter {name[:40]}")

        r.paren_list(param)
    return Select(mailbox, readonly, condstore, qresync)


def _qresync(r: Reader) -> QResync:
    """`"(" uidvalidity SP mod-sequence-value [SP known-uids] [SP seq-match-data] ")"`."""
    r.open_paren()
    uidvalidity = r.nz_number("UIDVALIDITY")
    r.sp()
    modseq = r.number64("mod-sequence")
    known_uids = None
    seq_match = None
    if r.take_sp():
        if r.peek() != 0x28:
            known_uids = read_seqset(r, allow_star=False, allow_saved=False)
            if r.take_sp():
                seq_match = _seq_match(r)
        else:
            seq_match = _seq_match(r)
    r.close_paren()
    return QResync(uidvalidity, modseq, known_uids, seq_match)


def _seq_match(r: Reader) -> tuple[SequenceSet, SequenceSet]:
    r.open_paren()
    seqs = read_seqset(r, allow_star=False, allow_saved=False)
    r.sp()
    uids = read_seqset(r, allow_star=False, allow_saved=False)
    r.close_paren()
    return seqs, uids


_SPECIAL_USE_BY_UPPER = {name.upper(): name for name in SPECIAL_USE}


def _create(r: Reader) -> Command:
    """RFC 9051 §6.3.4, with `(USE (\\Sent ...))` from RFC 6154 §3."""
    r.sp()
    mailbox = r.mailbox()
    special_use: tuple[str, ...] = ()
    if r.take_sp():
        r.open_paren()
        if r.keyword("CREATE parameter") != "USE":
            raise r.error("unknown CREATE parameter")
        r.sp()
        special_use = tuple(dict.fromkeys(r.paren_list(lambda: _use_attr(r), allow_empty=True)))
        r.close_paren()
    return Create(mailbox, special_use)


def _use_attr(r: Reader) -> str:
    r.expect(b"\\", "special-use attribute")
    name = "\\" + r.atom("special-use attribute")
    return _SPECIAL_USE_BY_UPPER.get(name.upper(), name)


def _mailbox_command(factory: Callable[[str], Command]) -> Callable[[Reader], Command]:
    def parse(r: Reader) -> Command:
        r.sp()
        return factory(r.mailbox())

    return parse


def _rename(r: Reader) -> Command:
    r.sp()
    old = r.mailbox()
    r.sp()
    return Rename(old, r.mailbox())


def _list(r: Reader) -> Command:
    """RFC 9051 §6.3.9 with LIST-EXTENDED (RFC 5258 §3), LIST-STATUS (RFC 5819), SPECIAL-USE."""
    r.sp()
    extended = False
    select: set[str] = set()
    if r.peek() == 0x28:
        extended = True
        for option in r.paren_list(lambda: r.keyword("selection option"), allow_empty=True):
            if option not in LIST_SELECT_OPTIONS:
                raise r.error(f"unknown LIST selection option {option[:40]}")
            select.add(option)
        if "RECURSIVEMATCH" in select and not select & {"SUBSCRIBED", "SPECIAL-USE"}:
            raise r.error("RECURSIVEMATCH needs another selection option")  # RFC 5258 §3.1
        r.sp()
    reference = r.mailbox_text(r.astring("reference name"))
    r.sp()
    if r.peek() == 0x28:
        extended = True
        patterns = tuple(r.paren_list(r.list_mailbox))
    else:
        patterns = (r.list_mailbox(),)
    returns: set[str] = set()
    status_items: tuple[str, ...] = ()
    if r.take_sp():
        if r.keyword("RETURN") != "RETURN":
            raise r.error("expected RETURN")
        extended = True
        r.sp()

        def return_option() -> None:
            nonlocal status_items
            name = r.keyword("return option")
            if name not in LIST_RETURN_OPTIONS:
                raise r.error(f"unknown LIST return option {name[:40]}")
            if name == "STATUS":
                r.sp()
                status_items = _status_items(r)
            returns.add(name)

        r.paren_list(return_option, allow_empty=True)
    return List(reference, patterns, frozenset(select), frozenset(returns), status_items, extended)


def _lsub(r: Reader) -> Command:
    r.sp()
    reference = r.mailbox_text(r.astring("reference name"))
    r.sp()
    return Lsub(reference, r.list_mailbox())


def _status_items(r: Reader) -> tuple[str, ...]:
    items = r.paren_list(lambda: r.keyword("status item"))
    for item in items:
        if item not in STATUS_ITEMS:
            raise r.error(f"unknown status item {item[:40]}")
    return tuple(dict.fromkeys(items))


def _status(r: Reader) -> Command:
    r.sp()
    mailbox = r.mailbox()
    r.sp()
    return Status(mailbox, _status_items(r))


def _append(r: Reader) -> Command:
    """`APPEND mailbox [SP flag-list] [SP date-time] SP (literal / "UTF8" SP "(" literal8 ")")`.

    The UTF8 form is RFC 6855 §4, valid once UTF8=ACCEPT is enabled. One message per
    command (no MULTIAPPEND): a second one is a syntax error.
    """
    r.sp()
    mailbox = r.mailbox()
    r.sp()
    flags: tuple[str, ...] = ()
    date_time = None
    if r.peek() == 0x28:
        flags = r.flag_list()
        r.sp()
    if r.peek() == 0x22:
        date_time = r.date_time()
        r.sp()
    utf8 = r.peek_keyword() == "UTF8"
    if utf8:
        if not r.utf8:
            raise r.error("APPEND UTF8 needs UTF8=ACCEPT enabled")
        r.atom()
        r.sp()
        r.open_paren()
    if not (r.peek_is(b"{") or r.peek_is(b"~{")):
        raise r.error("expected message literal")
    message = r.message_literal()
    if utf8:
        r.close_paren()
    return Append(mailbox, message, flags, date_time, utf8)


# -- selected ----------------------------------------------------------------------------


def _uid_expunge(r: Reader) -> Command:
    r.sp()
    return Expunge(read_seqset(r))


def _search(r: Reader, uid: bool) -> Command:
    """`SEARCH [SP "RETURN" SP "(" opts ")"] [SP "CHARSET" SP astring] 1*(SP search-key)`."""
    r.sp()
    return_options = None
    if r.peek_keyword() == "RETURN":
        r.atom()
        r.sp()
        options = r.paren_list(lambda: r.keyword("search return option"), allow_empty=True)
        for option in options:
            if option not in SEARCH_RETURN_OPTIONS:
                raise r.error(f"unknown search return option {option[:40]}")
        return_options = frozenset(options) or frozenset({"ALL"})  # RFC 4731 §3.1
        r.sp()
    charset = None
    if r.peek_keyword() == "CHARSET":
        r.atom()
        r.sp()
        raw = r.astring("charset")
        if not raw.isascii() or len(raw) > 64:
            raise r.error("invalid charset name")
        charset = raw.decode("ascii").upper()
        r.sp()
    return Search(read_search_keys(r, charset), charset, return_options, uid)


def _fetch(r: Reader, uid: bool) -> Command:
    """RFC 9051 §6.4.5 with the CHANGEDSINCE and VANISHED modifiers (RFC 7162 §3.1.4, §3.2.6)."""
    r.sp()
    seqset = read_seqset(r)
    r.sp()
    attributes = read_fetch_atts(r)
    changed_since = None
    vanished = False
    if r.take_sp():
        seen: set[str] = set()

        def modifier() -> None:
            nonlocal changed_since, vanished
            name = r.keyword("FETCH modifier")
            if name in seen:
                raise r.error(f"duplicate FETCH modifier {name}")
            seen.add(name)
            if name == "CHANGEDSINCE":
                r.sp()
                changed_since = r.number64("mod-sequence")
            elif name == "VANISHED":
                vanished = True
            else:
                raise r.error(f"unknown FETCH modifier {name[:40]}")

        r.paren_list(modifier)
        if vanished and (not uid or changed_since is None):
            raise r.error("VANISHED needs UID FETCH and CHANGEDSINCE")  # RFC 7162 §3.2.6
    return Fetch(seqset, attributes, changed_since, vanished, uid)


def _store(r: Reader, uid: bool) -> Command:
    """RFC 9051 §6.4.6 with UNCHANGEDSINCE (RFC 7162 §3.1.3); flags with or without parens."""
    r.sp()
    seqset = read_seqset(r)
    r.sp()
    unchanged_since = None
    if r.peek() == 0x28:
        r.open_paren()
        if r.keyword("STORE modifier") != "UNCHANGEDSINCE":
            raise r.error("unknown STORE modifier")
        r.sp()
        unchanged_since = r.number64("mod-sequence")
        r.close_paren()
        r.sp()
    found = r.match(_STORE_ATT)
    if found is None:
        raise r.error("expected FLAGS, +FLAGS or -FLAGS")
    mode = StoreMode(found.group(1).decode("ascii"))
    r.sp()
    # RFC 9051 §9 store-att-flags: a flag-list, or flags without parentheses.
    flags = r.flag_list() if r.peek() == 0x28 else tuple(dict.fromkeys(_space_separated(r, r.flag)))
    return Store(seqset, mode, flags, bool(found.group(2)), unchanged_since, uid)


def _copy(r: Reader, uid: bool) -> Command:
    r.sp()
    seqset = read_seqset(r)
    r.sp()
    return Copy(seqset, r.mailbox(), uid)


def _move(r: Reader, uid: bool) -> Command:
    r.sp()
    seqset = read_seqset(r)
    r.sp()
    return Move(seqset, r.mailbox(), uid)


_COMMANDS: dict[str, Callable[[Reader], Command]] = {
    "CAPABILITY": _no_arguments(Capability),
    "NOOP": _no_arguments(Noop),
    "LOGOUT": _no_arguments(Logout),
    "ID": _id,
    "STARTTLS": _no_arguments(StartTls),
    "AUTHENTICATE": _authenticate,
    "LOGIN": _login,
    "ENABLE": _enable,
    "SELECT": lambda r: _select(r, readonly=False),
    "EXAMINE": lambda r: _select(r, readonly=True),
    "CREATE": _create,
    "DELETE": _mailbox_command(Delete),
    "RENAME": _rename,
    "SUBSCRIBE": _mailbox_command(Subscribe),
    "UNSUBSCRIBE": _mailbox_command(Unsubscribe),
    "LIST": _list,
    "LSUB": _lsub,
    "NAMESPACE": _no_arguments(Namespace),
    "STATUS": _status,
    "APPEND": _append,
    "IDLE": _no_arguments(Idle),
    "CHECK": _no_arguments(Check),
    "CLOSE": _no_arguments(Close),
    "UNSELECT": _no_arguments(Unselect),
    "EXPUNGE": _no_arguments(Expunge),
    "SEARCH": lambda r: _search(r, uid=False),
    "FETCH": lambda r: _fetch(r, uid=False),
    "STORE": lambda r: _store(r, uid=False),
    "COPY": lambda r: _copy(r, uid=False),
    "MOVE": lambda r: _move(r, uid=False),
}

_UID_COMMANDS: dict[str, Callable[[Reader], Command]] = {
    "COPY": lambda r: _copy(r, uid=True),
    "MOVE": lambda r: _move(r, uid=True),
    "FETCH": lambda r: _fetch(r, uid=True),
    "SEARCH": lambda r: _search(r, uid=True),
    "STORE": lambda r: _store(r, uid=True),
    "EXPUNGE": _uid_expunge,
}
