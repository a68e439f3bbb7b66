"""The API and web UI (Flask). `create_app(settings)` builds it; webapp.wsgi serves it under gunicorn.

relate/ never imports this package; this package reaches the database only through relate.store.
"""

from __future__ import annotations

import logging

from flask import Flask

from relate.config import Settings

log = logging.getLogger("relate.webapp")


def create_app(settings: Settings) -> Flask:
    app = Flask(__name__, static_folder=None)
    app.config["RELATE_SETTINGS"] = settings
    app.config["MAX_CONTENT_LENGTH"] = settings.smtp.max_message_size + 1024 * 1024
    app.json.sort_keys = False  # type: ignore[attr-defined]

    from webapp import api, auth, errors, health

    errors.init_app(app)
    auth.init_app(app)
    app.register_blueprint(health.bp)
    api.register(app)

    return app
