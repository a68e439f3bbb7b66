"""MIME charset labels to Python codecs, and text decoding that always succeeds.

Invariants:
- `decode_text` never raises, whatever the bytes and the label.
- Every str it returns is clean (see `clean`): no NUL and no lone surrogate, so it can be
  encoded as UTF-8, stored in PostgreSQL text and JSON, and sent to any client.
- A missing, unknown, unusable or US-ASCII label means "guess": UTF-8 when the bytes are valid
  UTF-8, else Windows-1252 (what mail user agents do with undeclared 8-bit text).
"""

from __future__ import annotations

import codecs
import functools
import re

# Labels seen in real mail that Python does not know, or for which a superset decodes more of
# what senders actually wrote (the same choices as the WHATWG Encoding Standard).
_ALIASES: dict[str, str] = {
    "iso-8859-1": "cp1252",
    "iso8859-1": "cp1252",
    "iso_8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "l1": "cp1252",
    "windows-1252": "cp1252",
    "x-ansi": "cp1252",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "euc-cn": "gb18030",
    "cp936": "gb18030",
    "ks_c_5601-1987": "cp949",
    "ks_c_5601": "cp949",
    "euc-kr": "cp949",
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "sjis": "cp932",
    "x-sjis": "cp932",
    "windows-31j": "cp932",
    "big5": "cp950",
    "iso-8859-6-i": "iso8859-6",
    "iso-8859-6-e": "iso8859-6",
    "iso-8859-8-i": "iso8859-8",
    "iso-8859-8-e": "iso8859-8",
    "tis-620": "cp874",
    "iso-8859-11": "cp874",
    "windows-874": "cp874",
    "x-mac-roman": "mac-roman",
    "utf8mb4": "utf-8",
}

# Python codecs that are not mail charsets: transformations, escapes, or platform-only.
_REFUSED = frozenset(
    {"punycode", "idna", "unicode-escape", "raw-unicode-escape", "undefined", "mbcs", "oem", "charmap"}
)

_SURROGATE = re.compile("[\ud800-\udfff]")
_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:+-]{0,39}")


@functools.lru_cache(maxsize=512)
def codec_for(label: str | None) -> str | None:
    """The Python codec for a MIME charset label; None when there is none to trust.

    "ascii" is returned for US-ASCII, which `decode_text` treats as "guess".
    """
    if not label:
        return None
    name = label.strip().strip("\"'").split("*", 1)[0].lower()  # RFC 2231 §5: charset*lang
    if not _LABEL.fullmatch(name):
        return None
    name = _ALIASES.get(name, name)
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError):
        return None
    if not getattr(info, "_is_text_encoding", True) or info.name in _REFUSED:
        return None
    return info.name


def decode_text(data: bytes, label: str | None) -> str:
    """Decode `data` in the charset `label` names, falling back to a guess; never raises."""
    codec = codec_for(label)
    if codec is None or codec == "ascii":
        return clean(guess(data))
    try:
        return clean(data.decode(codec, "replace"))
    except Exception:  # a codec bug must not lose the message
        return clean(guess(data))


def guess(data: bytes) -> str:
    """UTF-8 when valid, otherwise Windows-1252 (undefined bytes become U+FFFD)."""
    if data.isascii():
        return data.decode("ascii")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", "replace")


def clean(text: str) -> str:
    """Drop NUL and replace lone surrogates (UTF-7 and friends can produce them) with U+FFFD."""
    if "\x00" in text:
        text = text.replace("\x00", "")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = _SURROGATE.sub("\ufffd", text)
    return text
