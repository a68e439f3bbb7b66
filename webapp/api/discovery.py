"""What clients learn before signing in: server capabilities (/api/discovery), the web UI's
runtime configuration (/config/config.json), and mail-client autoconfiguration.

Autoconfiguration is built from the real settings: each protocol's server name, the ports
that are enabled (0 disables one) and their TLS mode, implicit TLS first (RFC 8314 §4.1
recommends it over STARTTLS). A disabled protocol is left out. The user name is the email
address and the password an API key (DESIGN.md §4).

- Thunderbird: GET /.well-known/autoconfig/mail/config-v1.1.xml and /mail/config-v1.1.xml
  (the latter is what autoconfig.<domain> serves), `?emailaddress=` optional.
- Outlook: POST /autodiscover/autodiscover.xml with the 2006 request schema; GET with
  `?emailaddress=` for clients that probe that way.

Every route here is public (no credentials read).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Response, g, jsonify, request

import relate
from relate.config import Settings
from relate.store import InvalidInput, accounts
from webapp.apidoc import endpoint
from webapp.auth import public, settings
from webapp.errors import ApiError

bp = Blueprint("discovery", __name__)

API_VERSION = "v1"
MAX_AUTODISCOVER_BYTES = 16 * 1024
AUTODISCOVER_RESPONSE = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
OUTLOOK_RESPONSE = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
XML_CONTENT_TYPE = "application/xml"


@dataclass(frozen=True)
class Port:
    port: int
    security: str  # "tls" (implicit) or "starttls"


@dataclass(frozen=True)
class Service:
    protocol: str  # "smtp", "pop3", "imap"
    host: str
    ports: tuple[Port, ...]  # preferred first


def services(current: Settings) -> list[Service]:
    """The client-facing listeners that are on, implicit TLS before STARTTLS."""
    found = []
    for protocol, section in (("imap", current.imap), ("pop3", current.pop3), ("smtp", current.smtp)):
        if not section.enabled:
            continue
        ports = tuple(
            Port(number, security)
            for number, security in ((section.secure_port, "tls"), (section.port, "starttls"))
            if number
        )
        if ports:
            found.append(Service(protocol, section.server_name, ports))
    return found


# -- JSON ----------------------------------------------------------------------------------

PORT_SCHEMA = {
    "type": "object",
    "properties": {"port": {"type": "integer"}, "security": {"enum": ["tls", "starttls"]}},
    "required": ["port", "security"],
}
PROTOCOL_SCHEMA = {
    "type": "object",
    "properties": {
        "enabled": {"type": "boolean"},
        "host": {"type": "string"},
        "ports": {"type": "array", "items": PORT_SCHEMA},
    },
    "required": ["enabled", "host", "ports"],
}
DISCOVERY_OUT = {
    "type": "object",
    "properties": {
        "version": {"type": "string"},
        "apiVersion": {"type": "string"},
        "oidcEnabled": {"type": "boolean"},
        "features": {"type": "array", "items": {"type": "string"}},
        "protocols": {
            "type": "object",
            "properties": {"smtp": PROTOCOL_SCHEMA, "pop3": PROTOCOL_SCHEMA, "imap": PROTOCOL_SCHEMA},
            "required": ["smtp", "pop3", "imap"],
        },
    },
    "required": ["version", "apiVersion", "oidcEnabled", "features", "protocols"],
}
CONFIG_OUT = {
    "type": "object",
    "properties": {
        "oidcAuthority": {"type": "string"},
        "oidcClientId": {"type": "string"},
        "oidcRedirectUri": {"type": "string"},
        "oidcScope": {"type": "string"},
        "loginUrl": {"type": ["string", "null"]},
        "sessionUrl": {"type": "string"},
        "development": {"type": "boolean"},
        "vapidPublicKey": {"type": "string"},
    },
    "required": ["oidcAuthority", "oidcClientId", "oidcRedirectUri", "oidcScope", "loginUrl", "sessionUrl"],
}


@bp.get("/api/discovery")
@public
@endpoint(summary="Server capabilities, for setting up a client", response=DISCOVERY_OUT, tags=["discovery"])
def discovery() -> Any:
    current = settings()
    on = {s.protocol: s for s in services(current)}
    features: list[str] = [p for p in ("smtp", "pop3", "imap") if p in on]
    features += ["api-keys", "labels", "filters", "preferences"]
    if current.oidc.authority:
        features.append("oidc")
    if current.push.enabled:
        features.append("push")
    protocols = {}
    for protocol, section in (("smtp", current.smtp), ("pop3", current.pop3), ("imap", current.imap)):
        service = on.get(protocol)
        protocols[protocol] = {
            "enabled": service is not None,
            "host": section.server_name,
            "ports": [{"port": p.port, "security": p.security} for p in service.ports] if service else [],
        }
    return {
        "version": relate.__version__,
        "apiVersion": API_VERSION,
        "oidcEnabled": bool(current.oidc.authority),
        "features": features,
        "protocols": protocols,
    }


@bp.get("/config/config.json")
@public
@endpoint(summary="Runtime configuration of the web UI", response=CONFIG_OUT, tags=["discovery"])
def web_config() -> Any:
    current = settings()
    body = {
        "oidcAuthority": current.oidc.authority,
        "oidcClientId": current.oidc.client_id,
        "oidcRedirectUri": "",
        "oidcScope": current.oidc.scope,
        "loginUrl": "/auth/login" if current.oidc.client_id and not current.development else None,
        "sessionUrl": "/api/session",
        "development": current.development,
        "vapidPublicKey": current.push.vapid_public_key,
    }
    response = jsonify(body)
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


# -- which domain ----------------------------------------------------------------------------


def _address(raw: str | None) -> str | None:
    if not raw:
        return None
    try:
        return accounts.normalise_address(raw)
    except InvalidInput:
        raise ApiError(400, "emailaddress: not a valid address", field="emailaddress") from None


def _domain_for(address: str | None) -> str:
    """The domain to describe: the address's, else the host name minus `autoconfig.`, else the
    only hosted domain. 404 when it is not a domain hosted here."""
    hosted = accounts.hosted_domains()
    if address:
        domain = address.split("@", 1)[1]
    else:
        host = request.host.split(":", 1)[0].lower()
        domain = re.sub(r"^(autoconfig|autodiscover)\.", "", host)
        if domain not in hosted and len(hosted) == 1:
            domain = next(iter(hosted))
    if hosted and domain not in hosted:
        raise ApiError(404, f"{domain} is not a domain hosted here")
    return domain


def _xml_response(root: ET.Element) -> Response:
    body = ET.tostring(root, encoding="unicode", xml_declaration=False)
    response = Response('<?xml version="1.0" encoding="UTF-8"?>\n' + body + "\n", status=200)
    response.mimetype = XML_CONTENT_TYPE
    response.headers["Cache-Control"] = "no-store"
    return response


def _text(parent: ET.Element, tag: str, value: str, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrs)
    element.text = value
    return element


# -- Thunderbird ---------------------------------------------------------------------------

THUNDERBIRD_SOCKET = {"tls": "SSL", "starttls": "STARTTLS"}
EMAIL_QUERY = {"emailaddress": {"type": "string", "maxLength": 320}}


def thunderbird_config(current: Settings, domain: str) -> ET.Element:
    """Mozilla's clientConfig v1.1 for `domain`."""
    root = ET.Element("clientConfig", {"version": "1.1"})
    provider = ET.SubElement(root, "emailProvider", {"id": domain})
    _text(provider, "domain", domain)
    _text(provider, "displayName", f"Relate Mail ({domain})")
    _text(provider, "displayShortName", "Relate Mail")
    for service in services(current):
        tag = "outgoingServer" if service.protocol == "smtp" else "incomingServer"
        for port in service.ports:
            server = ET.SubElement(provider, tag, {"type": service.protocol})
            _text(server, "hostname", service.host)
            _text(server, "port", str(port.port))
            _text(server, "socketType", THUNDERBIRD_SOCKET[port.security])
            _text(server, "username", "%EMAILADDRESS%")
            _text(server, "authentication", "password-cleartext")
    return root


def _thunderbird() -> Response:
    address = _address(g.query.get("emailaddress"))
    return _xml_response(thunderbird_config(settings(), _domain_for(address)))


AUTOCONFIG_DOC: dict[str, Any] = {
    "summary": "Thunderbird autoconfiguration (clientConfig v1.1)",
    "query": EMAIL_QUERY,
    "response": {"type": "string"},
    "content_type": XML_CONTENT_TYPE,
    "tags": ["discovery"],
    "errors": (404,),
}


@bp.get("/.well-known/autoconfig/mail/config-v1.1.xml")
@public
@endpoint(**AUTOCONFIG_DOC)
def autoconfig_well_known() -> Response:
    return _thunderbird()


@bp.get("/mail/config-v1.1.xml")
@public
@endpoint(**AUTOCONFIG_DOC)
def autoconfig() -> Response:
    return _thunderbird()


# -- Outlook -------------------------------------------------------------------------------

OUTLOOK_ENCRYPTION = {"tls": "SSL", "starttls": "TLS"}


def outlook_config(current: Settings, address: str | None) -> ET.Element:
    """The Outlook 2006a autodiscover answer: one entry per protocol, its preferred port."""
    root = ET.Element("Autodiscover", {"xmlns": AUTODISCOVER_RESPONSE})
    response = ET.SubElement(root, "Response", {"xmlns": OUTLOOK_RESPONSE})
    account = ET.SubElement(response, "Account")
    _text(account, "AccountType", "email")
    _text(account, "Action", "settings")
    for service in services(current):
        port = service.ports[0]
        protocol = ET.SubElement(account, "Protocol")
        _text(protocol, "Type", service.protocol.upper())
        _text(protocol, "Server", service.host)
        _text(protocol, "Port", str(port.port))
        _text(protocol, "DomainRequired", "off")
        if address:
            _text(protocol, "LoginName", address)
        _text(protocol, "SPA", "off")
        _text(protocol, "SSL", "on")
        _text(protocol, "Encryption", OUTLOOK_ENCRYPTION[port.security])
        _text(protocol, "AuthRequired", "on")
    return root


def _requested_address(body: bytes) -> str | None:
    """The EMailAddress of an autodiscover request (no DTDs, bounded size)."""
    if not body.strip():
        return None
    if len(body) > MAX_AUTODISCOVER_BYTES:
        raise ApiError(413, "autodiscover request too large")
    if b"<!DOCTYPE" in body.upper() or b"<!ENTITY" in body.upper():
        raise ApiError(400, "autodiscover request must not carry a DTD")
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        raise ApiError(400, "autodiscover request is not well-formed XML") from None
    for element in root.iter():
        if isinstance(element.tag, str) and element.tag.rsplit("}", 1)[-1] == "EMailAddress":
            return (element.text or "").strip() or None
    return None


@bp.route("/autodiscover/autodiscover.xml", methods=["GET", "POST"])
@public
@endpoint(
    summary="Outlook autodiscover (POX, 2006a response schema); POST the request XML or GET ?emailaddress=",
    query=EMAIL_QUERY,
    response={"type": "string"},
    content_type=XML_CONTENT_TYPE,
    tags=["discovery"],
    errors=(404, 413),
)
def autodiscover() -> Response:
    raw = g.query.get("emailaddress")
    if request.method == "POST":
        if (request.content_length or 0) > MAX_AUTODISCOVER_BYTES:
            raise ApiError(413, "autodiscover request too large")
        raw = _requested_address(request.stream.read(MAX_AUTODISCOVER_BYTES + 1)) or raw
    address = _address(raw)
    _domain_for(address)
    return _xml_response(outlook_config(settings(), address))
