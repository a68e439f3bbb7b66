"""The API and web UI (Flask). `create_app(settings)` builds it; webapp.wsgi serves it under gunicorn.

relate/ never imports this package; this package reaches the database only through relate.store.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

from relate.config import Settings

log = logging.getLogger("relate.webapp")


def create_app(settings: Settings) -> Flask:
    app = Flask(__name__, static_folder=None)
    app.config["RELATE_SETTINGS"] = settings
    app.config["MAX_CONTENT_LENGTH"] = settings.smtp.max_message_size + 1024 * 1024
    app.json.sort_keys = False  # type: ignore[attr-defined]

    from webapp import health

    app.register_blueprint(health.bp)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Any:
        if request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json":
            default = exc.description == type(exc).description  # werkzeug's generic sentence
            response = jsonify({"error": exc.name.lower() if default or not exc.description else exc.description})
            response.status_code = exc.code or 500
            return response
        return exc

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Any:
        log.exception("unhandled error on %s %s", request.method, request.path)
        response = jsonify({"error": "internal server error"})
        response.status_code = 500
        return response

    return app
