"""API errors: one exception type, mapped to `{"error": "..."}` JSON in one place."""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

from relate.store import Conflict, Forbidden, InvalidInput, NotFound, StoreError, TemporaryFailure


class ApiError(Exception):
    def __init__(self, status: int, message: str, *, field: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field  # the request field that was wrong, when there is one
        self.headers = headers or {}


STORE_STATUS: dict[type[StoreError], int] = {
    NotFound: 404,
    Conflict: 409,
    InvalidInput: 400,
    Forbidden: 403,
    TemporaryFailure: 503,
}


def _json(status: int, message: str, field: str | None = None, headers: dict[str, str] | None = None) -> Any:
    body: dict[str, Any] = {"error": message}
    if field:
        body["field"] = field
    response = jsonify(body)
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def init_app(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def api_error(exc: ApiError) -> Any:
        headers = dict(exc.headers)
        if exc.status == 401:
            headers.setdefault("WWW-Authenticate", 'Bearer realm="relate"')
        return _json(exc.status, exc.message, exc.field, headers)

    @app.errorhandler(StoreError)
    def store_error(exc: StoreError) -> Any:
        status = next((code for kind, code in STORE_STATUS.items() if isinstance(exc, kind)), 500)
        headers = {"Retry-After": "5"} if status == 503 else None
        return _json(status, str(exc) or "error", headers=headers)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Any:
        if request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json":
            default = exc.description == type(exc).description  # werkzeug's generic sentence
            message = exc.name.lower() if default or not exc.description else exc.description
            return _json(exc.code or 500, message)
        return exc

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Any:
        app.logger.exception("unhandled error on %s %s", request.method, request.path)
        return _json(500, "internal server error")
