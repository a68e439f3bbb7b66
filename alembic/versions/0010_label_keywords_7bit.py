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
  and that shows as the same name is merged into that one: its row goes, and its messages and
  filters carry the keyword they share.
- Two different names whose forms differ only in case (modified UTF-7's BASE64 has both
  cases, IMAP keywords ignore case: 模 is `&aiE-`, 梁 is `&aIE-`) are never merged: the one
  met second (labels first, by id, then entries) keeps its raw keyword, as a too-long one
  does. The decision is made once per user, so a label, its messages and its filters agree.
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

from relate.message.mutf7 import mutf7_decode, mutf7_encode

revision = "0010_label_keywords_7bit"
down_revision = "0009_body_wire_size"
branch_labels = None
depends_on = None

MAX_KEYWORD_LEN = 200  # relate.store.messages.MAX_KEYWORD_LEN, String(200) of labels.name

# Entries with a non-ASCII keyword: on PostgreSQL (UTF8) a non-ASCII character is more than
# one octet (most entries have no keyword at all, and are not turned into text); SQLite
# counts a text's characters and its blob's bytes.
_PG_ENTRIES = (
    "SELECT id, mailbox_id, user_id, keywords::text FROM entries WHERE keywords <> '[]'::jsonb "
    "AND octet_length(keywords::text) <> length(keywords::text) ORDER BY mailbox_id, id"
)
_SQLITE_ENTRIES = (
    "SELECT DISTINCT e.id, e.mailbox_id, e.user_id, e.keywords FROM entries e, json_each(e.keywords) k "
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


def _shown(keyword: str) -> str:
    """The label name a keyword shows as: the non-ASCII name an ASCII keyword is the exact
    modified UTF-7 form of, else the keyword. A copy of relate.store.labels.name_of as it is
    at this revision: a migration must not change when the store's code does later."""
    if "&" not in keyword or not keyword.isascii():
        return keyword
    try:
        name = mutf7_decode(keyword.encode("ascii"))
    except ValueError:
        return keyword
    return name if not name.isascii() and _seven_bit(name) == keyword else keyword


class _User:
    """One user's keywords as this revision rewrites them: each raw keyword's new form, decided
    once, and the forms taken (lower case -> the name each shows as)."""

    def __init__(self) -> None:
        self.taken: dict[str, str] = {}
        self.decided: dict[str, str] = {}

    def rewrite(self, keyword: str) -> str:
        """The 7-bit form of `keyword`, unless that differs only in case from the form of
        another name (then it stays as it is rather than merge two names)."""
        if keyword in self.decided:
            return self.decided[keyword]
        new = _seven_bit(keyword)
        other = self.taken.get(new.lower())
        if other is not None and other.lower() != _shown(keyword).lower():
            new = keyword
        self.decided[keyword] = new
        self.taken.setdefault(new.lower(), _shown(keyword))
        return new


def _keywords(stored: list[str], user: _User) -> list[str]:
    out: dict[str, str] = {}
    for keyword in stored:
        new = user.rewrite(keyword)
        out.setdefault(new.lower(), new)
    return sorted(out.values(), key=str.lower)


def _json_param(postgres: bool) -> str:
    return "CAST(:value AS jsonb)" if postgres else ":value"


def _rewrite_labels(conn: sa.Connection, users: dict[int, _User]) -> None:
    rows = conn.execute(sa.text("SELECT id, user_id, name FROM labels ORDER BY id")).all()
    held: dict[int, set[str]] = defaultdict(set)  # user id -> keywords of the labels kept, lower case
    for _, user_id, name in rows:  # ASCII keywords stay as they are, so they are taken first
        if name.isascii():
            users[user_id].rewrite(name)
            held[user_id].add(name.lower())
    for label_id, user_id, name in rows:
        if name.isascii():
            continue
        new = users[user_id].rewrite(name)
        if new.lower() in held[user_id]:  # a label that shows as the same name has this keyword
            conn.execute(sa.text("DELETE FROM labels WHERE id = :id"), {"id": label_id})
            continue
        if new != name:
            conn.execute(sa.text("UPDATE labels SET name = :name WHERE id = :id"), {"id": label_id, "name": new})
        held[user_id].add(new.lower())


def _rewrite_entries(conn: sa.Connection, postgres: bool, users: dict[int, _User]) -> None:
    by_mailbox: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for entry_id, mailbox_id, user_id, stored in conn.execute(sa.text(_PG_ENTRIES if postgres else _SQLITE_ENTRIES)):
        old = json.loads(stored)
        if not isinstance(old, list) or not all(isinstance(k, str) for k in old):
            continue  # not a list of keywords: not this revision's to repair
        new = _keywords(old, users[user_id])
        if new != old:
            by_mailbox[mailbox_id].append({"id": entry_id, "value": json.dumps(new)})
    bump = sa.text("UPDATE mailboxes SET highest_modseq = highest_modseq + 1 WHERE id = :id "
                   "RETURNING highest_modseq")
    write = sa.text(f"UPDATE entries SET keywords = {_json_param(postgres)}, modseq = :modseq WHERE id = :id")
    for mailbox_id in sorted(by_mailbox):
        modseq = conn.execute(bump, {"id": mailbox_id}).scalar_one()
        conn.execute(write, [{**row, "modseq": modseq} for row in by_mailbox[mailbox_id]])


def _rewrite_filters(conn: sa.Connection, postgres: bool, users: dict[int, _User]) -> None:
    rows = sa.text("SELECT id, user_id, actions::text FROM filters" if postgres
                   else "SELECT id, user_id, actions FROM filters")
    write = sa.text(f"UPDATE filters SET actions = {_json_param(postgres)} WHERE id = :id")
    for filter_id, user_id, stored in conn.execute(rows):
        actions = json.loads(stored)
        label = actions.get("addLabel") if isinstance(actions, dict) else None
        if isinstance(label, str) and not label.isascii():
            new = users[user_id].rewrite(label)
            if new != label:
                conn.execute(write, {"id": filter_id, "value": json.dumps({**actions, "addLabel": new})})


def upgrade() -> None:
    conn = op.get_bind()
    postgres = conn.dialect.name == "postgresql"
    users: dict[int, _User] = defaultdict(_User)
    _rewrite_labels(conn, users)  # labels decide first: their messages and filters follow them
    _rewrite_entries(conn, postgres, users)
    _rewrite_filters(conn, postgres, users)


def downgrade() -> None:
    pass  # see the module's docstring
