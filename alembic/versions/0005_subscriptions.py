"""Subscriptions are a per-user list of names, not a flag on the mailbox row.

RFC 9051 §6.3.7 (RFC 3501 §6.3.6): SUBSCRIBE may name a mailbox that does not exist, and the
server does not remove a name from the list because its mailbox was deleted. LIST
(SUBSCRIBED) and LSUB report such names (\\NonExistent in LIST-EXTENDED, RFC 5258 §3.4).
`subscriptions` holds (user_id, name); `mailboxes.subscribed` goes, and the store derives a
mailbox's flag from the list (relate.db.models.Mailbox.subscribed).

Upgrade copies every subscribed mailbox's name into the list. Downgrade sets the flag on the
mailboxes the list names; names of mailboxes that do not exist are lost.

On SQLite the column is dropped with SQLite's own ALTER TABLE ... DROP COLUMN (3.35 and
later), never by recreating `mailboxes`: with foreign keys on, dropping the old table would
cascade to its entries.

Revision ID: 0005_subscriptions
Revises: 0004_body_trigram_index
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op

revision = "0005_subscriptions"
down_revision = "0004_body_trigram_index"
branch_labels = None
depends_on = None

_COPY_FLAGS = "INSERT INTO subscriptions (user_id, name) SELECT user_id, name FROM mailboxes WHERE subscribed"
_RESTORE_FLAGS = (
    "UPDATE mailboxes SET subscribed = EXISTS (SELECT 1 FROM subscriptions "
    "WHERE subscriptions.user_id = mailboxes.user_id AND subscriptions.name = mailboxes.name)"
)


def _drop_subscribed_column() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE mailboxes DROP COLUMN subscribed")
    else:
        op.drop_column("mailboxes", "subscribed")


def upgrade() -> None:
    op.create_table(
        "subscriptions",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=1000), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_subscriptions_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", "name", name=op.f("pk_subscriptions")),
    )
    op.execute(_COPY_FLAGS)
    _drop_subscribed_column()


def downgrade() -> None:
    # A NOT NULL column needs a default to be added to existing rows; PostgreSQL then drops
    # it again, as 0001 created the column without one.
    op.add_column("mailboxes", sa.Column("subscribed", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.execute(_RESTORE_FLAGS)
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("mailboxes", "subscribed", server_default=None)
    op.drop_table("subscriptions")
