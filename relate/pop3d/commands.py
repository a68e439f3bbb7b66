"""The POP3 command table: verb -> handler, the states it is allowed in and its arguments.

The dispatcher (relate.pop3d.session) checks state and argument count once, so handlers
never do. A handler returns the whole reply; a message reply is several byte strings so
that a large message is not copied once more just to prepend a status line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from relate import metrics
from relate.pop3d import auth, wire
from relate.pop3d.errors import Pop3Error
from relate.pop3d.maildrop import Maildrop
from relate.pop3d.parse import line_count, message_number
from relate.pop3d.state import IMPLEMENTATION, Session, State

Reply = bytes | tuple[bytes, ...]
Handler = Callable[[Session, tuple[str, ...]], Reply]

AUTHORIZATION = frozenset({State.AUTHORIZATION})
TRANSACTION = frozenset({State.TRANSACTION})
ANY_STATE = AUTHORIZATION | TRANSACTION


@dataclass(frozen=True)
class Command:
    handler: Handler
    states: frozenset[State]  # where the command is allowed
    min_args: int = 0
    max_args: int = 0


def maildrop(session: Session) -> Maildrop:
    assert session.maildrop is not None  # TRANSACTION state always has one
    return session.maildrop


# -- any state -----------------------------------------------------------------------------


def capa(session: Session, args: tuple[str, ...]) -> Reply:
    """RFC 2449 §5. What a client may use in the current state on this connection."""
    caps: list[str] = []
    if session.state is State.AUTHORIZATION:
        if session.secure:
            caps += ["USER", f"SASL {' '.join(auth.MECHANISMS)}"]
        if session.can_start_tls:
            caps.append("STLS")  # RFC 2595 §4
    caps += ["TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", f"IMPLEMENTATION {IMPLEMENTATION}"]
    return wire.multiline("capability list follows", caps)


def quit_(session: Session, args: tuple[str, ...]) -> Reply:
    """RFC 1939 §6: in TRANSACTION, QUIT enters UPDATE and removes the marked messages."""
    session.closing = True
    if session.state is State.AUTHORIZATION:
        return wire.ok("bye")
    removed = maildrop(session).commit()
    session.drop_maildrop()  # unlocked before the reply: the client may reconnect at once
    metrics.incr("pop3", "messages_deleted", removed)
    session.log.info("QUIT: %d message(s) removed", removed)
    return wire.ok(f"bye ({removed} message{'s' if removed != 1 else ''} removed)")


# -- AUTHORIZATION -------------------------------------------------------------------------


def stls(session: Session, args: tuple[str, ...]) -> Reply:
    """RFC 2595 §4. The handshake itself runs after this reply is written (session.py)."""
    if session.conn.tls:
        raise Pop3Error("TLS is already active")
    if not session.can_start_tls:
        raise Pop3Error("TLS is not available")
    session.tls_next = True
    return wire.ok("begin TLS negotiation")


# -- TRANSACTION ---------------------------------------------------------------------------


def stat(session: Session, args: tuple[str, ...]) -> Reply:
    """RFC 1939 §5 STAT: count and total size of the messages not marked deleted."""
    drop = maildrop(session)
    drop.ensure_sizes()
    visible = list(drop.visible())
    return wire.ok(f"{len(visible)} {sum(drop.size_of(m) for m in visible)}")


def list_(session: Session, args: tuple[str, ...]) -> Reply:
    """RFC 1939 §5 LIST [msg]: the size of one message, or of every one not marked deleted."""
    drop = maildrop(session)
    if args:
        msg = drop.get(message_number(args[0]))
        return wire.ok(f"{msg.number} {drop.size_of(msg)}")
    drop.ensure_sizes()
    visible = list(drop.visible())
    total = sum(drop.size_of(m) for m in visible)
    return wire.multiline(f"{len(visible)} messages ({total} octets)",
                          [f"{m.number} {drop.size_of(m)}" for m in visible])


def uidl(session: Session, args: tuple[str, ...]) -> Reply:
    """RFC 1939 §7 UIDL [msg]."""
    drop = maildrop(session)
    if args:
        msg = drop.get(message_number(args[0]))
        return wire.ok(f"{msg.number} {drop.unique_id(msg)}")
    return wire.multiline("unique-id listing follows", [f"{m.number} {drop.unique_id(m)}" for m in drop.visible()])


def retr(session: Session, args: tuple[str, ...]) -> Reply:
    """RFC 1939 §5 RETR msg: the whole message; it becomes \\Seen."""
    drop = maildrop(session)
    msg = drop.get(message_number(args[0]))
    data = drop.stuffed(msg, keep=False)
    session.retrieved = msg
    return wire.ok(f"{drop.size_of(msg)} octets"), data, wire.TERMINATOR


def top(session: Session, args: tuple[str, ...]) -> Reply:
    """RFC 1939 §7 TOP msg n: the header and the first n body lines; \\Seen is not set."""
    drop = maildrop(session)
    msg = drop.get(message_number(args[0]))
    lines = line_count(args[1])
    return wire.ok("top of message follows"), wire.top(drop.stuffed(msg, keep=True), lines), wire.TERMINATOR


def dele(session: Session, args: tuple[str, ...]) -> Reply:
    """RFC 1939 §5 DELE msg: mark only; QUIT removes."""
    drop = maildrop(session)
    msg = drop.get(message_number(args[0]))
    drop.delete(msg)
    return wire.ok(f"message {msg.number} marked for deletion")


def noop(session: Session, args: tuple[str, ...]) -> Reply:
    return wire.ok()


def rset(session: Session, args: tuple[str, ...]) -> Reply:
    """RFC 1939 §5 RSET: unmark every message marked deleted."""
    drop = maildrop(session)
    drop.reset()
    return wire.ok(f"{len(drop.messages)} messages")


COMMANDS: dict[str, Command] = {
    "CAPA": Command(capa, ANY_STATE),
    "QUIT": Command(quit_, ANY_STATE),
    "USER": Command(auth.user, AUTHORIZATION, 1, 1),
    "PASS": Command(auth.pass_, AUTHORIZATION, 1, 1),
    "AUTH": Command(auth.auth, AUTHORIZATION, 0, 2),
    "STLS": Command(stls, AUTHORIZATION),
    "STAT": Command(stat, TRANSACTION),
    "LIST": Command(list_, TRANSACTION, 0, 1),
    "UIDL": Command(uidl, TRANSACTION, 0, 1),
    "RETR": Command(retr, TRANSACTION, 1, 1),
    "TOP": Command(top, TRANSACTION, 2, 2),
    "DELE": Command(dele, TRANSACTION, 1, 1),
    "NOOP": Command(noop, TRANSACTION),
    "RSET": Command(rset, TRANSACTION),
}
