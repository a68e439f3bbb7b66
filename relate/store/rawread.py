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
- A statement marked `prepared` runs on PostgreSQL as a named prepared statement with a
  generic plan: planned once per connection, not on every call (planning a page of a
  mailbox costs PostgreSQL more than running it). Only statements whose best plan does not
  depend on their parameter values qualify: a lookup by a unique key, a page of one mailbox in
  index order. Parameters named in `literals` (LIMIT, OFFSET) are written into the SQL text
  instead, so the planner sees them; each set of their values is a statement of its own.
  The names prepared on a connection are remembered with it (at most MAX_PREPARED, least
  recently used first out); a connection whose state is unknown (new, or after a failed
  statement) starts with DEALLOCATE ALL, so a name is never prepared twice or used unprepared.
  A connection that lost its prepared statements behind this module's back (DISCARD ALL) is
  told so by PostgreSQL (26000), and the statement is prepared again, once.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import re
import weakref
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any, overload

from psycopg2 import extensions
from sqlalchemy import Executable
from sqlalchemy.engine import Compiled, Engine

from relate.db import get_engine
from relate.store.errors import TemporaryFailure
from relate.store.session import pg_read, preparable, read

log = logging.getLogger("relate.store.rawread")

MAX_PREPARED = 32  # prepared statements kept on one connection
UNKNOWN_STATEMENT = "26000"  # invalid_sql_statement_name: no prepared statement of that name
# Runs a prepared statement with its generic plan, for this message only (SET LOCAL lasts
# until the implicit transaction of a multi-statement message ends).
GENERIC_PLAN = "SET LOCAL plan_cache_mode = force_generic_plan; "
_PYFORMAT = re.compile(r"%\(([^)]+)\)s")
_serials = itertools.count(1)


class _Prepared:
    """A statement's PostgreSQL text with `$n` parameters (and `{name}` slots for its literals)."""

    def __init__(self, compiled: Compiled, literals: tuple[str, ...]):
        self.order: list[str] = []  # parameter names, $1 first

        def number(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in literals:
                return "{" + name + "}"
            if name not in self.order:
                self.order.append(name)
            return f"${self.order.index(name) + 1}"

        sql = compiled.string.replace("{", "{{").replace("}", "}}")
        self.template = _PYFORMAT.sub(number, sql).replace("%%", "%")
        self.execute = "EXECUTE {name}(" + ", ".join(["%s"] * len(self.order)) + ")" if self.order else "EXECUTE {name}"


class Statement:
    """A Core statement whose SQL is compiled once per dialect. Its bind parameters are named
    (`bindparam("user_id")`), so one compiled form serves every call. With `prepared`, it runs
    as a prepared statement on PostgreSQL, `literals` (integer parameters) written into its
    text: see the module's invariants for which statements qualify."""

    def __init__(self, statement: Executable, *, prepared: bool = False, literals: tuple[str, ...] = ()):
        self.statement = statement
        self.prepared = prepared
        self.literals = literals
        self.serial = next(_serials)  # names its prepared forms: relate_<serial>[_<literal>...]
        self._compiled: dict[str, Compiled] = {}  # dialect name -> compiled form
        self._pg: _Prepared | None = None

    def compiled(self, engine: Engine) -> Compiled:
        name = engine.dialect.name
        found = self._compiled.get(name)
        if found is None:
            found = self.statement.compile(dialect=engine.dialect)  # type: ignore[attr-defined]
            self._compiled[name] = found
        return found

    def pg_prepared(self, compiled: Compiled) -> _Prepared:
        if self._pg is None:
            self._pg = _Prepared(compiled, self.literals)
        return self._pg


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
            if statement.prepared and preparable(values):
                return _run_prepared(statement, compiled, values)
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


# psycopg2 connection -> names prepared on it, least recently used first. A connection that
# is not here is in an unknown state (see the module's invariants).
_prepared_on: weakref.WeakKeyDictionary[Any, OrderedDict[str, None]] = weakref.WeakKeyDictionary()


def _literal(name: str, value: Any) -> str:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an integer to be written into a statement, not {value!r}")
    return str(value)


def _run_prepared(statement: Statement, compiled: Compiled, values: dict[str, Any]) -> list[Any]:
    form = statement.pg_prepared(compiled)
    literals = {n: _literal(n, values[n]) for n in statement.literals}
    name = "_".join([f"relate_{statement.serial}", *(v.replace("-", "m") for v in literals.values())])
    try:
        return _execute_prepared(form, name, literals, values)
    except Exception as exc:
        if getattr(exc, "pgcode", None) != UNKNOWN_STATEMENT:
            raise
        log.info("prepared statements were dropped on a connection; preparing again")
        return _execute_prepared(form, name, literals, values)


def _execute_prepared(form: _Prepared, name: str, literals: dict[str, str], values: dict[str, Any]) -> list[Any]:
    with pg_read() as cursor:
        conn = cursor.connection
        known = _prepared_on.pop(conn, None)  # back when the message succeeds
        message: list[str] = []
        if known is None:
            known = OrderedDict()
            message.append("DEALLOCATE ALL; ")
        if name in known:
            known.move_to_end(name)
        else:
            while len(known) >= MAX_PREPARED:
                message.append(f"DEALLOCATE {known.popitem(last=False)[0]}; ")
            message.append(f"PREPARE {name} AS {form.template.format(**literals)}; ")
            known[name] = None
        message.append(GENERIC_PLAN)
        codec = extensions.encodings.get(conn.encoding, "utf-8")
        execute = form.execute.format(name=name)
        arguments = cursor.mogrify(execute, [values[n] for n in form.order]) if form.order else execute.encode(codec)
        cursor.execute("".join(message).encode(codec) + arguments)  # as bytes: no % formatting
        found = list(cursor.fetchall())
        _prepared_on[conn] = known
        return found


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
