"""/api/emails/send, /api/emails/<id>/reply and /api/emails/<id>/forward.

Invariants:
- A message sent here takes the path an SMTP submission takes (relate.submit): the From must
  be one of the caller's confirmed addresses (403), every recipient must be local (422, as
  SMTP's 550 5.7.1 "remote delivery is not available"), the recipients' filters run at
  delivery and the caller gets the copy in Sent.
- The message is built by relate.compose: Message-ID, Date, In-Reply-To/References for
  replies, the original's attachments for forwards; Bcc recipients are only in the envelope.
- A reply marks the original \\Answered, a forward gives it the $Forwarded keyword (RFC 5788).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import html as htmlmod
from typing import Any

from flask import Blueprint, current_app, g

from relate import compose, submit
from relate.message import ParsedMessage, decode_part_body
from relate.store import accounts, listing, messages
from relate.store.listing import EmailRow
from webapp.api import shapes
from webapp.api.emails import ORIGIN
from webapp.apidoc import endpoint
from webapp.auth import principal, require
from webapp.errors import ApiError
from webapp.mailview import bodies, sanitize_html

bp = Blueprint("sending", __name__)
TAGS = ["emails"]

MAX_ATTACHMENTS = 50
RECIPIENT_IN = shapes.obj({
    "address": shapes.ADDRESS,
    "displayName": shapes.line(200),
    "type": {"type": "string", "enum": ["To", "Cc", "Bcc"]},
}, required=("address",))
RECIPIENTS_IN = {"type": "array", "items": RECIPIENT_IN, "minItems": 1, "maxItems": 1000}
ATTACHMENT_IN = shapes.obj({
    "fileName": shapes.line(255, min_length=1),
    "contentType": {"type": "string", "maxLength": 127,
                    "pattern": "^[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+$"},
    "contentBase64": {"type": "string", "maxLength": 2_000_000, "pattern": "^[A-Za-z0-9+/=\\s]*$"},
}, required=("fileName", "contentBase64"))
COMMON_IN: dict[str, Any] = {
    "fromAddress": shapes.ADDRESS,
    "fromDisplayName": shapes.line(200),
    "textBody": shapes.text(2_000_000),
    "htmlBody": shapes.text(2_000_000),
    "attachments": {"type": "array", "items": ATTACHMENT_IN, "maxItems": MAX_ATTACHMENTS},
}
SEND = shapes.obj({**COMMON_IN, "recipients": RECIPIENTS_IN, "subject": shapes.line(998)},
                  required=("recipients",))
REPLY = shapes.obj({**COMMON_IN, "replyAll": shapes.BOOL})
FORWARD = shapes.obj({**COMMON_IN, "recipients": RECIPIENTS_IN}, required=("recipients",))
SENT = shapes.out({
    "id": shapes.nullable(shapes.ID),  # the copy in the caller's Sent mailbox
    "messageId": shapes.STR,
    "recipients": {"type": "array", "items": shapes.STR},
    "sentAt": shapes.TIME,
})
STATUS = {"sender": 403, "invalid": 400, "no-such-user": 422, "remote": 422, "too-many": 422, "too-big": 413, "no-recipients": 400}
FIELD = {"sender": "fromAddress", "too-big": "attachments"}


def _attachments(data: dict[str, Any]) -> list[compose.Attachment]:
    out = []
    for i, item in enumerate(data.get("attachments", [])):
        try:
            content = base64.b64decode("".join(item["contentBase64"].split()), validate=True)
        except (binascii.Error, ValueError):
            raise ApiError(400, f"attachments.{i}.contentBase64: not valid base64",
                           field=f"attachments.{i}.contentBase64") from None
        out.append(compose.Attachment(item["fileName"], item.get("contentType") or "application/octet-stream", content))
    return out


def _sender(user_id: int, data: dict[str, Any]) -> tuple[str, str]:
    user = accounts.get_user(user_id)
    address = data.get("fromAddress") or user.primary_address
    try:
        address = submit.check_sender(user_id, address)
    except submit.SubmissionRefused as exc:
        raise ApiError(403, f"fromAddress: {exc}", field="fromAddress") from None
    return data.get("fromDisplayName", user.display_name), address


def _envelope(recipients: list[dict[str, Any]]) -> tuple[list[tuple[str, str]], list[tuple[str, str]], list[str]]:
    """(To, Cc, every envelope recipient) from the request's recipient objects."""
    to = [(r.get("displayName", ""), r["address"]) for r in recipients if r.get("type", "To") == "To"]
    cc = [(r.get("displayName", ""), r["address"]) for r in recipients if r.get("type") == "Cc"]
    return to, cc, [r["address"] for r in recipients]


def _deliver(user_id: int, draft: compose.Draft, envelope: list[str]) -> dict[str, Any]:
    settings = current_app.config["RELATE_SETTINGS"]
    try:
        rcpts = submit.check_recipients(settings, envelope)
    except submit.SubmissionRefused as exc:
        raise ApiError(STATUS[exc.reason], f"recipients: {exc}", field="recipients") from None
    normal = {r: accounts.normalise_address(r) for r in envelope}
    draft.to = [(n, normal[a]) for n, a in draft.to]
    draft.cc = [(n, normal[a]) for n, a in draft.cc]
    now = dt.datetime.now(dt.UTC)
    try:
        raw, message_id = compose.build(draft, now=now, message_id_domain=draft.sender[1].rsplit("@", 1)[1])
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None
    try:
        done = submit.submit(settings, user_id, raw, draft.sender[1], rcpts)
    except submit.SubmissionRefused as exc:
        field = FIELD.get(exc.reason, "recipients")
        raise ApiError(STATUS[exc.reason], f"{field}: {exc}", field=field) from None
    sent_id = None
    if done.delivered.sent_entry is not None:
        _, mailbox_id, uid = done.delivered.sent_entry
        sent_id = next((e.id for e in messages.get_entries(user_id, mailbox_id, [uid])), None)
    return {"id": sent_id, "messageId": message_id, "recipients": list(done.recipients), "sentAt": shapes.iso(now)}


def _unique(people: list[tuple[str, str]], seen: set[str]) -> list[tuple[str, str]]:
    """`people` without empty addresses and without those in `seen` (which gains the rest)."""
    out = []
    for name, address in people:
        if address and address.lower() not in seen:
            seen.add(address.lower())
            out.append((name, address))
    return out


def _original(user_id: int, email_id: int) -> tuple[EmailRow, ParsedMessage, bytes]:
    row = listing.get_row(user_id, email_id)
    return row, messages.parsed_message(row.body_id), messages.raw_message(row.body_id)


@bp.post("/api/emails/send")
@require("api:write")
@endpoint(summary="Send a message to local recipients (same checks and delivery as SMTP submission)",
          body=SEND, response=SENT, status=201, tags=TAGS, errors=(403, 413, 422))
def send() -> Any:
    user_id = principal().user_id
    data = g.body
    to, cc, envelope = _envelope(data["recipients"])
    draft = compose.Draft(sender=_sender(user_id, data), to=to, cc=cc, subject=data.get("subject", ""),
                          text=data.get("textBody"), html=data.get("htmlBody"), attachments=_attachments(data))
    return _deliver(user_id, draft, envelope), 201


@bp.post("/api/emails/<int:email_id>/reply")
@require("api:write")
@endpoint(summary="Reply to an email (replyAll adds its other recipients)", body=REPLY, response=SENT,
          status=201, tags=TAGS, errors=(403, 413, 422))
def reply(email_id: int) -> Any:
    user_id = principal().user_id
    data = g.body
    row, parsed, _ = _original(user_id, email_id)
    sender = _sender(user_id, data)
    mine = {a.address for a in accounts.list_addresses(user_id)}
    to = list(parsed.reply_to or ([(parsed.from_display, parsed.from_addr)] if parsed.from_addr else []))
    if not to or all(a.lower() in mine for _, a in to):
        to = list(parsed.to)  # a reply to one's own message goes to its recipients
    cc: list[tuple[str, str]] = []
    if data.get("replyAll"):
        cc = [(n, a) for n, a in (*parsed.to, *parsed.cc) if a.lower() not in mine]
    seen: set[str] = set()
    to, cc = _unique(to, seen), _unique(cc, seen)
    if not to and not cc:
        raise ApiError(422, "recipients: the email has no one to reply to", field="recipients")
    draft = compose.Draft(
        sender=sender, to=to, cc=cc, subject=compose.reply_subject(row.subject), text=data.get("textBody"),
        html=data.get("htmlBody"), attachments=_attachments(data), in_reply_to=parsed.message_id,
        references=compose.reply_references(parsed.message_id, parsed.references, parsed.in_reply_to),
    )
    result = _deliver(user_id, draft, [a for _, a in (*to, *cc)])
    messages.store_flags(user_id, row.mailbox_id, [row.uid], "add", ["\\Answered"], origin=ORIGIN)
    return result, 201


def _forward_header(row: EmailRow, parsed: ParsedMessage) -> list[str]:
    sender = f"{parsed.from_display} <{parsed.from_addr}>" if parsed.from_display else parsed.from_addr
    lines = ["---------- Forwarded message ----------", f"From: {sender}"]
    if parsed.date is not None:
        lines.append(f"Date: {parsed.date.strftime('%a, %d %b %Y %H:%M:%S +0000')}")
    lines.append(f"Subject: {row.subject}")
    if parsed.to:
        lines.append("To: " + ", ".join(a for _, a in parsed.to))
    return lines


@bp.post("/api/emails/<int:email_id>/forward")
@require("api:write")
@endpoint(summary="Forward an email with its attachments", body=FORWARD, response=SENT, status=201,
          tags=TAGS, errors=(403, 413, 422))
def forward(email_id: int) -> Any:
    user_id = principal().user_id
    data = g.body
    row, parsed, raw = _original(user_id, email_id)
    sender = _sender(user_id, data)
    to, cc, envelope = _envelope(data["recipients"])
    found = bodies(raw, parsed.body)
    header = _forward_header(row, parsed)
    text = "\n".join([data.get("textBody") or "", "", *header, "", found.text or ""])
    html = None
    if data.get("htmlBody") is not None or found.html is not None:
        mine = data.get("htmlBody") or htmlmod.escape(data.get("textBody") or "").replace("\n", "<br>")
        theirs = (sanitize_html(found.html, allow_remote=True, cid_url=lambda cid: f"cid:{cid}")[0]
                  if found.html is not None else htmlmod.escape(found.text or "").replace("\n", "<br>"))
        html = f"{mine}<br><br>{'<br>'.join(htmlmod.escape(h) for h in header)}<br><br>{theirs}"
    attachments = _attachments(data)
    for a in parsed.attachments:
        node = parsed.body.part([int(n) for n in str(a["part"]).split(".")])
        if node is None:
            continue
        attachments.append(compose.Attachment(
            filename=a.get("filename") or "", content_type=a.get("contentType") or "application/octet-stream",
            data=decode_part_body(raw, node), content_id=a.get("contentId"), inline=bool(a.get("inline")),
        ))
    draft = compose.Draft(sender=sender, to=to, cc=cc, subject=compose.forward_subject(row.subject), text=text,
                          html=html, attachments=attachments)
    result = _deliver(user_id, draft, envelope)
    messages.store_flags(user_id, row.mailbox_id, [row.uid], "add", ["$Forwarded"], origin=ORIGIN)
    return result, 201
