"""Relate Mail's message parser: a raw RFC 5322 message is parsed once, at delivery, into
everything SMTP, IMAP, POP3 and the API need (ENVELOPE, BODYSTRUCTURE with byte offsets,
addresses, thread, preview, search text, attachments), stored as JSON and never re-parsed.

Invariants of the package:
- Pure: bytes in, data out. No sockets, files, database, clock or randomness; stdlib only.
- `parse_message` never raises, for any bytes, and its time and memory grow linearly with the
  message (limits.py names every bound and what happens beyond it).
- Offsets index the raw bytes exactly as given. Lines may end in CRLF or bare LF (both are
  recognised everywhere); a bare CR is data.
- Every str produced is valid Unicode without NUL or lone surrogates (safe for UTF-8, JSON
  and PostgreSQL text). Header octets are read as UTF-8 when valid (RFC 6532), else as
  Windows-1252.
- Malformed input degrades, it does not fail: a bad Content-Type reads as text/plain, a bad
  date as None, a bad address as the best guess, a multipart without delimiters as one
  opaque text/plain part.

Modules, one idea each: headers (header sections and offsets), params (Content-Type and
Content-Disposition), encoded_words (RFC 2047), charset, transfer (base64, quoted-printable),
address, dates, ids (message-ids, thread), envelope, part (the Part tree), structure (MIME
boundaries), htmltext, text (preview, search text), attachments, parsed (ParsedMessage and
its JSON), parse (parse_message).
"""

from .params import param
from .parse import parse_message
from .parsed import ParsedMessage
from .part import Part
from .text import part_text
from .transfer import decode_part_body

__all__ = ["ParsedMessage", "Part", "decode_part_body", "param", "parse_message", "part_text"]
