"""Recipient look-ups for busy protocol daemons: many concurrent questions, one query.

`resolve_recipient(address)` answers what `accounts.resolve_recipient` answers — the user that
receives mail for a confirmed address in a hosted domain, or None — but the questions the
greenlets of this process ask at the same moment are gathered into one query, sent on a
connection the worker keeps, outside any transaction. Under load (every RCPT of every SMTP
session asks) that is one round trip for many recipients instead of four for each.

Invariants:
- Nothing is cached: every answer comes from a query that started after the question was
  asked, so a change committed before the RCPT is always seen.
- Addresses are normalised exactly as `accounts.normalise_address` does; one that cannot be
  normalised belongs to nobody, without a query.
- On SQLite (in-process, no round trips to save) this is `accounts.resolve_recipient`.
- A database failure reaches every waiting caller as `TemporaryFailure`.
- The query runs on the kept connection's DBAPI cursor (no SQLAlchemy statement handling per
  question); a connection that failed is invalidated, never handed back as if healthy.

`postmaster_addresses(admin_emails)` answers the rarer question of who receives postmaster
mail (RFC 5321 §4.5.1) for a hosted domain without a postmaster address of its own: one
receiving address of every administrator, asked afresh each time like the look-ups above.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import Any

import gevent
import gevent.event
import psycopg2
from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.exc import DBAPIError

from relate.db import get_engine
from relate.db.models import Address, Domain, User
from relate.store import accounts
from relate.store.errors import InvalidInput, TemporaryFailure
from relate.store.session import read

log = logging.getLogger("relate.store.lookups")

MAX_BATCH = 500  # addresses per query

_QUERY = (
    "SELECT a.address, a.user_id FROM addresses a JOIN domains d ON d.name = a.domain "
    "WHERE a.address = ANY(%(addresses)s) AND a.confirmed"
)


class RecipientLookups:
    """Gathers the recipient look-ups of this process into shared queries."""

    def __init__(self) -> None:
        self._waiting: dict[str, list[gevent.event.AsyncResult]] = {}
        self._wakeup = gevent.event.Event()
        self._worker: gevent.Greenlet | None = None
        self._conn: Any = None  # the worker's connection, kept between queries
        self._engine: Any = None  # the engine _conn came from
        self.queries = 0  # for tests

    def resolve(self, address: str) -> int | None:
        try:
            key = accounts.normalise_address(address)
        except InvalidInput:
            return None
        if get_engine().dialect.name != "postgresql":
            return accounts.resolve_recipient(key)
        result = gevent.event.AsyncResult()
        self._waiting.setdefault(key, []).append(result)
        self._wakeup.set()
        if self._worker is None or self._worker.dead:
            self._worker = gevent.spawn(self._run)
        answer: int | None = result.get()
        return answer

    def _run(self) -> None:
        try:
            self._serve()
        finally:  # killed: nobody may wait for an answer that will never come
            waiting, self._waiting = self._waiting, {}
            for results in waiting.values():
                for result in results:
                    result.set_exception(TemporaryFailure("recipient look-up interrupted"))
            self._close()

    def _serve(self) -> None:
        while True:
            if not self._waiting:
                self._wakeup.clear()
                self._wakeup.wait()
                continue
            keys = list(self._waiting)[:MAX_BATCH]
            waiting = {key: self._waiting.pop(key) for key in keys}
            try:
                owners = self._query(keys)
            except Exception as error:
                failure = error if isinstance(error, TemporaryFailure) else TemporaryFailure(str(error))
                for results in waiting.values():
                    for result in results:
                        result.set_exception(failure)
                continue
            for key, results in waiting.items():
                for result in results:
                    result.set(owners.get(key))

    def _query(self, keys: list[str]) -> dict[str, int]:
        for attempt in (1, 2):  # a connection that died while idle is replaced once
            try:
                if self._engine is not get_engine():
                    self._close()
                if self._conn is None:
                    self._engine = get_engine()
                    self._conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
                cursor = self._conn.connection.dbapi_connection.cursor()
                try:
                    cursor.execute(_QUERY, {"addresses": keys})
                    rows = cursor.fetchall()
                finally:
                    cursor.close()
                self.queries += 1
                return {address: int(user_id) for address, user_id in rows}
            except (DBAPIError, psycopg2.Error) as error:
                self._close(invalidate=True)
                broken = isinstance(error, psycopg2.OperationalError | psycopg2.InterfaceError) or (
                    isinstance(error, DBAPIError) and error.connection_invalidated
                )
                if attempt == 2 or not broken:
                    raise TemporaryFailure("recipient look-up failed") from error
        raise AssertionError("unreachable")

    def _close(self, *, invalidate: bool = False) -> None:
        if self._conn is not None:
            try:
                if invalidate:  # its state is in doubt: the pool must not hand it out again
                    self._conn.invalidate()
                self._conn.close()
            except Exception:
                log.debug("closing the look-up connection failed", exc_info=True)
            self._conn = None
            self._engine = None


_lookups: RecipientLookups | None = None


def resolve_recipient(address: str) -> int | None:
    """`accounts.resolve_recipient`, answered together with this process's concurrent look-ups."""
    global _lookups
    if _lookups is None:
        _lookups = RecipientLookups()
    return _lookups.resolve(address)


def postmaster_addresses(admin_emails: Collection[str]) -> list[str]:
    """One address at which each administrator receives mail, in user order.

    Administrators are the users flagged admin and those whose primary address is in
    `admin_emails` (Admin__Emails), as for the API. Each one's address is its primary address
    when that still receives mail (confirmed, in a hosted domain), else its first other
    address that does; an administrator with none is left out. Delivering to these addresses
    is the ordinary local delivery, so each administrator's filters apply as to any message.
    """
    emails = sorted({email.lower() for email in admin_emails})
    admin: ColumnElement[bool] = User.is_admin.is_(True)
    if emails:
        admin = or_(admin, User.primary_address.in_(emails))
    with read() as s:
        rows = s.execute(
            select(User.id, User.primary_address, Address.address)
            .join(Address, Address.user_id == User.id)
            .join(Domain, Domain.name == Address.domain)
            .where(admin, Address.confirmed.is_(True))
            .order_by(User.id, Address.address)
        ).all()
    chosen: dict[int, str] = {}
    for user_id, primary, address in rows:
        if user_id not in chosen or address == primary:
            chosen[user_id] = address
    return list(chosen.values())
