"""The MIME tree of a raw message (RFC 2045, RFC 2046), every Part carrying byte offsets.

Invariants (beyond those of part.py):
- `build_structure` never raises and its work is bounded: at most MAX_PARTS parts, nesting to
  MAX_DEPTH, and boundary scanning that reads at most SCAN_FACTOR times the message.
- A delimiter line (RFC 2046 §5.1.1) is "--" boundary at the start of a line, then blanks and
  the line break; a close delimiter is "--" boundary "--" and anything up to the line break.
  Lines end in CRLF or LF. The line break before a delimiter belongs to the delimiter.
- Preamble and epilogue belong to the multipart's body and to no child. A multipart whose
  close delimiter is missing ends its last part where the multipart ends. One with no
  delimiter at all, or nested too deep, gets a single opaque text/plain child spanning its
  body (its header empty), so IMAP always has a child to report.
- message/rfc822 and message/global are parsed as messages only with an identity transfer
  encoding (7bit, 8bit, binary); otherwise their bytes are not a message and they are leaves.
"""

from __future__ import annotations

import re

from .address import Entry
from .envelope import address_entries, build_envelope
from .headers import Header, scan_header
from .limits import MAX_BOUNDARY, MAX_DEPTH, MAX_PARTS, SCAN_FACTOR, SCAN_FLOOR
from .params import decode_extended, parse_content_type, parse_disposition
from .part import DEFAULT_PARAMS, Part

IDENTITY_ENCODINGS = frozenset({"7bit", "8bit", "binary"})
MESSAGE_SUBTYPES = frozenset({"rfc822", "global"})


def build_structure(raw: bytes) -> tuple[Part, Header, dict[str, list[Entry]]]:
    """The top Part of `raw`, its header section and its parsed address fields."""
    builder = _Builder(raw)
    top, header = builder.entity(0, len(raw), 0, digest=False)
    return top, header, address_entries(header)


class _Builder:
    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.parts_left = MAX_PARTS
        self.scan_left = SCAN_FACTOR * len(raw) + SCAN_FLOOR

    def entity(self, start: int, end: int, depth: int, digest: bool) -> tuple[Part, Header]:
        """The entity in raw[start:end]: its header, then a body per its Content-Type."""
        self.parts_left -= 1
        fields, header_end = scan_header(self.raw, start, end)
        header = Header(self.raw, fields)
        part = _content_part(header, digest)
        part.header_start, part.header_end = start, header_end
        part.body_start, part.body_end = header_end, end
        if part.type == "multipart":
            part.parts = self._children(part, depth)
        elif (
            part.type == "message"
            and part.subtype in MESSAGE_SUBTYPES
            and part.encoding in IDENTITY_ENCODINGS
            and depth < MAX_DEPTH
            and self.parts_left > 0
        ):
            part.message, inner = self.entity(header_end, end, depth + 1, digest=False)
            part.envelope = build_envelope(inner, address_entries(inner))
        if part.type != "multipart":
            part.lines = _lines(self.raw, header_end, end)
        return part, header

    def _opaque(self, start: int, end: int) -> Part:
        """A text/plain part without a header spanning raw[start:end]."""
        lines = _lines(self.raw, start, end)
        return Part(header_start=start, header_end=start, body_start=start, body_end=end, lines=lines)

    def _children(self, part: Part, depth: int) -> list[Part]:
        start, end = part.body_start, part.body_end
        boundary = _boundary(part)
        if depth >= MAX_DEPTH or self.parts_left <= 0 or not boundary or self.scan_left < end - start:
            return [self._opaque(start, end)]
        self.scan_left -= end - start
        delimiter = re.compile(rb"\n--" + re.escape(boundary) + rb"(--[^\n]*|[ \t]*\r?)(?=\n|\Z)")
        scan_from = start - 1 if start > 0 and self.raw[start - 1] == 0x0A else start
        regions: list[list[int]] = []  # [first octet, end] of each part
        for m in delimiter.finditer(self.raw, scan_from, end):
            if len(regions) >= self.parts_left:
                break  # out of parts: the last one runs to the end
            before = m.start() - 1 if m.start() > 0 and self.raw[m.start() - 1] == 0x0D else m.start()
            if regions:
                regions[-1][1] = max(regions[-1][0], before)
            if m.group(1).startswith(b"--"):
                break
            regions.append([min(m.end() + 1, end), end])
        digest = part.subtype == "digest"
        children = [self.entity(s, e, depth + 1, digest)[0] for s, e in regions if self.parts_left > 0]
        return children or [self._opaque(start, end)]


def _content_part(header: Header, digest: bool) -> Part:
    """A Part with the Content-* fields of `header` (offsets are filled in by the caller)."""
    part = Part()
    value = header.value("content-type")
    if value is None:
        if digest:  # RFC 2046 §5.1.5
            part.type, part.subtype, part.params = "message", "rfc822", []
    else:
        media, params = parse_content_type(value)
        if media is None:  # RFC 2045 §5.2: an invalid Content-Type means text/plain
            if not any(k == "charset" for k, _ in params):
                params += DEFAULT_PARAMS
        else:
            part.type, part.subtype = media
        part.params = params
    encoding = header.value("content-transfer-encoding")
    if encoding and encoding.split():
        part.encoding = encoding.split()[0].split(";")[0].lower() or "7bit"
    part.id = header.value("content-id")
    part.description = header.value("content-description")
    disposition = header.value("content-disposition")
    part.disposition = None if disposition is None else parse_disposition(disposition)
    language = header.value("content-language")
    if language is not None:
        part.language = [t for t in (s.strip() for s in language.split(",")) if t] or None
    part.location = header.value("content-location")
    part.md5 = header.value("content-md5")
    return part


def _boundary(part: Part) -> bytes:
    """The boundary as raw octets (header text that was not UTF-8 will not be found)."""
    values = dict(reversed(part.params))  # the first of each name wins
    value = values.get("boundary")
    if value is None and "boundary*" in values:
        value = decode_extended(values["boundary*"])
    value = (value or "").rstrip()
    return value.encode("utf-8") if len(value) <= MAX_BOUNDARY else b""


def _lines(raw: bytes, start: int, end: int) -> int:
    if start >= end:
        return 0
    return raw.count(b"\n", start, end) + (raw[end - 1] != 0x0A)
