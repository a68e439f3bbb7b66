"""The authentication-failure throttle every protocol and the API share.

Failures are rows in the database keyed by peer IP and by login name, so every process and
replica sees the same counts. Within WINDOW: after FREE_FAILURES failures a key's answers
are delayed, doubling up to MAX_DELAY; after BLOCK_FAILURES it is refused outright until the
window passes. A success clears the login's (not the IP's) failures.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import delete, func, insert, select

from relate.db.models import AuthFailure
from relate.store.session import read, transaction
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


def _keys(ip: str, login: str | None) -> list[str]:
    keys = [f"ip:{ip}"]
    if login:
        keys.append(f"login:{login.strip().lower()[:320]}")
    return keys


def check(ip: str, login: str | None) -> Verdict:
    since = dt.datetime.now(dt.UTC) - WINDOW
    with read() as s:
        counts = dict(
            s.execute(
                select(AuthFailure.key, func.count(AuthFailure.id))
                .where(AuthFailure.key.in_(_keys(ip, login)), AuthFailure.at >= since)
                .group_by(AuthFailure.key)
            ).all()
        )
    per_ip = counts.get(f"ip:{ip}", 0)
    per_login = max((n for k, n in counts.items() if k.startswith("login:")), default=0)
    blocked = per_ip >= BLOCK_FAILURES_PER_IP or per_login >= BLOCK_FAILURES_PER_LOGIN
    worst = max(per_ip, per_login)
    delay = 0.0 if worst < FREE_FAILURES else min(MAX_DELAY, 0.5 * 2 ** (worst - FREE_FAILURES))
    return Verdict(delay, blocked)


def record_failure(ip: str, login: str | None) -> None:
    now = dt.datetime.now(dt.UTC)
    keys = _keys(ip, login)
    with transaction() as t:
        t.s.execute(delete(AuthFailure).where(AuthFailure.key.in_(keys), AuthFailure.at < now - WINDOW))
        t.s.execute(insert(AuthFailure), [{"key": k, "at": now} for k in keys])


def record_success(login: str) -> None:
    with transaction() as t:
        t.s.execute(delete(AuthFailure).where(AuthFailure.key == f"login:{login.strip().lower()[:320]}"))


def purge() -> int:
    """Drop failures older than the window (periodic maintenance)."""
    with transaction() as t:
        result = t.s.execute(delete(AuthFailure).where(AuthFailure.at < dt.datetime.now(dt.UTC) - WINDOW))
        return rowcount(result)
