"""One MIME entity of a stored message: what IMAP BODYSTRUCTURE reports, plus where its header
and body lie in the raw bytes, so BODY[1.2.MIME], BODY[2.TEXT] and friends are slices of raw.

Invariants (for every Part a parse produces, `raw` being the parsed bytes):
- header_start <= header_end == body_start <= body_end <= len(raw).
- raw[header_start:header_end] is the header section including the empty line that ends it
  (when there is one); raw[body_start:body_end] is the body.
- Children lie inside their parent's body, in order, without overlapping.
- type, subtype, parameter names, encoding and disposition type are lowercase ASCII tokens.
- type == "multipart" exactly when parts is non-empty: a multipart always has a child (an
  opaque text/plain one spanning its body when no delimiter was found or nesting is too deep).
- message (and envelope) are set only for message/rfc822 and message/global whose transfer
  encoding is an identity one (7bit, 8bit, binary) and that are nested within MAX_DEPTH;
  otherwise such a part is a leaf and IMAP reports it as a basic body.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Params = list[tuple[str, str]]

# The RFC 2045 §5.2 default for an entity without (or with an unusable) Content-Type.
DEFAULT_PARAMS: Params = [("charset", "us-ascii")]


@dataclass(slots=True)
class Part:
    # Content-Type (RFC 2045 §5); text/plain; charset=us-ascii when absent or invalid, and
    # message/rfc822 inside multipart/digest (RFC 2046 §5.1.5).
    type: str = "text"
    subtype: str = "plain"
    # Parameters in header order; names lowercase. RFC 2231 continuations are joined: an
    # extended parameter keeps its "name*" key and its charset'language'%XX value, so it stays
    # ASCII for IMAP (use `params.param` for the decoded value).
    params: Params = field(default_factory=lambda: list(DEFAULT_PARAMS))
    id: str | None = None  # Content-ID as written, with its angle brackets
    description: str | None = None  # Content-Description as written (unfolded)
    encoding: str = "7bit"  # Content-Transfer-Encoding, lowercase; "7bit" when absent
    disposition: tuple[str, Params] | None = None  # Content-Disposition (RFC 2183), type lowercase
    language: list[str] | None = None  # Content-Language (RFC 3282)
    location: str | None = None  # Content-Location (RFC 2557)
    md5: str | None = None  # Content-MD5 (RFC 1864)
    header_start: int = 0
    header_end: int = 0
    body_start: int = 0
    # Inside a multipart, the line break before the next delimiter is not part of the body
    # (RFC 2046 §5.1.1).
    body_end: int = 0
    lines: int = 0  # lines of the body (LF count, plus one for an unterminated last line); 0 for multipart
    parts: list[Part] = field(default_factory=list)  # children of a multipart
    message: Part | None = None  # the embedded message of a message/rfc822 or message/global
    envelope: list[Any] | None = None  # that embedded message's ENVELOPE (see envelope.py)

    @property
    def size(self) -> int:
        return self.body_end - self.body_start

    @property
    def media_type(self) -> str:
        return f"{self.type}/{self.subtype}"

    def part(self, path: list[int]) -> Part | None:
        """The part an IMAP section number names (RFC 9051 §6.4.5), [1, 2] being "1.2".

        Call it on a message's top Part. Part 1 of a message that is not multipart is its body;
        numbering continues into an embedded message's body, so when part 2 is message/rfc822,
        2.1 is the first part of the embedded message (or its whole body if not multipart).
        An empty path or one that names nothing gives None.
        """
        if not path:
            return None
        node, at_top = self, True
        for n in path:
            if not at_top and node.message is not None:
                node, at_top = node.message, True
            if node.parts:
                if not 1 <= n <= len(node.parts):
                    return None
                node = node.parts[n - 1]
            elif not (at_top and n == 1):
                return None
            at_top = False
        return node

    def to_json(self) -> dict[str, Any]:
        """Compact JSON: short keys, defaults left out."""
        data: dict[str, Any] = {
            "t": self.type,
            "s": self.subtype,
            "o": [self.header_start, self.header_end, self.body_start, self.body_end],
        }
        if self.params:
            data["p"] = [[k, v] for k, v in self.params]
        if self.id is not None:
            data["id"] = self.id
        if self.description is not None:
            data["d"] = self.description
        if self.encoding != "7bit":
            data["e"] = self.encoding
        if self.disposition is not None:
            data["cd"] = [self.disposition[0], [[k, v] for k, v in self.disposition[1]]]
        if self.language is not None:
            data["lang"] = self.language
        if self.location is not None:
            data["loc"] = self.location
        if self.md5 is not None:
            data["md5"] = self.md5
        if self.lines:
            data["n"] = self.lines
        if self.parts:
            data["c"] = [p.to_json() for p in self.parts]
        if self.message is not None:
            data["m"] = self.message.to_json()
        if self.envelope is not None:
            data["env"] = self.envelope
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Part:
        hs, he, bs, be = data.get("o", [0, 0, 0, 0])
        disposition = data.get("cd")
        message = data.get("m")
        return cls(
            type=data.get("t", "text"),
            subtype=data.get("s", "plain"),
            params=[(k, v) for k, v in data.get("p", [])],
            id=data.get("id"),
            description=data.get("d"),
            encoding=data.get("e", "7bit"),
            disposition=None
            if disposition is None
            else (disposition[0], [(k, v) for k, v in disposition[1]]),
            language=data.get("lang"),
            location=data.get("loc"),
            md5=data.get("md5"),
            header_start=hs,
            header_end=he,
            body_start=bs,
            body_end=be,
            lines=data.get("n", 0),
            parts=[cls.from_json(p) for p in data.get("c", [])],
            message=None if message is None else cls.from_json(message),
            envelope=data.get("env"),
        )
