"""Keywords are 7-bit: a keyword stored as raw UTF-8 becomes its modified UTF-7 form.

Before this revision a label named with non-ASCII letters ("Büro") was put on its messages as
a keyword of those very letters, which IMAP cannot carry (RFC 9051 §9: flag-keyword is an
atom, 7-bit): clients were sent 8-bit octets in FLAGS and could neither STORE nor SEARCH the
keyword. A label's keyword is now its name in modified UTF-7 when the name is not ASCII
(relate.store.labels: "Büro" is `B&APw-ro`), and this revision rewrites what is stored to
match: every non-ASCII keyword of an entry, a label's keyword (`labels.name`) and a filter's
`addLabel`.

- The entries whose keywords change get a new MODSEQ, one per mailbox (its HIGHESTMODSEQ
  plus one), so CONDSTORE and QRESYNC clients fetch their flags again.
- Keywords that then compare equal without regard to case ("Büro" and "büro" become
  `B&APw-ro` and `b&APw-ro`) are kept once, the first in the entry's order, as the store
  keeps keywords (relate.store.messages.split_flags).
- A label whose new keyword another label of its user already has (without regard to case)
  is merged into that one: its row goes, and its messages and filters carry the keyword they
  share.
- A keyword whose modified UTF-7 form would be longer than MAX_KEYWORD_LEN (the store's limit
  and the width of `labels.name`) stays as it is, everywhere; the store reads such a keyword
  as the label name it spells.

Downgrade changes nothing: the code of the revisions before reads a 7-bit keyword as it is
(its API then shows `B&APw-ro` as the label's name), and writing raw UTF-8 back would bring
back keywords IMAP clients cannot use.

Revision ID: 0010_label_keywords_7bit
Revises: 0009_body_wire_size
Create Date: 2026-11-29
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

import sqlalchemy as sa
from alembic import op

from relate.message.mutf7 import mutf7_encode

revision = "0010_label_keywords_7bit"
down_revision = "0009_body_wire_size"
branch_labels = None
depends_on = None

MAX_KEYWORD_LEN = 200  # relate.store.messages.MAX_KEYWORD_LEN, String(200) of labels.name

# Entries with a non-ASCII keyword: on PostgreSQL (UTF8) a non-ASCII character is more than
# one octet (most entries have no keyword at all, and are not turned into text); SQLite
# counts a text's characters and its blob's bytes.
_PG_ENTRIES = (
    "SELECT id, mailbox_id, keywords::text FROM entries WHERE keywords <> '[]'::jsonb "
    "AND octet_length(keywords::text) <> length(keywords::text) ORDER BY mailbox_id, id"
)
_SQLITE_ENTRIES = (
    "SELECT DISTINCT e.id, e.mailbox_id, e.keywords FROM entries e, json_each(e.keywords) k "
    "WHERE k.type = 'text' AND length(CAST(k.value AS BLOB)) <> length(k.value) ORDER BY e.mailbox_id, e.id"
)


def _seven_bit(keyword: str) -> str:
    """The keyword as the store now writes it: raw UTF-8 becomes modified UTF-7, if it fits."""
    if keyword.isascii():
        return keyword
    try:
        encoded = mutf7_encode(keyword).decode("ascii")
    except UnicodeEncodeError:  # a lone surrogate: never stored, but not this revision's to fix
        return keyword
    return encoded if len(encoded) <= MAX_KEYWORD_LEN else keyword


def _keywords(stored: list[str]) -> list[str]:
    kept: dict[str, str] = {}
    for keyword in stored:
        new = _seven_bit(keyword)
        kept.setdefault(new.lower(), new)
    return sorted(kept.values(), key=str.lower)


def _json_param(postgres: bool) -> str:
    return "CAST(:value AS jsonb)" if postgres else ":value"


def _rewrite_entries(conn: sa.Connection, postgres: bool) -> None:
    by_mailbox: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for entry_id, mailbox_id, stored in conn.execute(sa.text(_PG_ENTRIES if postgres else _SQLITE_ENTRIES)):
        old = json.loads(stored)
        if not isinstance(old, list) or not all(isinstance(k, str) for k in old):
            continue  # not a list of keywords: not this revision's to repair
        new = _keywords(old)
        if new != old:
            by_mailbox[mailbox_id].append({"id": entry_id, "value": json.dumps(new)})
    bump = sa.text("UPDATE mailboxes SET highest_modseq = highest_modseq + 1 WHERE id = :id "
                   "RETURNING highest_modseq")
    write = sa.text(f"UPDATE entries SET keywords = {_json_param(postgres)}, modseq = :modseq WHERE id = :id")
    for mailbox_id in sorted(by_mailbox):
        modseq = conn.execute(bump, {"id": mailbox_id}).scalar_one()
        conn.execute(write, [{**row, "modseq": modseq} for row in by_mailbox[mailbox_id]])


def _rewrite_labels(conn: sa.Connection) -> None:
    taken: dict[int, set[str]] = defaultdict(set)  # user id -> keywords of the labels kept, lower case
    rows = conn.execute(sa.text("SELECT id, user_id, name FROM labels ORDER BY id")).all()
    for _, user_id, name in rows:
        taken[user_id].add(name.lower())
    for label_id, user_id, name in rows:
        new = _seven_bit(name)
        if new == name:
            continue
        taken[user_id].discard(name.lower())
        if new.lower() in taken[user_id]:
            conn.execute(sa.text("DELETE FROM labels WHERE id = :id"), {"id": label_id})
        else:
            conn.execute(sa.text("UPDATE labels SET name = :name WHERE id = :id"), {"id": label_id, "name": new})
            taken[user_id].add(new.lower())


def _rewrite_filters(conn: sa.Connection, postgres: bool) -> None:
    rows = sa.text("SELECT id, actions::text FROM filters" if postgres else "SELECT id, actions FROM filters")
    write = sa.text(f"UPDATE filters SET actions = {_json_param(postgres)} WHERE id = :id")
    for filter_id, stored in conn.execute(rows):
        actions = json.loads(stored)
        label = actions.get("addLabel") if isinstance(actions, dict) else None
        if isinstance(label, str) and _seven_bit(label) != label:
            conn.execute(write, {"id": filter_id, "value": json.dumps({**actions, "addLabel": _seven_bit(label)})})


def upgrade() -> None:
    conn = op.get_bind()
    postgres = conn.dialect.name == "postgresql"
    _rewrite_entries(conn, postgres)
    _rewrite_labels(conn)
    _rewrite_filters(conn, postgres)


def downgrade() -> None:
    pass  # see the module's docstring
