"""The POP3 listeners: 110 with STLS and 995 with implicit TLS (RFC 8314), as configured."""

from __future__ import annotations

import functools

from relate.config import Settings
from relate.pop3d import wire
from relate.pop3d.errors import SYS_TEMP
from relate.pop3d.limits import Limits
from relate.pop3d.session import serve
from relate.pop3d.state import Pop3Config
from relate.protocol.connection import Connection
from relate.protocol.server import Listener

REFUSAL_WRITE_TIMEOUT = 5.0


def refuse(conn: Connection, reason: str) -> None:
    """A connection over the limits gets one line instead of the greeting (RFC 3206 SYS/TEMP)."""
    conn.write(wire.err(f"{reason}; try again later", SYS_TEMP), timeout=REFUSAL_WRITE_TIMEOUT)


def listeners(settings: Settings, limits: Limits | None = None) -> list[Listener]:
    """"pop3" (Pop3__Port, STLS) and "pop3s" (Pop3__SecurePort, implicit TLS); port 0 skips one."""
    handler = functools.partial(serve, Pop3Config.from_settings(settings, limits))
    wanted = [
        ("pop3", settings.pop3.port, False, "Pop3__Port"),
        ("pop3s", settings.pop3.secure_port, True, "Pop3__SecurePort"),
    ]
    return [
        Listener(name, port, implicit, handler, refuse=refuse, protocol="pop3", setting=setting)
        for name, port, implicit, setting in wanted
        if port
    ]
