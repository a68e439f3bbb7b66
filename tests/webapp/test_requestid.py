"""A request id on every response and in every log line written while handling the request."""

from __future__ import annotations

import logging
import re

import pytest

from tests.webapp.conftest import MakeApi


def test_a_request_id_is_made_up_and_returned(api: MakeApi) -> None:
    server = api()
    first = server.http.get("/api/discovery").headers["X-Request-Id"]
    second = server.http.get("/api/nothing").headers["X-Request-Id"]
    assert re.fullmatch(r"[0-9a-f]{16}", first) and first != second


def test_a_well_formed_incoming_id_is_kept_and_a_bad_one_replaced(api: MakeApi) -> None:
    server = api()
    kept = server.http.get("/healthz", headers={"X-Request-Id": "proxy-1234.abcd"})
    assert kept.headers["X-Request-Id"] == "proxy-1234.abcd"
    replaced = server.http.get("/healthz", headers={"X-Request-Id": "bad id %s"})
    assert replaced.headers["X-Request-Id"] != "bad id %s"
    assert re.fullmatch(r"[0-9a-f]{16}", replaced.headers["X-Request-Id"])


def test_every_log_line_of_a_request_carries_its_id(api: MakeApi, caplog: pytest.LogCaptureFixture) -> None:
    server = api(Api__RateLimitPerIp="1")
    caplog.set_level(logging.INFO)
    server.http.get("/api/discovery", headers={"X-Request-Id": "first-request"})
    response = server.http.get("/api/discovery", headers={"X-Request-Id": "second-request"})
    assert response.status_code == 429
    mine = [r for r in caplog.records if r.__dict__.get("request_id") == "second-request"]
    assert mine, "no records carry the request id"
    for record in mine:
        assert record.getMessage().startswith("[second-request] ")
    access = [r.getMessage() for r in mine if r.name == "relate.api.access"]
    assert access and "GET /api/discovery 429" in access[0]
    # lines logged outside any request carry none
    logging.getLogger("relate.test").info("outside")
    assert caplog.records[-1].__dict__.get("request_id") == "-"
