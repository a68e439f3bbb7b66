"""A mailbox of messages that are hard to transfer byte-exactly over POP3."""

from __future__ import annotations

import base64
import random
import re

HEADER = (
    b"From: Sender <sender@elsewhere.test>\r\n"
    b"To: Receiver <receiver@pop.test>\r\n"
    b"Date: Sat, 28 Nov 2026 10:00:00 +0000\r\n"
)


def _msg(n: int, subject: str, body: bytes, *, eol: bytes = b"\r\n", extra: bytes = b"") -> bytes:
    head = HEADER + f"Subject: {subject}\r\nMessage-ID: <tricky-{n}@pop.test>\r\n".encode() + extra
    return (head + b"\r\n").replace(b"\r\n", eol) + body


def big_attachment(size: int = 10 * 1024 * 1024) -> bytes:
    """A multipart message carrying `size` octets of random data, base64 in 76-column lines."""
    data = random.Random(1939).randbytes(size)
    encoded = base64.encodebytes(data).replace(b"\n", b"\r\n")
    return _msg(
        99,
        "ten megabytes",
        b"--b1\r\nContent-Type: text/plain\r\n\r\nsee attachment\r\n"
        b"--b1\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n"
        b'Content-Disposition: attachment; filename="big.bin"\r\n\r\n' + encoded + b"--b1--\r\n",
        extra=b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b1"\r\n',
    )


def tricky_messages(big: bool = True) -> list[tuple[str, bytes]]:
    """(name, raw) pairs, in delivery order."""
    cases = [
        ("crlf", _msg(1, "plain CRLF", b"Hello.\r\nSecond line.\r\n")),
        ("bare-lf", _msg(2, "bare LF", b"line one\nline two\n", eol=b"\n")),
        ("no-final-newline", _msg(3, "no final newline", b"last line without terminator")),
        ("dots", _msg(4, "dots", b".leading dot\r\n..two dots\r\n.\r\nmiddle\r\n.\r\n...\r\n. space\r\n")),
        ("dot-last-no-eol", _msg(5, "dot at the end", b"text\r\n.")),
        ("eight-bit", _msg(6, "8-bit", "Grüße aus Köln — ☃\r\n".encode() + b"latin-1: \xe9t\xe9\r\n",
                           extra=b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n")),
        ("binary-looking", _msg(7, "binary", b"nul \x00 byte\r\nlone \r cr\r\n\xff\xfe\x80\x01\x7f\r\n\r\n\r\n",
                                extra=b"Content-Transfer-Encoding: binary\r\n")),
        ("mixed-endings", _msg(8, "mixed", b"crlf\r\nlf\n.lf-dot\ncr-cr-lf\r\r\nend\n")),
        ("crlf-dot-crlf", _msg(9, "looks terminated", b"before\r\n.\r\nafter\r\n")),
        ("empty-body", _msg(10, "empty body", b"")),
    ]
    if big:
        cases.append(("ten-megabytes", big_attachment()))
    return cases


def on_the_wire(raw: bytes) -> bytes:
    """What a client that keeps CRLF receives, restated independently of relate.message.crlf:
    every LF not preceded by CR gets one, and a last line without terminator gets CRLF."""
    out = re.sub(rb"(?<!\r)\n", b"\r\n", raw)
    if out and not out.endswith(b"\n"):
        out += b"\r\n"
    return out


def has_lone_cr(raw: bytes) -> bool:
    """Whether `raw` holds a CR that does not end a line (CRLF), which mail clients built on
    Python's email package read as a line break of its own."""
    return re.search(rb"\r(?!\n)", raw) is not None
