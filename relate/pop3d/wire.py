"""The POP3 wire form of a stored message, and the reply builders. Pure: bytes in, bytes out.

What "byte-exact" means for Relate Mail (RFC 1939 §3, §11):
- The message a client receives is the stored message with every line ending as CRLF: a
  bare LF becomes CRLF; CRLF and a lone CR are left as they are; every other octet (8-bit,
  NUL, binary-looking bodies) is sent unchanged. A message stored with CRLF throughout is
  sent exactly as stored.
- A non-empty message that does not end with a line ending gets one CRLF appended: every
  line of a multi-line response ends in CRLF, so that is the only way to send its last line.
  An empty message is sent as no lines at all.
- The size STAT, LIST and RETR report is the length of that wire form: exactly the octets
  of the message the client receives, before dot-stuffing and without the closing ".CRLF".
- Dot-stuffing (RFC 1939 §3) doubles a "." that starts a line, on the wire only; clients
  remove it again. TOP sends the header, the blank line and the first n body lines.

All of this runs on whole messages with bytes.replace/find (C loops), never per line in Python.
"""

from __future__ import annotations

CRLF = b"\r\n"
TERMINATOR = b".\r\n"  # ends every multi-line response (RFC 1939 §3)


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


def dot_stuff(wire: bytes) -> bytes:
    """Double the "." that starts any line of a wire-form message (RFC 1939 §3)."""
    if wire.startswith(b"."):
        wire = b"." + wire
    if b"\n." in wire:
        wire = wire.replace(b"\n.", b"\n..")
    return wire


def top(wire: bytes, lines: int) -> bytes:
    """The header, the blank line after it and the first `lines` body lines (RFC 1939 §7 TOP).

    Works on the wire form before or after dot-stuffing (stuffing never adds or removes a line).
    A message without a blank line is all header and is returned whole.
    """
    if wire.startswith(CRLF):
        pos = 2  # an empty header section: the blank line is the first line
    else:
        blank = wire.find(b"\r\n\r\n")
        if blank < 0:
            return wire
        pos = blank + 4
    for _ in range(lines):
        end = wire.find(CRLF, pos)
        if end < 0:
            return wire
        pos = end + 2
    return wire[:pos]


def unique_id(uid_validity: int, uid: int) -> str:
    """The UIDL of an INBOX entry (RFC 1939 §7): printable, at most 21 characters (limit 70).

    UIDVALIDITY comes from a per-user counter that never goes back, and UIDs only ascend
    within one UIDVALIDITY, so a value is never reused for another message of the user,
    on any replica, across restarts and even if the mailbox is made again.
    """
    return f"{uid_validity}.{uid}"


def ok(text: str = "") -> bytes:
    return f"+OK {text}\r\n".encode() if text else b"+OK\r\n"


def err(text: str, code: str = "") -> bytes:
    """An -ERR line, with an RFC 2449 §8 / RFC 3206 response code when given."""
    prefix = f"[{code}] " if code else ""
    return f"-ERR {prefix}{text}\r\n".encode()


def multiline(first: str, lines: list[str]) -> bytes:
    """"+OK first", then `lines` (none may start with "."), then the terminator."""
    body = "".join(f"{line}\r\n" for line in lines)
    return f"+OK {first}\r\n{body}".encode() + TERMINATOR
