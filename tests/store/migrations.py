"""What the migration tests share: an empty database of their own and one alembic step.

The shared test databases stay at head; a migration test runs down and up on its own.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from alembic import command
from relate import store
from relate.db import migrate
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
