"""The API's shortcuts for hot requests give exactly what the general code gives: query
parameters a simple schema plainly accepts skip the JSON Schema validator, and a page of
emails is encoded with its times written by orjson instead of shapes.iso."""

from __future__ import annotations

import datetime as dt
import json
import random
from typing import Any

import pytest
from flask import Flask
from jsonschema import Draft202012Validator

from relate.store.listing import EmailRow, Page
from webapp import jsonio
from webapp.api import shapes
from webapp.apidoc import Checker, _simple_check

QUERY_SCHEMAS = {**shapes.LIST_QUERY, "sent": shapes.line(320), "empty": {"type": "string", "maxLength": 0}}
VALUES: list[Any] = [
    0, 1, 2, 50, 99, 100, 101, -1, shapes.MAX_PAGE, shapes.MAX_PAGE + 1, shapes.MAX_ID, shapes.MAX_ID + 1, 2**70,
    True, False, None, 1.0, 2.5, "", "INBOX", "a" * 320, "a" * 321, "x" * 1000, "x" * 1001, "Archive/2024",
    "tab\there", "new\nline", "nul\x00", "\ud800", "receivedAt-desc", "subject-asc", "nope", "$Important",
    "has space", "(paren", "ünïcödé", "2026-11-28T10:00:00Z", [], {}, ["INBOX"],
]


@pytest.mark.parametrize("name", sorted(QUERY_SCHEMAS))
def test_a_simple_check_accepts_what_the_validator_accepts_of_its_type(name: str) -> None:
    schema = {k: v for k, v in QUERY_SCHEMAS[name].items() if k != "format"}
    accepts = _simple_check(schema)
    assert accepts is not None, f"{name}: {schema}"
    validator = Draft202012Validator(schema)
    own_type = {"integer": int, "string": str, "boolean": bool}[schema["type"]]
    for value in VALUES:
        if type(value) is own_type:
            assert accepts(value) == validator.is_valid(value), (name, value)
        else:  # left to the validator (1.0 is an integer to JSON Schema)
            assert not accepts(value), (name, value)


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "properties": {"a": {"type": "integer"}}},
        {"type": ["string", "null"]},
        {"type": "string", "format": "date-time"},
        {"type": "integer", "multipleOf": 2},
        {"type": "string", "enum": ["a", 1]},
        {"type": "boolean", "const": True},
        {"anyOf": [{"type": "integer"}]},
    ],
    ids=["object", "two-types", "format", "multipleOf", "mixed-enum", "const", "anyOf"],
)
def test_other_schemas_have_no_simple_check(schema: dict[str, Any]) -> None:
    assert _simple_check(schema) is None


def test_a_checker_still_names_the_field_and_the_problem() -> None:
    checker = Checker({"type": "integer", "minimum": 1, "maximum": 100})
    checker.check(50)
    with pytest.raises(Exception, match="less than the minimum of 1"):
        checker.check(0)


def _rows(count: int) -> list[EmailRow]:
    rnd = random.Random(7)
    rows = []
    for i in range(count):
        received = dt.datetime(rnd.randint(1, 9999), rnd.randint(1, 12), rnd.randint(1, 28), rnd.randint(0, 23),
                               rnd.randint(0, 59), rnd.randint(0, 59), rnd.choice([0, 1, 500000, rnd.randint(0, 999999)]),
                               tzinfo=dt.UTC)
        sent = None if i % 3 == 0 else received - dt.timedelta(seconds=rnd.randint(0, 10**6))
        rows.append(EmailRow(i + 1, 2, "INBOX/Sub", i + 10, i + 100, 1234 + i, received, i % 2 == 0, i % 3 == 0,
                             i % 5 == 0, False, i % 7 == 0, ("$Label", "work") if i % 4 == 0 else (),
                             f"thread{i}", None if i % 6 == 0 else f"<m{i}@example.test>", f"Subject ü {i}",
                             f"sender{i}@example.test", "" if i % 2 else f"Sender {i}", "preview \"quoted\"",
                             i % 3 == 1, i % 4, sent, None))
    return rows


def test_a_page_of_emails_is_what_email_summary_and_the_json_provider_write() -> None:
    app = Flask(__name__)
    jsonio.init_app(app)
    rows = _rows(300)
    page = Page(rows, 12345, 678)
    expected = {
        "items": [shapes.email_summary(r) for r in rows],
        "totalCount": 12345,
        "unreadCount": 678,
        "page": 3,
        "pageSize": 50,
    }
    with app.app_context():
        response = shapes.email_list(page, 3, 50)
        assert response.mimetype == "application/json"
        assert response.get_data() == app.json.response(expected).get_data()  # byte for byte
    assert json.loads(response.get_data()) == expected
