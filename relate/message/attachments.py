"""The attachment list of a message, for the API and the web UI.

Invariants:
- Every leaf of the message's own MIME tree that is not body text (see text.is_body_text) is
  listed, in tree order, message/rfc822 parts included (they are not descended into).
- "part" is the IMAP section number ("1" for a message that is not multipart).
- "filename" is the decoded file name reduced to its last path component, without control
  characters, at most MAX_FILENAME characters; "" when the message names none.
- "inline" is true for a resource of an HTML body: a part with a Content-ID inside a
  multipart/related, unless its disposition says attachment. `has_attachments` counts only
  the others.
- "size" estimates the decoded size (see transfer.decoded_size).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from .limits import MAX_FILENAME
from .part import Part
from .text import filename, is_body_text
from .transfer import decoded_size

_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def attachments(raw: bytes, top: Part) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for number, part, parent in _leaves(top):
        if is_body_text(part):
            continue
        disposition = part.disposition[0] if part.disposition else None
        content_id = part.id.strip().strip("<>").strip() if part.id else None
        out.append(
            {
                "part": number,
                "filename": safe_filename(filename(part) or ""),
                "contentType": part.media_type,
                "size": decoded_size(raw, part),
                "contentId": content_id or None,
                "inline": bool(
                    content_id
                    and parent is not None
                    and parent.subtype == "related"
                    and disposition != "attachment"
                ),
            }
        )
    return out


def safe_filename(name: str) -> str:
    name = _CONTROL.sub("", name)
    name = re.split(r"[/\\]", name)[-1].strip()
    return "" if name in (".", "..") else name[:MAX_FILENAME]


def _leaves(top: Part) -> Iterator[tuple[str, Part, Part | None]]:
    """(section number, part, parent multipart) of every leaf in tree order, not entering
    embedded messages."""
    if not top.parts:
        yield "1", top, None
        return
    yield from _children(top, "")


def _children(node: Part, prefix: str) -> Iterator[tuple[str, Part, Part | None]]:
    for i, child in enumerate(node.parts, 1):
        if child.parts:
            yield from _children(child, f"{prefix}{i}.")
        else:
            yield f"{prefix}{i}", child, node
