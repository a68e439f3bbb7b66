"""Hot-path reads: one SQL statement on a pooled connection, outside any transaction, through
the DB-API cursor.

The REST API authenticates every request and lists or searches mail on most of them. Through
an ORM session each such read costs about ten times what the query itself costs in the
process (session and transaction set-up, cache keys, result processing) plus BEGIN and
ROLLBACK round trips. Here a statement is written once as a SQLAlchemy Core select against the
models, compiled once per dialect, and run as one round trip.

Invariants:
- Reads only. One `rows()` call is one statement and sees one snapshot, exactly what a
  statement inside a READ COMMITTED transaction sees; a caller that needs several values to
  agree asks for them in one statement.
- On PostgreSQL the statement runs in autocommit mode on a connection borrowed from the
  engine's pool (no BEGIN, no ROLLBACK) and the connection goes back in transaction mode.
  Values come as psycopg2 returns them: no SQLAlchemy type processing, so callers convert
  (`utc()` for timestamps; every hot statement casts JSON columns to text).
- On SQLite (the embedded single-process setup, where round trips cost nothing) the same
  statement runs through an ordinary read session, with SQLAlchemy's type processing.
- A connection that fails is discarded and the statement is tried once more on another one;
  a second failure is `TemporaryFailure`.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from typing import Any, overload

from sqlalchemy import Executable
from sqlalchemy.engine import Compiled, Engine

from relate.db import get_engine
from relate.store.errors import TemporaryFailure
from relate.store.session import pg_read, read

log = logging.getLogger("relate.store.rawread")


class Statement:
    """A Core statement whose SQL is compiled once per dialect. Its bind parameters are named
    (`bindparam("user_id")`), so one compiled form serves every call."""

    def __init__(self, statement: Executable):
        self.statement = statement
        self._compiled: dict[str, Compiled] = {}  # dialect name -> compiled form

    def compiled(self, engine: Engine) -> Compiled:
        name = engine.dialect.name
        found = self._compiled.get(name)
        if found is None:
            found = self.statement.compile(dialect=engine.dialect)  # type: ignore[attr-defined]
            self._compiled[name] = found
        return found


def rows(statement: Statement, params: Mapping[str, Any]) -> Sequence[Sequence[Any]]:
    """Every row `statement` returns for `params` (see the module's invariants)."""
    engine = get_engine()
    if engine.dialect.name != "postgresql":
        with read() as s:
            return list(s.execute(statement.statement, dict(params)))
    compiled = statement.compiled(engine)
    values = dict(compiled.construct_params(dict(params)) or {})  # adds the statement's own literals
    for attempt in (1, 2):
        try:
            return _run(compiled.string, values)
        except TemporaryFailure as exc:  # the connection was discarded: once more on another
            if attempt == 2:
                raise
            log.info("retrying a read on another connection: %s", exc.__cause__ or exc)
    raise AssertionError("unreachable")


def _run(sql: str, values: dict[str, Any]) -> list[Any]:
    with pg_read() as cursor:
        cursor.execute(sql, values)
        return list(cursor.fetchall())


@overload
def utc(value: dt.datetime) -> dt.datetime: ...


@overload
def utc(value: None) -> None: ...


def utc(value: dt.datetime | None) -> dt.datetime | None:
    """A timestamp as an aware UTC datetime (what the models' UtcDateTime type gives)."""
    if value is None or value.tzinfo is dt.UTC:
        return value
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)
