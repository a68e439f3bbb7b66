"""Content-Transfer-Encoding (RFC 2045 §6): decoding that tolerates whatever senders wrote.

Invariants: nothing here raises on any bytes. Base64 ignores characters outside its alphabet
and decodes each padded run on its own (mailers that concatenate encoded chunks are common);
quoted-printable leaves malformed escapes as they are. Unknown encodings pass bytes through.
"""

from __future__ import annotations

import binascii

from .part import Part

_B64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_B64_JUNK = bytes(c for c in range(256) if c not in _B64_ALPHABET and c != ord("="))


def b64decode(data: bytes) -> bytes:
    data = data.translate(None, _B64_JUNK)
    if b"=" not in data:
        return _b64_run(data)
    return b"".join(_b64_run(run) for run in data.split(b"=") if run)


def _b64_run(run: bytes) -> bytes:
    if len(run) % 4 == 1:  # a lone trailing sextet carries no whole octet
        run = run[:-1]
    run += b"=" * (-len(run) % 4)
    try:
        return binascii.a2b_base64(run)
    except binascii.Error:
        return b""


def qpdecode(data: bytes, header: bool = False) -> bytes:
    """RFC 2045 §6.7 (and RFC 2047 §4.2 "Q" with `header`, where "_" is a space)."""
    return binascii.a2b_qp(data, header=header)


def decode_transfer(data: bytes, encoding: str) -> bytes:
    if encoding == "base64":
        return b64decode(data)
    if encoding == "quoted-printable":
        return qpdecode(data)
    return data


def decode_part_body(raw: bytes, part: Part) -> bytes:
    """The part's body with its Content-Transfer-Encoding undone (for IMAP BINARY, downloads).

    Identity encodings (7bit, 8bit, binary) and unknown ones return the body as stored.
    """
    return decode_transfer(raw[part.body_start : part.body_end], part.encoding)


def decoded_size(raw: bytes, part: Part) -> int:
    """How many octets `decode_part_body` would return, estimated without decoding."""
    start, end = part.body_start, part.body_end
    size = end - start
    if part.encoding == "base64":
        spaces = sum(raw.count(c, start, end) for c in (b"\r", b"\n", b" ", b"\t", b"="))
        return (size - spaces) * 3 // 4
    if part.encoding == "quoted-printable":
        # "=XX" becomes one octet, "=\r\n" and "=\n" (soft line breaks) none.
        return max(0, size - 2 * raw.count(b"=", start, end) - raw.count(b"=\r\n", start, end))
    return size
