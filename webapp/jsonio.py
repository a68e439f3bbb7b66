"""JSON responses encoded by orjson.

Invariants:
- The text is what Flask's default provider would produce for the same value, up to white
  space and key order (insertion order, as `sort_keys = False` had it): dates, UUIDs,
  decimals, dataclasses and `__html__` objects go through Flask's own conversion.
- Request bodies are still decoded by the standard library (exact integers of any size; the
  routes' schemas decide what is acceptable), so only encoding changes.
"""

from __future__ import annotations

from typing import Any

import orjson
from flask import Flask, Response
from flask.json.provider import DefaultJSONProvider

_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_NON_STR_KEYS


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


def init_app(app: Flask) -> None:
    app.json = OrjsonProvider(app)
