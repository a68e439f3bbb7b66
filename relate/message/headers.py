"""Header sections (RFC 5322 §2.2, RFC 2045 §3) located by byte offset in the raw message.

Invariants:
- `scan_header` never raises and never looks outside [start, limit).
- Lines end in CRLF or a bare LF; a bare CR is ordinary data.
- The header section ends with the first empty line, which it includes. Without one it runs to
  `limit` and the body is empty.
- If the first line is neither a field nor empty, the entity has no header section at all
  (header_end == start): that is how a body without headers reads. An mbox "From " line
  followed by fields is the exception: it stays in the section and belongs to no field.
- A field is a name, optional blanks, a colon (RFC 5322 §4.5.3 allows the blanks) and the
  value with its continuation lines. A line inside the section that is neither a field nor a
  continuation belongs to no field and is skipped.
- Header text is decoded as UTF-8 when valid (RFC 6532), else as Windows-1252, so every value
  is a clean str (see charset.clean); only the first MAX_HEADER_VALUE octets of a value count.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from .charset import clean, guess
from .limits import MAX_HEADER_VALUE

_FIRST_FIELD = re.compile(rb"([!-9;-~]+)[ \t]*(:)[^\n]*(?:\n[ \t][^\n]*)*(?:\n|\Z)")
_FIELD = re.compile(rb"^([!-9;-~]+)[ \t]*(:)[^\n]*(?:\n[ \t][^\n]*)*(?:\n|\Z)", re.MULTILINE)
_EMPTY_LINE = re.compile(rb"\n\r?\n")
_FOLD = re.compile(rb"\r?\n(?=[ \t])")


class Field(NamedTuple):
    name: str  # lowercase
    start: int  # first octet of the field name
    value_start: int  # just after the colon
    end: int  # just after the field's last line break


def scan_header(raw: bytes, start: int, limit: int) -> tuple[list[Field], int]:
    """The fields of the header section starting at `start` and the offset where it ends."""
    if start >= limit:
        return [], start
    if raw[start] == 0x0A:
        return [], start + 1
    if raw.startswith(b"\r\n", start, limit):
        return [], start + 2
    first = _FIRST_FIELD.match(raw, start, limit)
    if first is None and raw.startswith(b"From ", start, limit):  # an mbox postmark (RFC 4155)
        line_end = raw.find(b"\n", start, limit)
        first = _FIRST_FIELD.match(raw, line_end + 1, limit) if line_end >= 0 else None
    if first is None:
        return [], start
    empty = _EMPTY_LINE.search(raw, start, limit)
    fields_end, end = (empty.start() + 1, empty.end()) if empty else (limit, limit)
    fields = [_field(first)]
    if first.end() < fields_end:
        fields += [_field(m) for m in _FIELD.finditer(raw, first.end(), fields_end)]
    return fields, end


def _field(m: re.Match[bytes]) -> Field:
    return Field(m.group(1).decode("ascii").lower(), m.start(), m.end(2), m.end())


def header_text(value: bytes) -> str:
    return clean(guess(value))


class Header:
    """One header section's fields; lookups are by lowercase name and the first field wins."""

    __slots__ = ("_first", "fields", "raw")

    def __init__(self, raw: bytes, fields: list[Field]) -> None:
        self.raw = raw
        self.fields = fields
        self._first: dict[str, Field] = {}
        for f in fields:
            self._first.setdefault(f.name, f)

    def __contains__(self, name: str) -> bool:
        return name in self._first

    def raw_value(self, name: str) -> bytes | None:
        """The value unfolded (RFC 5322 §2.2.3) and stripped, still in raw octets."""
        f = self._first.get(name)
        if f is None:
            return None
        chunk = self.raw[f.value_start : min(f.end, f.value_start + MAX_HEADER_VALUE)]
        return _FOLD.sub(b"", chunk).strip()

    def value(self, name: str) -> str | None:
        """The value unfolded and stripped, as text; encoded words are left as they are."""
        value = self.raw_value(name)
        return None if value is None else header_text(value)
