"""RFC 2047 encoded words ("=?charset?B|Q?text?=") in header text.

Invariants: `decode_words` never raises and is linear in its input. It is lenient the way mail
readers are: encoded words are decoded wherever they appear (also inside quoted strings and
next to other text), whitespace between two encoded words is dropped (RFC 2047 §6.2), and
adjacent words in one charset are joined before decoding, so a character split across two
words survives. Unknown charsets and broken base64 decode as well as they can.
"""

from __future__ import annotations

import re

from .charset import decode_text
from .transfer import b64decode, qpdecode

_WORD = re.compile(r"=\?([^?\s]{1,64})\?([bBqQ])\?([^?\s]*)\?=")


def decode_words(text: str) -> str:
    if "=?" not in text:
        return text
    out: list[str] = []
    charset: str | None = None
    pending = bytearray()
    pos = 0

    def flush() -> None:
        if charset is not None:
            out.append(decode_text(bytes(pending), charset))
        pending.clear()

    for m in _WORD.finditer(text):
        between = text[pos : m.start()]
        if between and (charset is None or not between.isspace()):
            flush()
            charset = None
            out.append(between)
        word_charset = m.group(1).split("*", 1)[0].lower()  # RFC 2231 §5 adds *language
        data = m.group(3).encode("utf-8")
        data = b64decode(data) if m.group(2) in "bB" else qpdecode(data, header=True)
        if charset != word_charset:
            flush()
            charset = word_charset
        pending += data
        pos = m.end()
    flush()
    out.append(text[pos:])
    return "".join(out)
