"""The authentication-failure throttle every protocol and the API share.

Failures are rows in the database keyed by peer IP and by login name, so every process and
replica sees the same counts. Within WINDOW: after FREE_FAILURES failures a key's answers
are delayed, doubling up to MAX_DELAY; after BLOCK_FAILURES it is refused outright until the
window passes. A success clears the login's (not the IP's) failures; a caller that passes the
verdict of its check skips that write when the check counted none (a failure recorded between
the check and the success then stays, and counts, until the window passes).

On PostgreSQL the check and the clearing are one statement each on a bare cursor in autocommit
mode (relate.store.session.pg_read): one round trip each, no ORM session, no BEGIN or COMMIT.
Both are single statements, so autocommit changes nothing they see or do.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import delete, func, insert, select

from relate.db import get_engine
from relate.db.models import AuthFailure
from relate.store.session import pg_read, read, transaction
from relate.store.sql import rowcount

WINDOW = dt.timedelta(minutes=15)
FREE_FAILURES = 3
MAX_DELAY = 8.0  # seconds
BLOCK_FAILURES_PER_LOGIN = 10
BLOCK_FAILURES_PER_IP = 30


@dataclass(frozen=True)
class Verdict:
    delay: float  # seconds to wait before answering this attempt
    blocked: bool  # refuse without checking the credentials
    login_failures: int = 0  # the login's failures in the window, as counted by check()


def _keys(ip: str, login: str | None) -> list[str]:
    keys = [f"ip:{ip}"]
    if login:
        keys.append(f"login:{login.strip().lower()[:320]}")
    return keys


def _postgres() -> bool:
    return get_engine().dialect.name == "postgresql"


def _counts(keys: list[str], since: dt.datetime) -> dict[str, int]:
    """Failures per key since `since`, in one statement."""
    if _postgres():
        with pg_read() as cursor:
            cursor.execute("SELECT key, count(*) FROM auth_failures WHERE key = ANY(%s) AND at >= %s GROUP BY key",
                           (keys, since))
            return {key: int(n) for key, n in cursor.fetchall()}
    with read() as s:
        rows = s.execute(
            select(AuthFailure.key, func.count(AuthFailure.id))
            .where(AuthFailure.key.in_(keys), AuthFailure.at >= since)
            .group_by(AuthFailure.key)
        ).all()
        return {key: int(n) for key, n in rows}


def check(ip: str, login: str | None) -> Verdict:
    counts = _counts(_keys(ip, login), dt.datetime.now(dt.UTC) - WINDOW)
    per_ip = counts.get(f"ip:{ip}", 0)
    per_login = max((n for k, n in counts.items() if k.startswith("login:")), default=0)
    blocked = per_ip >= BLOCK_FAILURES_PER_IP or per_login >= BLOCK_FAILURES_PER_LOGIN
    worst = max(per_ip, per_login)
    delay = 0.0 if worst < FREE_FAILURES else min(MAX_DELAY, 0.5 * 2 ** (worst - FREE_FAILURES))
    return Verdict(delay, blocked, per_login)


def record_failure(ip: str, login: str | None) -> None:
    now = dt.datetime.now(dt.UTC)
    keys = _keys(ip, login)
    with transaction() as t:
        t.s.execute(delete(AuthFailure).where(AuthFailure.key.in_(keys), AuthFailure.at < now - WINDOW))
        t.s.execute(insert(AuthFailure), [{"key": k, "at": now} for k in keys])


def record_success(login: str, verdict: Verdict | None = None) -> None:
    """Clear the login's failures (nothing to do when `verdict`, its check, counted none)."""
    if verdict is not None and not verdict.login_failures:
        return
    key = f"login:{login.strip().lower()[:320]}"
    if _postgres():
        with pg_read() as cursor:  # one statement: atomic in autocommit mode
            cursor.execute("DELETE FROM auth_failures WHERE key = %s", (key,))
        return
    with transaction() as t:
        t.s.execute(delete(AuthFailure).where(AuthFailure.key == key))


def purge() -> int:
    """Drop failures older than the window (periodic maintenance)."""
    with transaction() as t:
        result = t.s.execute(delete(AuthFailure).where(AuthFailure.at < dt.datetime.now(dt.UTC) - WINDOW))
        return rowcount(result)
