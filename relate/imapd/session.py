"""One IMAP connection: the read loop, the command table and the state checks (RFC 9051 §3, §5).

Invariants:
- Commands run one at a time in the connection's greenlet, in the order received; replies
  go out in that order. Every handler is in HANDLERS with the states it is valid in; the
  state is checked here once, so handlers never check it.
- Handlers raise No / Bad / Bye (relate.imapd.responses) and store errors; `_run_command`
  is the one place that turns them into tagged replies. Only a refusal that comes before
  the command is whole is answered while it is read (`_receive_literal`): a literal too big,
  or a LOGIN that may not send its password here, refused instead of the "+" that would
  ask for it.
- Responses (untagged and tagged) are buffered with `send` and written in one piece before
  the session could wait for the client: before reading a line that has not fully arrived
  yet, before every continuation request and before a literal is read. Commands the client
  pipelined therefore get their replies in one write per batch, never later than the
  moment the session would otherwise sit waiting for input. A tagged reply is queued only
  after the command's changes are committed, so buffering delays an acknowledgement but
  never sends one early.
- After every command in the selected state, changes made elsewhere are reported
  (`_report_changes`), except that EXPUNGE is held back after FETCH, STORE and SEARCH
  (RFC 9051 §7.5.1). IDLE reports them as they happen (relate.imapd.idle).
- Reads have deadlines: PREAUTH_TIMEOUT before login, AUTH_TIMEOUT after (RFC 9051 §5.4).
  A line is at most MAX_LINE octets; one command at most MAX_COMMAND octets of lines and
  inline literals; APPEND data streams to a spool file (relate.imapd.parse docstring).
- The first line of a connection must look like IMAP: anything else (a web browser, a TLS
  ClientHello on the plain port) is answered with BYE and the connection closed.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from typing import IO, Any

from relate import store
from relate.config import Settings
from relate.imapd import authcmds, generalcmds, idle, mailboxcmds, messagecmds, querycmds, selectcmds
from relate.imapd import commands as c
from relate.imapd.fetch import MessageCache
from relate.imapd.parse import NeedLiteral, Parsed, ParseError, parse_command, trailing_literal
from relate.imapd.responses import (
    ANSWERED,
    Bad,
    Bye,
    CommandError,
    Done,
    No,
    capabilities,
    store_error,
    tagged,
    untagged,
)
from relate.imapd.selected import MailboxGone, SelectedMailbox
from relate.imapd.state import ANY, AUTHENTICATED, NOT_AUTHENTICATED, SELECTED, Enabled, State
from relate.protocol.connection import Connection, LineTooLong, ProtocolIOError, ServerShutdown, Timeout
from relate.protocol.log import redact
from relate.store.types import AuthResult

MAX_LINE = 65_536  # octets per line; RFC 9051 §4 asks servers to take at least 8192
MAX_COMMAND = 1 << 20  # octets of lines and inline literals in one command
PREAUTH_TIMEOUT = 60.0  # seconds to log in: short, a slow client holds a connection slot
AUTH_TIMEOUT = 31 * 60.0  # RFC 9051 §5.4: the autologout timer is at least 30 minutes
LITERAL_TIMEOUT = 60.0  # per chunk of a literal: a sender must keep making progress
MAX_GARBAGE = 10  # unrecognisable lines in a row (after the first) before the connection is closed
SPOOL_IN_MEMORY = 1 << 20  # APPEND data above this goes to a temporary file
FLUSH_AT = 64 * 1024  # buffered response octets written before the command ends

Handler = Callable[["Session", Any], Done | None]

HANDLERS: dict[type[c.Command], tuple[Handler, frozenset[State]]] = {
    # any state (RFC 9051 §6.1, RFC 2971)
    c.Capability: (generalcmds.capability, ANY),
    c.Noop: (generalcmds.noop, ANY),
    c.Logout: (generalcmds.logout, ANY),
    c.Id: (generalcmds.id_command, ANY),
    # not authenticated (RFC 9051 §6.2)
    c.StartTls: (authcmds.starttls, NOT_AUTHENTICATED),
    c.Authenticate: (authcmds.authenticate, NOT_AUTHENTICATED),
    c.Login: (authcmds.login, NOT_AUTHENTICATED),
    # authenticated (RFC 9051 §6.3)
    c.Enable: (generalcmds.enable, AUTHENTICATED),
    c.Select: (selectcmds.select, AUTHENTICATED),
    c.Create: (mailboxcmds.create, AUTHENTICATED),
    c.Delete: (mailboxcmds.delete, AUTHENTICATED),
    c.Rename: (mailboxcmds.rename, AUTHENTICATED),
    c.Subscribe: (mailboxcmds.subscribe, AUTHENTICATED),
    c.Unsubscribe: (mailboxcmds.unsubscribe, AUTHENTICATED),
    c.List: (mailboxcmds.list_command, AUTHENTICATED),
    c.Lsub: (mailboxcmds.lsub, AUTHENTICATED),
    c.Namespace: (generalcmds.namespace, AUTHENTICATED),
    c.Status: (mailboxcmds.status, AUTHENTICATED),
    c.Append: (messagecmds.append, AUTHENTICATED),
    c.Idle: (idle.idle, AUTHENTICATED),
    # selected (RFC 9051 §6.4)
    c.Check: (generalcmds.noop, SELECTED),
    c.Close: (selectcmds.close, SELECTED),
    c.Unselect: (selectcmds.unselect, SELECTED),
    c.Expunge: (messagecmds.expunge, SELECTED),
    c.Search: (querycmds.search, SELECTED),
    c.Fetch: (querycmds.fetch, SELECTED),
    c.Store: (messagecmds.store_command, SELECTED),
    c.Copy: (messagecmds.copy, SELECTED),
    c.Move: (messagecmds.move, SELECTED),
}


class Session:
    """One client connection from greeting to close. See the module invariants."""

    def __init__(self, conn: Connection, settings: Settings, sessions: authcmds.UserSessions) -> None:
        self.conn = conn  # the client; replies go out through send()/flush()
        self.settings = settings
        self.sessions = sessions  # per-user connection counts (Imap__MaxConnectionsPerUser)
        self.log = conn.log  # "[conn_id peer]" prefixed
        self.state = State.NOT_AUTHENTICATED  # RFC 9051 §3; LOGOUT ends the loop
        self.enabled = Enabled()  # ENABLEd extensions; replaced after STARTTLS
        self.user: AuthResult | None = None  # set by a successful LOGIN or AUTHENTICATE
        self.selected: SelectedMailbox | None = None  # set in the selected state only
        self.cache = MessageCache()  # raw and parsed messages FETCH and SEARCH read (bounded LRU)
        self.append_limit = settings.smtp.max_message_size  # RFC 7889 APPENDLIMIT
        self.tag = ""  # tag of the command being run, for responses that name it (ESEARCH)
        self.literals: list[IO[bytes]] = []  # the command's APPEND data, by LiteralRef.index
        self.auth_failures = 0  # failed LOGIN/AUTHENTICATE attempts on this connection
        self.closing: str | None = None  # say BYE with this text after the current reply
        self.client_id = ""  # what the client said in ID, for the log
        self._out = bytearray()  # untagged responses not yet written
        self._lines = 0  # command lines read so far (the first one decides garbage)
        self._garbage = 0  # unrecognisable lines in a row

    # -- output ---------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        """Queue response octets; written at the end of the command (or when many).

        A large piece (message literal data) is written as it is, never copied into the buffer.
        """
        if len(data) >= FLUSH_AT:
            self.flush()
            self.conn.write(data)
            return
        self._out += data
        if len(self._out) >= FLUSH_AT:
            self.flush()

    def flush(self) -> None:
        if self._out:
            data = bytes(self._out)
            self._out.clear()
            self.conn.write(data)

    @property
    def timeout(self) -> float:
        return PREAUTH_TIMEOUT if self.state is State.NOT_AUTHENTICATED else AUTH_TIMEOUT

    @property
    def plaintext_allowed(self) -> bool:
        """Whether LOGIN and AUTHENTICATE PLAIN may be used now (RFC 9051 §6.2.3, §11.1)."""
        return self.conn.tls or self.settings.allow_insecure_auth

    def capability_list(self) -> str:
        return capabilities(
            authenticated=self.state in (State.AUTHENTICATED, State.SELECTED),
            tls=self.conn.tls,
            plaintext_allowed=self.plaintext_allowed,
            append_limit=self.append_limit,
        )

    # -- the loop ---------------------------------------------------------------------------

    def run(self) -> None:
        try:
            name = self.settings.imap.server_name
            self.send(untagged(f"OK [CAPABILITY {self.capability_list()}] {name} Relate Mail IMAP ready"))
            self.flush()
            while self.state is not State.LOGOUT:
                self._serve_one()
                if self.closing:
                    raise Bye(self.closing)
            self.flush()
        except Bye as exc:
            self._say_bye(exc.text)
        except ServerShutdown:
            self._say_bye("server shutting down")
            raise
        except Timeout:
            self._say_bye("autologout: idle for too long")
            raise
        except LineTooLong:
            self._say_bye("line too long")
        finally:
            self.deselect()
            if self.user is not None:
                self.sessions.release(self.user.user_id)

    def _say_bye(self, text: str) -> None:
        data = bytes(self._out) + untagged(f"BYE {text}")
        self._out.clear()
        try:
            self.conn.write(data, timeout=5.0)
        except Exception:
            pass

    def _serve_one(self) -> None:
        read = self._read_command()
        if read is None:
            return
        parsed, literals = read
        self.literals = literals
        try:
            self._run_command(parsed.tag, parsed.command)
        finally:
            self.literals = []
            for sink in literals:
                sink.close()

    def _read_line(self) -> bytes:
        """The next line; what is queued goes out first unless the line is here already."""
        if self._out and not self.conn.has_complete_line():
            self.flush()  # about to wait: the client must have every reply first
        return self.conn.read_line(MAX_LINE, self.timeout)

    def _read_command(self) -> tuple[Parsed, list[IO[bytes]]] | None:
        """Read one whole command (lines and literals); None when it was already answered."""
        buf = self._read_line()
        first = self._lines == 0
        self._lines += 1
        sinks: list[IO[bytes]] = []
        try:
            while True:
                try:
                    result = parse_command(buf, self.append_limit, self.enabled.utf8)
                except ParseError as exc:
                    self._parse_failed(exc, buf, first)
                    for sink in sinks:
                        sink.close()
                    return None
                if isinstance(result, Parsed):
                    self._garbage = 0
                    if self.log.isEnabledFor(logging.DEBUG):
                        self.log.debug("C: %s", redact(buf.split(b"\n", 1)[0]))
                    return result, sinks
                if not self._receive_literal(result, sinks):
                    for sink in sinks:
                        sink.close()
                    return None
                if not result.is_append_message:
                    buf += self.conn.read_exact(result.size, LITERAL_TIMEOUT)
                if len(buf) > MAX_COMMAND:
                    raise Bye("command too long")
                buf += self._read_line()
        except BaseException:
            for sink in sinks:
                sink.close()
            raise

    def _receive_literal(self, need: NeedLiteral, sinks: list[IO[bytes]]) -> bool:
        """Refuse, or ask for and (for APPEND data) spool one literal; False when refused."""
        tag = need.tag or "*"
        refusal = self._refusal_before_literal(need)
        if refusal is not None:  # RFC 9051 §4.3, §7.5: a refusal instead of "+"
            self._skip_literals(need)
            self.send(tagged(tag, refusal.status, refusal.text, refusal.code))
            self.flush()
            return False
        if need.too_big:
            if need.synchronizing:  # RFC 9051 §7.1, RFC 7888 §4: refuse before "+"
                self.send(tagged(tag, "NO", "literal too big", "TOOBIG"))
                self.flush()
                return False
            # A LITERAL+ upload is already on its way and will not be read (see parse.py).
            self.send(tagged(tag, "BAD", "literal too big", "TOOBIG"))
            raise Bye("literal too big")
        if need.synchronizing:
            self.send(b"+ Ready for literal data\r\n")
        self.flush()  # a literal may take a while to arrive: replies go out before it is read
        if need.is_append_message:
            sink = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115 (closed by _serve_one)
            sinks.append(sink)
            self.conn.read_into(need.size, sink.write, LITERAL_TIMEOUT)
        return True

    def _refusal_before_literal(self, need: NeedLiteral) -> CommandError | None:
        """The answer a command gets whatever its literals hold, so none is asked for.

        A LOGIN that may not send a password here is refused before the client sends one
        (RFC 9051 §6.2.3). Only in the state LOGIN is valid in: elsewhere the dispatcher
        answers BAD once the command is whole.
        """
        if need.verb == "LOGIN" and self.state is State.NOT_AUTHENTICATED:
            return authcmds.login_refusal(self)
        return None

    def _skip_literals(self, need: NeedLiteral | None) -> None:
        """Read and drop what the client still sends for a command answered without it.

        A LITERAL+ is on its way whatever the server says (RFC 7888 §4): its octets are
        discarded as they arrive, then the line after it, repeatedly while that line ends
        with another one. A synchronising literal ends the command: the client waits for a
        "+" that never comes. One over APPENDLIMIT closes the connection.
        """
        while need is not None and not need.synchronizing:
            if need.size > self.append_limit:
                raise Bye("literal too big")
            self.flush()  # replies go out before a literal is read
            for _ in self.conn.read_chunks(need.size, LITERAL_TIMEOUT):
                pass
            need = trailing_literal(self._read_line(), self.append_limit)

    def _parse_failed(self, exc: ParseError, buf: bytes, first: bool) -> None:
        """BAD for a command that cannot be parsed; skip what the client still sends for it."""
        if exc.garbage:
            self._garbage += 1
            if first or self._garbage >= MAX_GARBAGE:
                self.log.info("closing: not an IMAP client (%s)", exc.message)
                raise Bye("this is an IMAP server")
        self.send(tagged(exc.tag or "*", "BAD", exc.message))
        self.flush()
        line = buf[buf.rfind(b"\n", 0, len(buf) - 1) + 1 :]
        self._skip_literals(trailing_literal(line, self.append_limit))

    def _run_command(self, tag: str, command: c.Command) -> None:
        handler, states = HANDLERS[type(command)]
        self.tag = tag
        if self.state not in states:
            self.send(tagged(tag, "BAD", f"{command.verb} is not valid in the {self.state.value} state"))
            return
        try:
            done = handler(self, command) or Done()
            status, code, text = "OK", done.code, done.text or f"{command.verb} completed"
        except CommandError as exc:
            done = None
            status, code, text = exc.status, exc.code, exc.text
        except store.StoreError as exc:
            done = None
            error = store_error(exc)
            status, code, text = error.status, error.code, error.text
        except MailboxGone:
            raise Bye("the selected mailbox was deleted") from None
        except (Bye, ProtocolIOError):
            raise
        except Exception:
            self.log.exception("command %s failed", command.verb)
            done = None
            status, code, text = "NO", "SERVERBUG", "internal server error"
        if done is ANSWERED:
            return
        if self.state is not State.LOGOUT:
            self._report_changes(command)
        if done is not None and done.modseq and self.selected is not None and self.enabled.qresync:
            code = f"HIGHESTMODSEQ {self.selected.modseq}"
        self.send(tagged(tag, status, text, code))  # written before the next read that would wait

    def _report_changes(self, command: c.Command) -> None:
        """Tell the client what other sessions changed, where RFC 9051 §7.5.1 allows it."""
        selected = self.selected
        if selected is None:
            return
        try:
            selected.take_events()
            if isinstance(command, c.Noop | c.Check):
                selected.poll()
            selected.refresh()
        except store.TemporaryFailure:
            self.log.warning("could not read mailbox changes; will try again")
            return
        except MailboxGone:
            raise Bye("the selected mailbox was deleted") from None
        quiet = isinstance(command, c.Fetch | c.Store | c.Search) and not command.uid
        for response in selected.report(allow_expunge=not quiet):
            self.send(response)

    # -- state changes ----------------------------------------------------------------------

    def login(self, user: AuthResult) -> None:
        self.user = user
        self.state = State.AUTHENTICATED
        self.log.info("logged in as %s (user %d)", user.login, user.user_id)

    def select(self, selected: SelectedMailbox) -> None:
        self.deselect()
        self.selected = selected
        self.state = State.SELECTED

    def deselect(self) -> None:
        if self.selected is not None:
            self.selected.close()
            self.selected = None
        if self.state is State.SELECTED:
            self.state = State.AUTHENTICATED

    def enable_condstore(self) -> None:
        """Turn CONDSTORE on (RFC 7162 §3.1: also by any CONDSTORE-enabling command)."""
        if self.enabled.condstore:
            return
        self.enabled.condstore = True
        if self.selected is not None:  # RFC 7162 §3.1.2.1: tell the HIGHESTMODSEQ now
            self.send(untagged(f"OK [HIGHESTMODSEQ {self.selected.modseq}] CONDSTORE enabled"))

    @property
    def user_id(self) -> int:
        if self.user is None:
            raise No("not logged in")
        return self.user.user_id

    def require_selected(self) -> SelectedMailbox:
        if self.selected is None:
            raise Bad("no mailbox selected")
        return self.selected

