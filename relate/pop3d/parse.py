"""POP3 command lines into (verb, arguments). Pure: no sockets, no store.

RFC 1939 §3 and RFC 2449 §3: a case-insensitive keyword of three or four characters,
arguments separated by a single space (we accept runs of spaces and tabs), CRLF at the end
(a bare LF is accepted). PASS takes the rest of the line as one argument, since a password
may contain spaces (RFC 1939 §7).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from relate.pop3d.errors import BadCommand

MAX_NUMBER_DIGITS = 10  # message numbers and TOP line counts fit easily; longer is garbage
REST_OF_LINE_VERBS = frozenset({"PASS"})
_VERB_AND_REST = re.compile(r"([^ \t]+)(?:[ \t](.*))?", re.DOTALL)
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # anything but TAB below SP, and DEL


@dataclass(frozen=True)
class Command:
    verb: str  # upper case
    args: tuple[str, ...] = field(default=())


def parse_command(line: bytes) -> Command:
    """Parse one line (with or without its terminator). Raises BadCommand."""
    text_bytes = line.rstrip(b"\r\n") if line.endswith(b"\n") else line
    try:
        text = text_bytes.decode("utf-8")
    except UnicodeDecodeError:
        raise BadCommand("command is not valid UTF-8") from None
    if _CONTROL.search(text):
        raise BadCommand("control character in command")
    match = _VERB_AND_REST.fullmatch(text.lstrip(" \t"))
    if match is None:
        raise BadCommand("empty command")
    verb, rest = match.group(1).upper(), match.group(2) or ""
    if not verb.isascii() or not verb.isalpha() or len(verb) > 4:
        raise BadCommand("unknown command")
    if verb in REST_OF_LINE_VERBS:
        return Command(verb, (rest,) if rest else ())
    return Command(verb, tuple(rest.split()))


def message_number(arg: str) -> int:
    """A message-number argument (RFC 1939 §5): a positive decimal number."""
    if not arg.isascii() or not arg.isdigit() or len(arg) > MAX_NUMBER_DIGITS:
        raise BadCommand(f"invalid message number {arg[:20]!r}")
    number = int(arg)
    if number < 1:
        raise BadCommand("message numbers start at 1")
    return number


def line_count(arg: str) -> int:
    """TOP's line count (RFC 1939 §7): a non-negative decimal number."""
    if not arg.isascii() or not arg.isdigit() or len(arg) > MAX_NUMBER_DIGITS:
        raise BadCommand(f"invalid line count {arg[:20]!r}")
    return int(arg)
