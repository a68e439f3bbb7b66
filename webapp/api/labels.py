"""/api/labels: the caller's labels (named, coloured IMAP keywords) and putting them on emails.

Invariants:
- A label is a keyword on its messages: its name, or the name's modified UTF-7 form when it
  is not ASCII (relate.store.labels). Renaming or deleting a label changes every message
  carrying it and the filters that add it.
- Label and email ids are looked up through the caller's user id: another user's is a 404.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g

from relate.store import InvalidInput, labels, listing, messages
from relate.store.labels import LabelInfo
from relate.store.listing import Filters
from webapp.api import shapes
from webapp.api.emails import ORIGIN, paged
from webapp.apidoc import endpoint
from webapp.auth import principal, require
from webapp.errors import ApiError

bp = Blueprint("labels", __name__)
TAGS = ["labels"]

COLOR = {"type": "string", "pattern": "^#([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$"}
LABEL = shapes.out({"id": shapes.ID, "name": shapes.STR, "color": shapes.STR, "createdAt": shapes.TIME})
CREATE = shapes.obj({"name": shapes.KEYWORD, "color": COLOR}, required=("name",))
UPDATE = shapes.obj({"name": shapes.KEYWORD, "color": COLOR})
ASSIGN = shapes.obj({"labelId": shapes.ID}, required=("labelId",))
EMAIL_LABELS = shapes.out({"emailId": shapes.ID, "labels": {"type": "array", "items": shapes.STR}})


def label_json(label: LabelInfo) -> dict[str, Any]:
    return {"id": label.id, "name": label.name, "color": label.color, "createdAt": shapes.iso(label.created_at)}


def _name(value: str) -> str:
    try:
        return labels.validate_name(value)
    except InvalidInput as exc:
        raise ApiError(400, f"name: {exc}", field="name") from None


@bp.get("/api/labels")
@require("api:read")
@endpoint(summary="The caller's labels", response={"type": "array", "items": LABEL}, tags=TAGS)
def list_labels() -> Any:
    return [label_json(label) for label in labels.list_labels(principal().user_id)]


@bp.post("/api/labels")
@require("api:write")
@endpoint(summary="Create a label (an IMAP keyword: its name, in modified UTF-7 when not ASCII)", body=CREATE,
          response=LABEL, status=201, tags=TAGS, errors=(409,))
def create_label() -> Any:
    label = labels.create_label(principal().user_id, _name(g.body["name"]), g.body.get("color", labels.DEFAULT_COLOR))
    return label_json(label), 201


@bp.get("/api/labels/<int:label_id>")
@require("api:read")
@endpoint(summary="One label", response=LABEL, tags=TAGS)
def get_label(label_id: int) -> Any:
    return label_json(labels.get_label(principal().user_id, label_id))


@bp.route("/api/labels/<int:label_id>", methods=["PUT", "PATCH"])
@require("api:write")
@endpoint(summary="Rename or recolour a label (renaming renames the keyword on its emails)", body=UPDATE,
          response=LABEL, tags=TAGS, errors=(409,))
def update_label(label_id: int) -> Any:
    name = _name(g.body["name"]) if "name" in g.body else None
    return label_json(labels.update_label(principal().user_id, label_id, name=name, color=g.body.get("color")))


@bp.delete("/api/labels/<int:label_id>")
@require("api:write")
@endpoint(summary="Delete a label and take it off every email", status=204, tags=TAGS)
def delete_label(label_id: int) -> Any:
    labels.delete_label(principal().user_id, label_id)
    return "", 204


@bp.get("/api/labels/<int:label_id>/emails")
@require("api:read")
@endpoint(summary="The caller's emails carrying a label, in every mailbox", query=shapes.PAGING_QUERY,
          response=shapes.EMAIL_LIST, tags=TAGS)
def label_emails(label_id: int) -> Any:
    user_id = principal().user_id
    label = labels.get_label(user_id, label_id)
    return paged(user_id, Filters(label=label.keyword), g.query)


def _relabel(email_id: int, label_id: int, mode: str) -> dict[str, Any]:
    user_id = principal().user_id
    entry = messages.get_entry(user_id, email_id)
    label = labels.get_label(user_id, label_id)
    messages.store_flags(user_id, entry.mailbox_id, [entry.uid], mode, [label.keyword], origin=ORIGIN)
    row = listing.get_row(user_id, email_id)
    return {"emailId": row.id, "labels": labels.names_of(row.keywords)}


@bp.post("/api/labels/emails/<int:email_id>")
@require("api:write")
@endpoint(summary="Put a label on an email", body=ASSIGN, response=EMAIL_LABELS, tags=TAGS)
def add_to_email(email_id: int) -> Any:
    return _relabel(email_id, int(g.body["labelId"]), "add")


@bp.delete("/api/labels/emails/<int:email_id>/<int:label_id>")
@require("api:write")
@endpoint(summary="Take a label off an email", response=EMAIL_LABELS, tags=TAGS)
def remove_from_email(email_id: int, label_id: int) -> Any:
    return _relabel(email_id, label_id, "remove")
