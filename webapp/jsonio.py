"""JSON responses encoded by orjson.

Invariants:
- The text is what Flask's default provider would produce for the same value, up to white
  space and key order (insertion order, as `sort_keys = False` had it): dates, UUIDs,
  decimals, dataclasses and `__html__` objects go through Flask's own conversion.
- Request bodies are still decoded by the standard library (exact integers of any size; the
  routes' schemas decide what is acceptable), so only encoding changes.
- `rfc3339_response` is the one exception, for large documents full of times (mail lists):
  there aware UTC datetimes become RFC 3339 text ending in "Z", exactly what
  webapp.api.shapes.iso writes, by orjson itself.
"""

from __future__ import annotations

from typing import Any

import orjson
from flask import Flask, Response, current_app
from flask.json.provider import DefaultJSONProvider

_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_NON_STR_KEYS
_RFC3339 = orjson.OPT_UTC_Z | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_NON_STR_KEYS


class OrjsonProvider(DefaultJSONProvider):
    sort_keys = False

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        if kwargs:  # a caller asking for specific json.dumps options gets exactly those
            return super().dumps(obj, **kwargs)
        return self._encode(obj).decode("utf-8")

    def response(self, *args: Any, **kwargs: Any) -> Response:
        obj = self._prepare_response_obj(args, kwargs)
        return Response(self._encode(obj) + b"\n", mimetype=self.mimetype)

    def _encode(self, obj: Any) -> bytes:
        try:
            return orjson.dumps(obj, default=self.default, option=_OPTIONS)
        except TypeError:  # e.g. an integer beyond 64 bits: the standard library has no limit
            return super().dumps(obj).encode("utf-8")


def rfc3339_response(obj: Any) -> Response:
    """A JSON response whose datetimes, every one aware and in UTC, are RFC 3339 text ending
    in "Z" (1970-01-01T00:00:00Z, microseconds when there are any): what shapes.iso writes."""
    body = orjson.dumps(obj, default=current_app.json.default, option=_RFC3339)  # type: ignore[attr-defined]
    return Response(body + b"\n", mimetype="application/json")


def init_app(app: Flask) -> None:
    app.json = OrjsonProvider(app)
