"""/api/filters: the caller's delivery filters, and trying one on recent mail.

A filter is shown and edited flat (fromAddressContains, markAsRead, assignLabelId, ...) and
kept as relate.store.filters conditions and actions, which every delivery runs, SMTP and API
sends alike.

Invariants:
- Filter, label and mailbox references are the caller's own (another user's id is a 404).
- Partial updates change only the fields given; `null` clears a condition or action.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g

from relate.store import NotFound, labels, userfilters
from relate.store.userfilters import FilterInfo
from webapp.api import shapes
from webapp.api.emails import mailbox_named
from webapp.apidoc import endpoint
from webapp.auth import principal, require
from webapp.errors import ApiError

bp = Blueprint("filters", __name__)
TAGS = ["filters"]

# flat field -> store condition key
TEXT_FIELDS = {
    "fromAddressContains": "from",
    "toContains": "to",
    "subjectContains": "subject",
    "bodyContains": "body",
}
# flat field -> store action key (booleans)
ACTION_FIELDS = {"markAsRead": "markRead", "flag": "flag", "delete": "delete", "stopProcessing": "stop"}

CONTAINS = shapes.nullable(shapes.line(500))
FILTER_IN: dict[str, Any] = {
    "name": shapes.line(200, min_length=1),
    "isEnabled": shapes.BOOL,
    "priority": {"type": "integer", "minimum": 0, "maximum": 1_000_000},
    **{field: CONTAINS for field in TEXT_FIELDS},
    "hasAttachments": shapes.nullable(shapes.BOOL),
    "matchAll": shapes.BOOL,
    **{field: shapes.BOOL for field in ACTION_FIELDS},
    "assignLabelId": shapes.nullable(shapes.ID),
    "moveToMailbox": shapes.nullable(shapes.MAILBOX_NAME),
}
CREATE = shapes.obj(FILTER_IN, required=("name",))
UPDATE = shapes.obj(FILTER_IN)
FILTER = shapes.out({
    "id": shapes.ID,
    "name": shapes.STR,
    "isEnabled": shapes.BOOL,
    "priority": shapes.INT,
    **{field: shapes.nullable(shapes.STR) for field in TEXT_FIELDS},
    "hasAttachments": shapes.nullable(shapes.BOOL),
    "matchAll": shapes.BOOL,
    **{field: shapes.BOOL for field in ACTION_FIELDS},
    "assignLabelId": shapes.nullable(shapes.ID),
    "assignLabelName": shapes.nullable(shapes.STR),
    "assignLabelColor": shapes.nullable(shapes.STR),
    "moveToMailbox": shapes.nullable(shapes.STR),
    "createdAt": shapes.TIME,
})
TEST_QUERY = {"limit": {"type": "integer", "minimum": 1, "maximum": userfilters.MAX_TEST}}
TEST_RESULT = shapes.out({"matchCount": shapes.INT, "matchedEmailIds": {"type": "array", "items": shapes.ID}})


def filter_json(user_id: int, f: FilterInfo) -> dict[str, Any]:
    c, a = f.conditions, f.actions
    keyword = a["addLabel"] if isinstance(a.get("addLabel"), str) else None
    label = labels.find_label(user_id, keyword) if keyword else None
    return {
        "id": f.id,
        "name": f.name,
        "isEnabled": f.enabled,
        "priority": f.position,
        **{field: c.get(key) or None for field, key in TEXT_FIELDS.items()},
        "hasAttachments": c.get("hasAttachment"),
        "matchAll": c.get("match", "all") != "any",
        **{field: bool(a.get(key)) for field, key in ACTION_FIELDS.items()},
        "assignLabelId": label.id if label else None,
        "assignLabelName": label.name if label else (labels.name_of(keyword) if keyword else None),
        "assignLabelColor": label.color if label else None,
        "moveToMailbox": a.get("moveTo"),
        "createdAt": shapes.iso(f.created_at),
    }


def _store_form(user_id: int, data: dict[str, Any], conditions: dict[str, Any], actions: dict[str, Any]) -> None:
    """Apply the flat fields of `data` to store-form conditions and actions (in place)."""
    for field, key in TEXT_FIELDS.items():
        if field in data:
            if data[field]:
                conditions[key] = data[field]
            else:
                conditions.pop(key, None)
    if "hasAttachments" in data:
        if data["hasAttachments"] is None:
            conditions.pop("hasAttachment", None)
        else:
            conditions["hasAttachment"] = bool(data["hasAttachments"])
    if "matchAll" in data:
        conditions["match"] = "all" if data["matchAll"] else "any"
    for field, key in ACTION_FIELDS.items():
        if field in data:
            if data[field]:
                actions[key] = True
            else:
                actions.pop(key, None)
    if "assignLabelId" in data:
        if data["assignLabelId"] is None:
            actions.pop("addLabel", None)
        else:
            try:
                actions["addLabel"] = labels.get_label(user_id, int(data["assignLabelId"])).keyword
            except NotFound:
                raise ApiError(404, "assignLabelId: no such label", field="assignLabelId") from None
    if "moveToMailbox" in data:
        if data["moveToMailbox"] is None:
            actions.pop("moveTo", None)
        else:
            actions["moveTo"] = mailbox_named(user_id, data["moveToMailbox"], "moveToMailbox").name


@bp.get("/api/filters")
@require("api:read")
@endpoint(summary="The caller's filters, in the order delivery runs them", response={"type": "array", "items": FILTER},
          tags=TAGS)
def list_filters() -> Any:
    user_id = principal().user_id
    return [filter_json(user_id, f) for f in userfilters.list_filters(user_id)]


@bp.post("/api/filters")
@require("api:write")
@endpoint(summary="Create a filter", body=CREATE, response=FILTER, status=201, tags=TAGS, errors=(404, 409))
def create_filter() -> Any:
    user_id = principal().user_id
    data = g.body
    conditions: dict[str, Any] = {}
    actions: dict[str, Any] = {}
    _store_form(user_id, data, conditions, actions)
    f = userfilters.create_filter(user_id, data["name"], conditions, actions, enabled=data.get("isEnabled", True),
                                  position=data.get("priority", 100))
    return filter_json(user_id, f), 201


@bp.get("/api/filters/<int:filter_id>")
@require("api:read")
@endpoint(summary="One filter", response=FILTER, tags=TAGS)
def get_filter(filter_id: int) -> Any:
    user_id = principal().user_id
    return filter_json(user_id, userfilters.get_filter(user_id, filter_id))


@bp.route("/api/filters/<int:filter_id>", methods=["PUT", "PATCH"])
@require("api:write")
@endpoint(summary="Change a filter (only the fields given)", body=UPDATE, response=FILTER, tags=TAGS)
def update_filter(filter_id: int) -> Any:
    user_id = principal().user_id
    current = userfilters.get_filter(user_id, filter_id)
    conditions, actions = dict(current.conditions), dict(current.actions)
    _store_form(user_id, g.body, conditions, actions)
    f = userfilters.update_filter(user_id, filter_id, name=g.body.get("name"), enabled=g.body.get("isEnabled"),
                                  position=g.body.get("priority"), conditions=conditions, actions=actions)
    return filter_json(user_id, f)


@bp.delete("/api/filters/<int:filter_id>")
@require("api:write")
@endpoint(summary="Delete a filter", status=204, tags=TAGS)
def delete_filter(filter_id: int) -> Any:
    userfilters.delete_filter(principal().user_id, filter_id)
    return "", 204


@bp.post("/api/filters/<int:filter_id>/test")
@require("api:read")
@endpoint(summary="Which of the caller's most recent emails the filter's conditions match", query=TEST_QUERY,
          response=TEST_RESULT, tags=TAGS)
def test_filter(filter_id: int) -> Any:
    ids = userfilters.dry_run(principal().user_id, filter_id, int(g.query.get("limit", 10)))
    return {"matchCount": len(ids), "matchedEmailIds": ids}

