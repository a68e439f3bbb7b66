"""Search documents are computed after delivery, not inside its commit.

`message_bodies.indexed` says whether a body's search documents are in the two GIN indexes
(the full-text document of 0001, the trigrams of lower(search_text) of 0004). On PostgreSQL
both become partial indexes `WHERE indexed`, so inserting a body (indexed = false, the
column's default for new rows) computes neither document; relate.store.searchindex marks
bodies indexed afterwards, and that UPDATE is where PostgreSQL computes them. A third, small
partial index lists the bodies still waiting (`WHERE NOT indexed`), for the indexer and for
the searches, which match those bodies by computing the expressions on the fly
(relate.store.search).

Upgrade, PostgreSQL:
- The column is added with DEFAULT true and NOT NULL, which since PostgreSQL 11 only records
  the default in the catalogue (no table rewrite, no row touched): every existing body reads
  as indexed, which it is. The default then becomes false, for new rows only.
- The partial indexes are built before the full ones are dropped (both documents are
  computed once for every stored body, as when 0001 and 0004 built them; on a large store
  this takes a while, during which deliveries wait for the table lock).
- Without pg_trgm (see 0004) there is no trigram index before or after.

SQLite has none of these indexes: there the column is added with a default of true for old
and new rows alike (nothing is ever waiting), and nothing reads it.

Downgrade rebuilds the full indexes (over every body, indexed or not), then drops the partial
ones and the column.

Revision ID: 0006_deferred_search_index
Revises: 0005_subscriptions
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op

revision = "0006_deferred_search_index"
down_revision = "0005_subscriptions"
branch_labels = None
depends_on = None

_DOCUMENT = (
    "to_tsvector('simple', coalesce(subject, '') || ' ' || coalesce(from_address, '') || ' ' || "
    "coalesce(from_display, '') || ' ' || coalesce(to_text, '') || ' ' || coalesce(search_text, ''))"
)


def _has_trigram_index() -> bool:
    found = op.get_bind().execute(sa.text("SELECT 1 FROM pg_indexes WHERE indexname = 'ix_message_bodies_search_trgm'"))
    return found.first() is not None


def upgrade() -> None:
    op.add_column("message_bodies", sa.Column("indexed", sa.Boolean(), nullable=False, server_default=sa.true()))
    if op.get_bind().dialect.name != "postgresql":
        return
    op.alter_column("message_bodies", "indexed", server_default=sa.false())
    op.execute(f"CREATE INDEX ix_message_bodies_fts_indexed ON message_bodies USING gin ({_DOCUMENT}) WHERE indexed")
    if _has_trigram_index():
        op.execute(
            "CREATE INDEX ix_message_bodies_trgm_indexed ON message_bodies "
            "USING gin (lower(search_text) gin_trgm_ops) WHERE indexed"
        )
        op.execute("DROP INDEX ix_message_bodies_search_trgm")
    op.execute("DROP INDEX ix_message_bodies_fts")
    op.execute("CREATE INDEX ix_message_bodies_unindexed ON message_bodies (id) WHERE NOT indexed")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"CREATE INDEX ix_message_bodies_fts ON message_bodies USING gin ({_DOCUMENT})")
        trigrams = op.get_bind().execute(
            sa.text("SELECT 1 FROM pg_indexes WHERE indexname = 'ix_message_bodies_trgm_indexed'")
        ).first()
        if trigrams is not None:
            op.execute(
                "CREATE INDEX ix_message_bodies_search_trgm ON message_bodies "
                "USING gin (lower(search_text) gin_trgm_ops)"
            )
            op.execute("DROP INDEX ix_message_bodies_trgm_indexed")
        op.execute("DROP INDEX ix_message_bodies_fts_indexed")
        op.execute("DROP INDEX ix_message_bodies_unindexed")
        op.drop_column("message_bodies", "indexed")
    else:
        op.execute("ALTER TABLE message_bodies DROP COLUMN indexed")
