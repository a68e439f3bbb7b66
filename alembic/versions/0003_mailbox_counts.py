"""Mailbox message and unseen counters kept by the database; an index for cross-mailbox listing.

The REST API shows every page of a mailbox with its total and unread counts. Counting 100,000
entries per request is too slow, so `mailboxes.message_count` and `mailboxes.unseen_count`
are maintained by triggers on `entries`, whatever code inserts, deletes or changes them
(delivery, APPEND, COPY, MOVE, EXPUNGE, flag changes, mailbox and user deletion):

- PostgreSQL: statement-level triggers with transition tables, so a bulk statement updates
  each mailbox row once (per-row updates of one row inside one transaction grow a version
  chain and get slower with every row).
- SQLite: row-level triggers.

Whoever writes a later migration: on SQLite, `batch_alter_table` on `entries` recreates the
table and drops its triggers; create them again (see `_SQLITE_TRIGGERS`). The store test
`test_resources_counts` compares the counters with COUNT(*) after every kind of change.

Revision ID: 0003_mailbox_counts
Revises: 0002_ratelimit_sessions
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_mailbox_counts"
down_revision = "0002_ratelimit_sessions"
branch_labels = None
depends_on = None

_BACKFILL = (
    "UPDATE mailboxes SET "
    "message_count = (SELECT count(*) FROM entries WHERE entries.mailbox_id = mailboxes.id), "
    "unseen_count = (SELECT count(*) FROM entries WHERE entries.mailbox_id = mailboxes.id AND NOT entries.seen)"
)

_PG_FUNCTIONS = {
    "relate_entries_inserted": """
        UPDATE mailboxes m SET message_count = m.message_count + d.n, unseen_count = m.unseen_count + d.u
        FROM (SELECT mailbox_id, count(*) AS n, count(*) FILTER (WHERE NOT seen) AS u
              FROM new_rows GROUP BY mailbox_id) d
        WHERE m.id = d.mailbox_id;
    """,
    "relate_entries_deleted": """
        UPDATE mailboxes m SET message_count = m.message_count - d.n, unseen_count = m.unseen_count - d.u
        FROM (SELECT mailbox_id, count(*) AS n, count(*) FILTER (WHERE NOT seen) AS u
              FROM old_rows GROUP BY mailbox_id) d
        WHERE m.id = d.mailbox_id;
    """,
    "relate_entries_updated": """
        UPDATE mailboxes m SET message_count = m.message_count + d.n, unseen_count = m.unseen_count + d.u
        FROM (SELECT mailbox_id, sum(n) AS n, sum(u) AS u FROM (
                  SELECT o.mailbox_id, -1 AS n, CASE WHEN o.seen THEN 0 ELSE -1 END AS u
                  FROM old_rows o JOIN new_rows w ON w.id = o.id
                  WHERE o.seen IS DISTINCT FROM w.seen OR o.mailbox_id IS DISTINCT FROM w.mailbox_id
                  UNION ALL
                  SELECT w.mailbox_id, 1, CASE WHEN w.seen THEN 0 ELSE 1 END
                  FROM old_rows o JOIN new_rows w ON w.id = o.id
                  WHERE o.seen IS DISTINCT FROM w.seen OR o.mailbox_id IS DISTINCT FROM w.mailbox_id
              ) x GROUP BY mailbox_id) d
        WHERE m.id = d.mailbox_id AND (d.n <> 0 OR d.u <> 0);
    """,
}
_PG_TRIGGERS = {
    "entries_counts_insert": ("INSERT", "NEW TABLE AS new_rows", "relate_entries_inserted"),
    "entries_counts_delete": ("DELETE", "OLD TABLE AS old_rows", "relate_entries_deleted"),
    "entries_counts_update": ("UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows", "relate_entries_updated"),
}

_SQLITE_TRIGGERS = {
    "entries_counts_insert": """
        CREATE TRIGGER entries_counts_insert AFTER INSERT ON entries BEGIN
            UPDATE mailboxes SET message_count = message_count + 1,
                unseen_count = unseen_count + (NOT NEW.seen) WHERE id = NEW.mailbox_id;
        END
    """,
    "entries_counts_delete": """
        CREATE TRIGGER entries_counts_delete AFTER DELETE ON entries BEGIN
            UPDATE mailboxes SET message_count = message_count - 1,
                unseen_count = unseen_count - (NOT OLD.seen) WHERE id = OLD.mailbox_id;
        END
    """,
    "entries_counts_update": """
        CREATE TRIGGER entries_counts_update AFTER UPDATE OF seen, mailbox_id ON entries
        WHEN OLD.seen IS NOT NEW.seen OR OLD.mailbox_id IS NOT NEW.mailbox_id BEGIN
            UPDATE mailboxes SET message_count = message_count - 1,
                unseen_count = unseen_count - (NOT OLD.seen) WHERE id = OLD.mailbox_id;
            UPDATE mailboxes SET message_count = message_count + 1,
                unseen_count = unseen_count + (NOT NEW.seen) WHERE id = NEW.mailbox_id;
        END
    """,
}


def upgrade() -> None:
    with op.batch_alter_table("mailboxes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("message_count", sa.BigInteger(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("unseen_count", sa.BigInteger(), nullable=False, server_default="0"))
    with op.batch_alter_table("entries", schema=None) as batch_op:
        batch_op.create_index("ix_entries_user_internal_date", ["user_id", "internal_date"], unique=False)

    if op.get_bind().dialect.name == "postgresql":
        for name, body in _PG_FUNCTIONS.items():
            op.execute(
                f"CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$\n"
                f"BEGIN\n{body}\nRETURN NULL;\nEND\n$$"
            )
        for name, (event, referencing, function) in _PG_TRIGGERS.items():
            op.execute(
                f"CREATE TRIGGER {name} AFTER {event} ON entries REFERENCING {referencing} "
                f"FOR EACH STATEMENT EXECUTE FUNCTION {function}()"
            )
    else:
        for ddl in _SQLITE_TRIGGERS.values():
            op.execute(ddl)
    op.execute(_BACKFILL)


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for name in _PG_TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {name} ON entries" if postgres else f"DROP TRIGGER IF EXISTS {name}")
    if postgres:
        for name in _PG_FUNCTIONS:
            op.execute(f"DROP FUNCTION IF EXISTS {name}()")
    with op.batch_alter_table("entries", schema=None) as batch_op:
        batch_op.drop_index("ix_entries_user_internal_date")
    with op.batch_alter_table("mailboxes", schema=None) as batch_op:
        batch_op.drop_column("unseen_count")
        batch_op.drop_column("message_count")
