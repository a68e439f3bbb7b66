"""The octets FETCH returns for BODY[section]<partial>, BINARY[part]<partial> and BINARY.SIZE
(RFC 9051 §6.4.5, RFC 3501 §6.4.5, RFC 3516), cut from a stored message's raw bytes by the
offsets its parsed Part tree carries.

Invariants:
- Pure: raw bytes and the top Part in, bytes out; nothing here touches the store.
- BODY[], HEADER, TEXT, MIME and part bodies are exact slices of the raw message, so they agree
  with RFC822.SIZE and with each other (HEADER + TEXT == BODY[] for the top message).
- HEADER.FIELDS and HEADER.FIELDS.NOT are built, not sliced: the chosen fields in message order,
  each with its folding kept, lines ending in CRLF, then the CRLF blank line that ends a header.
- A section that names nothing (no such part; HEADER or TEXT of a part that is not an embedded
  message) is the empty string, as Dovecot answers; never an error.
- BINARY undoes base64 and quoted-printable; identity encodings pass through; any other
  Content-Transfer-Encoding raises UnknownCte (tagged NO [UNKNOWN-CTE], RFC 3516 §4.3).
"""

from __future__ import annotations

import re

from relate.imapd.fetchatt import Partial, Section
from relate.message import Part, decode_part_body
from relate.message.headers import scan_header

IDENTITY_ENCODINGS = frozenset({"7bit", "8bit", "binary"})
DECODED_ENCODINGS = frozenset({"base64", "quoted-printable"})

_BARE_LF = re.compile(rb"(?<!\r)\n")


class UnknownCte(Exception):
    """BINARY of a part whose Content-Transfer-Encoding Relate Mail cannot undo.

    The session answers the FETCH with `NO [UNKNOWN-CTE]` (RFC 3516 §4.3, RFC 9051 §7.1).
    """

    code = "UNKNOWN-CTE"

    def __init__(self, encoding: str) -> None:
        super().__init__(f"unknown Content-Transfer-Encoding {encoding!r}")
        self.encoding = encoding


def partial(data: bytes, window: Partial | None) -> bytes:
    """`<origin.octets>`: the window of `data`; empty when the origin lies past the end."""
    if window is None:
        return data
    return data[window.origin : window.origin + window.octets]


def header_fields(raw: bytes, entity: Part, names: tuple[str, ...], *, exclude: bool) -> bytes:
    """HEADER.FIELDS (exclude=False) or HEADER.FIELDS.NOT (exclude=True) of an entity's header.

    Names compare case-insensitively. Lines that belong to no field (an mbox "From " line,
    garbage) are never returned. Bare LF line ends become CRLF.
    """
    wanted = {n.lower() for n in names}
    fields, _ = scan_header(raw, entity.header_start, entity.header_end)
    out = bytearray()
    for f in fields:
        if (f.name in wanted) == exclude:
            continue
        chunk = raw[f.start : f.end]
        if not chunk.endswith(b"\n"):
            chunk += b"\r\n"
        out += chunk
    out += b"\r\n"
    return _BARE_LF.sub(b"\r\n", bytes(out))


def _message_text(raw: bytes, message: Part, section: Section) -> bytes:
    """HEADER, HEADER.FIELDS[.NOT] or TEXT of a message (the top one or an embedded one)."""
    if section.text == "HEADER":
        return raw[message.header_start : message.header_end]
    if section.text == "TEXT":
        return raw[message.body_start : message.body_end]
    return header_fields(raw, message, section.fields, exclude=section.text == "HEADER.FIELDS.NOT")


def body_section(raw: bytes, top: Part, section: Section) -> bytes:
    """The octets of BODY[section] (before any partial), RFC 9051 §6.4.5."""
    if not section.part:
        if section.text is None:
            return raw
        return _message_text(raw, top, section)
    part = top.part(list(section.part))
    if part is None:
        return b""
    if section.text is None:
        return raw[part.body_start : part.body_end]
    if section.text == "MIME":
        return raw[part.header_start : part.header_end]
    # HEADER, HEADER.FIELDS[.NOT] and TEXT after a part number address an embedded message.
    if part.message is None:
        return b""
    return _message_text(raw, part.message, section)


def binary_part(top: Part, path: tuple[int, ...]) -> Part | None:
    """The part BINARY[path] names: the whole message for an empty path, None for nothing."""
    if not path:
        return top
    return top.part(list(path))


def binary_section(raw: bytes, top: Part, path: tuple[int, ...]) -> bytes:
    """The octets of BINARY[path] (before any partial): the part's body, transfer-decoded.

    BINARY[] is the whole message as stored. A multipart or an embedded message has no
    transfer encoding to undo (RFC 2046 §5: identity only) and is returned as stored.
    """
    if not path:
        return raw
    part = binary_part(top, path)
    if part is None:
        return b""
    if part.parts or part.message is not None or part.encoding in IDENTITY_ENCODINGS:
        return raw[part.body_start : part.body_end]
    if part.encoding in DECODED_ENCODINGS:
        return decode_part_body(raw, part)
    raise UnknownCte(part.encoding)


def identity_size(top: Part, path: tuple[int, ...], message_size: int) -> int | None:
    """BINARY.SIZE[path] without reading the message, or None when the body must be decoded
    (base64, quoted-printable, unknown): then it is len(binary_section(...)), exactly, as
    RFC 3516 §4.2 requires the size to match what BINARY returns."""
    if not path:
        return message_size
    part = binary_part(top, path)
    if part is None:
        return 0
    if part.parts or part.message is not None or part.encoding in IDENTITY_ENCODINGS:
        return part.size
    return None
