"""/api/preferences: the caller's web UI and app settings, validated, with defaults filled in.

Unknown names and values outside each setting's range are refused (400 naming the field);
a change names only the settings it changes.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g

from relate.store import prefs
from relate.store.listing import SORTS
from webapp.api import shapes
from webapp.apidoc import endpoint
from webapp.auth import principal, require

bp = Blueprint("preferences", __name__)
TAGS = ["preferences"]

SETTINGS: dict[str, tuple[dict[str, Any], Any]] = {
    # name: (schema, default)
    "theme": ({"type": "string", "enum": ["light", "dark", "system"]}, "system"),
    "displayDensity": ({"type": "string", "enum": ["compact", "comfortable", "spacious"]}, "comfortable"),
    "emailsPerPage": ({"type": "integer", "minimum": 10, "maximum": shapes.MAX_PAGE_SIZE}, 50),
    "defaultSort": ({"type": "string", "enum": list(SORTS)}, "receivedAt-desc"),
    "showPreview": (shapes.BOOL, True),
    "groupByDate": (shapes.BOOL, False),
    "loadRemoteImages": (shapes.BOOL, False),
    "desktopNotifications": (shapes.BOOL, False),
    "emailDigest": (shapes.BOOL, False),
    "digestFrequency": ({"type": "string", "enum": ["daily", "weekly"]}, "daily"),
    "digestTime": ({"type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$"}, "09:00"),
    "language": ({"type": "string", "pattern": "^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$", "maxLength": 35}, "en"),
    "signature": (shapes.text(10_000), ""),
}
UPDATE = shapes.obj({name: schema for name, (schema, _) in SETTINGS.items()})
PREFERENCES = shapes.out({
    **{name: schema for name, (schema, _) in SETTINGS.items()},
    "updatedAt": shapes.nullable(shapes.TIME),
})


def _shown(stored: dict[str, Any], updated: Any) -> dict[str, Any]:
    values = {name: stored.get(name, default) for name, (_, default) in SETTINGS.items()}
    return {**values, "updatedAt": shapes.iso(updated)}


@bp.get("/api/preferences")
@require("api:read")
@endpoint(summary="The caller's preferences (defaults for those never set)", response=PREFERENCES, tags=TAGS)
def get_preferences() -> Any:
    return _shown(*prefs.get_preferences(principal().user_id))


@bp.route("/api/preferences", methods=["PUT", "PATCH"])
@require("api:write")
@endpoint(summary="Change some preferences", body=UPDATE, response=PREFERENCES, tags=TAGS)
def update_preferences() -> Any:
    return _shown(*prefs.update_preferences(principal().user_id, dict(g.body)))
