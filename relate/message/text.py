"""Readable text of a message: the decoded text of a part, the preview, the search text.

Invariants:
- Nothing here raises; every str returned is clean (see charset.clean).
- Body text is the text/plain and text/html parts that are not attachments (no
  "attachment" disposition, no file name). Of a multipart/alternative only one alternative
  counts: the first with non-blank plain text, else the first with any text.
- The preview comes from the message's own body text, never from an embedded message; the
  search text also takes in embedded messages' body text.
- Reading is bounded: at most TEXT_INPUT_BYTES raw octets of text parts per message; the
  search text is cut to TEXT_BYTES octets of UTF-8 and the preview to PREVIEW_CHARS.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .charset import decode_text
from .htmltext import html_to_text
from .limits import PREVIEW_CHARS, TEXT_BYTES, TEXT_INPUT_BYTES
from .params import param
from .part import Part
from .transfer import decode_transfer

_META_CHARSET = re.compile(rb"""<meta[^>]{0,200}?charset\s*=\s*["']?([A-Za-z0-9_:.-]{1,40})""", re.IGNORECASE)


def part_text(raw: bytes, part: Part) -> str:
    """The part's body, transfer-decoded and decoded to text (HTML stays HTML)."""
    return _decode(raw, part, part.body_end)


def _decode(raw: bytes, part: Part, end: int) -> str:
    data = decode_transfer(raw[part.body_start : end], part.encoding)
    charset = param(part.params, "charset")
    if charset is None and part.subtype == "html":  # HTML may say it in a <meta> instead
        meta = _META_CHARSET.search(data, 0, 4096)
        charset = meta.group(1).decode("ascii") if meta else None
    return decode_text(data, charset)


def is_attachment(part: Part) -> bool:
    if part.disposition is not None and part.disposition[0] == "attachment":
        return True
    return filename(part) is not None


def filename(part: Part) -> str | None:
    name = None
    if part.disposition is not None:
        name = param(part.disposition[1], "filename")
    return name if name is not None else param(part.params, "name")


def is_body_text(part: Part) -> bool:
    return (
        part.type == "text"
        and part.subtype in ("plain", "html")
        and not part.parts
        and not is_attachment(part)
    )


@dataclass
class _Piece:
    part: Part
    text: str  # readable: HTML already converted
    embedded: bool  # from inside a message/rfc822


class _Reader:
    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.left = TEXT_INPUT_BYTES

    def pieces(self, part: Part, embedded: bool = False) -> list[_Piece]:
        if part.parts:
            if part.subtype == "alternative":
                return self._alternative(part, embedded)
            return [p for child in part.parts for p in self.pieces(child, embedded)]
        if part.message is not None:
            return self.pieces(part.message, True)
        if not is_body_text(part) or self.left <= 0:
            return []
        end = min(part.body_end, part.body_start + self.left)
        self.left -= end - part.body_start
        text = _decode(self.raw, part, end)
        if part.subtype == "html":
            text = html_to_text(text)
        return [_Piece(part, text, embedded)]

    def _alternative(self, part: Part, embedded: bool) -> list[_Piece]:
        choices = [self.pieces(child, embedded) for child in part.parts]
        for choice in choices:
            if any(p.part.subtype == "plain" and p.text.strip() for p in choice):
                return choice
        return next((c for c in choices if any(p.text.strip() for p in c)), [])


def readable_text(raw: bytes, top: Part) -> tuple[str, str]:
    """(preview, search text) of a message."""
    pieces = _Reader(raw).pieces(top)
    preview = next((p.text for p in pieces if not p.embedded and p.text.strip()), "")
    return _preview(preview), _search_text([p.text for p in pieces])


def collapse(text: str) -> str:
    """Runs of white space as one space, none at either end. str.split() and the regex \\s
    agree on what white space is (Unicode's), so this is re.sub(r"\\s+", " ", text).strip(),
    without a match object per word."""
    return " ".join(text.split())


def _preview(text: str) -> str:
    return collapse(text.lstrip()[: PREVIEW_CHARS * 8])[:PREVIEW_CHARS].rstrip()


def _search_text(texts: list[str]) -> str:
    text = collapse(" ".join(texts))
    if len(text) * 4 > TEXT_BYTES:
        text = text[:TEXT_BYTES].encode("utf-8")[:TEXT_BYTES].decode("utf-8", "ignore")
    return text
