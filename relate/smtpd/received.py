"""The Received: trace header prepended to every accepted message (RFC 5321 §4.4).

Invariants:
- Built only from values the server checked: the EHLO argument (parse_helo syntax, further
  reduced here to characters that cannot open a comment or end the clause), the peer IP, our
  own host name, the protocol keyword, the TLS parameters and accepted recipients.
- The "with" keyword is the registered one (RFC 3848, RFC 6531 §3.7.3): SMTP/ESMTP, plus S
  for TLS and A for an authenticated client; UTF8SMTP* when the transaction used SMTPUTF8.
- "for" names the recipient only when there is exactly one, so a Bcc recipient is never
  shown to the others (all recipients share one stored copy).
- Every line ends with CRLF and continuation lines start with a tab (RFC 5322 §2.2.3).
"""

from __future__ import annotations

import datetime as dt
import email.utils
import re
from collections.abc import Sequence
from dataclasses import dataclass

_UNSAFE_HELO = re.compile(r"[^A-Za-z0-9._:\[\]-]")


@dataclass(frozen=True)
class Trace:
    """What one Received header records."""

    helo: str  # the client's EHLO/HELO argument
    ip: str  # the client's address ("" or "local" when not on IP)
    host: str  # our host name (Smtp__ServerName)
    esmtp: bool  # EHLO (True) or HELO
    tls: bool
    authenticated: bool
    smtputf8: bool
    message_id: str  # our id for this message (connection id and count)
    recipients: Sequence[str]
    tls_version: str | None = None
    cipher: str | None = None
    cipher_bits: int | None = None


def protocol_keyword(*, esmtp: bool, tls: bool, authenticated: bool, smtputf8: bool) -> str:
    """The Received "with" value (RFC 3848 §1, RFC 6531 §3.7.3)."""
    suffix = ("S" if tls else "") + ("A" if authenticated else "")
    if smtputf8:
        return "UTF8SMTP" + suffix
    if esmtp or suffix:  # there is no "SMTPS": TLS and AUTH are ESMTP extensions
        return "ESMTP" + suffix
    return "SMTP"


def _address_literal(ip: str) -> str:
    if not ip or ip == "local":
        return "unknown"
    return f"[IPv6:{ip}]" if ":" in ip else f"[{ip}]"


def received_header(trace: Trace, now: dt.datetime | None = None) -> bytes:
    """The complete header field, folded, ending with CRLF."""
    when = email.utils.format_datetime((now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC))
    helo = _UNSAFE_HELO.sub("?", trace.helo) or "unknown"
    lines = [f"Received: from {helo} ({_address_literal(trace.ip)})"]
    if trace.tls and trace.tls_version:
        cipher = trace.cipher or "unknown"
        bits = f" ({trace.cipher_bits} bits)" if trace.cipher_bits else ""
        lines.append(f"\t(using {trace.tls_version} with cipher {cipher}{bits})")
    keyword = protocol_keyword(
        esmtp=trace.esmtp, tls=trace.tls, authenticated=trace.authenticated, smtputf8=trace.smtputf8
    )
    lines.append(f"\tby {trace.host} (Relate Mail) with {keyword} id {trace.message_id}")
    if len(trace.recipients) == 1:
        lines.append(f"\tfor <{trace.recipients[0]}>; {when}")
    else:
        lines[-1] += ";"
        lines.append(f"\t{when}")
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")
