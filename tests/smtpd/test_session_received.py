"""The Received trace header (RFC 5321 §4.4), built from checked values only."""

from __future__ import annotations

import datetime as dt
import email
import email.policy

import pytest

from relate.smtpd.received import Trace, protocol_keyword, received_header

NOW = dt.datetime(2026, 11, 28, 10, 0, tzinfo=dt.UTC)


def trace(**changes: object) -> Trace:
    values: dict[str, object] = {
        "helo": "client.example", "ip": "192.0.2.1", "host": "mx.example.com", "esmtp": True, "tls": False,
        "authenticated": False, "smtputf8": False, "message_id": "a1b2c3.1", "recipients": ["bob@example.com"],
    }
    values.update(changes)
    return Trace(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("esmtp", "tls", "authenticated", "smtputf8", "keyword"),
    [
        (False, False, False, False, "SMTP"),
        (True, False, False, False, "ESMTP"),
        (True, True, False, False, "ESMTPS"),
        (True, False, True, False, "ESMTPA"),
        (True, True, True, False, "ESMTPSA"),
        (False, True, False, False, "ESMTPS"),
        (True, False, False, True, "UTF8SMTP"),
        (True, True, False, True, "UTF8SMTPS"),
        (True, False, True, True, "UTF8SMTPA"),
        (True, True, True, True, "UTF8SMTPSA"),
    ],
)
def test_protocol_keywords(esmtp: bool, tls: bool, authenticated: bool, smtputf8: bool, keyword: str) -> None:
    assert protocol_keyword(esmtp=esmtp, tls=tls, authenticated=authenticated, smtputf8=smtputf8) == keyword


def test_plain_header_exact() -> None:
    assert received_header(trace(), NOW) == (
        b"Received: from client.example ([192.0.2.1])\r\n"
        b"\tby mx.example.com (Relate Mail) with ESMTP id a1b2c3.1\r\n"
        b"\tfor <bob@example.com>; Sat, 28 Nov 2026 10:00:00 +0000\r\n"
    )


def test_tls_header_exact() -> None:
    header = received_header(
        trace(tls=True, authenticated=True, tls_version="TLSv1.3", cipher="TLS_AES_256_GCM_SHA384", cipher_bits=256,
              recipients=["a@example.com", "b@example.com"]),
        NOW,
    )
    assert header == (
        b"Received: from client.example ([192.0.2.1])\r\n"
        b"\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256 bits))\r\n"
        b"\tby mx.example.com (Relate Mail) with ESMTPSA id a1b2c3.1;\r\n"
        b"\tSat, 28 Nov 2026 10:00:00 +0000\r\n"
    )


def test_ipv6_client_is_an_address_literal() -> None:
    assert received_header(trace(ip="2001:db8::1"), NOW).startswith(
        b"Received: from client.example ([IPv6:2001:db8::1])\r\n"
    )


@pytest.mark.parametrize(
    ("helo", "shown"),
    [("[192.0.2.1]", "[192.0.2.1]"), ("[x:(evil);y]", "[x:?evil??y]"), ("", "unknown")],
    ids=["literal", "comment-injection", "empty"],
)
def test_helo_cannot_change_the_clause(helo: str, shown: str) -> None:
    assert received_header(trace(helo=helo), NOW).startswith(f"Received: from {shown} (".encode())


def test_header_parses_as_one_field() -> None:
    raw = received_header(trace(tls=True, tls_version="TLSv1.2", cipher="ECDHE-RSA-AES128-GCM-SHA256",
                                cipher_bits=128), NOW) + b"Subject: x\r\n\r\nbody\r\n"
    parsed = email.message_from_bytes(raw, policy=email.policy.SMTP)
    assert list(parsed.keys()) == ["Received", "Subject"]
    assert str(parsed["Received"]).endswith("; Sat, 28 Nov 2026 10:00:00 +0000")
