"""/api/smtp-credentials: how to connect (from the running settings) and the caller's API keys,
which are the password for SMTP, POP3 and IMAP.

Invariants (DESIGN.md §4):
- A new key is shown once, in the response that creates it; only its hash is stored.
- Keys are created by the signed-in account holder, or with a key holding `app` (an
  administrator's key also may); a new key never gets a scope its creator's credential lacks
  (`Principal.grantable`), so no key can mint a stronger one.
- Another user's key id is a 404.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, g

from relate.config import API_SCOPES, Settings
from relate.store import accounts, keys
from relate.store.types import ApiKeyInfo
from webapp.api import shapes
from webapp.apidoc import endpoint
from webapp.auth import Principal, principal, require
from webapp.errors import ApiError

bp = Blueprint("credentials", __name__)
TAGS = ["credentials"]

DEFAULT_SCOPES = ["smtp", "pop3", "imap"]
PLATFORMS = ["ios", "android", "windows", "macos", "linux", "web"]
SCOPES = {"type": "array", "items": {"type": "string", "enum": list(API_SCOPES)}, "minItems": 1,
          "maxItems": len(API_SCOPES), "uniqueItems": True}
KEY = shapes.out({
    "id": shapes.ID,
    "name": shapes.STR,
    "prefix": shapes.STR,
    "createdAt": shapes.TIME,
    "lastUsedAt": shapes.nullable(shapes.TIME),
    "isActive": shapes.BOOL,
    "scopes": {"type": "array", "items": shapes.STR},
})
CREATED = shapes.out({
    "id": shapes.ID,
    "name": shapes.STR,
    "prefix": shapes.STR,
    "apiKey": shapes.STR,
    "scopes": {"type": "array", "items": shapes.STR},
    "createdAt": shapes.TIME,
})
ENDPOINT = shapes.out({
    "protocol": {"type": "string", "enum": ["smtp", "pop3", "imap"]},
    "host": shapes.STR,
    "port": shapes.INT,
    "security": {"type": "string", "enum": ["starttls", "tls"]},
})
CONNECTION = shapes.out({
    **{f"{p}{k}": schema for p in ("smtp", "pop3", "imap")
       for k, schema in (("Server", shapes.STR), ("Port", shapes.INT), ("SecurePort", shapes.INT),
                         ("Enabled", shapes.BOOL))},
    "username": shapes.STR,
    "activeKeyCount": shapes.INT,
    "allowInsecureAuth": shapes.BOOL,
    "endpoints": {"type": "array", "items": ENDPOINT},
})
CREDENTIALS = shapes.out({"connectionInfo": CONNECTION, "keys": {"type": "array", "items": KEY}})
CREATE = shapes.obj({"name": shapes.line(200, min_length=1), "scopes": SCOPES}, required=("name",))
MOBILE = shapes.obj({"deviceName": shapes.line(100, min_length=1), "platform": {"type": "string", "enum": PLATFORMS}},
                    required=("deviceName", "platform"))


def key_json(k: ApiKeyInfo) -> dict[str, Any]:
    return {
        "id": k.id,
        "name": k.name,
        "prefix": k.prefix,
        "createdAt": shapes.iso(k.created_at),
        "lastUsedAt": shapes.iso(k.last_used_at),
        "isActive": k.revoked_at is None,
        "scopes": sorted(k.scopes),
    }


def connection_info(settings: Settings, user_id: int, active_keys: int) -> dict[str, Any]:
    info: dict[str, Any] = {}
    endpoints = []
    for name in ("smtp", "pop3", "imap"):
        conf = getattr(settings, name)
        info.update({f"{name}Server": conf.server_name, f"{name}Port": conf.port,
                     f"{name}SecurePort": conf.secure_port, f"{name}Enabled": conf.enabled})
        if conf.enabled:
            # RFC 8314: implicit TLS on the secure port, STARTTLS (STLS) on the other.
            endpoints += [{"protocol": name, "host": conf.server_name, "port": port, "security": security}
                          for port, security in ((conf.secure_port, "tls"), (conf.port, "starttls")) if port]
    info.update({
        "username": accounts.get_user(user_id).primary_address,
        "activeKeyCount": active_keys,
        "allowInsecureAuth": settings.allow_insecure_auth,
        "endpoints": endpoints,
    })
    return info


def _may_create(who: Principal) -> None:
    if who.method == "api-key" and "app" not in who.grantable and not who.is_admin:
        raise ApiError(403, "creating API keys with an API key needs the app scope")


def _created(k: ApiKeyInfo, secret: str) -> dict[str, Any]:
    return {"id": k.id, "name": k.name, "prefix": k.prefix, "apiKey": secret, "scopes": sorted(k.scopes),
            "createdAt": shapes.iso(k.created_at)}


@bp.get("/api/smtp-credentials")
@require("api:read")
@endpoint(summary="How to connect with SMTP, POP3 and IMAP, and the caller's active API keys",
          response=CREDENTIALS, tags=TAGS)
def get_credentials() -> Any:
    user_id = principal().user_id
    active = keys.list_keys(user_id)
    return {
        "connectionInfo": connection_info(current_app.config["RELATE_SETTINGS"], user_id, len(active)),
        "keys": [key_json(k) for k in active],
    }


@bp.post("/api/smtp-credentials")
@require("api:write")
@endpoint(summary="Create an API key (shown once); scopes default to smtp, pop3 and imap", body=CREATE,
          response=CREATED, status=201, tags=TAGS, errors=(403,))
def create_key() -> Any:
    who = principal()
    _may_create(who)
    info, secret = keys.create_key(who.user_id, g.body["name"], frozenset(g.body.get("scopes", DEFAULT_SCOPES)),
                                   granted_by=who.grantable)
    return _created(info, secret), 201


@bp.post("/api/smtp-credentials/mobile")
@require("api:write")
@endpoint(summary="Create an app key for a mobile or desktop client (scope app; shown once)", body=MOBILE,
          response=CREATED, status=201, tags=TAGS, errors=(403,))
def create_mobile_key() -> Any:
    who = principal()
    _may_create(who)
    name = f"Mobile App - {g.body['deviceName'].strip()} ({g.body['platform']})"[:200]
    info, secret = keys.create_key(who.user_id, name, frozenset({"app"}), granted_by=who.grantable)
    return _created(info, secret), 201


@bp.delete("/api/smtp-credentials/<int:key_id>")
@require("api:write")
@endpoint(summary="Revoke one of the caller's API keys (at once, everywhere)", status=204, tags=TAGS)
def revoke_key(key_id: int) -> Any:
    keys.revoke_key(key_id, user_id=principal().user_id)
    return "", 204
