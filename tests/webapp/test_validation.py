"""Framework-level input checking: every bad request is a JSON 4xx naming what was wrong, never a 500."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.webapp.conftest import Http, MakeApi
from webapp.apidoc import MAX_JSON_BYTES


@pytest.fixture
def http(api: MakeApi) -> Http:
    return api().http  # development mode: the development user is an administrator


def post_raw(http: Http, path: str, body: bytes, content_type: str = "application/json") -> tuple[int, dict]:
    response = http.post(path, data=body, headers={"Content-Type": content_type})
    assert response.headers["Content-Type"].startswith("application/json"), response.text
    return response.status_code, response.json()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"email": 42}', "email"),
        (b'{"email": "a@b.test", "isAdmin": "yes"}', "isAdmin"),
        (b'{"email": "a@b.test", "displayName": null}', "displayName"),
        (b'{"email": "a@b.test", "role": "root"}', "role"),
        (b'{"displayName": "x"}', "email"),
        (b'{"email": "' + b"a" * 400 + b'@b.test"}', "email"),
        (b'{"email": "a\\u0000@b.test"}', "email"),
        (b'{"email": "\\ud800@b.test"}', "email"),
        (b'{"email": "a@b.test", "isAdmin": 99999999999999999999999}', "isAdmin"),
    ],
    ids=["wrong-type", "wrong-bool", "null", "unknown-field", "missing", "too-long", "nul", "lone-surrogate", "huge-int"],
)
def test_bad_fields_are_400_naming_the_field(http: Http, body: bytes, field: str) -> None:
    status, error = post_raw(http, "/api/admin/users", body)
    assert status == 400
    assert error["field"] == field
    assert error["error"].startswith(field)


@pytest.mark.parametrize(
    "body",
    [b"{", b'{"email": }', b"\xff\xfe", b"[" * 100_000 + b"]" * 100_000, b'{"email": "a@b.test"} trailing', b"NaN"],
    ids=["truncated", "syntax", "not-utf8", "deep-nesting", "trailing", "nan"],
)
def test_malformed_json_is_400(http: Http, body: bytes) -> None:
    status, error = post_raw(http, "/api/admin/users", body)
    assert status == 400
    assert error["error"]


def test_nested_too_deeply_but_parseable_is_400(http: Http) -> None:
    body = b'{"email": "a@b.test", "x": ' + b"[" * 40 + b"]" * 40 + b"}"
    status, error = post_raw(http, "/api/admin/users", body)
    assert status == 400
    assert error["field"].startswith("x.0.0")
    assert "nested too deeply" in error["error"]


def test_a_non_object_body_is_400(http: Http) -> None:
    status, error = post_raw(http, "/api/admin/users", b'["a@b.test"]')
    assert status == 400
    assert "object" in error["error"]


def test_wrong_content_type_is_415_and_missing_body_400(http: Http) -> None:
    assert post_raw(http, "/api/admin/users", b"email=a@b.test", "application/x-www-form-urlencoded")[0] == 415
    assert post_raw(http, "/api/admin/users", b"", "application/json")[0] == 400


def test_oversize_bodies_are_400_naming_the_body_and_the_limit(http: Http) -> None:
    status, error = post_raw(http, "/api/admin/users", b'{"email": "' + b"a" * 2_000_000 + b'"}')
    assert status == 400
    assert error["field"] == "body"
    assert str(MAX_JSON_BYTES) in error["error"]


def test_oversize_bodies_without_a_length_are_400_too(http: Http) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"email": "'
        for _ in range(40):
            yield b"a" * 65536
        yield b'"}'

    response = http.post("/api/admin/users", data=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["field"] == "body"


def test_a_body_at_the_limit_is_read(http: Http) -> None:
    padding = MAX_JSON_BYTES - len(b'{"email": "a@b.test", "x": ""}')
    body = b'{"email": "a@b.test", "x": "' + b"y" * padding + b'"}'
    assert len(body) == MAX_JSON_BYTES
    status, error = post_raw(http, "/api/admin/users", body)
    assert status == 400 and error["field"] == "x"  # read and validated: an unknown field


def test_bad_query_parameters_are_400_naming_them(http: Http) -> None:
    for params, name in [({"page": "x"}, "page"), ({"page": "0"}, "page"), ({"pageSize": "9" * 30}, "pageSize"),
                         ({"sort": "name"}, "sort")]:
        response = http.get("/api/admin/users", params=params)
        assert response.status_code == 400, params
        assert response.json()["field"] == name


def test_nul_in_a_path_segment_is_400(http: Http) -> None:
    response = http.delete("/api/admin/domains/exa%00mple.test")
    assert response.status_code == 400
    assert response.json()["field"] == "name"


def test_duplicates_are_409(http: Http) -> None:
    assert http.post("/api/admin/users", json={"email": "a@b.test"}).status_code == 201
    response = http.post("/api/admin/users", json={"email": "A@B.test"})
    assert response.status_code == 409
    assert response.json()["error"]


@pytest.mark.parametrize("path", ["/api/nothing", "/api/admin/nothing", "/api/", "/api/admin/users/1/nothing"])
def test_unknown_api_paths_are_json_404(http: Http, path: str) -> None:
    for method in ("GET", "POST", "DELETE"):
        response = http.request(method, path)
        assert response.status_code == 404, (method, path)
        assert response.json() == {"error": "not found"}


def test_wrong_method_is_json_405(http: Http) -> None:
    response = http.request("PUT", "/api/admin/domains")
    assert response.status_code == 405
    assert response.json()["error"]
