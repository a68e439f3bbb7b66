"""One SMTP session: the greeting, the command loop, the command table and its state rules.

Invariants:
- Every verb is in one literal table with the state it needs; the dispatcher checks that
  state once, so handlers never re-check it. A verb this listener does not offer (AUTH on
  MX) is "not implemented"; an unknown verb is "not recognized".
- `SmtpError` is turned into bytes in exactly one place, `_refuse`. It also counts 5xx
  replies: at MAX_ERRORS the session ends with 421 (a client gone astray, or a probe).
- Talking before the greeting, or sending a command before the previous reply when
  PIPELINING was not negotiated (RFC 2920 §3.1), ends the session with 554 5.5.0.
- Every read has a deadline (state.Timeouts, RFC 5321 §4.5.3.2); a timeout ends the
  session with 421 4.4.2.
- Client lines are logged only through `redact` (no AUTH argument, no SASL answer ever).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from relate.protocol.connection import (
    Connection,
    ConnectionClosed,
    LineTooLong,
    ProtocolIOError,
    ServerShutdown,
    Timeout,
)
from relate.protocol.log import redact
from relate.smtpd import replies
from relate.smtpd.auth import auth
from relate.smtpd.command import MAX_AUTH_LINE, MAX_COMMAND_LINE, parse_bdat, parse_command
from relate.smtpd.content import bdat, data, drain_bdat
from relate.smtpd.envelope import mail, rcpt
from relate.smtpd.hello import ehlo, helo, starttls
from relate.smtpd.replies import Reply, SmtpError
from relate.smtpd.state import MAX_ERRORS, Listening, Session

Handler = Callable[[Session, str], None]


def rset(session: Session, arg: str) -> None:
    session.transaction = None  # RFC 5321 §4.1.1.5
    session.reply(replies.OK)


def noop(session: Session, arg: str) -> None:
    session.reply(replies.OK)  # RFC 5321 §4.1.1.9: any argument is ignored


def quit_(session: Session, arg: str) -> None:
    session.reply(replies.BYE)
    session.closing = True


def vrfy(session: Session, arg: str) -> None:
    if not arg:
        raise SmtpError(replies.BAD_ARGUMENTS)
    session.reply(replies.CANNOT_VERIFY)  # RFC 5321 §3.5.3: no address harvesting


def help_(session: Session, arg: str) -> None:
    session.reply(replies.HELP)


@dataclass(frozen=True)
class Verb:
    """A command and the state it needs; the dispatcher enforces the state."""

    handler: Handler
    hello: bool = True  # needs HELO/EHLO first
    takes_arguments: bool = True  # else a non-empty argument is NO_ARGUMENTS_ALLOWED
    needs_transaction: Reply | None = None  # refused with this reply when no MAIL was given
    not_in_transaction: Reply | None = None  # refused with this reply inside a transaction
    not_after_auth: Reply | None = None  # refused with this reply once authenticated


COMMANDS: dict[str, Verb] = {
    "EHLO": Verb(ehlo, hello=False),
    "HELO": Verb(helo, hello=False),
    "STARTTLS": Verb(starttls, takes_arguments=False),  # RFC 3207 §4
    "AUTH": Verb(  # RFC 4954 §4
        auth,
        not_in_transaction=replies.AUTH_IN_TRANSACTION,
        not_after_auth=replies.ALREADY_AUTHENTICATED,
    ),
    "MAIL": Verb(mail, not_in_transaction=replies.NESTED_MAIL),
    "RCPT": Verb(rcpt, needs_transaction=replies.NEED_MAIL),
    "DATA": Verb(data, takes_arguments=False, needs_transaction=replies.NEED_MAIL_BEFORE_DATA),
    "BDAT": Verb(bdat, needs_transaction=replies.NEED_MAIL_BEFORE_BDAT),  # RFC 3030
    "RSET": Verb(rset, hello=False, takes_arguments=False),
    "NOOP": Verb(noop, hello=False),
    "QUIT": Verb(quit_, hello=False, takes_arguments=False),
    "VRFY": Verb(vrfy, hello=False),
    "HELP": Verb(help_, hello=False),
}
# MX (port 25) offers no AUTH (DESIGN.md §6 step 2).
MX_COMMANDS: dict[str, Verb] = {name: verb for name, verb in COMMANDS.items() if name != "AUTH"}
# Known verbs not offered here: answered "not implemented" rather than "not recognized".
NOT_IMPLEMENTED = frozenset({"AUTH", "EXPN", "TURN", "ETRN", "ATRN", "SEND", "SOML", "SAML"})
# An HTTP request or proxy probe: answered once, then the connection is closed.
FORBIDDEN = frozenset({"GET", "POST", "HEAD", "PUT", "CONNECT"})
# With PIPELINING these may still not be followed by another command in the same group
# (RFC 2920 §3.1). A DATA refused before its 354 while more octets are already waiting is
# answered and the connection closed: those octets are a message, never commands.
LAST_IN_GROUP = frozenset({"DATA"})


def run(conn: Connection, listening: Listening) -> None:
    """Serve one connection until QUIT, an error that ends the session, or the client leaving."""
    session = Session(conn, listening)
    try:
        if conn.has_buffered_data():  # RFC 5321 §4.3.1: the client must wait for the greeting
            conn.log.info("client talked before the greeting")
            conn.write(replies.EARLY_TALKER.format())
            return
        session.reply_bytes(listening.greeting)
        while not session.closing:
            if conn.shutdown.is_set():
                session.reply(replies.SHUTTING_DOWN)
                break
            line = _next_line(session)
            if line is not None:
                _dispatch(session, line)
        session.flush()
    except Timeout:
        _goodbye(session, replies.TIMEOUT)
        conn.log.info("timed out waiting for the client")
    except ServerShutdown:
        _goodbye(session, replies.SHUTTING_DOWN)
        raise
    except ConnectionClosed:
        pass


def refuse(conn: Connection, reason: str) -> None:
    """The listener's answer to a connection over the limits, before it is closed."""
    reply = replies.SHUTTING_DOWN if "shutting down" in reason else replies.TOO_MANY_CONNECTIONS
    conn.write(reply.format(), timeout=5)


GOODBYE_WRITE_TIMEOUT = 5.0  # a last reply to a client that may have stopped reading


def _goodbye(session: Session, reply: Reply) -> None:
    try:
        session.reply(reply)
        session.flush(GOODBYE_WRITE_TIMEOUT)
    except ProtocolIOError:
        pass


def _next_line(session: Session) -> bytes | None:
    """The next command line; None when it was too long (already answered).

    A command line may be MAX_COMMAND_LINE octets (RFC 5321 §4.5.3.1.4), except AUTH, whose
    initial response may make it MAX_AUTH_LINE (RFC 4954 §4). While an AUTH could still run
    (offered, not yet authenticated, no transaction) the reader takes a line up to the larger
    limit and a line of another verb over the smaller one is refused once read, before it is
    parsed; otherwise the smaller limit applies as the line streams in. Either way the reader
    bounds the line as it arrives: nothing over MAX_AUTH_LINE octets is ever buffered.
    """
    conn = session.conn
    if not conn.has_complete_line():
        session.flush()  # we are about to wait: the client must have every reply first
    auth_possible = session.auth_offered and session.auth is None and session.transaction is None
    limit = MAX_AUTH_LINE if auth_possible else MAX_COMMAND_LINE
    try:
        line = conn.read_line(limit, session.listening.timeouts.command)
    except LineTooLong:
        line = None
    if line is None or (len(line) > MAX_COMMAND_LINE and not _is_auth(line)):
        _refuse(session, SmtpError(replies.LINE_TOO_LONG))
        return None
    return line


def _is_auth(line: bytes) -> bool:
    return line.lstrip(b" ")[:5].upper() == b"AUTH "


def _log_line(session: Session, line: bytes) -> None:
    """The client's line at DEBUG, redacted; nothing is computed when DEBUG is off."""
    log = session.conn.log
    if log.isEnabledFor(logging.DEBUG):
        log.debug("<- %s", redact(line))


def _dispatch(session: Session, line: bytes) -> None:
    conn = session.conn
    try:
        command = parse_command(line)
    except SmtpError as error:
        _log_line(session, line)
        _refuse(session, error)
        return
    _log_line(session, line)
    name = command.verb
    if not session.esmtp and name != "QUIT" and conn.has_buffered_data():
        # RFC 2920 §3.1: without PIPELINING the client waits for each reply.
        conn.log.info("client sent %s and more without waiting for the reply", name)
        _refuse(session, SmtpError(replies.PIPELINING_NOT_OFFERED, close=True))
        return
    table = COMMANDS if session.listening.mode == "submission" else MX_COMMANDS
    verb = table.get(name)
    try:
        if verb is None:
            if name in FORBIDDEN:
                raise SmtpError(replies.COMMAND_UNRECOGNIZED, close=True)
            raise SmtpError(replies.NOT_IMPLEMENTED if name in NOT_IMPLEMENTED else replies.COMMAND_UNRECOGNIZED)
        state_error = _state_error(session, verb, command.arg)
        if state_error is not None:
            if name == "BDAT":
                drain_bdat(session, parse_bdat(command.arg).size)  # its octets are not commands
            raise SmtpError(state_error, close=name in LAST_IN_GROUP and conn.has_buffered_data())
        verb.handler(session, command.arg)
    except SmtpError as error:
        _refuse(session, error)


def _state_error(session: Session, verb: Verb, arg: str) -> Reply | None:
    """The reply refusing `verb` in the session's state, or None when it may run."""
    if verb.hello and session.helo is None:
        return replies.NEED_EHLO_AFTER_TLS if session.tls_restarted else replies.NEED_HELO
    if arg and not verb.takes_arguments:
        return replies.NO_ARGUMENTS_ALLOWED
    if verb.not_after_auth is not None and session.auth is not None:
        return verb.not_after_auth
    if verb.needs_transaction is not None and session.transaction is None:
        return verb.needs_transaction
    if verb.not_in_transaction is not None and session.transaction is not None:
        return verb.not_in_transaction
    return None


def _refuse(session: Session, error: SmtpError) -> None:
    """The one place an SmtpError reaches the wire."""
    session.reply_bytes(error.to_bytes())
    if error.reply.code >= 500:
        session.errors += 1
    if error.close:
        session.closing = True
    elif session.errors >= MAX_ERRORS:
        session.conn.log.info("too many errors; closing")
        session.reply(replies.TOO_MANY_ERRORS)
        session.closing = True
