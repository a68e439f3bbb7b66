"""FETCH data items (RFC 9051 §6.4.5, RFC 3501 §6.4.5, RFC 7162 §3.1.4 for MODSEQ).

Every item is a frozen dataclass that answers the two questions the session asks:
- `sets_seen`: fetching it sets \\Seen in a read-write mailbox (BODY[...], BINARY[...],
  RFC822 and RFC822.TEXT; never the .PEEK forms, RFC822.HEADER or the metadata items).
- `response_name`: how the item is named in the untagged FETCH response (RFC 9051 §7.5.2):
  BODY.PEEK[...] answers as BODY[...], BINARY.PEEK[...] as BINARY[...], a partial
  `<origin.octets>` as `<origin>`, and HEADER.FIELDS keeps the client's field names.
The macros ALL, FAST and FULL are expanded by the parser, so the session sees items only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

from relate.imapd.grammar import Reader, format_astring


@dataclass(frozen=True)
class FetchAtt:
    """Base of the FETCH items."""

    NAME: ClassVar[str] = ""

    @property
    def response_name(self) -> str:
        return self.NAME

    @property
    def sets_seen(self) -> bool:
        return False


@dataclass(frozen=True)
class Flags(FetchAtt):
    NAME = "FLAGS"


@dataclass(frozen=True)
class Uid(FetchAtt):
    NAME = "UID"


@dataclass(frozen=True)
class InternalDate(FetchAtt):
    NAME = "INTERNALDATE"


@dataclass(frozen=True)
class Rfc822Size(FetchAtt):
    NAME = "RFC822.SIZE"


@dataclass(frozen=True)
class Envelope(FetchAtt):
    NAME = "ENVELOPE"


@dataclass(frozen=True)
class ModSeq(FetchAtt):
    NAME = "MODSEQ"


@dataclass(frozen=True)
class BodyStructure(FetchAtt):
    """BODYSTRUCTURE, or with extensible=False the plain `BODY` (no extension data)."""

    extensible: bool = True

    @property
    def response_name(self) -> str:
        return "BODYSTRUCTURE" if self.extensible else "BODY"


@dataclass(frozen=True)
class Rfc822(FetchAtt):
    """RFC822: the whole message, like BODY[] (sets \\Seen)."""

    NAME = "RFC822"

    @property
    def sets_seen(self) -> bool:
        return True


@dataclass(frozen=True)
class Rfc822Header(FetchAtt):
    """RFC822.HEADER: like BODY.PEEK[HEADER] (does not set \\Seen)."""

    NAME = "RFC822.HEADER"


@dataclass(frozen=True)
class Rfc822Text(FetchAtt):
    """RFC822.TEXT: like BODY[TEXT] (sets \\Seen)."""

    NAME = "RFC822.TEXT"

    @property
    def sets_seen(self) -> bool:
        return True


SECTION_TEXTS = ("HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT", "MIME")


@dataclass(frozen=True)
class Section:
    """RFC 9051 §9 section-spec: part numbers, then an optional text specifier.

    part: MIME part path, () for the whole message. text: one of SECTION_TEXTS or None
    (the whole part). fields: the HEADER.FIELDS[.NOT] names, as the client wrote them.
    """

    part: tuple[int, ...] = ()
    text: str | None = None
    fields: tuple[str, ...] = ()

    def __str__(self) -> str:
        pieces = [str(n) for n in self.part]
        if self.text is not None:
            pieces.append(self.text)
        spec = ".".join(pieces)
        if self.fields:
            spec += " (" + " ".join(format_astring(f).decode("ascii") for f in self.fields) + ")"
        return spec


@dataclass(frozen=True)
class Partial:
    """`<origin.octets>`: at most `octets` octets from offset `origin` (zero-based)."""

    origin: int
    octets: int


@dataclass(frozen=True)
class BodySection(FetchAtt):
    """BODY[section]<partial> and BODY.PEEK[section]<partial>."""

    section: Section = Section()
    partial: Partial | None = None
    peek: bool = False

    @property
    def response_name(self) -> str:
        origin = f"<{self.partial.origin}>" if self.partial else ""
        return f"BODY[{self.section}]{origin}"

    @property
    def sets_seen(self) -> bool:
        return not self.peek


@dataclass(frozen=True)
class Binary(FetchAtt):
    """BINARY[part]<partial> and BINARY.PEEK[part]<partial> (RFC 9051 §6.4.5, RFC 3516)."""

    part: tuple[int, ...] = ()
    partial: Partial | None = None
    peek: bool = False

    @property
    def response_name(self) -> str:
        origin = f"<{self.partial.origin}>" if self.partial else ""
        return f"BINARY[{'.'.join(map(str, self.part))}]{origin}"

    @property
    def sets_seen(self) -> bool:
        return not self.peek


@dataclass(frozen=True)
class BinarySize(FetchAtt):
    """BINARY.SIZE[part]: the decoded size of a part."""

    part: tuple[int, ...] = ()

    @property
    def response_name(self) -> str:
        return f"BINARY.SIZE[{'.'.join(map(str, self.part))}]"


MACROS: dict[str, tuple[FetchAtt, ...]] = {
    "ALL": (Flags(), InternalDate(), Rfc822Size(), Envelope()),
    "FAST": (Flags(), InternalDate(), Rfc822Size()),
    "FULL": (Flags(), InternalDate(), Rfc822Size(), Envelope(), BodyStructure(extensible=False)),
}

_SIMPLE: dict[str, FetchAtt] = {
    "FLAGS": Flags(),
    "UID": Uid(),
    "INTERNALDATE": InternalDate(),
    "RFC822.SIZE": Rfc822Size(),
    "ENVELOPE": Envelope(),
    "BODYSTRUCTURE": BodyStructure(),
    "MODSEQ": ModSeq(),
    "RFC822": Rfc822(),
    "RFC822.HEADER": Rfc822Header(),
    "RFC822.TEXT": Rfc822Text(),
}

_ATT_NAME = re.compile(rb"[A-Za-z0-9.]+")
_SECTION_WORD = re.compile(rb"[A-Za-z.]+")
_DOT_DIGIT = re.compile(rb"\.[0-9]")
_FIELD_NAME = re.compile(r"[!-9;-~]+")  # RFC 5322 §3.6.8 ftext: printable US-ASCII but ":"


def read_fetch_atts(r: Reader) -> tuple[FetchAtt, ...]:
    """`ALL` / `FAST` / `FULL` / fetch-att / `"(" fetch-att *(SP fetch-att) ")"`."""
    if r.peek() == 0x28:
        items = r.paren_list(lambda: _fetch_att(r))
    else:
        macro = r.peek_keyword()
        if macro in MACROS:
            r.atom()
            return MACROS[macro]
        items = [_fetch_att(r)]
    return tuple(dict.fromkeys(items))


def _fetch_att(r: Reader) -> FetchAtt:
    found = r.match(_ATT_NAME)
    if found is None:
        raise r.error("expected FETCH data item")
    name = found.group().decode("ascii").upper()
    bracket = r.peek() == 0x5B
    if name in ("BODY", "BODY.PEEK") and bracket:
        section = _section(r)
        return BodySection(section, _partial(r), peek=name == "BODY.PEEK")
    if name in ("BINARY", "BINARY.PEEK", "BINARY.SIZE") and bracket:
        part = _binary_part(r)
        if name == "BINARY.SIZE":
            return BinarySize(part)
        return Binary(part, _partial(r), peek=name == "BINARY.PEEK")
    if name == "BODY":
        return BodyStructure(extensible=False)
    item = _SIMPLE.get(name)
    if item is None:
        raise r.error(f"unknown FETCH data item {name}")
    return item


def _part_numbers(r: Reader) -> list[int]:
    """section-part `nz-number *("." nz-number)`, stopping before a "." + text specifier."""
    part = [r.nz_number("section part number")]
    while r.match(_DOT_DIGIT) is not None:
        r.pos -= 1  # keep the digit for nz_number
        part.append(r.nz_number("section part number"))
    return part


def _section(r: Reader) -> Section:
    r.expect(b"[", "[")
    if r.take(b"]"):
        return Section()
    part: list[int] = []
    if 0x30 <= r.peek() <= 0x39:
        part = _part_numbers(r)
        if r.take(b"]"):
            return Section(tuple(part))
        r.expect(b".", "section text after part number")
    found = r.match(_SECTION_WORD)
    text = found.group().decode("ascii").upper() if found else ""
    if text not in SECTION_TEXTS or (text == "MIME" and not part):
        raise r.error("invalid section specifier")
    fields: tuple[str, ...] = ()
    if text.startswith("HEADER.FIELDS"):
        r.sp()
        fields = tuple(r.paren_list(lambda: _field_name(r)))
    r.expect(b"]", "]")
    return Section(tuple(part), text, fields)


def _field_name(r: Reader) -> str:
    name = r.text(r.astring("header field name"), "header field name")
    if not _FIELD_NAME.fullmatch(name):
        raise r.error("invalid header field name")
    return name


def _binary_part(r: Reader) -> tuple[int, ...]:
    r.expect(b"[", "[")
    part: list[int] = []
    if 0x30 <= r.peek() <= 0x39:
        part = _part_numbers(r)
    r.expect(b"]", "]")
    return tuple(part)


def _partial(r: Reader) -> Partial | None:
    """RFC 9051 §9 partial `"<" number64 "." nz-number64 ">"`."""
    if not r.take(b"<"):
        return None
    origin = r.number64("partial origin")
    r.expect(b".", "partial length")
    octets = r.number64("partial length")
    if octets == 0:
        raise r.error("partial length must not be zero")
    r.expect(b">", ">")
    return Partial(origin, octets)
