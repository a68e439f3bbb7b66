"""A search reads the entries of its matching bodies from the index alone (PostgreSQL).

A text search finds the matching bodies through the GIN index, then each body's entries
through `ix_entries_body_id`, to keep the user's, order them by date and count the unread
ones: one visit to the entries table per match (hundreds to thousands per search). The index
now carries those columns (`INCLUDE (user_id, internal_date, id, seen)`), so the entries are
read in an index-only scan. Updates of `seen` could not be HOT before either (the column is in
`ix_entries_user_unseen`), so writes pay nothing new but the wider index entry.

SQLite has no INCLUDE: its index stays as it was.

Revision ID: 0008_entries_body_cover
Revises: 0007_entries_page_index
Create Date: 2026-11-28
"""

from __future__ import annotations

from alembic import op

revision = "0008_entries_body_cover"
down_revision = "0007_entries_page_index"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP INDEX ix_entries_body_id")
    op.execute("CREATE INDEX ix_entries_body_id ON entries (body_id) INCLUDE (user_id, internal_date, id, seen)")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP INDEX ix_entries_body_id")
    op.execute("CREATE INDEX ix_entries_body_id ON entries (body_id)")
