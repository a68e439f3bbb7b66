"""Writing messages: the RFC 5322 bytes of a new message, a reply or a forward, built from
plain values (what the API's send, reply and forward routes receive).

Invariants:
- Pure: values in, bytes out; no database, sockets or clock (the caller passes `now` and the
  Message-ID's domain).
- Output is RFC 5322 with CRLF line ends, a Date, a Message-ID and MIME-Version; headers are
  folded and encoded by the stdlib (RFC 2047 words), so no value can inject a header: values
  with CR or LF are refused (ValueError), as are addresses the stdlib cannot write.
- No Bcc field: blind recipients are only in the envelope, so the one stored copy every
  recipient shares never reveals them.
- A reply carries In-Reply-To and References (RFC 5322 §3.6.4); a forward carries the
  original's attachments, inline resources included with their Content-IDs.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

MAX_REFERENCES = 20  # ids kept in a reply's References (the root and the most recent ones)
_REPLY_PREFIX = re.compile(r"^\s*(re|aw|sv|antw)\s*:", re.IGNORECASE)
_FORWARD_PREFIX = re.compile(r"^\s*(fwd?|wg|tr)\s*:", re.IGNORECASE)


@dataclass
class Attachment:
    filename: str
    content_type: str  # "type/subtype"
    data: bytes
    content_id: str | None = None  # without angle brackets; set for inline resources
    inline: bool = False


@dataclass
class Draft:
    """What a message says; addresses are (display name, address) pairs."""

    sender: tuple[str, str]
    to: list[tuple[str, str]] = field(default_factory=list)
    cc: list[tuple[str, str]] = field(default_factory=list)
    subject: str = ""
    text: str | None = None
    html: str | None = None
    attachments: list[Attachment] = field(default_factory=list)
    in_reply_to: str | None = None  # message-id without angle brackets
    references: list[str] = field(default_factory=list)
    extra_headers: list[tuple[str, str]] = field(default_factory=list)


def _address(name: str, addr: str) -> Address:
    local, _, domain = addr.rpartition("@")
    return Address(display_name=name or "", username=local, domain=domain)


def _no_newlines(name: str, value: str) -> str:
    if "\r" in value or "\n" in value or "\x00" in value:
        raise ValueError(f"{name} must be one line")
    return value


def reply_subject(subject: str) -> str:
    return subject if _REPLY_PREFIX.match(subject) else f"Re: {subject}".rstrip()


def forward_subject(subject: str) -> str:
    return subject if _FORWARD_PREFIX.match(subject) else f"Fwd: {subject}".rstrip()


def reply_references(message_id: str | None, references: list[str], in_reply_to: list[str]) -> list[str]:
    """References for a reply (RFC 5322 §3.6.4): the parent's References (or In-Reply-To)
    plus the parent's own id, keeping the root and the most recent ids."""
    chain = list(references or in_reply_to[:1])
    if message_id:
        chain.append(message_id)
    chain = list(dict.fromkeys(chain))
    if len(chain) > MAX_REFERENCES:
        chain = chain[:1] + chain[-(MAX_REFERENCES - 1):]
    return chain


def build(draft: Draft, *, now: dt.datetime, message_id_domain: str) -> tuple[bytes, str]:
    """The message's bytes and its Message-ID (without angle brackets)."""
    addresses = [draft.sender[1], *(a for _, a in draft.to), *(a for _, a in draft.cc)]
    utf8 = not all(a.isascii() for a in addresses)
    msg = EmailMessage(policy=policy.SMTPUTF8 if utf8 else policy.SMTP)
    msg["From"] = _address(_no_newlines("fromDisplayName", draft.sender[0]), draft.sender[1])
    if draft.to:
        msg["To"] = [_address(_no_newlines("displayName", n), a) for n, a in draft.to]
    if draft.cc:
        msg["Cc"] = [_address(_no_newlines("displayName", n), a) for n, a in draft.cc]
    msg["Subject"] = _no_newlines("subject", draft.subject)
    msg["Date"] = format_datetime(now.astimezone(dt.UTC))
    message_id = make_msgid(domain=message_id_domain)
    msg["Message-ID"] = message_id
    if draft.in_reply_to:
        msg["In-Reply-To"] = f"<{_no_newlines('inReplyTo', draft.in_reply_to)}>"
    if draft.references:
        msg["References"] = " ".join(f"<{_no_newlines('references', r)}>" for r in draft.references)
    for name, value in draft.extra_headers:
        msg[name] = _no_newlines(name, value)

    text, html = draft.text, draft.html
    if text is None and html is None:
        text = ""
    if text is not None:
        msg.set_content(text, subtype="plain", cte=_cte(text))
        if html is not None:
            msg.add_alternative(html, subtype="html", cte=_cte(html))
    else:
        assert html is not None
        msg.set_content(html, subtype="html", cte=_cte(html))
    # Inline resources belong with the HTML they illustrate (RFC 2387 multipart/related);
    # without HTML they are ordinary attachments.
    html_part = _html_part(msg)
    inline = [a for a in draft.attachments if a.inline and a.content_id] if html_part is not None else []
    for a in inline:
        maintype, subtype = _split_type(a.content_type)
        assert html_part is not None
        html_part.add_related(a.data, maintype=maintype, subtype=subtype, cid=f"<{a.content_id}>", disposition="inline",
                              filename=a.filename or None)
    for a in draft.attachments:
        if a in inline:
            continue
        maintype, subtype = _split_type(a.content_type)
        msg.add_attachment(a.data, maintype=maintype, subtype=subtype, filename=a.filename or "attachment")
    return msg.as_bytes(), message_id.strip("<>")


def _cte(text: str) -> str:
    long_lines = any(len(line) > 900 for line in text.splitlines())
    return "quoted-printable" if long_lines or not text.isascii() else "7bit"


def _split_type(content_type: str) -> tuple[str, str]:
    maintype, _, subtype = content_type.partition("/")
    if not maintype or not subtype or maintype == "multipart":
        return "application", "octet-stream"
    return maintype, subtype


def _html_part(msg: EmailMessage) -> EmailMessage | None:
    for part in msg.walk():
        if part.get_content_type() == "text/html" and isinstance(part, EmailMessage):
            return part
    return None
