"""What the migration tests share: an empty database of their own, one alembic step, and
mail stored the way an older schema took it.

The shared test databases stay at head; a migration test runs down and up on its own.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from alembic import command
from relate import store
from relate.db import migrate
from relate.message import ParsedMessage
from relate.store import messages
from tests.conftest import _admin_exec, _sqlalchemy_url, require_postgres


def fresh_postgres() -> Iterator[str]:
    """A new, empty PostgreSQL database (its URL), dropped afterwards."""
    dsn = require_postgres()
    name = f"relate_migrate_{uuid.uuid4().hex[:10]}"
    _admin_exec(dsn, f"CREATE DATABASE {name}")
    yield _sqlalchemy_url(dsn, name)
    store.close_store()
    _admin_exec(dsn, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(params=["sqlite", "postgres"])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of its own: a SQLite file, then a PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrations.db'}"
        store.close_store()
        return
    yield from fresh_postgres()


@pytest.fixture
def fresh_pg() -> Iterator[str]:
    yield from fresh_postgres()


def run_step(engine: Engine, step: str, revision: str) -> None:
    """alembic `step` ("upgrade" or "downgrade") to `revision` on `engine`."""
    cfg = migrate.alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        getattr(command, step)(cfg, revision)


@contextlib.contextmanager
def bodies_without_wire_size() -> Iterator[None]:
    """Store bodies as Relate Mail did below alembic 0009, without message_bodies.wire_size
    (for mail stored while a test has the schema below it). APPEND then takes its SQLAlchemy
    path on PostgreSQL too, whose INSERT names only the row's columns."""
    full_row = messages.body_row

    def old_row(raw: bytes, parsed: ParsedMessage, now: dt.datetime) -> dict[str, object]:
        row = full_row(raw, parsed, now)
        del row["wire_size"]
        return row

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(messages, "body_row", old_row)
        patch.setattr(messages, "bare_cursors", lambda: False)
        yield
