"""Content-Type and Content-Disposition values: media type, disposition type and parameters
(RFC 2045 §5.1, RFC 2183, RFC 2231).

Invariants:
- Nothing here raises; the work is linear in the (already capped) header value.
- Comments (RFC 822 parentheses) outside quoted strings are ignored.
- Parameter names are lowercase; values are as written, quoted strings unquoted ("\\"" and
  "\\\\" unescaped; other backslashes kept, as Windows paths in file names need).
- RFC 2231 continuations (name*0, name*1*, ...) are joined into one parameter. If any section
  is extended the result is "name*" with a charset'language'%XX value (plain sections are
  percent-encoded to match), as IMAP BODYSTRUCTURE passes it on; `param` decodes it.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote_to_bytes

from .charset import decode_text
from .encoded_words import decode_words
from .part import Params

_TOKEN = r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+"
_MEDIA = re.compile(rf"\s*({_TOKEN})\s*/\s*({_TOKEN})\s*")
# One parameter: name, "=", a quoted string or a token, then anything up to the next ";".
_PARAM = re.compile(
    r'''[\s;]* (?P<name>[^\s=;"]*) \s*
       (?: = \s* (?: "(?P<quoted>(?:[^"\\]|\\.)*)"? | (?P<token>[^;]*) ) )?
       [^;]*''',
    re.VERBOSE | re.DOTALL,
)
_ESCAPE = re.compile(r'\\([\\"])')
_SECTION = re.compile(r"([^*]+)\*(?:(\d{1,3})(\*)?)?")
_MAX_SECTIONS = 256


def parse_content_type(value: str) -> tuple[tuple[str, str] | None, Params]:
    """(type, subtype) lowercase, or None when the value has no valid media type; and params."""
    value = strip_comments(value)
    media, _, rest = value.partition(";")
    m = _MEDIA.fullmatch(media)
    return ((m.group(1).lower(), m.group(2).lower()) if m else None), parse_params(rest)


def parse_disposition(value: str) -> tuple[str, Params] | None:
    value = strip_comments(value)
    kind, _, rest = value.partition(";")
    kind = kind.strip().lower()
    params = parse_params(rest)
    if not kind:
        return ("attachment", params) if params else None
    return kind, params


def strip_comments(value: str) -> str:
    if "(" not in value:
        return value
    out: list[str] = []
    depth = 0
    quoted = escaped = False
    for ch in value:
        if escaped:
            escaped = False
            if depth == 0:
                out.append(ch)
        elif ch == "\\":
            escaped = True
            if depth == 0:
                out.append(ch)
        elif quoted:
            quoted = ch != '"'
            out.append(ch)
        elif ch == "(":
            depth += 1
        elif ch == ")" and depth:
            depth -= 1
            if depth == 0:
                out.append(" ")
        elif depth == 0:
            quoted = ch == '"'
            out.append(ch)
    return "".join(out)


def parse_params(text: str) -> Params:
    raw: list[tuple[str, str]] = []
    pos, n = 0, len(text)
    while pos < n:
        m = _PARAM.match(text, pos)
        if m is None:  # unreachable: the pattern matches the empty string
            break
        pos = max(m.end(), pos + 1)
        name, quoted, token = m.group("name").lower(), m.group("quoted"), m.group("token")
        if name and quoted is not None:
            raw.append((name, _ESCAPE.sub(r"\1", quoted)))
        elif name and token is not None:
            raw.append((name, token.strip()))
    return _join_continuations(raw)


def _join_continuations(raw: list[tuple[str, str]]) -> Params:
    if not any("*" in name for name, _ in raw):
        return raw
    out: list[tuple[str, str] | str] = []  # a str marks where a continued parameter goes
    sections: dict[str, list[tuple[int, bool, str]]] = {}
    for name, value in raw:
        m = _SECTION.fullmatch(name)
        if m is None:
            out.append((name, value))
            continue
        base = m.group(1)
        if base not in sections:
            sections[base] = []
            out.append(base)
        if len(sections[base]) < _MAX_SECTIONS:
            index = -1 if m.group(2) is None else int(m.group(2))
            extended = m.group(2) is None or m.group(3) is not None
            sections[base].append((index, extended, value))
    params: Params = []
    for item in out:
        if isinstance(item, tuple):
            params.append(item)
            continue
        pieces = sorted(sections[item], key=lambda s: s[0])
        if any(extended for _, extended, _ in pieces):
            joined = "".join(
                v if extended else (("''" if i == 0 else "") + quote(v, safe=""))
                for i, (_, extended, v) in enumerate(pieces)
            )
            params.append((item + "*", joined))
        else:
            params.append((item, "".join(v for _, _, v in pieces)))
    return params


def param(params: Params, name: str) -> str | None:
    """The decoded value of parameter `name`: RFC 2231 when extended, else with any RFC 2047
    encoded words decoded (common, though not allowed, in file names)."""
    extended = plain = None
    for key, value in params:
        if key == name + "*" and extended is None:
            extended = value
        elif key == name and plain is None:
            plain = value
    if extended is not None:
        return decode_extended(extended)
    if plain is not None:
        return decode_words(plain)
    return None


def decode_extended(value: str) -> str:
    """RFC 2231 §4: charset'language'percent-encoded octets."""
    pieces = value.split("'", 2)
    charset, data = (pieces[0], pieces[2]) if len(pieces) == 3 else (None, value)
    return decode_text(unquote_to_bytes(data), charset or None)
