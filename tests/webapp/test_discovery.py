"""What clients learn before signing in: /api/discovery, /config/config.json, autoconfiguration."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from relate.store import accounts
from tests.webapp.conftest import MakeApi, oidc_env
from tests.webapp.oidc_issuer import Issuer

PORTS = {
    "Smtp__ServerName": "smtp.example.test",
    "Pop3__ServerName": "pop.example.test",
    "Imap__ServerName": "imap.example.test",
    "Smtp__Port": "2587",
    "Smtp__SecurePort": "2465",
    "Pop3__Port": "1110",
    "Pop3__SecurePort": "1995",
    "Imap__Port": "1143",
    "Imap__SecurePort": "1993",
}
AUTOCONFIG_PATHS = ["/.well-known/autoconfig/mail/config-v1.1.xml", "/mail/config-v1.1.xml"]
NS = "{http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a}"


@pytest.fixture(autouse=True)
def hosted(store: object) -> None:
    accounts.add_domain("example.test")


def test_discovery_reports_protocols_ports_and_features(api: MakeApi) -> None:
    body = api(**PORTS).http.get("/api/discovery").json()
    assert body["apiVersion"] == "v1" and body["version"]
    assert body["oidcEnabled"] is False
    assert body["features"][:3] == ["smtp", "pop3", "imap"]
    assert "oidc" not in body["features"]
    assert body["protocols"]["imap"] == {
        "enabled": True,
        "host": "imap.example.test",
        "ports": [{"port": 1993, "security": "tls"}, {"port": 1143, "security": "starttls"}],
    }
    assert body["protocols"]["smtp"]["ports"][0] == {"port": 2465, "security": "tls"}


def test_discovery_leaves_out_what_is_off(api: MakeApi, issuer: Issuer) -> None:
    body = api(**{**PORTS, **oidc_env(issuer), "Pop3__Enabled": "false", "Imap__SecurePort": "0"}).http.get("/api/discovery")
    data = body.json()
    assert data["oidcEnabled"] is True and "oidc" in data["features"]
    assert "pop3" not in data["features"]
    assert data["protocols"]["pop3"] == {"enabled": False, "host": "pop.example.test", "ports": []}
    assert data["protocols"]["imap"]["ports"] == [{"port": 1143, "security": "starttls"}]


def test_discovery_is_public_even_with_oidc_and_odd_credentials(api: MakeApi, issuer: Issuer) -> None:
    server = api(**oidc_env(issuer))
    for headers in ({}, {"Authorization": "Basic Zm9vOmJhcg=="}, {"Authorization": "Bearer junk"}):
        assert server.http.get("/api/discovery", headers=headers).status_code == 200
        assert server.http.get("/config/config.json", headers=headers).status_code == 200


def test_web_config(api: MakeApi, issuer: Issuer) -> None:
    response = api(**oidc_env(issuer)).http.get("/config/config.json")
    body = response.json()
    assert body["oidcAuthority"] == issuer.url
    assert body["oidcClientId"] == "relate-web"
    assert body["oidcScope"] == "openid profile email"
    assert body["oidcRedirectUri"] == ""
    assert body["loginUrl"] == "/auth/login" and body["sessionUrl"] == "/api/session"
    assert "max-age=300" in response.headers["Cache-Control"]
    dev = api().http.get("/config/config.json").json()
    assert dev["oidcAuthority"] == "" and dev["development"] is True and dev["loginUrl"] is None


@pytest.mark.parametrize("path", AUTOCONFIG_PATHS)
def test_thunderbird_autoconfig(api: MakeApi, path: str) -> None:
    response = api(**PORTS).http.get(path, params={"emailaddress": "alice@example.test"})
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/xml")
    root = ET.fromstring(response.content)
    assert root.tag == "clientConfig" and root.get("version") == "1.1"
    provider = root.find("emailProvider")
    assert provider is not None and provider.get("id") == "example.test"
    servers = [
        (s.tag, s.get("type"), s.findtext("hostname"), int(s.findtext("port") or 0), s.findtext("socketType"))
        for s in provider
        if s.tag in ("incomingServer", "outgoingServer")
    ]
    assert servers == [
        ("incomingServer", "imap", "imap.example.test", 1993, "SSL"),
        ("incomingServer", "imap", "imap.example.test", 1143, "STARTTLS"),
        ("incomingServer", "pop3", "pop.example.test", 1995, "SSL"),
        ("incomingServer", "pop3", "pop.example.test", 1110, "STARTTLS"),
        ("outgoingServer", "smtp", "smtp.example.test", 2465, "SSL"),
        ("outgoingServer", "smtp", "smtp.example.test", 2587, "STARTTLS"),
    ]
    for server in provider.iter("incomingServer"):
        assert server.findtext("username") == "%EMAILADDRESS%"
        assert server.findtext("authentication") == "password-cleartext"


def test_both_autoconfig_paths_agree(api: MakeApi) -> None:
    server = api(**PORTS)
    first, second = (server.http.get(p, params={"emailaddress": "a@example.test"}).content for p in AUTOCONFIG_PATHS)
    assert first == second


def test_autoconfig_by_host_name_and_for_unknown_domains(api: MakeApi) -> None:
    server = api(**PORTS)
    by_host = server.http.get("/mail/config-v1.1.xml", headers={"Host": "autoconfig.example.test"})
    assert ET.fromstring(by_host.content).find("emailProvider").get("id") == "example.test"  # type: ignore[union-attr]
    unknown = server.http.get("/mail/config-v1.1.xml", params={"emailaddress": "x@elsewhere.test"})
    assert unknown.status_code == 404
    assert server.http.get("/mail/config-v1.1.xml", params={"emailaddress": "nonsense"}).status_code == 400


def test_outlook_autodiscover_post(api: MakeApi) -> None:
    request = (
        b'<?xml version="1.0" encoding="utf-8"?>'
        b'<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">'
        b"<Request><EMailAddress>alice@example.test</EMailAddress>"
        b"<AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
        b"</AcceptableResponseSchema></Request></Autodiscover>"
    )
    server = api(**PORTS)
    # Outlook sends the user's credentials along; the route must not care
    response = server.http.post(
        "/autodiscover/autodiscover.xml",
        data=request,
        headers={"Content-Type": "text/xml", "Authorization": "Basic YWxpY2U6cHc="},
    )
    assert response.status_code == 200, response.text
    root = ET.fromstring(response.content)
    protocols = {
        p.findtext(f"{NS}Type"): (p.findtext(f"{NS}Server"), p.findtext(f"{NS}Port"), p.findtext(f"{NS}Encryption"),
                                  p.findtext(f"{NS}LoginName"))
        for p in root.iter(f"{NS}Protocol")
    }
    assert protocols == {
        "IMAP": ("imap.example.test", "1993", "SSL", "alice@example.test"),
        "POP3": ("pop.example.test", "1995", "SSL", "alice@example.test"),
        "SMTP": ("smtp.example.test", "2465", "SSL", "alice@example.test"),
    }


def test_outlook_autodiscover_uses_starttls_when_implicit_tls_is_off(api: MakeApi) -> None:
    server = api(**{**PORTS, "Smtp__SecurePort": "0"})
    root = ET.fromstring(server.http.get("/autodiscover/autodiscover.xml",
                                         params={"emailaddress": "alice@example.test"}).content)
    smtp = next(p for p in root.iter(f"{NS}Protocol") if p.findtext(f"{NS}Type") == "SMTP")
    assert (smtp.findtext(f"{NS}Port"), smtp.findtext(f"{NS}Encryption")) == ("2587", "TLS")


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b'<!DOCTYPE x [<!ENTITY a "aaaa">]><Autodiscover>&a;</Autodiscover>', 400),
        (b"<Autodiscover><Request>", 400),
        (b"<Autodiscover>" + b"x" * 20000 + b"</Autodiscover>", 413),
        (b"<A><EMailAddress>x@elsewhere.test</EMailAddress></A>", 404),
    ],
    ids=["dtd", "broken", "too-large", "foreign-domain"],
)
def test_outlook_autodiscover_refuses_bad_requests(api: MakeApi, body: bytes, status: int) -> None:
    response = api().http.post("/autodiscover/autodiscover.xml", data=body, headers={"Content-Type": "text/xml"})
    assert response.status_code == status
