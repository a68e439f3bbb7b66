"""Downloads: an attachment, one message as .eml, a mailbox (or all mail) as a streamed mbox.

Invariants:
- Only the caller's messages: every id goes through the caller's user id (404 otherwise).
- A download is never rendered by the browser as a page of ours: Content-Disposition is
  always `attachment`, `X-Content-Type-Options: nosniff` is always set, a sandboxing
  Content-Security-Policy goes along, and the Content-Type is the part's own only for types
  that cannot run script (images other than SVG, PDF, plain text, audio, video); anything
  else is served as application/octet-stream.
- .eml is the stored message byte for byte. The mbox is mboxrd (relate.mailfile), written
  while it is read: batches of entries, each read in its own short database session, so no
  transaction stays open while the client downloads.
"""

from __future__ import annotations

import datetime as dt
import io
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

from flask import Blueprint, Response, g

from relate import mailfile
from relate.message import decode_part_body
from relate.message.params import param
from relate.store import listing, messages
from relate.store.listing import Filters
from webapp.api import shapes
from webapp.api.emails import mailbox_from
from webapp.apidoc import endpoint
from webapp.auth import principal, require
from webapp.errors import ApiError

bp = Blueprint("downloads", __name__)
TAGS = ["emails"]

SAFE_TYPES = frozenset({
    "image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp", "image/tiff", "image/avif",
    "application/pdf", "text/plain", "text/csv",
    "audio/mpeg", "audio/ogg", "audio/wav", "audio/mp4", "video/mp4", "video/webm", "video/ogg",
})
_PART = re.compile(r"^[1-9][0-9]{0,4}(\.[1-9][0-9]{0,4}){0,31}$")
_CHARSET = re.compile(r"^[A-Za-z0-9_.:-]{1,40}$")
_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9 ._()+,-]")
BINARY = {"type": "string", "format": "binary"}
MBOX_QUERY = {k: shapes.FILTER_QUERY[k] for k in ("mailbox", "mailboxId", "fromDate", "toDate")}


def content_disposition(filename: str) -> str:
    """`attachment` with an ASCII fallback name and the exact one in RFC 6266 / 8187 form."""
    fallback = _UNSAFE_FILENAME.sub("_", filename).strip()[:150] or "download"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def download(data: bytes | Iterator[bytes], content_type: str, filename: str) -> Response:
    response = Response(data, content_type=content_type)
    response.headers["Content-Disposition"] = content_disposition(filename)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response.headers["Cache-Control"] = "private, no-store"
    return response


def safe_content_type(declared: str, params: list[tuple[str, str]]) -> str:
    media = declared.lower()
    if media not in SAFE_TYPES:
        return "application/octet-stream"
    if media.startswith("text/"):
        charset = param(params, "charset")
        return f"{media}; charset={charset}" if charset and _CHARSET.match(charset) else media
    return media


@bp.get("/api/emails/<int:email_id>/attachments/<part>")
@require("api:read")
@endpoint(summary="Download an attachment (the part number is the attachment id)", response=BINARY,
          content_type="*/*", tags=TAGS)
def get_attachment(email_id: int, part: str) -> Any:
    entry = messages.get_entry(principal().user_id, email_id)
    if not _PART.match(part):
        raise ApiError(404, "no such attachment")
    parsed = messages.parsed_message(entry.body_id)
    info = next((a for a in parsed.attachments if a.get("part") == part), None)
    node = parsed.body.part([int(n) for n in part.split(".")]) if info else None
    if info is None or node is None:
        raise ApiError(404, "no such attachment")
    data = decode_part_body(messages.raw_message(entry.body_id), node)
    name = info.get("filename") or f"attachment-{part}"
    return download(data, safe_content_type(node.media_type, node.params), name)


@bp.get("/api/emails/<int:email_id>/export/eml")
@require("api:read")
@endpoint(summary="The message exactly as stored (RFC 5322, .eml)", response=BINARY,
          content_type="message/rfc822", tags=TAGS)
def export_eml(email_id: int) -> Any:
    row = listing.get_row(principal().user_id, email_id)
    raw = messages.raw_message(row.body_id)
    stem = re.sub(r"\s+", " ", row.subject).strip()[:80] or "message"
    return download(raw, "message/rfc822", f"{stem}.eml")


@bp.get("/api/emails/export/mbox")
@require("api:read")
@endpoint(summary="Export a mailbox, or every mailbox, as an mbox file (streamed)", query=MBOX_QUERY,
          response=BINARY, content_type="application/mbox", tags=TAGS, errors=(404,))
def export_mbox() -> Any:
    user_id = principal().user_id
    box = mailbox_from(user_id, g.query)
    filters = Filters(mailbox_id=box.id if box else None, since=g.query.get("fromDate"),
                      before=g.query.get("toDate"))

    def generate() -> Iterator[bytes]:
        for row in listing.walk(user_id, filters):
            item = mailfile.MailItem(messages.raw_message(row.body_id), row.envelope_from, row.internal_date)
            buffer = io.BytesIO()
            mailfile.write_mbox_message(buffer, item)
            yield buffer.getvalue()

    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    name = f"{box.name.replace('/', '-') if box else 'all-mail'}-{stamp}.mbox"
    return download(generate(), "application/mbox", name)
