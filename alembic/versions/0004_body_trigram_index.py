"""Trigram index for IMAP SEARCH BODY/TEXT substring matching on PostgreSQL.

IMAP SEARCH matches substrings ("voice" finds "invoice"), which the word index cannot serve.
relate.store.search matches `lower(search_text) LIKE '%value%'`; with the pg_trgm extension
PostgreSQL answers that from this GIN index. pg_trgm is a trusted extension (PostgreSQL 13
and later): the database owner may create it. Where it cannot be created the migration
leaves the index out and searches fall back to scanning the mailbox's bodies.

Revision ID: 0004_body_trigram_index
Revises: 0003_mailbox_counts
Create Date: 2026-11-28
"""

from __future__ import annotations

import logging

from alembic import op
from sqlalchemy.exc import DBAPIError

revision = "0004_body_trigram_index"
down_revision = "0003_mailbox_counts"
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    savepoint = bind.begin_nested()
    try:
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    except DBAPIError:
        savepoint.rollback()
        log.warning("pg_trgm is not available: IMAP body searches will scan instead of using an index")
        return
    savepoint.commit()
    op.execute(
        "CREATE INDEX IF NOT EXISTS ix_message_bodies_search_trgm ON message_bodies "
        "USING gin (lower(search_text) gin_trgm_ops)"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_message_bodies_search_trgm")
