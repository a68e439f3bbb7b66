"""AUTH (RFC 4954): PLAIN and LOGIN with an `smtp`-scoped API key, on submission only.

Invariants:
- Offered and accepted only over TLS, unless Tls__AllowInsecureAuth is set (RFC 4954 §4
  leaves this to policy; sending a key in the clear is never the default).
- The login is any confirmed address of the key's owner; acting for another user (an
  authzid naming someone else) is refused like a bad password.
- Every attempt asks the shared throttle first: its delay is served before the answer, and
  a blocked IP or login is refused without the key being checked. Failures are recorded
  per IP and per login in the database, so every replica counts them.
- Neither the AUTH line's argument nor any answer to a 334 challenge is ever logged.
"""

from __future__ import annotations

import gevent

from relate import store
from relate.protocol import sasl
from relate.protocol.connection import LineTooLong
from relate.smtpd import replies
from relate.smtpd.command import MAX_AUTH_LINE, parse_auth
from relate.smtpd.replies import SmtpError
from relate.smtpd.state import Session
from relate.store import keys, throttle

SCOPE = "smtp"


def auth(session: Session, arg: str) -> None:
    """AUTH mechanism [initial-response]."""
    if not session.auth_offered:
        raise SmtpError(replies.ENCRYPTION_REQUIRED_FOR_AUTH)
    command = parse_auth(arg)
    if command.mechanism not in sasl.MECHANISMS:
        raise SmtpError(replies.UNRECOGNIZED_AUTH_MECHANISM)

    def ask(challenge: str) -> bytes:
        session.reply(replies.AUTH_CHALLENGE, challenge=challenge)
        session.flush()
        try:
            return session.conn.read_line(MAX_AUTH_LINE, session.listening.timeouts.sasl)
        except LineTooLong:
            raise SmtpError(replies.AUTH_LINE_TOO_LONG) from None

    login: str | None = None
    secret = ""
    try:
        credentials = sasl.authenticate(command.mechanism, command.initial_response, ask)
        if not credentials.authzid or credentials.authzid.lower() == credentials.username.lower():
            login, secret = credentials.username, credentials.password
        else:
            login = credentials.username  # acting for someone else: refused below, counted
    except sasl.SaslCancelled:
        raise SmtpError(replies.AUTH_CANCELLED) from None
    except sasl.SaslError as error:
        if "base64" in str(error):
            raise SmtpError(replies.AUTH_BAD_BASE64) from None
        # A malformed exchange counts as a failed attempt from this IP.
    try:
        _check(session, login, secret)
    except store.TemporaryFailure:
        raise SmtpError(replies.AUTH_TEMPORARY_FAILURE) from None


def _check(session: Session, login: str | None, secret: str) -> None:
    ip = session.ip
    verdict = throttle.check(ip, login)
    if verdict.delay:
        gevent.sleep(verdict.delay)
    if verdict.blocked:
        session.conn.log.warning("AUTH refused: too many failures from this client or for this login")
        raise SmtpError(replies.AUTH_TEMPORARY_FAILURE)
    result = keys.authenticate(login, secret, SCOPE) if login and secret else None
    if result is None:
        throttle.record_failure(ip, login)
        session.conn.log.info("AUTH failed for %s", login or "(malformed exchange)")
        raise SmtpError(replies.BAD_CREDENTIALS)
    throttle.record_success(result.login)
    session.auth = result
    session.conn.log.info("authenticated as %s (user %d, key %d)", result.login, result.user_id, result.key_id)
    session.reply(replies.AUTH_SUCCESS)
