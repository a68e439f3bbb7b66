"""Login: USER/PASS (RFC 1939 §7) and AUTH PLAIN (RFC 5034), ending in the maildrop lock.

Invariants:
- The login name is any confirmed address of the user, the password an API key with the
  `pop3` scope (relate.store.keys.authenticate); a failure never says which part was wrong.
- Without TLS a password is refused unless Tls__AllowInsecureAuth is set (RFC 2595 §4,
  RFC 8314 §5.1), before the client sends it where possible: USER and AUTH already fail.
- Every attempt goes through the shared throttle first: blocked logins get [LOGIN-DELAY]
  without the credentials being checked, suspicious ones are answered only after a delay.
- A user has one POP3 session at a time (RFC 1939 §8): a second gets [IN-USE].
- Neither the password nor any SASL response is ever logged.
"""

from __future__ import annotations

import time

import gevent

from relate import metrics
from relate.pop3d import wire
from relate.pop3d.errors import AUTH, IN_USE, LOGIN_DELAY, SYS_PERM, BadCommand, CloseConnection, Pop3Error
from relate.pop3d.maildrop import Maildrop
from relate.pop3d.state import Session, State
from relate.protocol import sasl
from relate.protocol.connection import Deadline, LineTooLong
from relate.store import NotFound, keys, locks, throttle

INSECURE = "plaintext authentication is not allowed without TLS; use STLS or port 995"
MECHANISMS = ("PLAIN",)  # RFC 5034 §3: what "SASL" in CAPA lists and AUTH accepts


def require_secure(session: Session) -> None:
    if not session.secure:
        raise Pop3Error(INSECURE, AUTH)


def user(session: Session, args: tuple[str, ...]) -> bytes:
    """USER name (RFC 1939 §7)."""
    require_secure(session)
    session.user_name = args[0]
    return wire.ok("send the API key with PASS")


def pass_(session: Session, args: tuple[str, ...]) -> bytes:
    """PASS secret (RFC 1939 §7): needs a preceding USER."""
    name, session.user_name = session.user_name, None
    if name is None:
        raise BadCommand("send USER first")
    require_secure(session)
    return login(session, name, args[0])


def auth(session: Session, args: tuple[str, ...]) -> bytes:
    """AUTH mechanism [initial-response] (RFC 5034 §4). Without arguments, lists the mechanisms
    as many clients expect (the RFC 1734 form)."""
    if not args:
        return wire.multiline("SASL mechanisms follow", list(MECHANISMS))
    mechanism = args[0].upper()
    if mechanism not in MECHANISMS:
        raise Pop3Error(f"unsupported mechanism; use one of {' '.join(MECHANISMS)}")
    require_secure(session)
    session.user_name = None
    limits = session.config.limits
    deadline = Deadline(limits.auth_timeout)

    def ask(challenge: str) -> bytes:
        # RFC 5034 §4: "+" SP base64 challenge; PLAIN's challenge is empty.
        session.conn.write(f"+ {challenge}\r\n".encode())
        try:
            return session.conn.read_line(limits.max_sasl_line, deadline.remaining())
        except LineTooLong:
            raise sasl.SaslError("response too long") from None

    try:
        credentials = sasl.authenticate(mechanism, args[1] if len(args) > 1 else None, ask)
    except sasl.SaslCancelled:
        raise Pop3Error("authentication cancelled") from None  # RFC 5034 §4: "*" cancels
    except sasl.SaslError as exc:
        raise BadCommand(str(exc)) from None
    if credentials.authzid and credentials.authzid.lower() != credentials.username.lower():
        raise Pop3Error("acting as another user is not supported", AUTH)
    return login(session, credentials.username, credentials.password)


def lock_maildrop(user_id: int, wait: float) -> locks.UserLock | None:
    """The maildrop lock, waiting up to `wait` seconds: a session that has just ended (a client
    that reconnects right after QUIT) may hold it a moment longer while its database session
    closes. A session that is really still running keeps it, and the caller answers [IN-USE]."""
    deadline = time.monotonic() + wait
    pause = 0.02
    while True:
        lock = locks.try_lock(locks.POP3_MAILDROP, user_id)
        if lock is not None or time.monotonic() + pause > deadline:
            return lock
        gevent.sleep(pause)
        pause *= 2


def login(session: Session, name: str, secret: str) -> bytes:
    """Check the credentials (throttled), lock the maildrop and enter TRANSACTION."""
    ip = session.conn.peer[0]
    verdict = throttle.check(ip, name)
    if verdict.blocked:
        session.log.info("login refused for %s: too many recent failures", name)
        raise Pop3Error("too many failed logins; try again later", LOGIN_DELAY)
    if verdict.delay:
        gevent.sleep(verdict.delay)
    result = keys.authenticate(name, secret, "pop3")
    if result is None:
        throttle.record_failure(ip, name)
        metrics.incr("pop3", "auth_failures")
        session.auth_failures += 1
        session.log.info("login failed for %s", name)
        if session.auth_failures >= session.config.limits.max_auth_failures:
            raise CloseConnection("authentication failed; too many failures, closing", AUTH)
        raise Pop3Error("authentication failed", AUTH)
    throttle.record_success(name)
    lock = lock_maildrop(result.user_id, session.config.limits.lock_wait)
    if lock is None:
        session.log.info("login as %s refused: maildrop in use", result.login)
        raise Pop3Error("maildrop already locked by another POP3 session", IN_USE)
    try:
        maildrop = Maildrop.open(result.user_id, session.config.limits, origin=session.conn.conn_id)
    except NotFound:
        lock.release()
        raise Pop3Error("this account has no INBOX", SYS_PERM) from None
    except BaseException:
        lock.release()
        raise
    maildrop.log = session.log
    session.auth, session.lock, session.maildrop = result, lock, maildrop
    session.state = State.TRANSACTION
    metrics.incr("pop3", "logins")
    count = len(maildrop.messages)
    session.log.info("logged in as %s (user %d), %d message(s)", result.login, result.user_id, count)
    return wire.ok(f"{result.login} has {count} message{'s' if count != 1 else ''}")
