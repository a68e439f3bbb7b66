"""Liveness and readiness for orchestrators: /healthz (process up), /readyz (database reachable)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify

from relate.store import StoreError, health

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Any:
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> Any:
    try:
        health.ping()
    except StoreError as exc:
        response = jsonify({"status": "unavailable", "error": str(exc)})
        response.status_code = 503
        return response
    return jsonify({"status": "ready"})
