"""Change events whose payload PostgreSQL fills in: the NOTIFY of a write sent as one message.

A write sent as one message (relate.store.session.pg_write) learns its UIDs, MODSEQ, mailbox
name and entry ids only inside its statement, so the statement itself builds and sends the
NOTIFY. The payload is `Change.to_json()` of the change written with marker values, cut at
the markers: the pieces go to PostgreSQL as parameters and the statement puts the real values
between them.

Invariants:
- The payload decodes to the change `Change.to_json()` writes (the mailbox name is
  JSON-escaped by PostgreSQL, which leaves non-ASCII characters unescaped where Python writes
  \\u escapes, and entries built with json_build_array have spaces after their commas: the
  same values once decoded, and the same bytes for ASCII names and changes without entries).
- As in `Change.to_json()`, a payload over NOTIFY_LIMIT bytes is replaced by the short form
  without UIDs and extra ("these contents changed; re-read them").
- Every marker occurs exactly once in the text it cuts (checked), so no user-supplied text
  (a subject, an origin) is ever taken for one; where one does contain a marker the short
  form is sent. The pieces are parameters, never SQL.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from relate.store.events import CHANNEL, NOTIFY_LIMIT, Change

MARK_UID = 9_007_199_254_740_881  # never a real UID, MODSEQ or id (2**53 - 111)
MARK_MODSEQ = 9_007_199_254_740_847
MARK_ID = 9_007_199_254_740_761
MARK_ENTRIES = 9_007_199_254_740_677
MARK_NAME = "\x01"  # never in a mailbox name (relate.store.mailboxes.normalise_name)

UIDS = f"[[{MARK_UID},{MARK_UID}]]"  # the "i" of a change with uids=(MARK_UID,)
MODSEQ = str(MARK_MODSEQ)
NAME = '"\\u0001"'  # json.dumps(MARK_NAME)
ID = str(MARK_ID)
ENTRIES = f"[{MARK_ENTRIES}]"  # the "e" of a change with entries=(MARK_ENTRIES,)


def uid_ranges(relation: str) -> str:
    """SQL: the UIDs of `relation` (a CTE with a `uid` column) as Change.to_json writes them,
    ascending runs `[[first,last],...]`."""
    return (
        "(SELECT '[' || string_agg('[' || lo || ',' || hi || ']', ',' ORDER BY lo) || ']' "
        "FROM (SELECT min(uid) AS lo, max(uid) AS hi FROM "
        f"(SELECT uid, uid - row_number() OVER (ORDER BY uid) AS run FROM {relation}) AS r GROUP BY run) AS q)"
    )


def id_list(relation: str) -> str:
    """SQL: the `id`s of `relation` as a JSON list, ascending."""
    return f"(SELECT '[' || string_agg(id::text, ',' ORDER BY id) || ']' FROM {relation})"


def _cut(text: str, fills: Sequence[tuple[str, str]], prefix: str, params: dict[str, Any]) -> str:
    """SQL concatenating the pieces of `text` between its markers with each marker's SQL."""
    for marker, _ in fills:
        if text.count(marker) != 1:
            raise ValueError(f"marker {marker} occurs {text.count(marker)} times")
    ordered = sorted(fills, key=lambda fill: text.index(fill[0]))
    parts: list[str] = []
    rest = text
    for i, (marker, sql) in enumerate(ordered):
        before, rest = rest.split(marker, 1)
        params[f"{prefix}{i}"] = before
        parts += [f"%({prefix}{i})s", f"({sql})::text"]
    params[f"{prefix}{len(ordered)}"] = rest
    parts.append(f"%({prefix}{len(ordered)})s")
    return " || ".join(parts)


@dataclasses.dataclass(frozen=True)
class Payload:
    """The payload of one change as SQL: `full` and `short` text expressions and their parameters."""

    full: str
    short: str
    params: dict[str, Any]

    def notify(self, source: str) -> str:
        """SQL: a scalar subquery sending the NOTIFY once per row of `source` (a CTE with one
        row when the write changed something, none otherwise)."""
        return (f"(SELECT pg_notify(%(note_channel)s, CASE WHEN octet_length(note.full) > {NOTIFY_LIMIT} "
                f"THEN note.short ELSE note.full END) FROM (SELECT {self.full} AS full, {self.short} AS short "
                f"FROM {source}) AS note)")


def payload(change: Change, fills: Sequence[tuple[str, str]]) -> Payload:
    """`change` (written with the markers above) as SQL, each marker replaced by its SQL.

    `fills` pairs a marker (UIDS, MODSEQ, NAME, ID, ENTRIES) with the SQL giving its JSON text. The
    short form keeps the MODSEQ and NAME fills.
    """
    params: dict[str, Any] = {"note_channel": CHANNEL}
    short_change = dataclasses.replace(change, uids=(), extra={}, entries=(), complete=False)
    short = _cut(short_change.to_json(), [f for f in fills if f[0] in (MODSEQ, NAME)], "note_s", params)
    text = change.to_json()
    if UIDS not in text:  # too long even with the markers: always the short form
        return Payload(short, short, params)
    try:
        full = _cut(text, fills, "note_f", params)
    except ValueError:  # a marker's digits also in a subject, say: the short form, re-read by all
        return Payload(short, short, params)
    return Payload(full, short, params)
