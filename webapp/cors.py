"""Cross-origin requests (flask-cors): only the origins in Cors__AllowedOrigins; none means
same-origin only and no CORS headers at all.

Browsers on an allowed origin may send the Authorization, Content-Type, X-CSRF-Token and
X-Request-Id headers and read X-Request-Id and Retry-After. Credentials (the session cookie)
are allowed for listed origins, never for a wildcard.
"""

from __future__ import annotations

from flask import Flask
from flask_cors import CORS

from relate.config import Settings

ALLOW_HEADERS = ["Authorization", "Content-Type", "X-CSRF-Token", "X-Request-Id"]
EXPOSE_HEADERS = ["X-Request-Id", "Retry-After"]
PATHS = r"^/(api|config|auth|\.well-known|mail|autodiscover)/.*"


def init_app(app: Flask, settings: Settings) -> None:
    origins = list(settings.cors_allowed_origins)
    if not origins:
        return
    wildcard = "*" in origins
    CORS(
        app,
        resources={PATHS: {"origins": "*" if wildcard else origins}},
        allow_headers=ALLOW_HEADERS,
        expose_headers=EXPOSE_HEADERS,
        supports_credentials=not wildcard,
        send_wildcard=wildcard,
        methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
        max_age=600,
    )
