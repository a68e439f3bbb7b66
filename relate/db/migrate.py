"""Schema migrations (alembic), safe to run from several replicas at once.

On PostgreSQL a transaction-level advisory lock serialises concurrent `upgrade()` calls, so
replicas starting together never race; the second one finds the schema current and does
nothing.
"""

from __future__ import annotations

import logging
from pathlib import Path

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text

from alembic import command

log = logging.getLogger("relate.db")

ROOT = Path(__file__).resolve().parents[2]
MIGRATION_LOCK_ID = 0x52454C41  # "RELA": pg_advisory_xact_lock key for migrations


def alembic_config() -> Config:
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "alembic"))
    return cfg


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine) -> bool:
    """Bring the schema to head. Returns True when anything was applied."""
    cfg = alembic_config()
    head = head_revision()
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK_ID})
        current = MigrationContext.configure(conn).get_current_revision()
        if current == head:
            return False
        log.info("migrating database schema from %s to %s", current or "empty", head)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
        return True


def is_current(engine: Engine) -> bool:
    return current_revision(engine) == head_revision()
