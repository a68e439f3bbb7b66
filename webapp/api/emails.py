"""/api/emails: list, search, detail, change, delete, threads and the Sent views.

Invariants:
- Email ids are the store's entry ids: one message in one of the caller's mailboxes. Every
  lookup goes through the caller's user id, so another user's id is a 404, never a 403 that
  would confirm it exists.
- Reads need api:read, changes api:write (`app` covers both).
- Deleting moves to Trash; only deleting in Trash removes for good. A caller without a
  Trash (deleted over IMAP) gets one again, never an expunge. Only the caller's copy is
  touched (DESIGN.md §5).
- Labels are IMAP keywords: `labels` on an email is its keyword list, each keyword read as a
  label name and each name given turned into its keyword (relate.store.labels).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, g

from relate.store import InvalidInput, NotFound, labels, listing, mailboxes, messages
from relate.store.listing import DEFAULT_SORT, EmailRow, Filters
from relate.store.types import MailboxInfo
from webapp.api import shapes
from webapp.apidoc import endpoint
from webapp.auth import principal, require
from webapp.errors import ApiError
from webapp.mailview import bodies, sanitize_html

bp = Blueprint("emails", __name__)
TAGS = ["emails"]
ORIGIN = "api"

DETAIL_QUERY = {"remoteImages": shapes.BOOL}
PATCH_BODY = shapes.obj({
    "isRead": shapes.BOOL,
    "isFlagged": shapes.BOOL,
    "labels": {"type": "array", "items": shapes.KEYWORD, "maxItems": 100},
    "mailbox": shapes.MAILBOX_NAME,
    "mailboxId": shapes.ID,
})
SENT_QUERY = {**shapes.PAGING_QUERY, "fromAddress": shapes.line(320)}
ADDRESS_LIST = {"type": "array", "items": shapes.STR}


# -- helpers shared by the mail routes ---------------------------------------------------------


def mailbox_named(user_id: int, name: str, field: str = "mailbox") -> MailboxInfo:
    try:
        return mailboxes.get_mailbox(user_id, name)
    except InvalidInput as exc:
        raise ApiError(400, f"{field}: {exc}", field=field) from None
    except NotFound:
        raise ApiError(404, f"{field}: no mailbox named {name}", field=field) from None


def mailbox_from(user_id: int, data: dict[str, Any], *, default: str | None = None) -> MailboxInfo | None:
    """The mailbox a request names by `mailboxId` or `mailbox` (or `default`), the caller's own."""
    if data.get("mailboxId") is not None:
        try:
            return mailboxes.get_mailbox_by_id(user_id, int(data["mailboxId"]))
        except NotFound:
            raise ApiError(404, "mailboxId: no such mailbox", field="mailboxId") from None
    name = data.get("mailbox") or default
    return mailbox_named(user_id, name) if name else None


def filters_from(query: dict[str, Any], *, default_mailbox: str | None) -> Filters:
    """The list filters a query names; the mailbox is looked up with the page (see `paged`)."""
    mailbox_id = query.get("mailboxId")
    name = None if mailbox_id is not None else (query.get("mailbox") or default_mailbox)
    if name is not None:
        try:
            name = mailboxes.normalise_name(name)
        except InvalidInput as exc:
            raise ApiError(400, f"mailbox: {exc}", field="mailbox") from None
    return Filters(
        mailbox_id=int(mailbox_id) if mailbox_id is not None else None,
        mailbox_name=name,
        text=query.get("q", "").strip(),
        since=query.get("fromDate"),
        before=query.get("toDate"),
        has_attachments=query.get("hasAttachments"),
        seen=query.get("isRead"),
        flagged=query.get("isFlagged"),
        label=_label_keyword(query["label"]) if query.get("label") else None,
    )


def _label_keyword(name: str) -> str:
    """The keyword a `label` filter looks for: the caller's own label's when the name is one
    of theirs, else the name's (any name filters; one that cannot be a label matches nothing)."""
    try:
        return labels.keywords_for(principal().user_id, [name])[0]
    except InvalidInput:
        return labels.keyword_of(name)


def paged(user_id: int, filters: Filters, query: dict[str, Any]) -> Response:
    page = int(query.get("page", 1))
    size = int(query.get("pageSize", shapes.DEFAULT_PAGE_SIZE))
    try:
        result = listing.list_page(user_id, filters, sort=query.get("sort", DEFAULT_SORT), limit=size,
                                   offset=(page - 1) * size)
    except NotFound as exc:
        if not filters.names_mailbox:
            raise
        field = "mailboxId" if filters.mailbox_id is not None else "mailbox"
        raise ApiError(404, f"{field}: {exc}", field=field) from None
    return shapes.email_list(result, page, size)


def attachment_url(email_id: int, part: str) -> str:
    return f"/api/emails/{email_id}/attachments/{part}"


def email_detail(row: EmailRow, *, remote_images: bool) -> dict[str, Any]:
    parsed = messages.parsed_message(row.body_id)
    raw = messages.raw_message(row.body_id)
    found = bodies(raw, parsed.body)
    by_cid = {a["contentId"]: a["part"] for a in parsed.attachments if a.get("contentId")}

    def cid_url(content_id: str) -> str | None:
        part = by_cid.get(content_id)
        return attachment_url(row.id, part) if part else None

    html, blocked = (None, 0)
    if found.html is not None:
        html, blocked = sanitize_html(found.html, allow_remote=remote_images, cid_url=cid_url)
    detail = shapes.email_summary(row)
    detail.update({
        "to": [shapes.person(n, a) for n, a in parsed.to],
        "cc": [shapes.person(n, a) for n, a in parsed.cc],
        "replyTo": [shapes.person(n, a) for n, a in parsed.reply_to],
        "recipients": [
            {"address": a, "displayName": n or None, "type": kind}
            for kind, people in (("To", parsed.to), ("Cc", parsed.cc), ("Bcc", parsed.bcc))
            for n, a in people
        ],
        "inReplyTo": parsed.in_reply_to[0] if parsed.in_reply_to else None,
        "references": list(parsed.references),
        "textBody": found.text,
        "htmlBody": html,
        "remoteImagesBlocked": blocked,
        "attachments": [
            {
                "id": a["part"],
                "fileName": a.get("filename") or "",
                "contentType": a.get("contentType") or "application/octet-stream",
                "sizeBytes": int(a.get("size") or 0),
                "inline": bool(a.get("inline")),
                "contentId": a.get("contentId"),
                "url": attachment_url(row.id, a["part"]),
            }
            for a in parsed.attachments
        ],
    })
    detail["attachmentCount"] = len(parsed.attachments)
    return detail


def remote_images_wanted(user_id: int) -> bool:
    if "remoteImages" in g.query:
        return bool(g.query["remoteImages"])
    from relate.store import prefs

    stored, _ = prefs.get_preferences(user_id)
    return bool(stored.get("loadRemoteImages", False))


def check_keywords(user_id: int, names: list[str], field: str) -> list[str]:
    """The IMAP keywords of the label names a request gives (relate.store.labels.keywords_for);
    400 naming `field` for a bad one."""
    try:
        return labels.keywords_for(user_id, names)
    except InvalidInput as exc:
        raise ApiError(400, f"{field}: {exc}", field=field) from None


def change_flags(user_id: int, mailbox_id: int, uids: list[int], *, add: list[str], remove: list[str]) -> int:
    """Add and remove flags/keywords on some of the caller's messages in one mailbox; returns
    how many messages changed."""
    changed: set[int] = set()
    if remove:
        changed.update(c.uid for c in messages.store_flags(user_id, mailbox_id, uids, "remove", remove,
                                                           origin=ORIGIN).changed)
    if add:
        changed.update(c.uid for c in messages.store_flags(user_id, mailbox_id, uids, "add", add,
                                                           origin=ORIGIN).changed)
    return len(changed)


def delete_entries(user_id: int, entries: list[Any]) -> int:
    """Move the caller's messages to Trash (made again if the caller deleted it), or remove them
    for good when they are in Trash. Returns how many were deleted or moved."""
    by_mailbox: dict[int, list[int]] = {}
    for e in entries:
        by_mailbox.setdefault(e.mailbox_id, []).append(e.uid)
    if not by_mailbox:
        return 0
    trash = mailboxes.ensure_special(user_id, "\\Trash")
    done = 0
    for mailbox_id, uids in sorted(by_mailbox.items()):
        if mailbox_id == trash.id:
            done += len(messages.expunge(user_id, mailbox_id, uids, only_deleted=False, origin=ORIGIN))
        else:
            done += len(messages.move(user_id, mailbox_id, uids, trash.id, origin=ORIGIN).pairs)
    return done


# -- routes ------------------------------------------------------------------------------------


@bp.get("/api/emails")
@require("api:read")
@endpoint(summary="List a mailbox's emails (INBOX unless mailbox or mailboxId says otherwise)",
          query=shapes.LIST_QUERY, response=shapes.EMAIL_LIST, tags=TAGS, errors=(404,))
def list_emails() -> Any:
    user_id = principal().user_id
    return paged(user_id, filters_from(g.query, default_mailbox="INBOX"), g.query)


@bp.get("/api/emails/search")
@require("api:read")
@endpoint(summary="Search emails: q over subject, addresses and body text, with filters (every mailbox "
          "unless one is named)", query=shapes.LIST_QUERY, response=shapes.EMAIL_LIST, tags=TAGS, errors=(404,))
def search_emails() -> Any:
    user_id = principal().user_id
    return paged(user_id, filters_from(g.query, default_mailbox=None), g.query)


@bp.get("/api/emails/<int:email_id>")
@require("api:read")
@endpoint(summary="One email with its bodies (HTML sanitized, remote images blocked unless remoteImages=true) "
          "and attachments", query=DETAIL_QUERY, response=shapes.EMAIL_DETAIL, tags=TAGS)
def get_email(email_id: int) -> Any:
    user_id = principal().user_id
    row = listing.get_row(user_id, email_id)
    return email_detail(row, remote_images=remote_images_wanted(user_id))


@bp.patch("/api/emails/<int:email_id>")
@require("api:write")
@endpoint(summary="Mark read or flagged, set labels, or move to another mailbox", body=PATCH_BODY,
          response=shapes.EMAIL_DETAIL, tags=TAGS)
def update_email(email_id: int) -> Any:
    user_id = principal().user_id
    data = g.body
    entry = messages.get_entry(user_id, email_id)
    target = mailbox_from(user_id, data) if ("mailbox" in data or "mailboxId" in data) else None
    add: list[str] = []
    remove: list[str] = []
    for field, flag in (("isRead", "\\Seen"), ("isFlagged", "\\Flagged")):
        if field in data:
            (add if data[field] else remove).append(flag)
    if "labels" in data:
        wanted = check_keywords(user_id, data["labels"], "labels")
        current = [f for f in entry.flags if not f.startswith("\\")]
        wanted_lower = {w.lower() for w in wanted}
        remove += [k for k in current if k.lower() not in wanted_lower]
        current_lower = {k.lower() for k in current}
        add += [w for w in wanted if w.lower() not in current_lower]
    change_flags(user_id, entry.mailbox_id, [entry.uid], add=add, remove=remove)
    new_id = entry.id
    if target is not None and target.id != entry.mailbox_id:
        moved = messages.move(user_id, entry.mailbox_id, [entry.uid], target.id, origin=ORIGIN)
        if moved.pairs:
            new_id = messages.get_entries(user_id, target.id, [moved.pairs[0][1]])[0].id
    return email_detail(listing.get_row(user_id, new_id), remote_images=remote_images_wanted(user_id))


@bp.delete("/api/emails/<int:email_id>")
@require("api:write")
@endpoint(summary="Delete an email: to Trash, or for good when it is in Trash", status=204, tags=TAGS)
def delete_email(email_id: int) -> Any:
    user_id = principal().user_id
    entry = messages.get_entry(user_id, email_id)
    delete_entries(user_id, [entry])
    return "", 204


@bp.get("/api/emails/threads/<thread_id>")
@require("api:read")
@endpoint(summary="The caller's emails of one thread, oldest first, with their bodies",
          query=DETAIL_QUERY, response={"type": "array", "items": shapes.EMAIL_DETAIL}, tags=TAGS)
def get_thread(thread_id: str) -> Any:
    user_id = principal().user_id
    rows = listing.thread(user_id, thread_id[:64])
    if not rows:
        raise ApiError(404, "no such thread")
    remote = remote_images_wanted(user_id)
    return [email_detail(r, remote_images=remote) for r in rows]


@bp.get("/api/emails/sent")
@require("api:read")
@endpoint(summary="The Sent mailbox, optionally only what was sent from one address", query=SENT_QUERY,
          response=shapes.EMAIL_LIST, tags=TAGS)
def sent_emails() -> Any:
    user_id = principal().user_id
    sent = mailboxes.find_special(user_id, "\\Sent")
    if sent is None:
        return shapes.email_list(listing.Page([], 0, 0), int(g.query.get("page", 1)),
                                 int(g.query.get("pageSize", shapes.DEFAULT_PAGE_SIZE)))
    sender = (g.query.get("fromAddress") or "").strip().lower() or None
    return paged(user_id, Filters(mailbox_id=sent.id, from_address=sender), g.query)


@bp.get("/api/emails/sent/addresses")
@require("api:read")
@endpoint(summary="The addresses the caller has sent from (From of the Sent mailbox's emails)",
          response=ADDRESS_LIST, tags=TAGS)
def sent_addresses() -> Any:
    user_id = principal().user_id
    sent = mailboxes.find_special(user_id, "\\Sent")
    return listing.sender_addresses(user_id, sent.id) if sent else []
