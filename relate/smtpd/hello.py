"""EHLO, HELO and STARTTLS: what the session offers, and the TLS restart.

Invariants:
- EHLO advertises only what works on this listener in this state: STARTTLS on a plaintext
  port with a certificate, AUTH on submission over TLS (or with Tls__AllowInsecureAuth) and
  not yet authenticated. HELO offers nothing, so no pipelining either (RFC 2920). The
  keyword lines depend on nothing else (the settings are fixed), so each listener builds
  them once for each pair of those two offers (`Listening.ehlo_lines`).
- EHLO and HELO end any mail transaction (RFC 5321 §4.1.4).
- STARTTLS drops every octet the client sent after the command (Connection.start_tls) and
  forgets the whole session: the client must say EHLO again, and nothing learned before the
  handshake (hello name, transaction) survives it (RFC 3207 §4.2). A second STARTTLS is
  refused.
"""

from __future__ import annotations

from relate.protocol import sasl
from relate.smtpd import replies
from relate.smtpd.command import parse_helo
from relate.smtpd.replies import SmtpError
from relate.smtpd.state import Listening, Session


def extensions(listening: Listening, *, starttls: bool, auth: bool) -> list[str]:
    """The EHLO keywords, in the order they are advertised; `starttls` and `auth`: whether
    this session is offered STARTTLS and AUTH (see `_offers`)."""
    lines = [
        "PIPELINING",  # RFC 2920
        f"SIZE {listening.max_size}",  # RFC 1870
        "8BITMIME",  # RFC 6152
        "ENHANCEDSTATUSCODES",  # RFC 2034
        "SMTPUTF8",  # RFC 6531
        "CHUNKING",  # RFC 3030
    ]
    if starttls:
        lines.append("STARTTLS")  # RFC 3207
    if auth:
        lines.append("AUTH " + " ".join(sasl.MECHANISMS))  # RFC 4954
    return lines


def _offers(session: Session) -> tuple[bool, bool]:
    """Whether this session is offered STARTTLS, and AUTH."""
    return session.listening.starttls and not session.tls, session.auth_offered and session.auth is None


def _extension_lines(session: Session) -> bytes:
    """EHLO's reply after its first line, built once per listener and state."""
    listening = session.listening
    key = _offers(session)
    lines = listening.ehlo_lines.get(key)
    if lines is None:
        starttls, auth = key
        lines = replies.HELLO.format_rest(extensions(listening, starttls=starttls, auth=auth))
        listening.ehlo_lines[key] = lines
    return lines


def _client(session: Session) -> str:
    ip = session.ip
    return f"[IPv6:{ip}]" if ":" in ip else f"[{ip}]"


def ehlo(session: Session, arg: str) -> None:
    name = parse_helo(arg)
    session.helo = name
    session.esmtp = True
    session.transaction = None
    first = replies.HELLO.format_first(host=session.listening.hostname, client=_client(session))
    session.reply_bytes(first + _extension_lines(session))


def helo(session: Session, arg: str) -> None:
    name = parse_helo(arg)
    session.helo = name
    session.esmtp = False
    session.transaction = None
    session.reply(replies.HELLO, host=session.listening.hostname, client=_client(session))


def starttls(session: Session, arg: str) -> None:
    conn = session.conn
    if conn.tls:
        raise SmtpError(replies.TLS_ALREADY_ACTIVE)
    if not session.listening.starttls or conn.ssl_context is None:
        raise SmtpError(replies.TLS_NOT_AVAILABLE)
    session.reply(replies.START_TLS)
    session.flush()
    conn.start_tls()  # raises when the handshake fails; the session then ends
    session.reset()
    conn.log.info("TLS started: %s %s", conn.tls_version(), conn.cipher())
