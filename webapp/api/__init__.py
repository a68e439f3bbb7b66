"""The REST API's blueprints, registered in one explicit list."""

from __future__ import annotations

import importlib
from typing import Any

from flask import Blueprint, Flask, current_app, jsonify

from webapp.apidoc import openapi_document
from webapp.errors import ApiError

bp = Blueprint("api_root", __name__)

# Modules under webapp/api/ that define a blueprint named `bp`, in registration order.
BLUEPRINTS: list[str] = [
]


@bp.get("/api/openapi.json")
def openapi() -> Any:
    return jsonify(openapi_document(current_app))


@bp.route("/api/<path:unknown>", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
def unknown_api_path(unknown: str) -> Any:
    raise ApiError(404, "not found")


def register(app: Flask) -> None:
    for name in BLUEPRINTS:
        module = importlib.import_module(f"webapp.api.{name}")
        app.register_blueprint(module.bp)
    app.register_blueprint(bp)  # last: its catch-all must not shadow real routes
