"""The IMAP listeners: 143 with STARTTLS and 993 with implicit TLS (RFC 8314), as configured."""

from __future__ import annotations

from collections.abc import Callable

from relate.config import Settings
from relate.imapd.authcmds import UserSessions
from relate.imapd.responses import untagged
from relate.imapd.session import Session
from relate.protocol import limits
from relate.protocol.connection import Connection
from relate.protocol.server import Listener

REFUSAL_WRITE_TIMEOUT = 5.0


def refuse(conn: Connection, reason: str) -> None:
    """A connection over the limits gets BYE instead of the greeting (RFC 9051 §7.1.5)."""
    conn.write(untagged(f"BYE {reason}; try again later"), timeout=REFUSAL_WRITE_TIMEOUT)


def handler(settings: Settings) -> Callable[[Connection], None]:
    """The session runner every IMAP listener of one process shares (one per-user count, with
    the other workers' when the daemon has several)."""
    sessions = UserSessions(settings.imap.max_connections_per_user, limits.shared())

    def serve(conn: Connection) -> None:
        Session(conn, settings, sessions).run()

    return serve


def listeners(settings: Settings) -> list[Listener]:
    """"imap" (Imap__Port, STARTTLS) and "imaps" (Imap__SecurePort, implicit TLS); port 0 skips one."""
    serve = handler(settings)
    wanted = [
        ("imap", settings.imap.port, False, "Imap__Port"),
        ("imaps", settings.imap.secure_port, True, "Imap__SecurePort"),
    ]
    return [
        Listener(name, port, implicit, serve, refuse=refuse, protocol="imap", setting=setting)
        for name, port, implicit, setting in wanted
        if port
    ]
