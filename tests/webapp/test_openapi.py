"""The OpenAPI 3.1 document matches the routes, and schemathesis finds no server errors and no
responses that break it, over real HTTP against the app in development mode (where requests
without credentials act as an administrator, so every route is reachable)."""

from __future__ import annotations

import base64
import time
from typing import Any

import hypothesis
import pytest
import schemathesis
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, Phase
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.webapp.conftest import MakeApi
from webapp.apidoc import openapi_document

POSITIVE_EXAMPLES = 10  # per operation: about a minute for the whole API
NEGATIVE_EXAMPLES = 6
UNLIMITED = {"Api__RateLimitPerIp": "0", "Api__RateLimitPerUser": "0"}
REJECTIONS = ["400", "401", "403", "404", "405", "406", "409", "413", "414", "415", "422", "428", "429"]
MAX_REPORT = 2000  # characters of each failure shown (reproductions can be huge)


def vapid_env() -> dict[str, str]:
    """A configured web push (so those routes are exercised too, not just their 'off' answer)."""
    key = ec.generate_private_key(ec.SECP256R1())
    private = key.private_numbers().private_value.to_bytes(32, "big")
    public = key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return {
        "Push__VapidPublicKey": base64.urlsafe_b64encode(public).rstrip(b"=").decode(),
        "Push__VapidPrivateKey": base64.urlsafe_b64encode(private).rstrip(b"=").decode(),
        "Push__VapidSubject": "mailto:postmaster@example.test",
    }

UNDOCUMENTED = {
    "api_root.openapi",  # the document itself
    "api_root.unknown_api_path",  # the JSON 404 for everything else under /api
}
# What the document covers: the API and everything machines fetch; not the web UI's files.
API_PREFIXES = ("/api/", "/auth/", "/config/", "/.well-known/autoconfig/", "/mail/", "/autodiscover/")
API_PATHS = ("/healthz", "/readyz", "/metrics")


def test_every_route_is_in_the_document(api: MakeApi) -> None:
    server = api()
    document = server.http.get("/api/openapi.json").json()
    assert document["openapi"].startswith("3.1")
    documented = {(path, method) for path, item in document["paths"].items() for method in item}
    for rule in server.app.url_map.iter_rules():
        if rule.endpoint in UNDOCUMENTED or rule.rule == "/api/ws":  # a WebSocket, not JSON
            continue
        if not rule.rule.startswith(API_PREFIXES) and rule.rule not in API_PATHS:
            continue
        view = server.app.view_functions[rule.endpoint]
        if getattr(view, "api_doc", None) is None:
            pytest.fail(f"{rule.rule} ({rule.endpoint}) is not declared with @endpoint")
        path = rule.rule.replace("<int:", "{").replace("<", "{").replace(">", "}")
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
            assert (path, method.lower()) in documented, (path, method)


def test_operations_say_how_they_are_authorised(api: MakeApi) -> None:
    document = openapi_document(api().app)
    admin = document["paths"]["/api/admin/users"]["get"]
    assert admin["security"] and "401" in admin["responses"] and "403" in admin["responses"]
    public = document["paths"]["/api/discovery"]["get"]
    assert "security" not in public
    create = document["paths"]["/api/admin/users"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"]["additionalProperties"] is False


def _run(operation: Any, base_url: str, mode: schemathesis.GenerationMode, examples: int,
         checks: list[Any]) -> None:
    @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
    @hypothesis.settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def check(case: Any) -> None:
        response = case.call(base_url=base_url, timeout=10)
        case.validate_response(response, checks=checks)

    check()


@pytest.mark.timeout(300)
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)  # the stricter database; one run is enough
def test_schemathesis_finds_no_server_errors_or_schema_violations(api: MakeApi) -> None:
    server = api(**UNLIMITED, **vapid_env(), Internal__ApiKey="internal-key-for-the-fuzzer")
    config = schemathesis.Config.from_dict(
        # 413 and 414: a body or a URL beyond the server's limits is refused before any route
        {"checks": {"negative_data_rejection": {"expected-statuses": REJECTIONS}}}
    )
    schema = schemathesis.openapi.from_url(server.base + "/api/openapi.json", config=config)
    positive = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    negative = [*positive, negative_data_rejection]
    failures: list[str] = []
    started = time.monotonic()
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        for mode, examples, checks in (
            (schemathesis.GenerationMode.POSITIVE, POSITIVE_EXAMPLES, positive),
            (schemathesis.GenerationMode.NEGATIVE, NEGATIVE_EXAMPLES, negative),
        ):
            try:
                _run(operation, server.base, mode, examples, checks)
            except hypothesis.errors.Unsatisfiable:
                continue  # nothing invalid to say about an operation without parameters
            except Exception as exc:
                failures.append(f"{operation.label} [{mode.value}]: {str(exc)[:MAX_REPORT]}")
    assert operations > 20
    assert not failures, "\n\n".join(failures)
    assert time.monotonic() - started < 240, "the schemathesis run is getting too slow: lower the example counts"
