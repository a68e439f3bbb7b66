"""ENVELOPE, BODY and BODYSTRUCTURE of a stored message, rendered from its parsed metadata
(RFC 9051 §7.5.2, RFC 3501 §7.4.2) without reading the raw message.

Invariants:
- Pure: a ParsedMessage's envelope list and Part tree in, response bytes out.
- Every string goes out quoted when it can and as a literal otherwise: CR, LF, more than
  MAX_QUOTED octets, or 8-bit text when the client has not enabled UTF-8 (RFC 6855 §3,
  IMAP4rev2). Absent values are NIL.
- Media types, subtypes, parameter names, disposition types and the five standard transfer
  encodings are uppercase, as in RFC 9051's examples; values are as the message wrote them.
  A text part without any parameter gets the RFC 2046 default ("CHARSET" "us-ascii").
- A message/rfc822 or message/global part is rendered as body-type-msg (with its envelope,
  body and line count) only when the parser opened it (Part.message set). One it left closed
  (a transfer encoding other than an identity one, or nested too deep) is a basic body.
- BODY (extensible=False) is BODYSTRUCTURE without any extension data, all the way down.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from relate.imapd.grammar import quote_string
from relate.message import Part

NIL = b"NIL"

# Quoted strings longer than this go out as literals, keeping response lines short for
# clients with line buffers (RFC 2683 §3.2.1.5 recommends lines of at most 8000 octets).
MAX_QUOTED = 1000

# A text part that names no parameters is us-ascii (RFC 2046 §4.1.2); say so, as for a part
# without Content-Type at all.
DEFAULT_TEXT_PARAMS = [("charset", "us-ascii")]

STANDARD_ENCODINGS = frozenset({"7bit", "8bit", "binary", "base64", "quoted-printable"})


def nstring(value: str | None, *, utf8: bool) -> bytes:
    """NIL, a quoted string, or a literal when quoting cannot carry the value."""
    if value is None:
        return NIL
    data = value.encode("utf-8")
    if len(data) > MAX_QUOTED:
        return b"{%d}\r\n" % len(data) + data
    return quote_string(data, utf8=utf8)


def _list(items: Sequence[bytes]) -> bytes:
    return b"(" + b" ".join(items) + b")"


# -- ENVELOPE -------------------------------------------------------------------------------


def _address(addr: Sequence[Any], utf8: bool) -> bytes:
    name, adl, mailbox, host = (list(addr) + [None] * 4)[:4]
    return _list([nstring(v, utf8=utf8) for v in (name, adl, mailbox, host)])


def _addresses(addrs: Sequence[Sequence[Any]] | None, utf8: bool) -> bytes:
    if not addrs:
        return NIL
    return b"(" + b"".join(_address(a, utf8) for a in addrs) + b")"


def envelope(env: Sequence[Any] | None, *, utf8: bool = False) -> bytes:
    """RFC 9051 §7.5.2 envelope: (date subject from sender reply-to to cc bcc in-reply-to
    message-id), from the stored list (see relate.message.envelope)."""
    fields = list(env or [])
    fields += [None] * (10 - len(fields))
    date, subject, from_, sender, reply_to, to, cc, bcc, in_reply_to, message_id = fields[:10]
    return _list(
        [
            nstring(date, utf8=utf8),
            nstring(subject, utf8=utf8),
            _addresses(from_, utf8),
            _addresses(sender, utf8),
            _addresses(reply_to, utf8),
            _addresses(to, utf8),
            _addresses(cc, utf8),
            _addresses(bcc, utf8),
            nstring(in_reply_to, utf8=utf8),
            nstring(message_id, utf8=utf8),
        ]
    )


# -- BODYSTRUCTURE --------------------------------------------------------------------------


def _params(params: Sequence[tuple[str, str]], utf8: bool) -> bytes:
    """body-fld-param: ("NAME" "value" ...) or NIL."""
    if not params:
        return NIL
    items: list[bytes] = []
    for name, value in params:
        items.append(nstring(name.upper(), utf8=utf8))
        items.append(nstring(value, utf8=utf8))
    return _list(items)


def _disposition(part: Part, utf8: bool) -> bytes:
    """body-fld-dsp: ("ATTACHMENT" ("FILENAME" "x")) or NIL."""
    if part.disposition is None:
        return NIL
    kind, params = part.disposition
    return _list([nstring(kind.upper(), utf8=utf8), _params(params, utf8)])


def _language(part: Part, utf8: bool) -> bytes:
    """body-fld-lang: a list of language tags, or NIL."""
    if not part.language:
        return NIL
    return _list([nstring(tag, utf8=utf8) for tag in part.language])


def _encoding(part: Part, utf8: bool) -> bytes:
    if part.encoding in STANDARD_ENCODINGS:
        return b'"' + part.encoding.upper().encode("ascii") + b'"'
    return nstring(part.encoding, utf8=utf8)


def _fields(part: Part, utf8: bool) -> list[bytes]:
    """body-fields: params, id, description, encoding, octets."""
    params = part.params
    if not params and part.type == "text":
        params = DEFAULT_TEXT_PARAMS
    return [
        _params(params, utf8),
        nstring(part.id, utf8=utf8),
        nstring(part.description, utf8=utf8),
        _encoding(part, utf8),
        b"%d" % part.size,
    ]


def body_structure(part: Part, *, extensible: bool = True, utf8: bool = False) -> bytes:
    """The `body` of RFC 9051 §9 for `part` (a message's top Part for FETCH)."""
    if part.parts:
        children = b"".join(body_structure(p, extensible=extensible, utf8=utf8) for p in part.parts)
        items = [children, nstring(part.subtype.upper(), utf8=utf8)]
        if extensible:  # body-ext-mpart
            items += [
                _params(part.params, utf8),
                _disposition(part, utf8),
                _language(part, utf8),
                nstring(part.location, utf8=utf8),
            ]
        return _list(items)
    items = [nstring(part.type.upper(), utf8=utf8), nstring(part.subtype.upper(), utf8=utf8), *_fields(part, utf8)]
    if part.message is not None:  # body-type-msg
        items += [
            envelope(part.envelope, utf8=utf8),
            body_structure(part.message, extensible=extensible, utf8=utf8),
            b"%d" % part.lines,
        ]
    elif part.type == "text":  # body-type-text
        items.append(b"%d" % part.lines)
    if extensible:  # body-ext-1part
        items += [
            nstring(part.md5, utf8=utf8),
            _disposition(part, utf8),
            _language(part, utf8),
            nstring(part.location, utf8=utf8),
        ]
    return _list(items)
