"""ParsedMessage: everything the protocols and the API need from a message, computed once at
delivery and stored as JSON (see `to_json`).

Invariants:
- Every str is clean (no NUL, no lone surrogate) and every value JSON-serialisable after
  `to_json`; `from_json(to_json())` gives an equal ParsedMessage.
- Addresses have lowercase domains; display names and the subject are decoded (RFC 2047) with
  runs of whitespace collapsed. The envelope keeps header values as written.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from .part import Part

# Bumped when what is stored changes meaning, so readers can tell old metadata apart.
JSON_VERSION = 1

Mailboxes = list[tuple[str, str]]  # (decoded display name, address)


@dataclass
class ParsedMessage:
    size: int = 0  # len(raw)
    message_id: str | None = None  # without angle brackets
    in_reply_to: list[str] = field(default_factory=list)
    references: list[str] = field(default_factory=list)
    thread_id: str = ""  # 16 hex digits naming the thread's root (see ids.thread_id)
    subject: str = ""
    date: dt.datetime | None = None  # the Date header, UTC
    from_addr: str = ""  # the first From mailbox
    from_display: str = ""
    to: Mailboxes = field(default_factory=list)
    cc: Mailboxes = field(default_factory=list)
    bcc: Mailboxes = field(default_factory=list)
    reply_to: Mailboxes = field(default_factory=list)
    envelope: list[Any] = field(default_factory=lambda: [None] * 10)  # IMAP ENVELOPE (envelope.py)
    body: Part = field(default_factory=Part)  # the MIME tree; IMAP BODYSTRUCTURE comes from here
    preview: str = ""
    text: str = ""  # body text for full-text search
    attachments: list[dict[str, Any]] = field(default_factory=list)  # see attachments.py
    has_attachments: bool = False  # any attachment that is not an inline resource

    def to_json(self) -> dict[str, Any]:
        return {
            "v": JSON_VERSION,
            "size": self.size,
            "messageId": self.message_id,
            "inReplyTo": self.in_reply_to,
            "references": self.references,
            "threadId": self.thread_id,
            "subject": self.subject,
            "date": None if self.date is None else self.date.isoformat(),
            "from": self.from_addr,
            "fromDisplay": self.from_display,
            "to": [list(m) for m in self.to],
            "cc": [list(m) for m in self.cc],
            "bcc": [list(m) for m in self.bcc],
            "replyTo": [list(m) for m in self.reply_to],
            "envelope": self.envelope,
            "body": self.body.to_json(),
            "preview": self.preview,
            "text": self.text,
            "attachments": self.attachments,
            "hasAttachments": self.has_attachments,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ParsedMessage:
        date = data.get("date")

        def mailboxes(key: str) -> Mailboxes:
            return [(name, addr) for name, addr in data.get(key) or []]

        return cls(
            size=data.get("size", 0),
            message_id=data.get("messageId"),
            in_reply_to=list(data.get("inReplyTo") or []),
            references=list(data.get("references") or []),
            thread_id=data.get("threadId", ""),
            subject=data.get("subject", ""),
            date=None if date is None else dt.datetime.fromisoformat(date),
            from_addr=data.get("from", ""),
            from_display=data.get("fromDisplay", ""),
            to=mailboxes("to"),
            cc=mailboxes("cc"),
            bcc=mailboxes("bcc"),
            reply_to=mailboxes("replyTo"),
            envelope=data.get("envelope") or [None] * 10,
            body=Part.from_json(data.get("body") or {}),
            preview=data.get("preview", ""),
            text=data.get("text", ""),
            attachments=list(data.get("attachments") or []),
            has_attachments=bool(data.get("hasAttachments", False)),
        )
