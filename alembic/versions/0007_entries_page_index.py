"""Message lists walk one index in their own order and stop at the page.

A list is ordered by (internal_date, id), both ways. The indexes of 0001 and 0003 hold
(mailbox_id, internal_date) and (user_id, internal_date): PostgreSQL had to sort the entries
of each date again by id, and reached each entry's row to check its owner before it could skip
the rows before the page. The new indexes end with the id, so a page is the index read
backwards (or forwards) from its first row, and the mailbox index carries the owner
(`INCLUDE (user_id)`, PostgreSQL only), so the rows before the page are skipped without
reading the table (an index-only scan). Every query the old indexes served, the new ones
serve too, so the old ones are dropped.

Revision ID: 0007_entries_page_index
Revises: 0006_deferred_search_index
Create Date: 2026-11-28
"""

from __future__ import annotations

from alembic import op

revision = "0007_entries_page_index"
down_revision = "0006_deferred_search_index"
branch_labels = None
depends_on = None


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    include = " INCLUDE (user_id)" if postgres else ""
    op.execute(f"CREATE INDEX ix_entries_mailbox_date_id ON entries (mailbox_id, internal_date, id){include}")
    op.execute("CREATE INDEX ix_entries_user_date_id ON entries (user_id, internal_date, id)")
    op.execute("DROP INDEX ix_entries_mailbox_internal_date")
    op.execute("DROP INDEX ix_entries_user_internal_date")


def downgrade() -> None:
    op.execute("CREATE INDEX ix_entries_mailbox_internal_date ON entries (mailbox_id, internal_date)")
    op.execute("CREATE INDEX ix_entries_user_internal_date ON entries (user_id, internal_date)")
    op.execute("DROP INDEX ix_entries_mailbox_date_id")
    op.execute("DROP INDEX ix_entries_user_date_id")
