"""HTML to readable text, for previews and search; never for display.

Invariants: `html_to_text` never raises and runs in time linear in its input: a few regular
expression passes, each of which, once a construct starts, consumes it to its end (or to the
end of the input when it is never closed, as browsers do). Comments, scripts, styles and
titles are dropped, block-level tags become line breaks, table cells spaces, other tags
nothing, and character references are decoded.
"""

from __future__ import annotations

import html
import re

_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.DOTALL)
_RAW_TEXT = re.compile(r"<(script|style|title)\b[^>]*(?:>.*?(?:</\1\s*>|\Z)|\Z)", re.DOTALL | re.IGNORECASE)
_BLOCK = re.compile(
    # The lookahead rejects most other tags with one character test before the alternation.
    r"</?(?=[abdfhlopstu])(?:br|p|div|tr|li|ul|ol|table|h[1-6]|hr|blockquote|pre|section|article|header|footer)"
    r"\b[^>]*(?:>|\Z)",
    re.IGNORECASE,
)
_CELL = re.compile(r"</?(?:td|th)\b[^>]*(?:>|\Z)", re.IGNORECASE)
_TAG = re.compile(r"</?[a-zA-Z][^>]*(?:>|\Z)|<[!?][^>]*(?:>|\Z)")


def html_to_text(source: str) -> str:
    text = _COMMENT.sub("", source)
    text = _RAW_TEXT.sub("", text)
    text = _BLOCK.sub("\n", text)
    text = _CELL.sub(" ", text)
    text = _TAG.sub("", text)
    return html.unescape(text)
