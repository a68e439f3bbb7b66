"""Address headers (RFC 5322 §3.4, §4.4 obsolete syntax, RFC 6532 UTF-8) as the entries IMAP
ENVELOPE needs and as (display name, address) pairs.

Invariants:
- `parse_addresses` never raises and is linear in its input (a capped header value), keeping
  at most MAX_ADDRESSES mailboxes and groups.
- It is lenient: missing angle brackets, unclosed quotes, comments or brackets, stray commas,
  a phrase before a bare address ("John john@example.com"), text after ">", nested and
  unterminated groups all give a best-effort answer. Empty entries are dropped.
- A mailbox's local part is kept as a valid RFC 5322 local part (quoted when it has to be) and
  its domain as written; `mailboxes` lowercases the domain.
- Display names stay raw in entries (encoded words intact, quotes removed); `mailboxes`
  decodes them. Without a display name, the last comment stands in (`john@example.com (John)`).
"""

from __future__ import annotations

import bisect
import re
from typing import NamedTuple

from .encoded_words import decode_words
from .limits import MAX_ADDRESSES

MAILBOX, GROUP, GROUP_END = "mailbox", "group", "end"

_LEX = re.compile(
    r"""
     (?P<ws>[ \t\r\n]+)
    |(?P<qs>"(?P<quoted>(?:[^"\\]|\\.)*)"?)
    |(?P<dl>\[(?:[^\[\]\\]|\\.)*\]?)
    |(?P<cm>\()
    |(?P<sp>[<>@,;:.])
    |(?P<atom>[^ \t\r\n"()<>@,;:.\[\]\\]+)
    |(?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)
_UNESCAPE = re.compile(r"\\(.)", re.DOTALL)
_ATEXT = r"[^\x00-\x20\"(),.:;<>@\[\\\]\x7f]+"
_DOT_ATOM = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*")


class Entry(NamedTuple):
    kind: str  # MAILBOX, GROUP (its name in `name`) or GROUP_END
    name: str = ""  # display name or group name, raw (encoded words not decoded)
    route: str = ""  # obsolete source route ("@a,@b"), RFC 5322 §4.4
    local: str = ""
    domain: str = ""


class _Token(NamedTuple):
    kind: str  # "word" (atom, quoted string or domain literal) or the special character itself
    text: str  # a quoted string's content, unescaped
    space: bool  # whitespace comes before it


def _lex(text: str) -> tuple[list[_Token], list[tuple[int, str]]]:
    """The tokens, and the comments with the index of the token each precedes."""
    tokens: list[_Token] = []
    comments: list[tuple[int, str]] = []
    pos, n, space = 0, len(text), False
    while pos < n:
        m = _LEX.match(text, pos)
        if m is None:  # unreachable: "other" matches any character
            break
        kind, pos = m.lastgroup, m.end()
        if kind == "ws":
            space = True
            continue
        if kind == "cm":
            comment, pos = _comment(text, m.start())
            comments.append((len(tokens), comment))  # CFWS, but it does not split a local part
            continue
        if kind == "qs":
            tokens.append(_Token("word", _UNESCAPE.sub(r"\1", m.group("quoted")), space))
        elif kind == "sp":
            tokens.append(_Token(m.group(0), m.group(0), space))
        elif kind in ("atom", "dl"):
            tokens.append(_Token("word", m.group(0), space))
        space = False  # "other" (a stray backslash or bracket) is dropped
    return tokens, comments


def _comment(text: str, start: int) -> tuple[str, int]:
    """A comment (nested ones included) starting at text[start] == "(" and where it ends."""
    depth, pos, n = 0, start, len(text)
    while pos < n:
        ch = text[pos]
        if ch == "\\":
            pos += 2
            continue
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return text[start + 1 : pos], pos + 1
        pos += 1
    return text[start + 1 :], n


def _phrase(tokens: list[_Token]) -> str:
    out: list[str] = []
    for t in tokens:
        if out and t.space:
            out.append(" ")
        out.append(t.text)
    return "".join(out).strip()


def _words(tokens: list[_Token]) -> list[_Token]:
    return [t for t in tokens if t.kind == "word" or t.kind == "."]


def _local_part(text: str) -> str:
    if not text or _DOT_ATOM.fullmatch(text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _addr_spec(tokens: list[_Token]) -> tuple[str, str]:
    """(local part, domain) of addr-spec tokens; the last "@" splits them."""
    words = [t for t in tokens if t.kind not in (",", ";", ":", "<", ">")]
    at = max((i for i, t in enumerate(words) if t.kind == "@"), default=-1)
    if at < 0:
        return _local_part(_phrase(words)), ""
    domain: list[str] = []
    for i, t in enumerate(words[at + 1 :]):
        if t.kind == "@" or (i and t.space):
            break
        domain.append(t.text)
    return _local_part("".join(t.text for t in words[:at] if t.kind != "@")), "".join(domain)


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens, comments = _lex(text)
        self.comment_at = [i for i, _ in comments]  # ascending
        self.comments = [c for _, c in comments]
        self.entries: list[Entry] = []

    def run(self) -> list[Entry]:
        tokens, n = self.tokens, len(self.tokens)
        start, i, done, in_group = 0, 0, False, False
        while i < n and len(self.entries) < MAX_ADDRESSES:
            kind = tokens[i].kind
            if kind in (",", ";"):
                if not done:
                    self._mailbox(start, i)
                if kind == ";" and in_group:
                    self.entries.append(Entry(GROUP_END))
                    in_group = False
                start, done = i + 1, False
            elif kind == ":" and not in_group and not done:
                self.entries.append(Entry(GROUP, _phrase(tokens[start:i])))
                start, in_group = i + 1, True
            elif kind == "<" and not done:
                close = next((j for j in range(i + 1, n) if tokens[j].kind == ">"), n)
                self._angle(start, i, close)
                done, i = True, close  # anything up to the next separator is ignored
            i += 1
        if not done and len(self.entries) < MAX_ADDRESSES:
            self._mailbox(start, n)
        if in_group:
            self.entries.append(Entry(GROUP_END))
        return self.entries

    def _angle(self, start: int, angle: int, close: int) -> None:
        inner = self.tokens[angle + 1 : close]
        route = ""
        colon = next((j for j, t in enumerate(inner) if t.kind == ":"), -1)
        if inner and inner[0].kind == "@" and colon > 0:
            route, inner = "".join(t.text for t in inner[:colon]), inner[colon + 1 :]
        local, domain = _addr_spec(inner)
        name = _phrase(_words(self.tokens[start:angle]))
        self._add(name or self._comment_name(start, close), route, local, domain, angle=True)

    def _mailbox(self, start: int, end: int) -> None:
        """Bare addr-specs, each perhaps after a phrase; several when commas are missing."""
        spec = self.tokens[start:end]
        ats = [j for j, t in enumerate(spec) if t.kind == "@"]
        if not ats:
            self._add(self._comment_name(start, end), "", _local_part(_phrase(_words(spec))), "", angle=False)
            return
        prev = 0
        for at in ats:
            if len(self.entries) >= MAX_ADDRESSES:
                return
            if at < prev:  # an "@" inside the previous domain
                continue
            first = at - 1 if at > prev else at  # the local part runs back to whitespace
            while first > prev and not spec[first].space:
                first -= 1
            stop = at + 1  # the domain runs on to whitespace or the next "@"
            while stop < len(spec) and spec[stop].kind != "@" and not (stop > at + 1 and spec[stop].space):
                stop += 1
            if at == ats[-1]:
                stop = len(spec)
            local, domain = _addr_spec(spec[first:stop])
            name = _phrase(_words(spec[prev:first])) or self._comment_name(start + prev, start + stop)
            self._add(name, "", local, domain, angle=False)
            prev = stop

    def _comment_name(self, start: int, end: int) -> str:
        lo, hi = bisect.bisect_left(self.comment_at, start), bisect.bisect_right(self.comment_at, end)
        return next((c.strip() for c in reversed(self.comments[lo:hi]) if c.strip()), "")

    def _add(self, name: str, route: str, local: str, domain: str, angle: bool) -> None:
        if (local or domain or (angle and name)) and len(self.entries) < MAX_ADDRESSES:
            self.entries.append(Entry(MAILBOX, name, route, local, domain))


def parse_addresses(text: str) -> list[Entry]:
    if not text:  # an absent field: most of a message's address fields
        return []
    return _Parser(text).run()


def envelope_addresses(entries: list[Entry]) -> list[list[str | None]] | None:
    """RFC 9051 §7.5.2 address structures [name, adl, mailbox, host]; None (NIL) when empty.

    A mailbox's host is never NIL (that marks groups): a missing domain is "".
    """
    out: list[list[str | None]] = []
    for e in entries:
        if e.kind == MAILBOX:
            out.append([e.name or None, e.route or None, e.local, e.domain])
        elif e.kind == GROUP:
            out.append([None, None, e.name, None])
        else:
            out.append([None, None, None, None])
    return out or None


def mailboxes(entries: list[Entry]) -> list[tuple[str, str]]:
    """(decoded display name, address with its domain lowercased) of every mailbox, groups
    flattened."""
    return [
        (display_name(e.name), address(e)) for e in entries if e.kind == MAILBOX and (e.local or e.domain)
    ]


def display_name(name: str) -> str:
    return " ".join(decode_words(name).split())


def address(e: Entry) -> str:
    return f"{e.local}@{e.domain.lower()}" if e.domain else e.local
