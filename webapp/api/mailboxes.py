"""/api/mailboxes: the caller's mailboxes with their counts; create, rename, subscribe, delete.

Invariants:
- Names use "/" as the hierarchy delimiter; INBOX is case-insensitive and cannot be a
  rename's target (403). INBOX, the special-use mailboxes every user is given (\\Sent,
  \\Drafts, \\Trash, \\Junk, \\Archive) and a mailbox with children cannot be deleted (409).
  Creating "Trash" while the caller has no \\Trash gives it that role (likewise the others).
  relate.store.mailboxes holds these rules; this module only maps them to HTTP.
- Counts come from the counters the database keeps on each mailbox row.
- `subscribed` is the IMAP subscription of the mailbox's name (shared with IMAP clients):
  mailboxes created here are subscribed, a rename keeps it, and deleting a mailbox here also
  drops its subscription (an IMAP DELETE keeps it, RFC 9051 §6.3.7).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g

from relate.store import InvalidInput, listing, mailboxes
from relate.store.types import MailboxInfo
from webapp.api import shapes
from webapp.apidoc import endpoint
from webapp.auth import principal, require
from webapp.errors import ApiError

bp = Blueprint("mailboxes", __name__)
TAGS = ["mailboxes"]

MAILBOX = shapes.out({
    "id": shapes.ID,
    "name": shapes.STR,
    "specialUse": shapes.nullable(shapes.STR),
    "messageCount": shapes.INT,
    "unreadCount": shapes.INT,
    "subscribed": shapes.BOOL,
    "uidValidity": shapes.INT,
})
CREATE = shapes.obj({"name": shapes.MAILBOX_NAME}, required=("name",))
UPDATE = shapes.obj({"name": shapes.MAILBOX_NAME, "subscribed": shapes.BOOL})


def mailbox_json(box: MailboxInfo, counts: tuple[int, int]) -> dict[str, Any]:
    return {
        "id": box.id,
        "name": box.name,
        "specialUse": box.special_use,
        "messageCount": counts[0],
        "unreadCount": counts[1],
        "subscribed": box.subscribed,
        "uidValidity": box.uid_validity,
    }


def _named(user_id: int, box: MailboxInfo) -> dict[str, Any]:
    return mailbox_json(box, listing.mailbox_counts(user_id).get(box.id, (0, 0)))


def _check_name(name: str) -> str:
    try:
        return mailboxes.normalise_name(name)
    except InvalidInput as exc:
        raise ApiError(400, f"name: {exc}", field="name") from None


@bp.get("/api/mailboxes")
@require("api:read")
@endpoint(summary="The caller's mailboxes with message and unread counts", response={"type": "array", "items": MAILBOX},
          tags=TAGS)
def list_mailboxes() -> Any:
    user_id = principal().user_id
    counts = listing.mailbox_counts(user_id)
    return [mailbox_json(b, counts.get(b.id, (0, 0))) for b in mailboxes.list_mailboxes(user_id)]


@bp.get("/api/mailboxes/<int:mailbox_id>")
@require("api:read")
@endpoint(summary="One mailbox with its counts", response=MAILBOX, tags=TAGS)
def get_mailbox(mailbox_id: int) -> Any:
    user_id = principal().user_id
    return _named(user_id, mailboxes.get_mailbox_by_id(user_id, mailbox_id))


@bp.post("/api/mailboxes")
@require("api:write")
@endpoint(summary="Create a mailbox (and any missing parents)", body=CREATE, response=MAILBOX, status=201,
          tags=TAGS, errors=(409,))
def create_mailbox() -> Any:
    user_id = principal().user_id
    box = mailboxes.create_mailbox(user_id, _check_name(g.body["name"]))
    return _named(user_id, box), 201


@bp.patch("/api/mailboxes/<int:mailbox_id>")
@require("api:write")
@endpoint(summary="Rename a mailbox (its children follow) or change its subscription", body=UPDATE,
          response=MAILBOX, tags=TAGS, errors=(403, 409))
def update_mailbox(mailbox_id: int) -> Any:
    user_id = principal().user_id
    box = mailboxes.get_mailbox_by_id(user_id, mailbox_id)
    if "name" in g.body and _check_name(g.body["name"]) != box.name:
        box = mailboxes.rename_mailbox(user_id, box.name, g.body["name"])
    if "subscribed" in g.body:
        mailboxes.set_subscribed(user_id, box.name, bool(g.body["subscribed"]))
        box = mailboxes.get_mailbox_by_id(user_id, box.id)
    return _named(user_id, box)


@bp.delete("/api/mailboxes/<int:mailbox_id>")
@require("api:write")
@endpoint(summary="Delete a mailbox and the messages in it (not INBOX nor a special-use mailbox, not one "
          "with children)", status=204, tags=TAGS, errors=(409,))
def delete_mailbox(mailbox_id: int) -> Any:
    user_id = principal().user_id
    box = mailboxes.get_mailbox_by_id(user_id, mailbox_id)
    mailboxes.delete_mailbox(user_id, box.name, unsubscribe=True, keep_special=True)
    return "", 204
