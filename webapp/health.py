"""Liveness and readiness for orchestrators: /healthz (process up), /readyz (database reachable)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify

from relate.store import StoreError, health
from webapp.apidoc import endpoint

bp = Blueprint("health", __name__)

STATUS = {
    "type": "object",
    "properties": {"status": {"type": "string"}, "error": {"type": "string"}},
    "required": ["status"],
}


@bp.get("/healthz")
@endpoint(summary="Liveness: the process answers", response=STATUS, tags=["operations"])
def healthz() -> Any:
    return jsonify({"status": "ok"})


@bp.get("/readyz")
@endpoint(summary="Readiness: the database answers (503 when it does not)", response=STATUS,
          tags=["operations"], errors=(503,))
def readyz() -> Any:
    try:
        health.ping()
    except StoreError as exc:
        response = jsonify({"status": "unavailable", "error": str(exc)})
        response.status_code = 503
        return response
    return jsonify({"status": "ready"})
