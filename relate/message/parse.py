"""parse_message: raw RFC 5322 octets in, ParsedMessage out. Pure: no I/O, no clock.

Invariants:
- `parse_message` never raises for any bytes. `parse_unguarded` is the same parse without
  the safety net; should it ever raise (a bug), `parse_message` logs it and returns what
  stays true of any message: its size, one text/plain body spanning it, a thread of its own.
- Time and memory are linear in the message size with small constants (see limits.py).
- Offsets index the raw bytes exactly as given, CRLF or bare LF alike.
"""

from __future__ import annotations

import hashlib
import logging

from .address import mailboxes
from .attachments import attachments
from .dates import parse_date
from .encoded_words import decode_words
from .envelope import build_envelope
from .ids import first_id, message_ids, references, thread_id
from .parsed import ParsedMessage
from .part import Part
from .structure import build_structure
from .text import readable_text

log = logging.getLogger(__name__)


def parse_message(raw: bytes | bytearray | memoryview) -> ParsedMessage:
    """Everything Relate Mail stores about a message, from its raw bytes; never raises."""
    try:
        data = bytes(raw)
    except Exception:  # not bytes-like after all: there is nothing to parse
        data = b""
    try:
        return parse_unguarded(data)
    except Exception:
        log.exception("message parser failed on %d octets; storing it as opaque text", len(data))
        return _opaque(data)


def parse_unguarded(raw: bytes) -> ParsedMessage:
    body, header, entries = build_structure(raw)
    message_id = first_id(header.value("message-id"))
    in_reply_to = message_ids(header.value("in-reply-to"))
    refs = references(header.value("references"))
    senders = mailboxes(entries["from"])
    found = attachments(raw, body)
    preview, text = readable_text(raw, body)
    return ParsedMessage(
        size=len(raw),
        message_id=message_id,
        in_reply_to=in_reply_to,
        references=refs,
        thread_id=thread_id(refs, in_reply_to, message_id, raw, header.fields),
        subject=" ".join(decode_words(header.value("subject") or "").split()),
        date=parse_date(header.value("date")),
        from_addr=senders[0][1] if senders else "",
        from_display=senders[0][0] if senders else "",
        to=mailboxes(entries["to"]),
        cc=mailboxes(entries["cc"]),
        bcc=mailboxes(entries["bcc"]),
        reply_to=mailboxes(entries["reply-to"]),
        envelope=build_envelope(header, entries),
        body=body,
        preview=preview,
        text=text,
        attachments=found,
        has_attachments=any(not a["inline"] for a in found),
    )


def _opaque(raw: bytes) -> ParsedMessage:
    return ParsedMessage(
        size=len(raw),
        thread_id=hashlib.sha256(b"raw:" + raw).hexdigest()[:16],
        body=Part(body_end=len(raw), lines=raw.count(b"\n") + (not raw.endswith(b"\n") and bool(raw))),
    )
