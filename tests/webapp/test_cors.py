"""Cross-origin requests: only the origins in Cors__AllowedOrigins."""

from __future__ import annotations

from tests.webapp.conftest import MakeApi

ORIGIN = "https://app.example.test"


def test_listed_origin_gets_cors_headers_and_preflight(api: MakeApi) -> None:
    server = api(Cors__AllowedOrigins=f"{ORIGIN}, https://other.example.test")
    response = server.http.get("/api/discovery", headers={"Origin": ORIGIN})
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert response.headers["Access-Control-Allow-Credentials"] == "true"
    assert "X-Request-Id" in response.headers["Access-Control-Expose-Headers"]

    preflight = server.http.request(
        "OPTIONS",
        "/api/admin/domains",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "Content-Type, X-CSRF-Token, Authorization",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == ORIGIN
    allowed = preflight.headers["Access-Control-Allow-Headers"].lower()
    assert "x-csrf-token" in allowed and "authorization" in allowed
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]


def test_unlisted_origin_gets_nothing(api: MakeApi) -> None:
    server = api(Cors__AllowedOrigins=ORIGIN)
    response = server.http.get("/api/discovery", headers={"Origin": "https://evil.example.test"})
    assert "Access-Control-Allow-Origin" not in response.headers


def test_no_origins_configured_means_same_origin_only(api: MakeApi) -> None:
    server = api()
    response = server.http.get("/api/discovery", headers={"Origin": ORIGIN})
    assert "Access-Control-Allow-Origin" not in response.headers
    preflight = server.http.request(
        "OPTIONS", "/api/admin/domains", headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"}
    )
    assert "Access-Control-Allow-Origin" not in preflight.headers


def test_wildcard_never_allows_credentials(api: MakeApi) -> None:
    server = api(Cors__AllowedOrigins="*")
    response = server.http.get("/api/discovery", headers={"Origin": ORIGIN})
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in response.headers
