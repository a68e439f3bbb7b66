"""IMAP ENVELOPE (RFC 9051 §7.5.2, RFC 3501 §7.4.2) of a header section, as JSON-able data.

[date, subject, from, sender, reply-to, to, cc, bcc, in-reply-to, message-id]

Invariants:
- Strings are header values as written: unfolded, stripped, encoded words not decoded; None
  (NIL) when the field is absent. The first field of a name counts.
- Address members are lists of [name, adl, mailbox, host] (see address.envelope_addresses),
  or None for an absent or empty field. Sender and Reply-To default to From when absent or
  empty, as RFC 9051 says the server does.
"""

from __future__ import annotations

from typing import Any

from .address import Entry, envelope_addresses, parse_addresses
from .headers import Header

ADDRESS_FIELDS = ("from", "sender", "reply-to", "to", "cc", "bcc")


def address_entries(header: Header) -> dict[str, list[Entry]]:
    """The parsed address fields of a header section, by lowercase name."""
    return {name: parse_addresses(header.value(name) or "") for name in ADDRESS_FIELDS}


def build_envelope(header: Header, entries: dict[str, list[Entry]]) -> list[Any]:
    addresses = {name: envelope_addresses(entries[name]) for name in ADDRESS_FIELDS}
    sender = addresses["sender"] or addresses["from"]
    reply_to = addresses["reply-to"] or addresses["from"]
    return [
        header.value("date"),
        header.value("subject"),
        addresses["from"],
        sender,
        reply_to,
        addresses["to"],
        addresses["cc"],
        addresses["bcc"],
        header.value("in-reply-to"),
        header.value("message-id"),
    ]
