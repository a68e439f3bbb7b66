"""Declared routes: one decorator states a route's input and output, validates requests against
it, and feeds the OpenAPI 3.1 document at /api/openapi.json, so the document always matches.

Usage:

    @bp.post("/api/labels")
    @require("api:write")
    @endpoint(summary="Create a label", body=LABEL_IN, response=LABEL_OUT, status=201)
    def create_label():
        data = g.body          # validated JSON object
        ...

Schemas are JSON Schema (the dialect OpenAPI 3.1 uses). Request bodies are objects with
`additionalProperties: false` unless a schema says otherwise, so unknown fields are refused.
Query parameters are declared as {name: schema} and parsed into `g.query` with their types.
A bad request is a 400 whose JSON names the field; so is a JSON body over MAX_JSON_BYTES (the
field is `body`). Validators are built once, when a route is declared.

Whatever a route declares, input that no store could hold is refused here, before any route
code runs, so user input never reaches the database as a 500: strings with NUL characters or
lone surrogates (PostgreSQL and UTF-8 refuse both), integers outside 64 bits, JSON nested
beyond reason, and `<int:...>` path segments beyond 64 bits (those are 404s: no such thing).
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
import json
import re
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, g, request
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.routing import IntegerConverter

from webapp.errors import ApiError

F = TypeVar("F", bound=Callable[..., Any])

MAX_JSON_BYTES = 1024 * 1024  # JSON bodies; uploads of mail go through their own routes
MAX_JSON_DEPTH = 32
INT64_MAX = 2**63 - 1


class Int64Converter(IntegerConverter):
    """`<int:...>` path segments: up to 18 digits, so always within a database integer. Longer
    ones do not match the rule at all (a JSON 404), which is also why this is a pattern and
    not werkzeug's `max`: a value refused after matching confuses its method matching (405)."""

    regex = r"\d{1,18}"


def init_app(app: Flask) -> None:
    """Install the path converters; call before any blueprint is registered."""
    app.url_map.converters["int"] = Int64Converter


def _bad_string(value: str) -> str | None:
    if "\x00" in value:
        return "must not contain NUL characters"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid Unicode text"
    return None


def check_storable(value: Any, path: str = "", depth: int = 0) -> None:
    """Raise ApiError(400) naming the field of any value no database could store."""
    if depth > MAX_JSON_DEPTH:
        raise ApiError(400, f"{path or 'body'}: nested too deeply", field=path or None)
    if isinstance(value, str):
        problem = _bad_string(value)
        if problem:
            raise ApiError(400, f"{path or 'body'}: {problem}", field=path or None)
    elif isinstance(value, bool):
        return
    elif isinstance(value, int):
        if not -INT64_MAX - 1 <= value <= INT64_MAX:
            raise ApiError(400, f"{path or 'body'}: number out of range", field=path or None)
    elif isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ApiError(400, f"{path or 'body'}: must be a finite number", field=path or None)
    elif isinstance(value, dict):
        for key, item in value.items():
            problem = _bad_string(key)
            if problem:
                raise ApiError(400, f"{path or 'body'}: field names {problem}", field=path or None)
            check_storable(item, f"{path}.{key}" if path else key, depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_storable(item, f"{path}.{index}" if path else str(index), depth + 1)


def closed_objects(schema: Any) -> Any:
    """A copy of a request schema where every object that lists its properties and says
    nothing about others refuses unknown fields."""
    if isinstance(schema, list):
        return [closed_objects(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    result = {key: closed_objects(value) for key, value in schema.items()}
    if "properties" in result and not {"additionalProperties", "patternProperties", "unevaluatedProperties"} & set(result):
        result["additionalProperties"] = False
    return result


def _unexpected(error: ValidationError) -> list[str]:
    """The fields an additionalProperties error refuses, named in full ("filter.extra"), in the
    order the request has them."""
    schema, instance = error.schema, error.instance
    if not isinstance(schema, dict) or not isinstance(instance, dict):
        return []
    known = schema.get("properties", {})
    patterns = [re.compile(pattern) for pattern in schema.get("patternProperties", {})]
    path = [str(p) for p in error.absolute_path]
    return [".".join([*path, str(key)]) for key in instance
            if key not in known and not any(pattern.search(str(key)) for pattern in patterns)]


def _field_of(error: ValidationError) -> str:
    path = ".".join(str(p) for p in error.absolute_path)
    if error.validator == "additionalProperties":
        extra = _unexpected(error)
        if extra:
            return extra[0]
    if error.validator == "required":
        missing = re.findall(r"'([^']+)' is a required property", error.message)
        if missing:
            return ".".join(filter(None, [path, missing[0]]))
    return path


def _unknown(names: list[str], what: str = "field") -> str:
    """The message refusing unknown fields or parameters; an error's `field` is the first."""
    return f"{names[0]}: unknown {what}" if len(names) == 1 else f"unknown {what}s: {', '.join(names)}"


def _message(error: ValidationError, field: str) -> str:
    name = field or "body"
    if error.validator == "additionalProperties":
        return _unknown(_unexpected(error) or [name])
    if error.validator == "required":
        return f"{name}: required"
    if error.validator == "type":
        return f"{name}: must be {error.validator_value}"
    if error.validator in ("maxLength", "minLength", "maximum", "minimum", "enum", "format", "pattern", "maxItems"):
        return f"{name}: {error.message}"
    return f"{name}: {error.message}"


_SIMPLE_KEYWORDS = frozenset({"type", "minimum", "maximum", "minLength", "maxLength", "pattern", "enum"})


def _simple_check(schema: dict[str, Any]) -> Callable[[Any], bool] | None:
    """For the schemas of query parameters (one scalar type with bounds, a length, a pattern
    or a list of words), a plain function that accepts exactly the values the schema's
    validator accepts of that Python type and refuses everything else, which the validator
    then judges; None for any other schema. Each keyword means what jsonschema's does:
    minimum/maximum compare the number, minLength/maxLength count code points, pattern is
    `re.search`, enum compares strings with ==."""
    if not set(schema) <= _SIMPLE_KEYWORDS or schema.get("type") not in ("integer", "string", "boolean"):
        return None
    kind = schema["type"]
    if kind == "boolean":
        if set(schema) != {"type"}:
            return None
        return lambda value: type(value) is bool
    if kind == "integer":
        if set(schema) - {"type", "minimum", "maximum"}:
            return None
        low, high = schema.get("minimum"), schema.get("maximum")
        return lambda value: (type(value) is int and (low is None or value >= low)
                              and (high is None or value <= high))
    if set(schema) & {"minimum", "maximum"}:
        return None
    enum = schema.get("enum")
    if enum is not None and not all(isinstance(word, str) for word in enum):
        return None
    words = frozenset(enum) if enum is not None else None
    shortest, longest = schema.get("minLength", 0), schema.get("maxLength")
    pattern = re.compile(schema["pattern"]) if "pattern" in schema else None
    return lambda value: (type(value) is str and len(value) >= shortest
                          and (longest is None or len(value) <= longest)
                          and (pattern is None or pattern.search(value) is not None)
                          and (words is None or value in words))


class Checker:
    """A schema's validator, built once (when a route is declared), not on every request.
    Values that a simple schema plainly accepts are let through without the validator."""

    def __init__(self, schema: dict[str, Any]):
        self.schema = schema
        self.validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
        self.accepts = _simple_check(schema)

    def check(self, value: Any) -> None:
        """Raise ApiError(400) naming the first offending field."""
        if self.accepts is not None and self.accepts(value):
            return
        if self.validator.is_valid(value):
            return
        error = next(iter(sorted(self.validator.iter_errors(value), key=lambda e: list(e.absolute_path))), None)
        if error is not None:
            field = _field_of(error)
            raise ApiError(400, _message(error, field), field=field or None)


def validate(schema: dict[str, Any], value: Any) -> None:
    """Raise ApiError(400) naming the first offending field (builds a validator: for one-off
    checks; routes use the Checker their @endpoint built)."""
    Checker(schema).check(value)


def body_too_large() -> ApiError:
    return ApiError(400, f"body: larger than the {MAX_JSON_BYTES} bytes a JSON body may have", field="body")


def read_json_body(checker: Checker) -> Any:
    if request.content_length is not None and request.content_length > MAX_JSON_BYTES:
        raise body_too_large()
    try:
        raw = request.get_data(cache=True)
    except RequestEntityTooLarge:  # a body without a length, beyond the server's limit
        raise body_too_large() from None
    if len(raw) > MAX_JSON_BYTES:
        raise body_too_large()
    if not request.is_json:
        raise ApiError(415 if raw else 400, "expected a JSON body (Content-Type: application/json)")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise ApiError(400, "malformed JSON") from None
    check_storable(data)
    checker.check(data)
    return data


class QueryParam:
    """One declared query parameter: how its text is parsed and the checker of its value."""

    def __init__(self, name: str, schema: dict[str, Any]):
        self.name = name
        self.schema = schema
        self.kind = schema.get("type", "string")
        self.date_time = self.kind == "string" and schema.get("format") == "date-time"
        self.checker = Checker({k: v for k, v in schema.items() if k != "format"})

    def parse(self, raw: str) -> Any:
        name = self.name
        try:
            if self.kind == "integer":
                value: Any = int(raw)
            elif self.kind == "boolean":
                lowered = raw.lower()
                if lowered not in ("true", "false", "1", "0"):
                    raise ValueError
                value = lowered in ("true", "1")
            elif self.date_time:
                value = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
                if value.tzinfo is None:
                    value = value.replace(tzinfo=dt.UTC)
                self.checker.check(raw)
                return value
            else:
                value = raw
                problem = _bad_string(raw)
                if problem:
                    raise ApiError(400, f"{name}: {problem}", field=name)
        except ValueError:
            raise ApiError(400, f"{name}: must be {self.schema.get('format', self.kind)}", field=name) from None
        if isinstance(value, int) and not isinstance(value, bool) and not -INT64_MAX - 1 <= value <= INT64_MAX:
            raise ApiError(400, f"{name}: number out of range", field=name)
        try:
            self.checker.check(value)
        except ApiError as exc:
            raise ApiError(400, f"{name}: {exc.message.split(': ', 1)[-1]}", field=name) from None
        return value


def _parse_query(params: dict[str, QueryParam], names: frozenset[str]) -> dict[str, Any]:
    args = request.args
    if not args:
        return {}
    extra = sorted(set(args) - names)
    if extra:
        raise ApiError(400, _unknown(extra, "query parameter"), field=extra[0])
    return {name: params[name].parse(args[name]) for name in params if name in args}


def endpoint(
    *,
    summary: str,
    body: dict[str, Any] | None = None,
    response: dict[str, Any] | None = None,
    query: dict[str, dict[str, Any]] | None = None,
    status: int = 200,
    tags: list[str] | None = None,
    content_type: str = "application/json",
    errors: tuple[int, ...] = (),
) -> Callable[[F], F]:
    """Declare and enforce a route's contract (see the module docstring)."""

    request_schema = closed_objects(copy.deepcopy(body)) if body is not None else None
    body_checker = Checker(request_schema) if request_schema is not None else None
    params = {name: QueryParam(name, schema) for name, schema in (query or {}).items()}
    names = frozenset(params)

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            for name, value in kwargs.items():
                if isinstance(value, str) and _bad_string(value):
                    raise ApiError(400, f"{name}: {_bad_string(value)}", field=name)
            g.query = _parse_query(params, names) if params else {}
            if body_checker is not None:
                g.body = read_json_body(body_checker)
            return view(*args, **kwargs)

        wrapped.api_doc = {  # type: ignore[attr-defined]
            "summary": summary,
            "body": request_schema,
            "response": response,
            "query": query or {},
            "status": status,
            "tags": tags or [],
            "content_type": content_type,
            "errors": errors,
        }
        return wrapped  # type: ignore[return-value]

    return decorate


# -- the document ----------------------------------------------------------------------------

ERROR_SCHEMA = {
    "type": "object",
    "properties": {"error": {"type": "string"}, "field": {"type": "string"}},
    "required": ["error"],
}
_CONVERTER = re.compile(r"<(?:(?P<conv>[a-z]+):)?(?P<name>[a-zA-Z_][a-zA-Z0-9_]*)>")


def _path_params(rule: str) -> tuple[str, list[dict[str, Any]]]:
    params = []
    for match in _CONVERTER.finditer(rule):
        kind = {"int": "integer"}.get(match.group("conv") or "", "string")
        params.append({"name": match.group("name"), "in": "path", "required": True, "schema": {"type": kind}})
    return _CONVERTER.sub(lambda m: "{" + m.group("name") + "}", rule), params


def openapi_document(app: Flask, *, title: str = "Relate Mail API", version: str = "1") -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for rule in app.url_map.iter_rules():
        view = app.view_functions.get(rule.endpoint)
        doc = getattr(view, "api_doc", None)
        if doc is None:
            continue
        path, params = _path_params(rule.rule)
        scope = getattr(view, "required_scope", None)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            operation: dict[str, Any] = {
                "operationId": f"{rule.endpoint}_{method.lower()}".replace(".", "_"),
                "summary": doc["summary"],
                "tags": doc["tags"],
                "parameters": params
                + [{"name": n, "in": "query", "required": False, "schema": s} for n, s in doc["query"].items()],
                "responses": {},
            }
            if doc["body"] is not None:
                operation["requestBody"] = {
                    "required": True,
                    "content": {"application/json": {"schema": doc["body"]}},
                }
            ok: dict[str, Any] = {"description": "OK"}
            if doc["response"] is not None:
                ok["content"] = {doc["content_type"]: {"schema": doc["response"]}}
            operation["responses"][str(doc["status"])] = ok
            error = {"description": "error", "content": {"application/json": {"schema": ERROR_SCHEMA}}}
            codes = set(doc["errors"]) | {400}
            if scope is not None:
                operation["security"] = [{"apiKey": []}, {"bearer": []}]
                codes |= {401, 403}
            if params:
                codes.add(404)
            if doc["body"] is not None:
                codes.add(415)
            for code in sorted(codes):
                operation["responses"][str(code)] = error
            operation["responses"]["414"] = {"description": "request line too long (the HTTP server's limit)"}
            operation["responses"]["429"] = error
            operation["responses"]["503"] = error
            paths.setdefault(path, {})[method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": dict(sorted(paths.items())),
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "Authorization"},
            }
        },
    }
