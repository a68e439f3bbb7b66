"""Real-time routes: the WebSocket `/api/ws` and the daemons' `/api/internal/notifications/new-email`.

The WebSocket (RFC 6455, flask-sock; under gunicorn's gevent worker and in the all-in-one
process). The handshake is authenticated like any API request: the session cookie, an
`Authorization: Bearer <JWT or API key>` / `ApiKey <key>` header, or, for browsers that
cannot set headers on a WebSocket, `?access_token=<JWT or API key>`; the credential needs
`api:read`. A browser authenticated by its cookie (or by development mode) must come from our
own origin or one in Cors__AllowedOrigins, so another site cannot read a user's events.
Compression (permessage-deflate) is not negotiated: frames are small, and a zlib context per
socket would cost more memory than every other part of a connection together.

Server → client frames, each `{"type": T, "data": {...}}`, plus `"modseq"` (the mailbox's
MODSEQ after the change) on the frames that change a mailbox's contents:

| type | data |
|---|---|
| `Hello` | `connectionId`, `userId`, `heartbeatSeconds`, `mailboxes` (`id`, `name`, `modseq`, `uidValidity`: where a later Sync starts) — first frame |
| `NewEmail` | the email exactly as `GET /api/emails` lists it (webapp.api.shapes.EMAIL_SUMMARY) |
| `EmailUpdated` | the same, after a flag or label change |
| `EmailDeleted` | `ids` (may be empty after a Sync), `mailboxId`, `mailbox`, `uids` |
| `UnreadCountChanged` | `mailboxId`, `mailbox`, `unreadCount`, `totalCount`, `inboxUnreadCount` |
| `MailboxChanged` | `change` (`created`, `renamed`, `deleted`, `subscription`), `id`, `name`, `oldName`, `subscribed` |
| `Resync` | `mailboxId` (null: everything), `reason` — events may have been missed: reload |
| `Heartbeat` | `time`, every `heartbeatSeconds` |
| `Synced`, `Pong`, `Error` | answers to the client's messages |

Client → server: `{"type": "Ping"}`, and after a reconnect
`{"type": "Sync", "mailboxes": [{"id": 3, "modseq": 120, "lastUid": 57, "uidValidity": 1700000000}]}`
— for each mailbox, what changed after that MODSEQ (the highest `modseq` it saw for that
mailbox, in Hello or in a frame): NewEmail for emails above `lastUid`, EmailUpdated for
the rest, EmailDeleted with the UIDs expunged, fresh UnreadCountChanged, then `Synced` with
each mailbox's current MODSEQ. A mailbox with too much change (or another UIDVALIDITY) gets
`Resync` instead. Close codes: 1008 the credential was revoked, 1013 the client read too
slowly. A user may hold MAX_CONNECTIONS_PER_USER sockets per process (more: 429).

The internal endpoint accepts only `Authorization: ApiKey <Internal__ApiKey>` (constant-time
comparison; with the key unset it refuses everything, and the API warns at start) and the
JSON of DESIGN.md §6. It re-announces the email on the change bus, so WebSockets on every
replica hear of it (see webapp.realtime for the de-duplication), and sends web push from this
replica alone.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

from flask import Blueprint, Flask, g, jsonify, request
from flask.blueprints import BlueprintSetupState
from flask_sock import Sock

from relate.store import events as ev
from relate.store import realtime as rt
from webapp import auth, push, realtime
from webapp.apidoc import endpoint
from webapp.errors import ApiError

log = logging.getLogger("relate.webapp.realtime")

bp = Blueprint("realtime", __name__)
sock = Sock()

WS_PATH = "/api/ws"
NOTIFICATION_PATH = "/api/internal/notifications/new-email"
MAX_CLIENT_MESSAGE = 64 * 1024  # bytes of one client → server message (Sync lists mailboxes)
MAX_NOTIFIED_USERS = 1000  # one delivery has at most Smtp__MaxRecipients users plus the sender

F = TypeVar("F", bound=Callable[..., Any])


@bp.record_once
def _setup(state: BlueprintSetupState) -> None:
    app = cast(Flask, state.app)
    app.config.setdefault("SOCK_SERVER_OPTIONS", {"max_message_size": MAX_CLIENT_MESSAGE})
    settings = app.config["RELATE_SETTINGS"]
    if not settings.internal_api_key:
        log.warning(
            "started without Internal__ApiKey: %s refuses every request, so the daemons' new-email "
            "notifications (and the web push they trigger) do not arrive; WebSockets still get "
            "every change from the store",
            NOTIFICATION_PATH,
        )
    push.init_app(app)


# -- the WebSocket ----------------------------------------------------------------------------


def _same_or_allowed_origin(origin: str) -> bool:
    settings = auth.settings()
    if origin in settings.cors_allowed_origins or "*" in settings.cors_allowed_origins:
        return True
    parts = urlsplit(origin)
    return bool(parts.netloc) and parts.netloc.lower() == request.host.lower()


@bp.before_request
def _handshake() -> None:
    """Authenticate the upgrade request before any WebSocket is accepted."""
    if request.path != WS_PATH:
        return
    token = request.args.get("access_token", "").strip()
    if token:
        # Browsers cannot put an Authorization header on a WebSocket: take it from the query.
        request.environ["HTTP_AUTHORIZATION"] = f"Bearer {token}"
        g.principal = auth.authenticate()
    who = auth.principal()
    if not who.allows("api:read"):
        raise ApiError(403, "this credential lacks the api:read scope")
    if len(realtime.hub.by_user.get(who.user_id, ())) >= realtime.MAX_CONNECTIONS_PER_USER:
        raise ApiError(429, "too many open WebSockets for this user", headers={"Retry-After": "30"})
    origin = request.headers.get("Origin")
    if who.method in ("session", "development") and origin and not _same_or_allowed_origin(origin):
        raise ApiError(403, "WebSocket from a foreign origin")
    # Not offering permessage-deflate keeps a zlib context per socket off the heap.
    request.environ.pop("HTTP_SEC_WEBSOCKET_EXTENSIONS", None)


@sock.route(WS_PATH, bp=bp)
def websocket(ws: Any) -> None:
    who = auth.principal()
    realtime.serve(ws, who.user_id, who.key_id, who.valid_until)


@bp.get(WS_PATH)
def websocket_without_upgrade() -> Any:
    raise ApiError(426, "this is a WebSocket endpoint: send an Upgrade request", headers={"Upgrade": "websocket"})


# -- the daemons' notification ----------------------------------------------------------------

EMAIL_SUMMARY = {
    "type": "object",
    "properties": {
        "id": {"type": "integer", "minimum": 1},
        "from": {"type": ["string", "null"], "maxLength": 1000},
        "fromDisplay": {"type": ["string", "null"], "maxLength": 1000},
        "subject": {"type": ["string", "null"], "maxLength": 2000},
        "receivedAt": {"type": ["string", "null"], "maxLength": 64},
        "hasAttachments": {"type": ["boolean", "null"]},
    },
    "required": ["id"],
    "additionalProperties": True,
}
NEW_EMAIL_NOTIFICATION = {
    "type": "object",
    "properties": {
        "userIds": {"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 1,
                    "maxItems": MAX_NOTIFIED_USERS},
        "email": EMAIL_SUMMARY,
    },
    "required": ["userIds", "email"],
    "additionalProperties": False,
}
ACCEPTED = {"type": "object", "properties": {"accepted": {"type": "integer"}}, "required": ["accepted"]}


def internal_only(view: F) -> F:
    """Route decorator: `Authorization: ApiKey <Internal__ApiKey>` or 401, before anything else."""

    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if not auth.check_internal_key(request.headers.get("Authorization")):
            raise ApiError(401, "the internal API key is required", headers={"WWW-Authenticate": 'ApiKey realm="internal"'})
        return view(*args, **kwargs)

    return wrapped  # type: ignore[return-value]


def _trimmed(summary: dict[str, Any]) -> dict[str, Any]:
    """The summary's known fields, short enough for one NOTIFY (8000 bytes) per user."""
    out: dict[str, Any] = {"id": summary["id"]}
    for key, limit in (("from", 320), ("fromDisplay", 300), ("subject", 300), ("receivedAt", 64)):
        value = summary.get(key)
        out[key] = value[:limit] if isinstance(value, str) else value
    out["hasAttachments"] = summary.get("hasAttachments")
    return out


@bp.post(NOTIFICATION_PATH)
@internal_only
@endpoint(summary="A daemon stored a new email (internal: Internal__ApiKey)", body=NEW_EMAIL_NOTIFICATION,
          response=ACCEPTED, status=202, tags=["internal"], errors=(401,))
def new_email_notification() -> Any:
    body = g.body
    user_ids = sorted(set(body["userIds"]))
    email = _trimmed(body["email"])
    rt.announce([ev.Change(ev.NEW_EMAIL_NOTICE, user_id, extra=email) for user_id in user_ids])
    push.sender().new_email(user_ids, email)
    response = jsonify({"accepted": len(user_ids)})
    response.status_code = 202
    return response
