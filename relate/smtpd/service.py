"""The SMTP daemon's listeners: submission (STARTTLS), submissions (implicit TLS) and MX.

`listeners(settings)` is what `python -m relate.smtpd` and the all-in-one process serve.
A port setting of 0 disables that listener; MX is also off with Smtp__MxEnabled=false.
"""

from __future__ import annotations

from collections.abc import Callable

from relate.config import Settings
from relate.protocol.connection import Connection
from relate.protocol.server import Listener
from relate.smtpd import session
from relate.smtpd.state import Listening, Mode, Timeouts

SUBMISSION = "smtp-submission"  # 587, STARTTLS (RFC 6409)
SUBMISSIONS = "smtp-submissions"  # 465, implicit TLS (RFC 8314 §3.3)
MX = "smtp-mx"  # 25, inbound mail for the hosted domains


def handler(
    settings: Settings, mode: Mode, *, starttls: bool, timeouts: Timeouts | None = None
) -> Callable[[Connection], None]:
    """The connection handler for one listener."""
    listening = Listening(settings, mode, starttls, timeouts or Timeouts())

    def serve(conn: Connection) -> None:
        session.run(conn, listening)

    return serve


def listeners(
    settings: Settings, *, ports: dict[str, int] | None = None, timeouts: Timeouts | None = None
) -> list[Listener]:
    """The enabled SMTP listeners. `ports` (tests) overrides the settings by listener name:
    only the names given are built, and 0 there means "any free port"."""
    smtp = settings.smtp
    if ports is None:
        ports = {}
        if smtp.port:
            ports[SUBMISSION] = smtp.port
        if smtp.secure_port:
            ports[SUBMISSIONS] = smtp.secure_port
        if smtp.mx_enabled and smtp.mx_port:
            ports[MX] = smtp.mx_port
    table: dict[str, tuple[bool, Mode, str]] = {
        SUBMISSION: (False, "submission", "Smtp__Port"),
        SUBMISSIONS: (True, "submission", "Smtp__SecurePort"),
        MX: (False, "mx", "Smtp__MxPort"),
    }
    result = []
    for name, port in ports.items():
        implicit_tls, mode, setting = table[name]
        result.append(
            Listener(
                name,
                port,
                implicit_tls,
                handler(settings, mode, starttls=not implicit_tls, timeouts=timeouts),
                refuse=session.refuse,
                protocol="smtp",
                setting=setting,
            )
        )
    return result
