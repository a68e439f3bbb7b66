"""JSON shapes of the mail resources: the JSON Schemas routes declare (so requests are checked
and the OpenAPI document is exact) and the functions that turn store values into them.

Invariants:
- camelCase names; times are RFC 3339 in UTC ending in "Z"; ids are integers.
- Every request object schema has `additionalProperties: false`, so an unknown field is a 400
  naming it. Strings refuse NUL and lone surrogates (the database cannot store them), and
  one-line values refuse every control character.
- Every response object lists all its properties as required: the documents match what the
  routes send, field for field.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Response

from relate.store.labels import names_of
from relate.store.listing import SORTS, EmailRow, Page
from webapp.jsonio import rfc3339_response

MAX_ID = 2**53 - 1  # ids are BIGINT; JSON numbers beyond 2**53 are not exact
MAX_PAGE = 1_000_000
MAX_PAGE_SIZE = 100
MAX_BULK = 1000  # ids in one bulk request

# Characters no stored text may hold: NUL and UTF-16 surrogates (invalid in UTF-8).
_TEXT_PATTERN = "^[^\\x00\\ud800-\\udfff]*$"
_LINE_PATTERN = "^[^\\x00-\\x1f\\x7f\\ud800-\\udfff]*$"
# A label name: an IMAP flag keyword (RFC 9051 §9 flag-keyword = atom) but for non-ASCII
# letters, which its keyword carries in modified UTF-7 (relate.store.labels).
_KEYWORD_PATTERN = '^[^\\x00-\\x20\\x7f-\\x9f(){%*"\\\\\\]\\ud800-\\udfff]+$'


def text(max_length: int, *, min_length: int = 0) -> dict[str, Any]:
    """A string that may span lines (bodies)."""
    schema: dict[str, Any] = {"type": "string", "maxLength": max_length, "pattern": _TEXT_PATTERN}
    if min_length:
        schema["minLength"] = min_length
    return schema


def line(max_length: int, *, min_length: int = 0) -> dict[str, Any]:
    """A one-line string (names, subjects, addresses)."""
    schema: dict[str, Any] = {"type": "string", "maxLength": max_length, "pattern": _LINE_PATTERN}
    if min_length:
        schema["minLength"] = min_length
    return schema


def obj(properties: dict[str, Any], *, required: tuple[str, ...] = ()) -> dict[str, Any]:
    """A request object: only the listed properties."""
    schema: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        schema["required"] = list(required)
    return schema


def out(properties: dict[str, Any]) -> dict[str, Any]:
    """A response object: every property is always present."""
    return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    kinds = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
    return {**schema, "type": [*kinds, "null"]}


ID = {"type": "integer", "minimum": 1, "maximum": MAX_ID}
IDS = {"type": "array", "items": ID, "minItems": 1, "maxItems": MAX_BULK}
BOOL = {"type": "boolean"}
INT = {"type": "integer"}
STR = {"type": "string"}
TIME = {"type": "string", "format": "date-time"}
ADDRESS = line(320, min_length=3)
KEYWORD = {"type": "string", "minLength": 1, "maxLength": 200, "pattern": _KEYWORD_PATTERN}
MAILBOX_NAME = line(1000, min_length=1)

# -- query parameters --------------------------------------------------------------------------

PAGING_QUERY: dict[str, dict[str, Any]] = {
    "page": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE},
    "pageSize": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE},
    "sort": {"type": "string", "enum": list(SORTS)},
}
FILTER_QUERY: dict[str, dict[str, Any]] = {
    "mailbox": MAILBOX_NAME,
    "mailboxId": ID,
    "q": line(500),
    "fromDate": TIME,
    "toDate": TIME,
    "hasAttachments": BOOL,
    "isRead": BOOL,
    "isFlagged": BOOL,
    "label": KEYWORD,
}
LIST_QUERY = {**PAGING_QUERY, **FILTER_QUERY}
DEFAULT_PAGE_SIZE = 50

# -- emails --------------------------------------------------------------------------------

EMAIL_SUMMARY = out({
    "id": ID,
    "mailboxId": ID,
    "mailbox": STR,
    "uid": INT,
    "messageId": nullable(STR),
    "threadId": STR,
    "fromAddress": STR,
    "fromDisplayName": nullable(STR),
    "subject": STR,
    "preview": STR,
    "receivedAt": TIME,
    "sentAt": nullable(TIME),
    "sizeBytes": INT,
    "isRead": BOOL,
    "isFlagged": BOOL,
    "isAnswered": BOOL,
    "isDraft": BOOL,
    "labels": {"type": "array", "items": STR},
    "hasAttachments": BOOL,
    "attachmentCount": INT,
})
EMAIL_LIST = out({
    "items": {"type": "array", "items": EMAIL_SUMMARY},
    "totalCount": INT,
    "unreadCount": INT,
    "page": INT,
    "pageSize": INT,
})
PERSON = out({"address": STR, "displayName": nullable(STR)})
RECIPIENT = out({"address": STR, "displayName": nullable(STR), "type": {"type": "string", "enum": ["To", "Cc", "Bcc"]}})
ATTACHMENT = out({
    "id": STR,
    "fileName": STR,
    "contentType": STR,
    "sizeBytes": INT,
    "inline": BOOL,
    "contentId": nullable(STR),
    "url": STR,
})
EMAIL_DETAIL = out({
    **EMAIL_SUMMARY["properties"],
    "to": {"type": "array", "items": PERSON},
    "cc": {"type": "array", "items": PERSON},
    "replyTo": {"type": "array", "items": PERSON},
    "recipients": {"type": "array", "items": RECIPIENT},
    "inReplyTo": nullable(STR),
    "references": {"type": "array", "items": STR},
    "textBody": nullable(STR),
    "htmlBody": nullable(STR),
    "remoteImagesBlocked": INT,
    "attachments": {"type": "array", "items": ATTACHMENT},
})


def iso(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is not dt.UTC:
        value = value.astimezone(dt.UTC)
    return value.isoformat()[:-6] + "Z"  # an aware UTC datetime's isoformat() ends in +00:00


def _summary(row: EmailRow, received: Any, sent: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "mailboxId": row.mailbox_id,
        "mailbox": row.mailbox,
        "uid": row.uid,
        "messageId": row.message_id,
        "threadId": row.thread_id,
        "fromAddress": row.from_address,
        "fromDisplayName": row.from_display or None,
        "subject": row.subject,
        "preview": row.preview,
        "receivedAt": received,
        "sentAt": sent,
        "sizeBytes": row.size,
        "isRead": row.seen,
        "isFlagged": row.flagged,
        "isAnswered": row.answered,
        "isDraft": row.draft,
        "labels": names_of(row.keywords),
        "hasAttachments": row.has_attachments,
        "attachmentCount": row.attachment_count,
    }


def email_summary(row: EmailRow) -> dict[str, Any]:
    return _summary(row, iso(row.internal_date), iso(row.sent_date))


def email_list(page: Page, number: int, size: int) -> Response:
    """A page of email summaries, encoded here: its times (aware UTC datetimes, as the store
    returns them) are written by the encoder exactly as `iso` writes them, not converted one
    by one in Python."""
    return rfc3339_response({
        "items": [_summary(r, r.internal_date, r.sent_date) for r in page.rows],
        "totalCount": page.total,
        "unreadCount": page.unseen,
        "page": number,
        "pageSize": size,
    })


def person(name: str, address: str) -> dict[str, Any]:
    return {"address": address, "displayName": name or None}
