"""Showing a message in a browser: its text and HTML bodies, the HTML made safe (DESIGN.md §5).

Invariants:
- HTML mail is never returned unsanitized: it goes through nh3 (the ammonia sanitizer) with an
  allow-list of tags, attributes and CSS properties; scripts, styles sheets, event handlers,
  forms, frames and `javascript:` URLs are gone, links get rel="noopener noreferrer".
- Remote images are blocked unless the caller asks for them: an <img> whose source is an
  http(s) URL loses its source, and the count of blocked images is returned so the client
  can offer to show them. Nothing else in the sanitized HTML loads anything by itself (no
  style sheets, no CSS url(), no srcset or background attributes).
- `cid:` references to the message's own parts become URLs of the attachment route, so
  inline images show without any remote request.
- Bodies are decoded from at most MAX_BODY_BYTES of each part.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import nh3

from relate.message import Part, part_text
from relate.message.text import is_body_text

MAX_BODY_BYTES = 4 * 1024 * 1024

_ATTRIBUTES: dict[str, set[str]] = {
    **{tag: set(attrs) for tag, attrs in nh3.ALLOWED_ATTRIBUTES.items()},
    "*": {"style", "title", "lang", "dir"},
    "font": {"color", "face", "size"},
    "td": {*nh3.ALLOWED_ATTRIBUTES.get("td", set()), "valign", "width", "height", "bgcolor"},
    "th": {*nh3.ALLOWED_ATTRIBUTES.get("th", set()), "valign", "width", "height", "bgcolor"},
    "table": {*nh3.ALLOWED_ATTRIBUTES.get("table", set()), "width", "border", "cellpadding", "cellspacing", "bgcolor"},
}
_TAGS = set(nh3.ALLOWED_TAGS) | {"font"}
# CSS properties that only style (none can take a url() that loads something).
_STYLE_PROPERTIES = {
    "color", "background-color", "font", "font-family", "font-size", "font-style", "font-weight",
    "text-align", "text-decoration", "text-indent", "text-transform", "line-height", "letter-spacing",
    "white-space", "vertical-align", "margin", "margin-top", "margin-right", "margin-bottom", "margin-left",
    "padding", "padding-top", "padding-right", "padding-bottom", "padding-left", "border", "border-top",
    "border-right", "border-bottom", "border-left", "border-color", "border-style", "border-width",
    "border-collapse", "border-radius", "width", "height", "max-width", "min-width", "display",
}
_URL_SCHEMES = {"http", "https", "mailto", "cid", "tel"}
_REMOTE = re.compile(r"^\s*(https?:)?//", re.IGNORECASE)


@dataclass(frozen=True)
class Bodies:
    text: str | None
    html: str | None  # as sent: sanitize before showing


def bodies(raw: bytes, top: Part) -> Bodies:
    """The first plain-text and the first HTML body of the message itself (not of attached
    messages)."""
    found: dict[str, str] = {}

    def visit(part: Part) -> None:
        if part.parts:
            for child in part.parts:
                visit(child)
            return
        if part.subtype in found or not is_body_text(part):
            return
        end = min(part.body_end, part.body_start + MAX_BODY_BYTES)
        found[part.subtype] = part_text(raw, _clipped(part, end))

    visit(top)
    return Bodies(found.get("plain"), found.get("html"))


def _clipped(part: Part, end: int) -> Part:
    if end == part.body_end:
        return part
    return Part(type=part.type, subtype=part.subtype, params=part.params, encoding=part.encoding,
                body_start=part.body_start, body_end=end, header_start=part.header_start,
                header_end=part.header_end)


def sanitize_html(html: str, *, allow_remote: bool, cid_url: Callable[[str], str | None]) -> tuple[str, int]:
    """(safe HTML, how many remote images were blocked)."""
    blocked = 0

    def keep(tag: str, attribute: str, value: str) -> str | None:
        nonlocal blocked
        if tag == "img" and attribute == "src":
            if value.lower().startswith("cid:"):
                return cid_url(value[4:].strip().strip("<>"))
            if _REMOTE.match(value) and not allow_remote:
                blocked += 1
                return None
        return value

    clean = nh3.clean(
        html,
        tags=_TAGS,
        attributes=_ATTRIBUTES,
        attribute_filter=keep,
        url_schemes=_URL_SCHEMES,
        filter_style_properties=_STYLE_PROPERTIES,
        link_rel="noopener noreferrer",
        set_tag_attribute_values={"a": {"target": "_blank"}},
        strip_comments=True,
    )
    return clean, blocked
