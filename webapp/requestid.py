"""A request id on every request: taken from a well-formed incoming X-Request-Id (a proxy's),
else made up; returned in the X-Request-Id response header and put at the start of every log
line written while the request is handled, like the daemons' connection ids. One access-log
line per request says what was asked, the answer and how long it took.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from typing import Any

from flask import Flask, g, has_request_context, request
from flask.wrappers import Response

from relate import metrics

HEADER = "X-Request-Id"
_WELL_FORMED = re.compile(r"^[A-Za-z0-9._:-]{8,64}$")  # nothing a log line or header could choke on

access_log = logging.getLogger("relate.api.access")
_installed = False


def current() -> str | None:
    """The id of the request being handled in this greenlet, if any."""
    if not has_request_context():
        return None
    value: str | None = g.get("request_id")
    return value


def _install_log_prefix() -> None:
    """Prefix `[<request id>]` to every record made while a request is handled (once per process)."""
    global _installed
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        request_id = current()
        record.request_id = request_id or "-"
        if request_id:
            record.msg = f"[{request_id}] {record.msg}"
        return record

    logging.setLogRecordFactory(factory)
    _installed = True


def init_app(app: Flask) -> None:
    _install_log_prefix()

    @app.before_request
    def _assign() -> None:
        incoming = request.headers.get(HEADER, "")
        g.request_id = incoming if _WELL_FORMED.match(incoming) else secrets.token_hex(8)
        g.request_started = time.perf_counter()

    @app.after_request
    def _finish(response: Response) -> Response:
        request_id = g.get("request_id")
        if request_id:
            response.headers[HEADER] = request_id
        started = g.get("request_started")
        elapsed = (time.perf_counter() - started) * 1000 if started else 0.0
        who = g.get("principal")
        access_log.info(
            "%s %s %d %.1fms %s user=%s",
            request.method,
            request.path,
            response.status_code,
            elapsed,
            request.remote_addr or "-",
            who.user_id if who is not None else "-",
        )
        metrics.incr("http", "requests")
        metrics.incr("http", f"responses_{response.status_code // 100}xx")
        return response
