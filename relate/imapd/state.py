"""Session states (RFC 9051 §3) and the extensions a client switched on (RFC 5161 ENABLE)."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class State(enum.Enum):
    NOT_AUTHENTICATED = "not authenticated"
    AUTHENTICATED = "authenticated"
    SELECTED = "selected"
    LOGOUT = "logout"


ANY = frozenset(State) - {State.LOGOUT}
NOT_AUTHENTICATED = frozenset({State.NOT_AUTHENTICATED})
AUTHENTICATED = frozenset({State.AUTHENTICATED, State.SELECTED})
SELECTED = frozenset({State.SELECTED})


@dataclass
class Enabled:
    """What the client enabled; each flag only ever goes from False to True in a session."""

    condstore: bool = False  # RFC 7162 §3.1: MODSEQ in FETCH responses, HIGHESTMODSEQ updates
    qresync: bool = False  # RFC 7162 §3.2: VANISHED instead of EXPUNGE; implies condstore
    utf8: bool = False  # RFC 6855 UTF8=ACCEPT, or IMAP4rev2: UTF-8 names and strings
    rev2: bool = False  # RFC 9051: no \Recent, ESEARCH replies to SEARCH, LIST in SELECT

    @property
    def recent(self) -> bool:
        """Whether this session shows \\Recent (IMAP4rev1 only; RFC 9051 removed it)."""
        return not self.rev2
