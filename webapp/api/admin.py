"""Administration: hosted domains, users, their addresses (and the pending ones users asked
for), their API keys and web sessions. Administrators are users flagged with
`users add --admin` or this API, or listed in Admin__Emails.

Every route needs an administrator, with api:read for reads and api:write for writes. Keys
made here follow the no-escalation rule too: never a scope the calling credential lacks.
Creating a user or giving one an address takes precedence over another user's pending
request for that address (the request is dropped); confirming a request needs its domain
hosted already (409), as hosting a domain is its own explicit act.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g

from relate.config import API_SCOPES
from relate.store import accounts, keys, websessions
from relate.store.types import ApiKeyInfo, UserInfo
from webapp.apidoc import endpoint
from webapp.auth import principal, require_admin, settings
from webapp.errors import ApiError

bp = Blueprint("admin", __name__)

TAGS = ["admin"]
PAGING = {
    "page": {"type": "integer", "minimum": 1, "maximum": 1_000_000},
    "pageSize": {"type": "integer", "minimum": 1, "maximum": 500},
}
DEFAULT_PAGE_SIZE = 100
EMAIL = {"type": "string", "minLength": 3, "maxLength": 320}


def _page(items: list[Any]) -> dict[str, Any]:
    page, size = g.query.get("page", 1), g.query.get("pageSize", DEFAULT_PAGE_SIZE)
    start = (page - 1) * size
    return {"items": items[start : start + size], "totalCount": len(items), "page": page, "pageSize": size}


def _list_of(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "items": {"type": "array", "items": item},
            "totalCount": {"type": "integer"},
            "page": {"type": "integer"},
            "pageSize": {"type": "integer"},
        },
        "required": ["items", "totalCount", "page", "pageSize"],
    }


def _iso(value: Any) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


# -- domains -------------------------------------------------------------------------------

DOMAIN = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
DOMAIN_IN = {
    "type": "object",
    "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 255}},
    "required": ["name"],
    "additionalProperties": False,
}


@bp.get("/api/admin/domains")
@require_admin
@endpoint(summary="Hosted domains", query=PAGING, response=_list_of(DOMAIN), tags=TAGS)
def list_domains() -> Any:
    return _page([{"name": name} for name in accounts.list_domains()])


@bp.post("/api/admin/domains")
@require_admin
@endpoint(summary="Host a domain", body=DOMAIN_IN, response=DOMAIN, status=201, tags=TAGS, errors=(409,))
def add_domain() -> Any:
    return {"name": accounts.add_domain(g.body["name"])}, 201


@bp.delete("/api/admin/domains/<name>")
@require_admin
@endpoint(summary="Stop hosting a domain", status=204, tags=TAGS)
def remove_domain(name: str) -> Any:
    accounts.remove_domain(name)
    return "", 204


# -- users ---------------------------------------------------------------------------------

ADDRESS = {
    "type": "object",
    "properties": {
        "address": {"type": "string"},
        "userId": {"type": "integer"},
        "confirmed": {"type": "boolean"},
        "primary": {"type": "boolean"},
    },
    "required": ["address", "userId", "confirmed", "primary"],
}
USER_PROPERTIES: dict[str, Any] = {
    "id": {"type": "integer"},
    "email": {"type": "string"},
    "displayName": {"type": "string"},
    "isAdmin": {"type": "boolean"},
    "oidcLinked": {"type": "boolean"},
    "createdAt": {"type": ["string", "null"], "format": "date-time"},
}
USER = {"type": "object", "properties": USER_PROPERTIES, "required": list(USER_PROPERTIES)}
USER_DETAIL = {
    "type": "object",
    "properties": {**USER_PROPERTIES, "addresses": {"type": "array", "items": ADDRESS}},
    "required": [*USER_PROPERTIES, "addresses"],
}
USER_IN = {
    "type": "object",
    "properties": {
        "email": EMAIL,
        "displayName": {"type": "string", "maxLength": 255},
        "isAdmin": {"type": "boolean"},
    },
    "required": ["email"],
    "additionalProperties": False,
}
USER_PATCH = {
    "type": "object",
    "properties": {"displayName": {"type": "string", "maxLength": 255}, "isAdmin": {"type": "boolean"}},
    "additionalProperties": False,
}


def _user(user: UserInfo) -> dict[str, Any]:
    return {
        "id": user.id,
        "email": user.primary_address,
        "displayName": user.display_name,
        "isAdmin": user.is_admin or user.primary_address in settings().admin_emails,
        "oidcLinked": user.oidc_subject is not None,
        "createdAt": _iso(user.created_at),
    }


def _address(info: Any) -> dict[str, Any]:
    return {"address": info.address, "userId": info.user_id, "confirmed": info.confirmed, "primary": info.primary}


def _user_detail(user_id: int) -> dict[str, Any]:
    user = accounts.get_user(user_id)
    return {**_user(user), "addresses": [_address(a) for a in accounts.list_addresses(user.id)]}


@bp.get("/api/admin/users")
@require_admin
@endpoint(summary="Users", query=PAGING, response=_list_of(USER), tags=TAGS)
def list_users() -> Any:
    return _page([_user(u) for u in accounts.list_users()])


@bp.post("/api/admin/users")
@require_admin
@endpoint(summary="Create a user (its domain becomes hosted; a pending request for the address is dropped)",
          body=USER_IN, response=USER_DETAIL, status=201,
          tags=TAGS, errors=(409,))
def create_user() -> Any:
    body = g.body
    user = accounts.create_user(body["email"], body.get("displayName", ""), is_admin=body.get("isAdmin", False))
    return _user_detail(user.id), 201


@bp.get("/api/admin/users/<int:user_id>")
@require_admin
@endpoint(summary="One user with its addresses", response=USER_DETAIL, tags=TAGS)
def get_user(user_id: int) -> Any:
    return _user_detail(user_id)


@bp.patch("/api/admin/users/<int:user_id>")
@require_admin
@endpoint(summary="Change a user's display name or administrator flag", body=USER_PATCH, response=USER_DETAIL,
          tags=TAGS, errors=(409,))
def update_user(user_id: int) -> Any:
    accounts.get_user(user_id)
    if "isAdmin" in g.body:
        if user_id == principal().user_id and not g.body["isAdmin"]:
            raise ApiError(409, "you cannot take your own administrator rights away", field="isAdmin")
        accounts.set_admin(user_id, g.body["isAdmin"])
    if "displayName" in g.body:
        accounts.set_display_name(user_id, g.body["displayName"])
    return _user_detail(user_id)


@bp.delete("/api/admin/users/<int:user_id>")
@require_admin
@endpoint(summary="Remove a user with its mail, addresses, keys and sessions", status=204, tags=TAGS, errors=(409,))
def remove_user(user_id: int) -> Any:
    user = accounts.get_user(user_id)
    if user_id == principal().user_id:
        raise ApiError(409, "you cannot remove yourself")
    accounts.remove_user(user.primary_address)
    return "", 204


@bp.delete("/api/admin/users/<int:user_id>/sessions")
@require_admin
@endpoint(summary="Sign a user out of the web UI everywhere", status=204, tags=TAGS)
def end_sessions(user_id: int) -> Any:
    accounts.get_user(user_id)
    websessions.revoke_user(user_id)
    return "", 204


# -- addresses -----------------------------------------------------------------------------

ADDRESS_IN = {
    "type": "object",
    "properties": {"address": EMAIL},
    "required": ["address"],
    "additionalProperties": False,
}
PENDING = {
    "type": "object",
    "properties": {"address": {"type": "string"}, "userId": {"type": "integer"}, "userEmail": {"type": "string"}},
    "required": ["address", "userId", "userEmail"],
}


@bp.post("/api/admin/users/<int:user_id>/addresses")
@require_admin
@endpoint(summary="Give a user another address (confirmed at once; a pending request for it is dropped)",
          body=ADDRESS_IN, response=ADDRESS, status=201,
          tags=TAGS, errors=(409,))
def add_address(user_id: int) -> Any:
    info = accounts.add_address(user_id, g.body["address"], confirmed=True)
    return _address(info), 201


@bp.get("/api/admin/addresses/pending")
@require_admin
@endpoint(summary="Addresses users asked for that wait for confirmation", query=PAGING, response=_list_of(PENDING),
          tags=TAGS)
def pending_addresses() -> Any:
    owners: dict[int, str] = {}
    items = []
    for info in accounts.pending_addresses():
        if info.user_id not in owners:
            owners[info.user_id] = accounts.get_user(info.user_id).primary_address
        items.append({"address": info.address, "userId": info.user_id, "userEmail": owners[info.user_id]})
    return _page(items)


@bp.post("/api/admin/addresses/<address>/confirm")
@require_admin
@endpoint(summary="Confirm an address: it receives mail and may be sent from (its domain must be hosted)",
          response=ADDRESS, tags=TAGS, errors=(409,))
def confirm_address(address: str) -> Any:
    info = accounts.confirm_address(address)
    return _address(info)


@bp.delete("/api/admin/addresses/<address>")
@require_admin
@endpoint(summary="Refuse a pending address or remove an extra one (never a primary address)", status=204,
          tags=TAGS, errors=(409,))
def remove_address(address: str) -> Any:
    accounts.remove_address(address)
    return "", 204


# -- keys ----------------------------------------------------------------------------------

KEY_PROPERTIES: dict[str, Any] = {
    "id": {"type": "integer"},
    "userId": {"type": "integer"},
    "name": {"type": "string"},
    "prefix": {"type": "string"},
    "scopes": {"type": "array", "items": {"type": "string"}},
    "createdAt": {"type": "string", "format": "date-time"},
    "lastUsedAt": {"type": ["string", "null"], "format": "date-time"},
}
KEY = {"type": "object", "properties": KEY_PROPERTIES, "required": list(KEY_PROPERTIES)}
NEW_KEY = {
    "type": "object",
    "properties": {**KEY_PROPERTIES, "key": {"type": "string", "description": "shown once, never again"}},
    "required": [*KEY_PROPERTIES, "key"],
}
KEY_IN = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 200},
        "scopes": {"type": "array", "items": {"enum": list(API_SCOPES)}, "minItems": 1, "uniqueItems": True},
    },
    "required": ["name", "scopes"],
    "additionalProperties": False,
}


def _key(info: ApiKeyInfo) -> dict[str, Any]:
    return {
        "id": info.id,
        "userId": info.user_id,
        "name": info.name,
        "prefix": info.prefix,
        "scopes": sorted(info.scopes),
        "createdAt": _iso(info.created_at),
        "lastUsedAt": _iso(info.last_used_at),
    }


@bp.get("/api/admin/users/<int:user_id>/keys")
@require_admin
@endpoint(summary="A user's API keys (not revoked)", response=_list_of(KEY), query=PAGING, tags=TAGS)
def list_keys(user_id: int) -> Any:
    accounts.get_user(user_id)
    return _page([_key(k) for k in keys.list_keys(user_id)])


@bp.post("/api/admin/users/<int:user_id>/keys")
@require_admin
@endpoint(summary="Create an API key for a user (never with a scope the caller lacks)", body=KEY_IN,
          response=NEW_KEY, status=201, tags=TAGS)
def create_key(user_id: int) -> Any:
    accounts.get_user(user_id)
    info, secret = keys.create_key(user_id, g.body["name"], frozenset(g.body["scopes"]),
                                   granted_by=principal().grantable)
    return {**_key(info), "key": secret}, 201


@bp.delete("/api/admin/keys/<int:key_id>")
@require_admin
@endpoint(summary="Revoke an API key (at once, on every service)", status=204, tags=TAGS)
def revoke_key(key_id: int) -> Any:
    keys.revoke_key(key_id)
    return "", 204
