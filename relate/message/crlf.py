"""A stored message in its wire form: every line ending CRLF, as POP3 sends it (RFC 1939 §3).

Rules (relate.pop3d.wire says what POP3 makes of them):
- A bare LF becomes CRLF; CRLF and a lone CR are left as they are; every other octet (8-bit,
  NUL, binary-looking bodies) is unchanged. A message stored with CRLF throughout is its own
  wire form.
- A non-empty message that does not end with a line ending gets one CRLF appended: every
  line of a multi-line response ends in CRLF, so that is the only way to send its last line.
  An empty message stays empty.

`wire_size` is stored with every body at delivery (message_bodies.wire_size), so that POP3
need not read the bodies to answer STAT and LIST. Both run over the whole message with
bytes.count/replace (C loops), never per line in Python.
"""

from __future__ import annotations

CRLF = b"\r\n"


def wire_form(raw: bytes) -> bytes:
    """The stored message with CRLF line endings, ending in CRLF unless empty."""
    if raw.count(b"\n") != raw.count(CRLF):
        # Every LF becomes CRLF once: existing CRLFs collapse to LF first, so none doubles.
        raw = raw.replace(CRLF, b"\n").replace(b"\n", CRLF)
    if raw and not raw.endswith(b"\n"):
        raw += CRLF
    return raw


def wire_size(raw: bytes) -> int:
    """len(wire_form(raw)) without building it."""
    size = len(raw) + raw.count(b"\n") - raw.count(CRLF)
    if raw and not raw.endswith(b"\n"):
        size += 2
    return size
