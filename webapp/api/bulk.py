"""/api/emails/bulk/*: one change to many of the caller's emails.

Invariants:
- Ids that are not the caller's emails are skipped and listed in `missingIds` (whether they
  exist for someone else is not said); the rest are changed.
- Changes go through the same store calls as the single-email routes, one per mailbox.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g

from relate.store import listing, messages
from relate.store.types import EntryInfo
from webapp.api import shapes
from webapp.api.emails import ORIGIN, change_flags, check_keywords, delete_entries, mailbox_from
from webapp.apidoc import endpoint
from webapp.auth import principal, require
from webapp.errors import ApiError

bp = Blueprint("bulk", __name__)
TAGS = ["emails"]

MARK_READ = shapes.obj({"emailIds": shapes.IDS, "isRead": shapes.BOOL}, required=("emailIds",))
DELETE = shapes.obj({"emailIds": shapes.IDS}, required=("emailIds",))
MOVE = shapes.obj({"emailIds": shapes.IDS, "mailbox": shapes.MAILBOX_NAME, "mailboxId": shapes.ID},
                  required=("emailIds",))
LABEL = shapes.obj({
    "emailIds": shapes.IDS,
    "add": {"type": "array", "items": shapes.KEYWORD, "maxItems": 100},
    "remove": {"type": "array", "items": shapes.KEYWORD, "maxItems": 100},
}, required=("emailIds",))
RESULT = shapes.out({"updatedCount": shapes.INT, "missingIds": {"type": "array", "items": shapes.ID}})
DELETE_RESULT = shapes.out({"deletedCount": shapes.INT, "missingIds": {"type": "array", "items": shapes.ID}})
MOVE_RESULT = shapes.out({"movedCount": shapes.INT, "missingIds": {"type": "array", "items": shapes.ID}})


def _owned(user_id: int, raw_ids: list[Any]) -> tuple[list[EntryInfo], list[int]]:
    ids = [int(i) for i in raw_ids]  # JSON allows 5.0 for an integer
    entries = listing.get_entries(user_id, ids)
    found = {e.id for e in entries}
    return entries, sorted({i for i in ids if i not in found})


def _by_mailbox(entries: list[EntryInfo]) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for e in entries:
        out.setdefault(e.mailbox_id, []).append(e.uid)
    return dict(sorted(out.items()))


def _flag_all(user_id: int, entries: list[EntryInfo], add: list[str], remove: list[str]) -> int:
    return sum(change_flags(user_id, box, uids, add=add, remove=remove) for box, uids in _by_mailbox(entries).items())


@bp.post("/api/emails/bulk/mark-read")
@require("api:write")
@endpoint(summary="Mark emails read (or unread with isRead=false)", body=MARK_READ, response=RESULT, tags=TAGS)
def mark_read() -> Any:
    user_id = principal().user_id
    entries, missing = _owned(user_id, g.body["emailIds"])
    read = g.body.get("isRead", True)
    changed = _flag_all(user_id, entries, ["\\Seen"] if read else [], [] if read else ["\\Seen"])
    return {"updatedCount": changed, "missingIds": missing}


@bp.post("/api/emails/bulk/delete")
@require("api:write")
@endpoint(summary="Delete emails: to Trash, or for good for those already in Trash", body=DELETE,
          response=DELETE_RESULT, tags=TAGS)
def delete() -> Any:
    user_id = principal().user_id
    entries, missing = _owned(user_id, g.body["emailIds"])
    return {"deletedCount": delete_entries(user_id, entries), "missingIds": missing}


@bp.post("/api/emails/bulk/move")
@require("api:write")
@endpoint(summary="Move emails to a mailbox", body=MOVE, response=MOVE_RESULT, tags=TAGS, errors=(404,))
def move() -> Any:
    user_id = principal().user_id
    target = mailbox_from(user_id, g.body)
    if target is None:
        raise ApiError(400, "mailbox: required (or mailboxId)", field="mailbox")
    entries, missing = _owned(user_id, g.body["emailIds"])
    moved = 0
    for box, uids in _by_mailbox(entries).items():
        if box != target.id:
            moved += len(messages.move(user_id, box, uids, target.id, origin=ORIGIN).pairs)
    return {"movedCount": moved, "missingIds": missing}


@bp.post("/api/emails/bulk/label")
@require("api:write")
@endpoint(summary="Add and remove labels (IMAP keywords) on emails", body=LABEL, response=RESULT, tags=TAGS)
def label() -> Any:
    user_id = principal().user_id
    add = check_keywords(user_id, g.body.get("add", []), "add")
    remove = check_keywords(user_id, g.body.get("remove", []), "remove")
    entries, missing = _owned(user_id, g.body["emailIds"])
    return {"updatedCount": _flag_all(user_id, entries, add, remove), "missingIds": missing}
