"""STARTTLS, LOGIN and AUTHENTICATE (RFC 9051 §6.2), and the per-user connection limit.

Invariants:
- No password leaves this module in a log line; failures log the login name only.
- Without TLS, LOGIN and AUTHENTICATE PLAIN are refused with [PRIVACYREQUIRED] unless
  Tls__AllowInsecureAuth is set; the greeting then says LOGINDISABLED (RFC 9051 §6.2.3).
  The client is never asked for a password it may not send: a LOGIN gets its refusal
  (`login_refusal`) instead of the "+" for a literal, and AUTHENTICATE before its SASL
  challenge (its initial response is base64 on the command line, never a literal).
- Every attempt consults the shared throttle first (delay, or refuse outright) and records
  its outcome, so guessing is slow on every replica. After MAX_AUTH_FAILURES on one
  connection, the connection is closed.
- STARTTLS is only valid before login (the dispatcher's state check), and bytes the client
  pipelined after it are discarded by Connection.start_tls (RFC 9051 §6.2.1).
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

import gevent

from relate.imapd import commands as c
from relate.imapd.responses import ANSWERED, Bad, Done, No, tagged
from relate.imapd.state import Enabled
from relate.protocol import limits, sasl
from relate.store import keys, throttle

if TYPE_CHECKING:
    from relate.imapd.session import Session

MAX_AUTH_FAILURES = 3  # per connection; then BYE
MAX_SASL_LINE = 16 * 1024  # a SASL response line (relate.protocol.sasl bounds the decoded size)


class UserSessions:
    """Authenticated sessions per user, capped at Imap__MaxConnectionsPerUser: counted in this
    process, or across the daemon's workers with `counts` (relate.protocol.limits)."""

    def __init__(self, limit: int, counts: limits.SharedCounts | None = None) -> None:
        self.limit = limit
        # By user id: the sessions counted in this process (with `counts`: those the shared
        # table had no room for, which must not be taken off another session's count there).
        self._counts: Counter[int] = Counter()
        self._shared = counts

    def acquire(self, user_id: int) -> bool:
        shared = self._shared
        if shared is not None:
            key = limits.user_key(user_id)
            with shared.locked():
                if shared.count(key) >= self.limit:
                    return False
                if not shared.add(key):  # a full table: admitted uncounted, and never uncounted
                    self._counts[user_id] += 1
            return True
        if self._counts[user_id] >= self.limit:
            return False
        self._counts[user_id] += 1
        return True

    def release(self, user_id: int) -> None:
        shared = self._shared
        if shared is not None:
            if self._counts[user_id] > 0:  # one of this user's sessions the full table did not count
                self._counts[user_id] -= 1
                if not self._counts[user_id]:
                    del self._counts[user_id]
                return
            with shared.locked():
                shared.remove(limits.user_key(user_id))
            return
        self._counts[user_id] -= 1
        if self._counts[user_id] <= 0:
            del self._counts[user_id]


def starttls(session: Session, command: c.StartTls) -> Done | None:
    conn = session.conn
    if conn.tls:
        raise Bad("TLS is already active")
    if conn.ssl_context is None:
        raise No("TLS is not available on this port")
    session.send(tagged(session.tag, "OK", "begin TLS negotiation now"))
    session.flush()
    conn.start_tls()  # discards whatever was pipelined after the command
    session.enabled = Enabled()  # RFC 9051 §6.2.1: nothing learned before TLS carries over
    return ANSWERED


def login_refusal(session: Session) -> No | None:
    """The NO for a LOGIN on a connection that may not carry a password, else None.

    The session also asks before it sends "+" for a LOGIN literal (RFC 9051 §4.3, §7.5).
    """
    if session.plaintext_allowed:
        return None
    return No("use STARTTLS before logging in", "PRIVACYREQUIRED")


def login(session: Session, command: c.Login) -> Done | None:
    return _check_password(session, command.username, command.password)


def authenticate(session: Session, command: c.Authenticate) -> Done | None:
    """AUTHENTICATE PLAIN with or without an initial response (RFC 4959 SASL-IR)."""
    if command.mechanism != "PLAIN":
        raise No("unsupported authentication mechanism", "CANNOT")
    if not session.plaintext_allowed:
        raise No("use STARTTLS before authenticating", "PRIVACYREQUIRED")

    def ask(challenge: str) -> bytes:
        session.send(f"+ {challenge}\r\n".encode())
        session.flush()
        return session.conn.read_line(MAX_SASL_LINE, session.timeout).rstrip(b"\r\n")

    try:
        credentials = sasl.authenticate("PLAIN", command.initial_response, ask)
    except sasl.SaslCancelled:
        raise Bad("authentication cancelled") from None  # RFC 9051 §6.2.2
    except sasl.SaslError as exc:
        raise Bad(str(exc)) from None
    if credentials.authzid and credentials.authzid.lower() != credentials.username.lower():
        raise No("acting as another user is not supported", "AUTHORIZATIONFAILED")
    return _check_password(session, credentials.username, credentials.password)


def _check_password(session: Session, username: str, password: str) -> Done:
    refusal = login_refusal(session)
    if refusal is not None:
        raise refusal
    ip = session.conn.peer[0]
    verdict = throttle.check(ip, username)
    if verdict.delay:
        gevent.sleep(verdict.delay)
    result = None if verdict.blocked else keys.authenticate(username, password, "imap")
    if result is None:
        if not verdict.blocked:
            throttle.record_failure(ip, username)
        session.auth_failures += 1
        session.log.info("authentication failed for %r%s", username[:100], " (throttled)" if verdict.blocked else "")
        if session.auth_failures >= MAX_AUTH_FAILURES:
            session.closing = "too many authentication failures"
        raise No("invalid login name or key", "AUTHENTICATIONFAILED")
    throttle.record_success(username, verdict)
    if not session.sessions.acquire(result.user_id):
        session.log.info("refused %s: too many IMAP connections for this user", result.login)
        raise No("too many connections for this user", "LIMIT")
    session.login(result)
    return Done("logged in", f"CAPABILITY {session.capability_list()}")
