"""Envelope addresses: strict RFC 5321 Mailbox syntax and the local-or-remote decision.

This module is where relaying is refused, so it errs on the side of "no".

Invariants:
- `parse_forward_path` / `parse_reverse_path` accept only RFC 5321 §4.1.2 Mailbox syntax
  (Dot-string or Quoted-string local part; Domain or address-literal), with RFC 6531 UTF-8
  only when the transaction has SMTPUTF8. Anything else raises `AddressError`, whose
  `reason` says why (for the log) and whose reply is what the client gets.
- Source routes (`<@a.example:user@b.example>`) are refused, never stripped or followed.
  RFC 5321 Appendix C asks servers to keep accepting the syntax and lets them ignore the
  route; nobody has needed a route for decades and in a live envelope one is a relay probe,
  so refusing is the safer of the two readings.
- `classify_recipient` answers "local" only when the domain is exactly a hosted domain and
  the local part cannot be read as a route by anyone: no %, ! or @ (quoted or not), and no
  address literal. Those are refused outright, local or remote, so neither this server nor
  a next hop can be talked into relaying. Sub-domains of a hosted domain are not hosted.
- Every relay trick in a recipient (percent hack and bang path, with or without a domain;
  @ in the local part, quoted or as a second @; source route; address literal or a bare IP
  address as domain; trailing dot) is refused with a 554 5.7.1 "Relay access denied" reply
  naming the trick, like any other destination not hosted here. A recipient that is only
  malformed (empty, no domain, spaces, bad labels, too long) gets 553 5.1.3: it names no
  destination at all, and the client should learn that its syntax is wrong. A sender is
  never routed to, so the same tricks in MAIL FROM are mere syntax errors (553 5.1.7; a
  source route 553 5.7.1).
- Domains are case-insensitive and kept lowercased. Local parts keep their case in
  `Mailbox.local` (a remote host may care, RFC 5321 §2.4), but Relate Mail's own lookups are
  case-insensitive: `normalise()` gives the lowercased "local@domain" the store looks up.
- Non-ASCII text must be NFC and free of control, format and space characters; fullwidth
  or other look-alike dots are not dots. A Unicode domain is never mapped onto an ASCII one
  (no IDNA 2003 / UTS 46 folding), so a look-alike can only ever be "remote".
"""

from __future__ import annotations

import enum
import ipaddress
import re
import unicodedata
from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal

from relate.smtpd import replies
from relate.smtpd.replies import Reply, SmtpError

MAX_LOCAL_PART = 64  # RFC 5321 §4.5.3.1.1, octets
MAX_DOMAIN = 255  # RFC 5321 §4.5.3.1.2, octets (checked on both the U-label and A-label form)
MAX_PATH = 256  # RFC 5321 §4.5.3.1.3, octets including the angle brackets
MAX_LABEL = 63  # RFC 1035 §2.3.4, octets of the A-label form

Destination = Literal["local", "remote"]

# RFC 5322 §3.2.3 atext, which RFC 5321 §4.1.2 Atom uses.
_ATEXT = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-/=?^_`{|}~")
_LDH_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\Z")
_IPV4 = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}\Z")
_LITERAL_TAG = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\Z")  # RFC 5321 Standardized-tag
_ROUTING = frozenset("%!@")


class Refusal(enum.Enum):
    """Why an envelope address was refused; the value is what the session logs."""

    SYNTAX = "syntax"
    EMPTY_LOCAL_PART = "empty-local-part"
    LOCAL_PART_TOO_LONG = "local-part-too-long"
    MISSING_DOMAIN = "missing-domain"
    MULTIPLE_AT = "multiple-at"
    WHITESPACE = "whitespace"
    CONTROL_CHARACTER = "control-character"
    NON_ASCII = "non-ascii-without-smtputf8"
    BAD_DOMAIN = "bad-domain"
    TRAILING_DOT = "trailing-dot"
    DOMAIN_TOO_LONG = "domain-too-long"
    PATH_TOO_LONG = "path-too-long"
    SOURCE_ROUTE = "source-route"
    ADDRESS_LITERAL = "address-literal"
    ROUTING_CHARACTER = "routing-character"


class AddressError(SmtpError):
    """An envelope address the server will not take; `reason` is for the log."""

    def __init__(self, reason: Refusal, reply: Reply) -> None:
        super().__init__(reply)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Mailbox:
    """A parsed RFC 5321 Mailbox. Build one only through the parse functions below.

    `local` is the decoded local part (quotes and backslash escapes removed, case kept);
    `domain` is lowercased, either a domain name (U-labels kept as sent) or an address
    literal in brackets, e.g. "[192.0.2.1]".
    """

    local: str
    domain: str

    @property
    def is_literal(self) -> bool:
        return self.domain.startswith("[")

    @property
    def ascii_domain(self) -> str:
        """The domain with every U-label as its A-label (RFC 5890), for DNS and non-SMTPUTF8 hops."""
        if self.is_literal or self.domain.isascii():
            return self.domain
        return ".".join(_to_a_label(label) for label in self.domain.split("."))

    @property
    def unicode_domain(self) -> str:
        """The domain with every valid A-label as its U-label."""
        if self.is_literal:
            return self.domain
        return ".".join(_to_u_label(label) for label in self.domain.split("."))

    def __str__(self) -> str:
        """RFC 5321 text without brackets; the local part is quoted only when it must be."""
        return f"{_quote_local(self.local)}@{self.domain}"


def parse_forward_path(path: str, *, smtputf8: bool = False) -> Mailbox:
    """Parse a RCPT TO path, with or without its angle brackets, into a Mailbox.

    `smtputf8` is whether the transaction's MAIL command carried SMTPUTF8 (RFC 6531).
    The bare `<Postmaster>` of RFC 5321 §4.1.1.3 is handled by `command.parse_rcpt_to`.
    Raises AddressError (553 5.1.3 for syntax, 553 5.6.7 for UTF-8 without SMTPUTF8,
    554 5.7.1 for the relay tricks this parser sees: see `_reply_for`).
    """
    return _parse_path(path, smtputf8=smtputf8, sender=False)


def parse_reverse_path(path: str, *, smtputf8: bool = False) -> Mailbox | None:
    """Parse a MAIL FROM path; the null reverse-path `<>` gives None (RFC 5321 §4.5.5).

    Raises AddressError (553 5.1.7 for syntax, 553 5.6.7 for UTF-8 without SMTPUTF8,
    553 5.7.1 for a source route). Relay tricks in a sender are not refused here: a sender
    address is only ever compared with the store, never routed to.
    """
    if path in ("", "<>"):
        return None
    return _parse_path(path, smtputf8=smtputf8, sender=True)


def classify_recipient(mailbox: Mailbox, hosted_domains: Collection[str]) -> Destination:
    """'local' if the mailbox is in a hosted domain, else 'remote'; raises for relay tricks.

    `hosted_domains` holds lowercased names without a trailing dot, in U-label or A-label
    form (both forms of the mailbox's domain are tried). A mailbox with an address literal
    or with %, ! or @ in its local part raises AddressError whatever its domain: such a
    recipient is refused, never delivered and never relayed.
    """
    if mailbox.is_literal:
        raise AddressError(Refusal.ADDRESS_LITERAL, replies.RELAY_ADDRESS_LITERAL)
    if _ROUTING.intersection(mailbox.local):
        raise AddressError(Refusal.ROUTING_CHARACTER, replies.RELAY_ROUTING_CHARACTERS)
    domain = mailbox.domain
    if domain in hosted_domains:
        return "local"
    if not domain.isascii() and mailbox.ascii_domain in hosted_domains:
        return "local"
    if "xn--" in domain and mailbox.unicode_domain in hosted_domains:
        return "local"
    return "remote"


def normalise(mailbox: Mailbox) -> str:
    """The lowercased "local@domain" the store looks addresses up by.

    The domain is in U-label form, so "xn--bcher-kva.example" and "bücher.example" give the
    same key; the local part is quoted only if it is not a Dot-string.
    """
    return f"{_quote_local(mailbox.local.lower())}@{mailbox.unicode_domain}"


def is_address_literal(text: str) -> bool:
    """Whether `text` is an RFC 5321 §4.1.3 address literal, brackets included."""
    if len(text) < 3 or text[0] != "[" or text[-1] != "]":
        return False
    inner = text[1:-1]
    if _IPV4.match(inner):
        return all(int(part) <= 255 for part in inner.split("."))
    tag, colon, content = inner.partition(":")
    if not colon or not _LITERAL_TAG.match(tag):
        return False
    if tag.lower() == "ipv6":
        if "%" in content or not content.isascii():  # no zone index in a mail address
            return False
        try:
            ipaddress.IPv6Address(content)
        except ValueError:
            return False
        return True
    # General-address-literal: 1*dcontent, dcontent = %d33-90 / %d94-126
    return bool(content) and all(33 <= ord(c) <= 126 and c not in "[\\]" for c in content)


# --- the parser ---------------------------------------------------------------------------


class _Invalid(Exception):
    def __init__(self, reason: Refusal) -> None:
        super().__init__(reason.value)
        self.reason = reason


# A recipient refused for one of these reasons is a relay attempt, not a typing mistake.
_RELAY_REPLIES: dict[Refusal, Reply] = {
    Refusal.SOURCE_ROUTE: replies.RELAY_SOURCE_ROUTE,
    Refusal.ROUTING_CHARACTER: replies.RELAY_ROUTING_CHARACTERS,
    Refusal.MULTIPLE_AT: replies.RELAY_ROUTING_CHARACTERS,
    Refusal.ADDRESS_LITERAL: replies.RELAY_ADDRESS_LITERAL,
    Refusal.TRAILING_DOT: replies.RELAY_TRAILING_DOT,
}


def _reply_for(reason: Refusal, *, sender: bool) -> Reply:
    if reason is Refusal.NON_ASCII:
        return replies.NON_ASCII_SENDER if sender else replies.NON_ASCII_RECIPIENT
    if sender:
        return replies.SENDER_SOURCE_ROUTE if reason is Refusal.SOURCE_ROUTE else replies.BAD_SENDER_SYNTAX
    return _RELAY_REPLIES.get(reason, replies.BAD_RECIPIENT_SYNTAX)


def _parse_path(path: str, *, smtputf8: bool, sender: bool) -> Mailbox:
    if len(path) >= 2 and path[0] == "<" and path[-1] == ">":
        path = path[1:-1]
    try:
        mailbox = _parse_mailbox(path, smtputf8=smtputf8)
    except _Invalid as invalid:
        raise AddressError(invalid.reason, _reply_for(invalid.reason, sender=sender)) from None
    return mailbox


def _check_characters(path: str, *, smtputf8: bool) -> None:
    for char in path:
        code = ord(char)
        if code < 0x20 or code == 0x7F:
            raise _Invalid(Refusal.CONTROL_CHARACTER)
        if code < 0x80:
            continue
        if not smtputf8:
            raise _Invalid(Refusal.NON_ASCII)
        category = unicodedata.category(char)
        if category[0] == "Z":
            raise _Invalid(Refusal.WHITESPACE)
        if category[0] == "C":  # control, format (zero-width etc.), surrogate, private, unassigned
            raise _Invalid(Refusal.CONTROL_CHARACTER)
    if not path.isascii() and not unicodedata.is_normalized("NFC", path):
        raise _Invalid(Refusal.SYNTAX)


def _parse_mailbox(path: str, *, smtputf8: bool) -> Mailbox:
    _check_characters(path, smtputf8=smtputf8)
    if path.startswith("@"):
        # RFC 5321 §4.1.2 A-d-l ":" Mailbox; without the colon it is just an empty local part.
        raise _Invalid(Refusal.SOURCE_ROUTE if ":" in path else Refusal.EMPTY_LOCAL_PART)
    if path.startswith('"'):
        local, end = _scan_quoted(path)
        wire_local = path[:end]
        if end >= len(path) or path[end] != "@":
            raise _Invalid(Refusal.SYNTAX)
        domain_text = path[end + 1 :]
    else:
        wire_local, at, domain_text = path.partition("@")
        if not at:
            if " " in path:
                raise _Invalid(Refusal.WHITESPACE)
            # "user%remote.example", "remote.example!user": a route with no domain of ours
            raise _Invalid(Refusal.ROUTING_CHARACTER if _ROUTING.intersection(path) else Refusal.MISSING_DOMAIN)
        if not wire_local:
            raise _Invalid(Refusal.EMPTY_LOCAL_PART)
        if " " in wire_local:
            raise _Invalid(Refusal.WHITESPACE)
        if not _is_dot_string(wire_local):
            raise _Invalid(Refusal.SYNTAX)
        local = wire_local
    if not local:
        raise _Invalid(Refusal.EMPTY_LOCAL_PART)  # `""@domain`: legal RFC 5321, but nobody's mailbox
    if len(wire_local.encode()) > MAX_LOCAL_PART:
        raise _Invalid(Refusal.LOCAL_PART_TOO_LONG)
    domain = _parse_domain(domain_text)
    if len(path.encode()) + 2 > MAX_PATH:
        raise _Invalid(Refusal.PATH_TOO_LONG)
    return Mailbox(local=local, domain=domain)


def _scan_quoted(path: str) -> tuple[str, int]:
    """Decode the Quoted-string at the start of `path`; return it and the index after it."""
    decoded: list[str] = []
    index = 1
    while index < len(path):
        char = path[index]
        if char == '"':
            return "".join(decoded), index + 1
        if char == "\\":
            # quoted-pairSMTP = %d92 %d32-126
            if index + 1 >= len(path) or not (32 <= ord(path[index + 1]) <= 126):
                raise _Invalid(Refusal.SYNTAX)
            decoded.append(path[index + 1])
            index += 2
            continue
        decoded.append(char)  # qtextSMTP: every printable but " and \ (characters already checked)
        index += 1
    raise _Invalid(Refusal.SYNTAX)


def _is_dot_string(text: str) -> bool:
    if not text or text[0] == "." or text[-1] == "." or ".." in text:
        return False
    return all(char in _ATEXT or char == "." or ord(char) >= 0x80 for char in text)


def _parse_domain(text: str) -> str:
    if not text:
        raise _Invalid(Refusal.MISSING_DOMAIN)
    if "@" in text:
        raise _Invalid(Refusal.MULTIPLE_AT)
    if " " in text:
        raise _Invalid(Refusal.WHITESPACE)
    if text.startswith("["):
        if not is_address_literal(text):
            raise _Invalid(Refusal.BAD_DOMAIN)
        return text.lower()
    if text.endswith("."):
        raise _Invalid(Refusal.TRAILING_DOT)
    domain = text.lower()
    labels = domain.split(".")
    for label in labels:
        if not _is_label(label):
            raise _Invalid(Refusal.BAD_DOMAIN)
    if labels[-1].isascii() and labels[-1].isdigit():
        # RFC 1123 §2.1: a top-level label is never all-numeric, so "user@127.0.0.1" is an IP
        # address in disguise, not a domain: refused like the address literal it stands for.
        raise _Invalid(Refusal.ADDRESS_LITERAL)
    if len(domain.encode()) > MAX_DOMAIN:
        raise _Invalid(Refusal.DOMAIN_TOO_LONG)
    a_labels = [_to_a_label(label) for label in labels]
    if any(len(label) > MAX_LABEL for label in a_labels) or len(".".join(a_labels)) > MAX_DOMAIN:
        raise _Invalid(Refusal.DOMAIN_TOO_LONG)
    return domain


def _is_label(label: str) -> bool:
    if label.isascii():
        return bool(_LDH_LABEL.match(label))
    # A U-label (RFC 6531 sub-domain =/ U-label): letters, marks, digits and inner hyphens.
    # IDNA 2008's full PVALID table is narrower; this keeps out every dot, space and symbol.
    if label[0] == "-" or label[-1] == "-":
        return False
    return all(
        (char.isascii() and (char.isalnum() or char == "-")) or unicodedata.category(char)[0] in "LMN"
        for char in label
    )


def _to_a_label(label: str) -> str:
    if label.isascii():
        return label
    return "xn--" + label.encode("punycode").decode("ascii")


def _to_u_label(label: str) -> str:
    if not label.startswith("xn--"):
        return label
    try:
        decoded = label[4:].encode("ascii").decode("punycode")
    except UnicodeError:
        return label
    if decoded.isascii() or not _is_label(decoded) or not unicodedata.is_normalized("NFC", decoded):
        return label
    if decoded != decoded.lower() or _to_a_label(decoded) != label:
        return label
    return decoded


def _quote_local(local: str) -> str:
    if _is_dot_string(local):
        return local
    escaped = local.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
