"""Message identifiers (RFC 5322 §3.6.4) and the thread a message belongs to.

Invariants:
- Ids are returned without angle brackets, without whitespace (folding inside an id is a
  common breakage) and at most MAX_ID_LENGTH characters long. Text around them is ignored; a
  value with no "<...>" at all counts only if it looks like one bare id ("local@domain").
- `thread_id` is 16 lowercase hex digits and depends only on the thread's root: the first
  message-id of References, else the first of In-Reply-To, else the message's own id. A
  message with none of them is its own thread, named by a hash of its header section without
  the Subject field (the whole message when it has no header).
"""

from __future__ import annotations

import hashlib
import re

from .headers import Field
from .limits import MAX_ID_LENGTH, MAX_REFERENCES

_BRACKETED = re.compile(r"<([^<>]*)>")
_BARE = re.compile(r"[^\s<>()@]+@[^\s<>()@]+")


def message_ids(value: str | None) -> list[str]:
    if not value:
        return []
    ids = [_clean(m.group(1)) for m in _BRACKETED.finditer(value)]
    ids = [i for i in ids if i]
    if ids:
        return ids
    bare = _BARE.fullmatch(value.strip())
    return [_clean(bare.group(0))] if bare else []


def first_id(value: str | None) -> str | None:
    ids = message_ids(value)
    return ids[0] if ids else None


def references(value: str | None) -> list[str]:
    """References, keeping the root and the most recent when there are very many."""
    ids = message_ids(value)
    if len(ids) > MAX_REFERENCES:
        ids = [ids[0], *ids[-(MAX_REFERENCES - 1) :]]
    return ids


def _clean(text: str) -> str:
    return "".join(text.split())[:MAX_ID_LENGTH]


def thread_id(
    references: list[str], in_reply_to: list[str], message_id: str | None, raw: bytes, fields: list[Field]
) -> str:
    root = references[0] if references else in_reply_to[0] if in_reply_to else message_id
    if root:
        return hashlib.sha256(b"id:" + root.encode("utf-8")).hexdigest()[:16]
    digest = hashlib.sha256(b"header:")
    if not fields:
        digest.update(raw)
    for f in fields:
        if f.name != "subject":
            digest.update(raw[f.start : f.end])
    return digest.hexdigest()[:16]
