"""Modified UTF-7 (RFC 3501 §5.1.3): the 7-bit form IMAP4rev1 gives mailbox names, and the
form a label with a non-ASCII name takes as an IMAP keyword (relate.store.labels). Pure."""

from __future__ import annotations

import base64
import binascii
import re

_MUTF7_SHIFT = re.compile(rb"&([A-Za-z0-9+,]*)-")


def _mutf7_base64(text: str) -> bytes:
    encoded = base64.b64encode(text.encode("utf-16-be"))
    return encoded.rstrip(b"=").replace(b"/", b",")


def mutf7_encode(name: str) -> bytes:
    """Encode a mailbox name in modified UTF-7 (RFC 3501 §5.1.3) for IMAP4rev1 clients.

    Printable US-ASCII stands for itself except "&", written "&-"; everything else goes into
    "&...-" runs of modified BASE64 (",", not "/"; no padding) over UTF-16BE.
    Raises UnicodeEncodeError (a ValueError) for a lone surrogate.
    """
    out = bytearray()
    run: list[str] = []
    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            if run:
                out += b"&" + _mutf7_base64("".join(run)) + b"-"
                run.clear()
            out += b"&-" if ch == "&" else ch.encode("ascii")
        else:
            run.append(ch)
    if run:
        out += b"&" + _mutf7_base64("".join(run)) + b"-"
    return bytes(out)


def mutf7_decode(data: bytes) -> str:
    """Decode a modified UTF-7 mailbox name (RFC 3501 §5.1.3); ValueError if malformed.

    Rejected: octets outside printable US-ASCII, an unterminated "&" run, BASE64 that is not
    the canonical encoding (non-zero pad bits), odd UTF-16, lone surrogates, and runs that
    encode printable US-ASCII (which must stand for itself).
    """
    if any(c < 0x20 or c > 0x7E for c in data):
        raise ValueError("modified UTF-7 is printable US-ASCII only")
    out: list[str] = []
    pos = 0
    while True:
        amp = data.find(b"&", pos)
        if amp < 0:
            out.append(data[pos:].decode("ascii"))
            return "".join(out)
        out.append(data[pos:amp].decode("ascii"))
        shift = _MUTF7_SHIFT.match(data, amp)
        if shift is None:
            raise ValueError("unterminated modified BASE64 run")
        encoded = shift.group(1)
        if not encoded:
            out.append("&")
        else:
            try:
                padded = encoded.replace(b",", b"/") + b"=" * (-len(encoded) % 4)
                text = base64.b64decode(padded, validate=True).decode("utf-16-be")
            except (binascii.Error, UnicodeDecodeError):
                raise ValueError("invalid modified BASE64 run") from None
            if any(0x20 <= ord(c) <= 0x7E for c in text) or _mutf7_base64(text) != encoded:
                raise ValueError("non-canonical modified BASE64 run")
            out.append(text)
        pos = shift.end()
