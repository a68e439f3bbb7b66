"""Each body carries its POP3 size, so STAT and LIST read no message.

`message_bodies.wire_size` is the length of the body's wire form (relate.message.crlf): the
stored octets with every bare LF counted as CRLF and a CRLF after a last line without one,
exactly what POP3 reports for it (RFC 1939 §5). Every insert of a body fills it; before,
a POP3 session read every body of the maildrop at its first STAT or LIST.

Upgrade adds the column as NULL with no default: on PostgreSQL that only changes the
catalogue and on SQLite the table's definition, so no stored row is read or rewritten,
however many there are. Bodies stored before keep NULL until POP3 first reads them, computes
their size and writes it back (relate.store.pop3.store_wire_sizes).

Downgrade drops the column (on SQLite with its own ALTER TABLE ... DROP COLUMN, 3.35 and
later, never by recreating the table, see 0005); the sizes are computed again after the
next upgrade.

Revision ID: 0009_body_wire_size
Revises: 0008_entries_body_cover
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op

revision = "0009_body_wire_size"
down_revision = "0008_entries_body_cover"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("message_bodies", sa.Column("wire_size", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE message_bodies DROP COLUMN wire_size")
    else:
        op.drop_column("message_bodies", "wire_size")
