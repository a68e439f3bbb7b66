"""The API and web UI (Flask). `create_app(settings)` builds it; webapp.wsgi serves it under gunicorn.

relate/ never imports this package; this package reaches the database only through relate.store.

A request passes, in order: the request id (webapp.requestid), authentication, rate limits
and CSRF (webapp.auth), then the route, whose @endpoint validates its input (webapp.apidoc).
Errors of every kind leave as JSON (webapp.errors).
"""

from __future__ import annotations

import logging

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from relate.config import Settings
from relate.store.accounts import DEVELOPMENT_USER

log = logging.getLogger("relate.webapp")

_warned_development = False


def _warn_development(settings: Settings) -> None:
    """DESIGN.md §4: development mode is announced once per process."""
    global _warned_development
    if settings.development and not _warned_development:
        log.warning(
            "development mode: Oidc__Authority is not set, so the web UI and API act as %s (an "
            "administrator) for requests without credentials. Never expose this to a network you do not trust.",
            DEVELOPMENT_USER,
        )
        _warned_development = True


def _check_oidc(settings: Settings) -> None:
    if settings.oidc.authority and not (settings.oidc.audience or settings.oidc.client_id):
        log.error("Oidc__Authority is set but neither Oidc__Audience nor Oidc__ClientId: every bearer token is refused")


def create_app(settings: Settings) -> Flask:
    app = Flask(__name__, static_folder=None)
    app.config["RELATE_SETTINGS"] = settings
    app.config["MAX_CONTENT_LENGTH"] = settings.smtp.max_message_size + 1024 * 1024

    from webapp import api, apidoc, auth, cors, errors, health, jsonio, login, metrics, requestid

    jsonio.init_app(app)

    if settings.api_trusted_proxies:
        n = settings.api_trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n, x_port=n)  # type: ignore[method-assign]
    apidoc.init_app(app)  # before any route: path converters
    requestid.init_app(app)  # first before_request: every later log line has the id
    errors.init_app(app)
    cors.init_app(app, settings)
    auth.init_app(app)
    app.register_blueprint(health.bp)
    app.register_blueprint(metrics.bp)
    app.register_blueprint(login.bp)
    api.register(app)

    _warn_development(settings)
    _check_oidc(settings)
    return app
