"""Typed IMAP commands: what `parse_command` returns inside `Parsed` (RFC 9051 §6).

Invariants:
- One frozen dataclass per command; the parser only shapes. The dispatcher checks the
  connection state and enabled extensions (CONDSTORE, QRESYNC, UTF8=ACCEPT) once, so a
  command object says nothing about whether it is allowed now.
- The UID forms of FETCH, STORE, SEARCH, COPY and MOVE are the same classes with uid=True;
  UID EXPUNGE is Expunge with `uids` set. `verb` is the name a tagged reply uses
  ("UID FETCH completed", "EXAMINE completed").
- Mailbox names are text: modified UTF-7 (or UTF-8 once enabled) already decoded, INBOX
  already normalised. Flags have their canonical system-flag spelling.
- Credentials (Login.password, Authenticate.initial_response) are left out of repr(), so a
  logged command never shows them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar

from relate.imapd.fetchatt import FetchAtt
from relate.imapd.grammar import LiteralRef
from relate.imapd.searchkeys import SEARCH_CHARSETS, SearchKey
from relate.imapd.seqset import SequenceSet

# RFC 9051 §6.3.11 STATUS items, plus RFC 7162 §3.1.9 HIGHESTMODSEQ and RFC 7889 APPENDLIMIT.
STATUS_ITEMS = (
    "MESSAGES",
    "UIDNEXT",
    "UIDVALIDITY",
    "UNSEEN",
    "DELETED",
    "SIZE",
    "RECENT",
    "HIGHESTMODSEQ",
    "APPENDLIMIT",
)
# RFC 5258 §3.1 selection options (+ RFC 6154 §5.1 SPECIAL-USE); RECURSIVEMATCH needs a base one.
LIST_SELECT_OPTIONS = ("SUBSCRIBED", "REMOTE", "RECURSIVEMATCH", "SPECIAL-USE")
# RFC 5258 §3.2 return options (+ RFC 5819 STATUS, RFC 6154 SPECIAL-USE).
LIST_RETURN_OPTIONS = ("SUBSCRIBED", "CHILDREN", "SPECIAL-USE", "STATUS")
# RFC 4731 §3.1 ESEARCH return options, RFC 5182 §2.1 SAVE.
SEARCH_RETURN_OPTIONS = ("MIN", "MAX", "ALL", "COUNT", "SAVE")
# RFC 6154 §2 special-use attributes, canonical spelling.
SPECIAL_USE = ("\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk", "\\Sent", "\\Trash")


@dataclass(frozen=True)
class Command:
    """Base of every command."""

    NAME: ClassVar[str] = ""

    @property
    def verb(self) -> str:
        return self.NAME


# -- any state ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Capability(Command):
    NAME = "CAPABILITY"


@dataclass(frozen=True)
class Noop(Command):
    NAME = "NOOP"


@dataclass(frozen=True)
class Logout(Command):
    NAME = "LOGOUT"


@dataclass(frozen=True)
class Id(Command):
    """RFC 2971: the client's identification, None for `ID NIL`. Field names as sent."""

    NAME = "ID"
    params: tuple[tuple[str, str | None], ...] | None


# -- not authenticated -------------------------------------------------------------------


@dataclass(frozen=True)
class StartTls(Command):
    NAME = "STARTTLS"


@dataclass(frozen=True)
class Authenticate(Command):
    """mechanism upper-cased; initial_response the SASL-IR (RFC 4959) base64 text as sent,
    "=" for an explicitly empty one, None when absent: what relate.protocol.sasl.authenticate
    takes. Later client lines (base64 or "*" to cancel) are read by the session, not parsed here."""

    NAME = "AUTHENTICATE"
    mechanism: str
    initial_response: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Login(Command):
    NAME = "LOGIN"
    username: str
    password: str = field(repr=False)


# -- authenticated -----------------------------------------------------------------------


@dataclass(frozen=True)
class Enable(Command):
    """RFC 5161: capability names, upper-cased, in the order sent."""

    NAME = "ENABLE"
    capabilities: tuple[str, ...]


@dataclass(frozen=True)
class QResync:
    """RFC 7162 §3.2.5 QRESYNC select parameter.

    known_uids: the UIDs the client knows (no `*`); seq_match: (known sequence numbers,
    their UIDs), the client's hint for finding where its cache diverges.
    """

    uidvalidity: int
    modseq: int
    known_uids: SequenceSet | None = None
    seq_match: tuple[SequenceSet, SequenceSet] | None = None


@dataclass(frozen=True)
class Select(Command):
    """SELECT, or EXAMINE when readonly. condstore: the (CONDSTORE) parameter (RFC 7162
    §3.1.8); qresync: the (QRESYNC (...)) parameter."""

    mailbox: str
    readonly: bool = False
    condstore: bool = False
    qresync: QResync | None = None

    @property
    def verb(self) -> str:
        return "EXAMINE" if self.readonly else "SELECT"


@dataclass(frozen=True)
class Create(Command):
    """special_use: the RFC 6154 §3 `(USE (\\Sent ...))` attributes, canonical where known."""

    NAME = "CREATE"
    mailbox: str
    special_use: tuple[str, ...] = ()


@dataclass(frozen=True)
class Delete(Command):
    NAME = "DELETE"
    mailbox: str


@dataclass(frozen=True)
class Rename(Command):
    NAME = "RENAME"
    mailbox: str
    new_name: str


@dataclass(frozen=True)
class Subscribe(Command):
    NAME = "SUBSCRIBE"
    mailbox: str


@dataclass(frozen=True)
class Unsubscribe(Command):
    NAME = "UNSUBSCRIBE"
    mailbox: str


@dataclass(frozen=True)
class List(Command):
    """LIST, with the LIST-EXTENDED forms (RFC 5258).

    reference and patterns are decoded but not INBOX-normalised (patterns match INBOX
    case-insensitively, the session's job). select_options ⊆ LIST_SELECT_OPTIONS,
    return_options ⊆ LIST_RETURN_OPTIONS; status_items are the STATUS (...) return option's
    items (RFC 5819). extended: any LIST-EXTENDED syntax was used (selection options, a
    parenthesised pattern list or RETURN), which changes a few response details (RFC 5258 §3).
    """

    NAME = "LIST"
    reference: str
    patterns: tuple[str, ...]
    select_options: frozenset[str] = frozenset()
    return_options: frozenset[str] = frozenset()
    status_items: tuple[str, ...] = ()
    extended: bool = False


@dataclass(frozen=True)
class Lsub(Command):
    NAME = "LSUB"
    reference: str
    pattern: str


@dataclass(frozen=True)
class Namespace(Command):
    NAME = "NAMESPACE"


@dataclass(frozen=True)
class Status(Command):
    """items ⊆ STATUS_ITEMS, upper-cased, duplicates dropped, in the order asked."""

    NAME = "STATUS"
    mailbox: str
    items: tuple[str, ...]


@dataclass(frozen=True)
class Append(Command):
    """APPEND; the message is a LiteralRef to the sink the session filled (see parse.py).

    message.binary: sent as literal8 `~{N}` (RFC 3516 BINARY / RFC 6855 UTF8 form);
    utf8: the RFC 6855 §4 `UTF8 (~{N})` form, whose message may carry UTF-8 headers.
    date_time: the internal date requested, timezone-aware, or None for "now".
    """

    NAME = "APPEND"
    mailbox: str
    message: LiteralRef
    flags: tuple[str, ...] = ()
    date_time: datetime | None = None
    utf8: bool = False


@dataclass(frozen=True)
class Idle(Command):
    """RFC 2177; the session then reads lines until parse.is_idle_done()."""

    NAME = "IDLE"


# -- selected ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Check(Command):
    NAME = "CHECK"


@dataclass(frozen=True)
class Close(Command):
    NAME = "CLOSE"


@dataclass(frozen=True)
class Unselect(Command):
    NAME = "UNSELECT"


@dataclass(frozen=True)
class Expunge(Command):
    """EXPUNGE, or UID EXPUNGE (RFC 4315 §2.1) when `uids` is set."""

    uids: SequenceSet | None = None

    @property
    def verb(self) -> str:
        return "EXPUNGE" if self.uids is None else "UID EXPUNGE"


@dataclass(frozen=True)
class Search(Command):
    """SEARCH / UID SEARCH.

    key: the criteria (several top-level keys are one And). charset: upper-cased CHARSET
    argument or None. return_options: None without RETURN (a plain `* SEARCH` reply under
    IMAP4rev1), else the ESEARCH options (RFC 4731), `RETURN ()` meaning {"ALL"}.
    """

    NAME = "SEARCH"
    key: SearchKey
    charset: str | None = None
    return_options: frozenset[str] | None = None
    uid: bool = False

    @property
    def verb(self) -> str:
        return "UID SEARCH" if self.uid else "SEARCH"

    @property
    def charset_supported(self) -> bool:
        """False means: answer NO [BADCHARSET (SEARCH_CHARSETS...)] (RFC 9051 §6.4.4)."""
        return self.charset is None or self.charset in SEARCH_CHARSETS


@dataclass(frozen=True)
class Fetch(Command):
    """FETCH / UID FETCH; changed_since and vanished are the RFC 7162 §3.1.4 / §3.2.6
    modifiers (VANISHED only with UID FETCH and CHANGEDSINCE, checked by the parser)."""

    NAME = "FETCH"
    seqset: SequenceSet
    attributes: tuple[FetchAtt, ...]
    changed_since: int | None = None
    vanished: bool = False
    uid: bool = False

    @property
    def verb(self) -> str:
        return "UID FETCH" if self.uid else "FETCH"


class StoreMode(enum.Enum):
    """FLAGS replaces, +FLAGS adds, -FLAGS removes; the value is the wire prefix."""

    REPLACE = ""
    ADD = "+"
    REMOVE = "-"


@dataclass(frozen=True)
class Store(Command):
    """STORE / UID STORE; unchanged_since is the RFC 7162 §3.1.3 UNCHANGEDSINCE modifier."""

    NAME = "STORE"
    seqset: SequenceSet
    mode: StoreMode
    flags: tuple[str, ...]
    silent: bool = False
    unchanged_since: int | None = None
    uid: bool = False

    @property
    def verb(self) -> str:
        return "UID STORE" if self.uid else "STORE"


@dataclass(frozen=True)
class Copy(Command):
    NAME = "COPY"
    seqset: SequenceSet
    mailbox: str
    uid: bool = False

    @property
    def verb(self) -> str:
        return "UID COPY" if self.uid else "COPY"


@dataclass(frozen=True)
class Move(Command):
    """RFC 6851 MOVE / UID MOVE."""

    NAME = "MOVE"
    seqset: SequenceSet
    mailbox: str
    uid: bool = False

    @property
    def verb(self) -> str:
        return "UID MOVE" if self.uid else "MOVE"
