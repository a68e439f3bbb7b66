"""The POP3 replies and what POP3 does to a stored message. Pure: bytes in, bytes out.

What "byte-exact" means for Relate Mail (RFC 1939 §3, §11):
- The message a client receives is the stored message's wire form (relate.message.crlf):
  every line ending CRLF, every other octet unchanged, a CRLF after a last line without one,
  nothing at all for an empty message.
- The size STAT, LIST and RETR report is the length of that wire form: exactly the octets
  of the message the client receives, before dot-stuffing and without the closing ".CRLF".
  It is stored with the body at delivery (message_bodies.wire_size); relate.pop3d.maildrop
  computes it from the body only for bodies stored before that column existed.
- Dot-stuffing (RFC 1939 §3) doubles a "." that starts a line, on the wire only; clients
  remove it again. TOP sends the header, the blank line and the first n body lines.

All of this runs on whole messages with bytes.replace/find (C loops), never per line in Python.
"""

from __future__ import annotations

from relate.message.crlf import CRLF

TERMINATOR = b".\r\n"  # ends every multi-line response (RFC 1939 §3)


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
