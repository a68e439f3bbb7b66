"""One POP3 session: read a command, dispatch it, write the reply, until QUIT or a limit.

Invariants:
- Allowed states and argument counts are checked here, once, from the command table.
- Failures reach the wire in one place (`run_command`): Pop3Error and BadCommand become
  "-ERR [code] text", CloseConnection does that and ends the session, a store outage is
  "-ERR [SYS/TEMP]". Too many bad commands close the connection.
- Every read has a deadline: short before login, the RFC 1939 §3 autologout timer (at
  least 10 minutes) after. A client that sends nothing at all is logged out just the same.
- After STLS the bytes the client pipelined are discarded and the session forgets USER
  (RFC 2595 §4); STLS is only allowed before login.
- However the session ends, what RETR marked \\Seen is stored and the maildrop lock is
  released; only QUIT in TRANSACTION removes messages.
- Log lines carry the connection id and peer (conn.log); PASS and AUTH are logged without
  their arguments and SASL responses not at all.
"""

from __future__ import annotations

import logging

from relate.pop3d import wire
from relate.pop3d.commands import COMMANDS, Reply
from relate.pop3d.errors import SYS_TEMP, BadCommand, CloseConnection, Pop3Error
from relate.pop3d.parse import parse_command
from relate.pop3d.state import Pop3Config, Session, State
from relate.protocol.connection import Connection, LineTooLong, ProtocolIOError, ServerShutdown, Timeout
from relate.protocol.log import redact
from relate.store import TemporaryFailure

GOODBYE_TIMEOUT = 5.0  # writing a last -ERR to a client we are dropping
SMALL_REPLY = 256 * 1024  # parts of a reply below this are joined into one write


def serve(config: Pop3Config, conn: Connection) -> None:
    """Run one session on an accepted (and, for port 995, already TLS) connection."""
    session = Session(conn=conn, config=config)
    try:
        conn.write(wire.ok(f"{config.server_name} Relate Mail POP3 server ready"))
        while not session.closing:
            write_reply(conn, run_command(session, next_line(session)))
            if session.retrieved is not None and session.maildrop is not None:
                # RFC 1939 §5: RETR makes a message seen, once all of it has been written.
                session.maildrop.mark_seen(session.retrieved)
                session.retrieved = None
            if session.tls_next:
                start_tls(session)
    except Timeout:
        goodbye(conn, wire.err("autologout: no command for too long"))  # RFC 1939 §3
        raise
    except ServerShutdown:
        goodbye(conn, wire.err("server shutting down", SYS_TEMP))
        raise
    finally:
        session.drop_maildrop()


def next_line(session: Session) -> bytes | None:
    """The next command line; None when it was too long (it has been skipped)."""
    conn = session.conn
    limits = session.config.limits
    drop = session.maildrop
    # Store \Seen when many are waiting or the client pauses, not once per RETR.
    if (
        drop is not None
        and drop.pending_seen
        and (drop.pending_seen >= limits.seen_batch or not conn.wait_for_data(limits.seen_flush_delay))
    ):
        try:
            drop.flush_seen()
        except TemporaryFailure:
            session.log.warning("could not store \\Seen yet; will retry")
    try:
        return conn.read_line(limits.max_line, session.read_timeout())
    except LineTooLong:
        return None


def run_command(session: Session, line: bytes | None) -> Reply:
    """Dispatch one line; returns the reply to write."""
    verb = ""
    try:
        if line is None:
            raise BadCommand(f"line too long (limit {session.config.limits.max_line} octets)")
        command = parse_command(line)
        verb = command.verb
        if session.log.isEnabledFor(logging.DEBUG):
            session.log.debug("C: %s", redact(line))
        spec = COMMANDS.get(verb)
        if spec is None:
            raise BadCommand("unknown command")
        if session.state not in spec.states:
            raise BadCommand(f"{verb} is not allowed in the {session.state.value} state")
        if not spec.min_args <= len(command.args) <= spec.max_args:
            raise BadCommand(f"wrong number of arguments for {verb}")
        return spec.handler(session, command.args)
    except CloseConnection as exc:
        session.closing = True
        return wire.err(str(exc), exc.code)
    except BadCommand as exc:
        session.bad_commands += 1
        if session.bad_commands >= session.config.limits.max_bad_commands:
            session.closing = True
            session.log.info("closing after %d bad commands", session.bad_commands)
            return wire.err(f"{exc}; too many bad commands, closing", exc.code)
        return wire.err(str(exc), exc.code)
    except Pop3Error as exc:
        return wire.err(str(exc), exc.code)
    except TemporaryFailure:
        session.log.warning("%s failed: store temporarily unavailable", verb or "command")
        return wire.err("temporary server failure; try again later", SYS_TEMP)


def write_reply(conn: Connection, reply: Reply) -> None:
    """One write for a line or a small message; a large message goes out part by part."""
    if isinstance(reply, bytes):
        conn.write(reply)
    elif sum(map(len, reply)) <= SMALL_REPLY:
        conn.write(b"".join(reply))
    else:
        for part in reply:
            conn.write(part)


def start_tls(session: Session) -> None:
    """RFC 2595 §4: handshake, then start over as if the connection had just been opened."""
    session.tls_next = False
    session.conn.start_tls()  # throws away whatever the client pipelined after STLS
    session.user_name = None
    session.state = State.AUTHORIZATION
    session.log.info("TLS started (%s)", session.conn.tls_version())


def goodbye(conn: Connection, line: bytes) -> None:
    """Best effort: the connection may already be gone."""
    try:
        conn.write(line, timeout=GOODBYE_TIMEOUT)
    except ProtocolIOError:
        pass
