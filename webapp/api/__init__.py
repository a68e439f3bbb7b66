"""The REST API's blueprints, registered in one explicit list."""

from __future__ import annotations

import importlib
from typing import Any

from flask import Blueprint, Flask, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from webapp.apidoc import openapi_document
from webapp.auth import public
from webapp.errors import ApiError

bp = Blueprint("api_root", __name__)

# Modules under webapp/api/ that define a blueprint named `bp`, in registration order.
BLUEPRINTS: list[str] = [
    "session",
    "discovery",
    "admin",
    "realtime",
    "push",
    "emails",
    "bulk",
    "downloads",
    "sending",
    "external",
    "mailboxes",
    "labels",
    "filters",
    "preferences",
    "profile",
    "credentials",
]


@bp.get("/api/openapi.json")
@public
def openapi() -> Any:
    return jsonify(openapi_document(current_app))


CATCH_ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


@bp.route("/api/<path:unknown>", methods=CATCH_ALL_METHODS)
def unknown_api_path(unknown: str) -> Any:
    """JSON 404 for unknown /api paths; 405 (with Allow) when the path exists for other methods."""
    adapter = current_app.url_map.bind_to_environ(request.environ)
    allowed = []
    for method in CATCH_ALL_METHODS:
        try:
            endpoint, _ = adapter.match(request.path, method=method)
        except HTTPException:
            continue
        if endpoint != request.endpoint:
            allowed.append(method)
    if allowed:
        raise ApiError(405, "method not allowed", headers={"Allow": ", ".join(allowed)})
    raise ApiError(404, "not found")


def register(app: Flask) -> None:
    for name in BLUEPRINTS:
        module = importlib.import_module(f"webapp.api.{name}")
        app.register_blueprint(module.bp)
    app.register_blueprint(bp)  # last: its catch-all must not shadow real routes
