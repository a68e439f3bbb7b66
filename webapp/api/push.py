"""Web push subscriptions: `/api/push-subscriptions` and the VAPID public key; `/sw.js`.

A browser subscribes with the VAPID public key (`GET /api/push-subscriptions/vapid-public-key`
is its `applicationServerKey`) and posts what `PushSubscription.toJSON()` gives:
`{"endpoint": ..., "keys": {"p256dh": ..., "auth": ...}, "expirationTime": null}`. The service
worker (`/sw.js`, served from the root so its scope is the whole site) shows each
notification and opens the message when it is clicked.

Push endpoints must be https (every browser's push service is); plain http is accepted only
for a loopback address in development mode, for trying a local push service.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Response, g, send_file

from relate.store import InvalidInput
from relate.store import push as push_store
from relate.store.push import PushSubscriptionInfo
from webapp import push
from webapp.apidoc import endpoint
from webapp.auth import principal, require, settings
from webapp.errors import ApiError

bp = Blueprint("push", __name__)

SERVICE_WORKER = Path(__file__).resolve().parents[2] / "static" / "sw.js"

KEYS = {
    "type": "object",
    "properties": {
        "p256dh": {"type": "string", "minLength": 1, "maxLength": 200},
        "auth": {"type": "string", "minLength": 1, "maxLength": 100},
    },
    "required": ["p256dh", "auth"],
    "additionalProperties": False,
}
SUBSCRIPTION_IN = {
    "type": "object",
    "properties": {
        "endpoint": {"type": "string", "minLength": 1, "maxLength": push_store.MAX_ENDPOINT},
        "keys": KEYS,
        "expirationTime": {"type": ["number", "null"]},
    },
    "required": ["endpoint", "keys"],
    "additionalProperties": False,
}
SUBSCRIPTION_OUT = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "endpoint": {"type": "string"},
        "createdAt": {"type": "string", "format": "date-time"},
    },
    "required": ["id", "endpoint", "createdAt"],
}
SUBSCRIPTION_LIST = {"type": "array", "items": SUBSCRIPTION_OUT}
UNSUBSCRIBE_IN = {
    "type": "object",
    "properties": {"endpoint": {"type": "string", "minLength": 1, "maxLength": push_store.MAX_ENDPOINT}},
    "required": ["endpoint"],
    "additionalProperties": False,
}
VAPID_OUT = {
    "type": "object",
    "properties": {
        "enabled": {"type": "boolean"},
        "publicKey": {"type": ["string", "null"], "description": "base64url P-256 point: the applicationServerKey"},
    },
    "required": ["enabled", "publicKey"],
}


def _json(sub: PushSubscriptionInfo) -> dict[str, Any]:
    return {"id": sub.id, "endpoint": sub.endpoint, "createdAt": sub.created_at.isoformat().replace("+00:00", "Z")}


def _require_push() -> None:
    if not push.sender().enabled:
        raise ApiError(501, "web push is not configured on this server (Push__VapidPublicKey, Push__VapidPrivateKey)")


def _check_endpoint(url: str) -> None:
    parts = urlsplit(url.strip())
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and parts.hostname and settings().development:
        try:
            loopback = ipaddress.ip_address(parts.hostname).is_loopback
        except ValueError:
            loopback = parts.hostname == "localhost"
        if loopback:
            return
    raise ApiError(400, "endpoint: must be an https URL", field="endpoint")


@bp.get("/api/push-subscriptions/vapid-public-key")
@require("api:read")
@endpoint(summary="The VAPID public key browsers subscribe with", response=VAPID_OUT, tags=["push"])
def vapid_public_key() -> Any:
    enabled = push.sender().enabled
    return {"enabled": enabled, "publicKey": settings().push.vapid_public_key if enabled else None}


@bp.get("/api/push-subscriptions")
@require("api:read")
@endpoint(summary="This user's push subscriptions", response=SUBSCRIPTION_LIST, tags=["push"])
def list_subscriptions() -> Any:
    return [_json(s) for s in push_store.list_subscriptions(principal().user_id)]


@bp.post("/api/push-subscriptions")
@require("api:write")
@endpoint(summary="Subscribe this browser to new-mail notifications", body=SUBSCRIPTION_IN,
          response=SUBSCRIPTION_OUT, status=201, tags=["push"], errors=(501,))
def subscribe() -> Any:
    _require_push()
    body = g.body
    _check_endpoint(body["endpoint"])
    try:
        sub = push_store.subscribe(principal().user_id, body["endpoint"], body["keys"]["p256dh"], body["keys"]["auth"])
    except InvalidInput as exc:
        raise ApiError(400, str(exc), field="keys") from None
    return _json(sub), 201


@bp.delete("/api/push-subscriptions")
@require("api:write")
@endpoint(summary="Unsubscribe a browser by its endpoint", body=UNSUBSCRIBE_IN, status=204, tags=["push"],
          errors=(404,))
def unsubscribe() -> Any:
    push_store.unsubscribe(principal().user_id, endpoint=g.body["endpoint"])
    return Response(status=204)


@bp.delete("/api/push-subscriptions/<int:subscription_id>")
@require("api:write")
@endpoint(summary="Remove one push subscription", status=204, tags=["push"])
def remove(subscription_id: int) -> Any:
    push_store.unsubscribe(principal().user_id, subscription_id=subscription_id)
    return Response(status=204)


@bp.get("/sw.js")
def service_worker() -> Any:
    response = send_file(SERVICE_WORKER, mimetype="text/javascript", max_age=0)
    response.headers["Service-Worker-Allowed"] = "/"
    response.headers["Cache-Control"] = "no-cache"
    return response
