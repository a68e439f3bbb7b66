"""Small builders shared by store tests."""

from __future__ import annotations


def make_message(subject: str = "Hello", sender: str = "alice@example.com", to: str = "bob@example.com",
                 body: str = "Hi there.\r\n", extra_headers: str = "") -> bytes:
    return (
        f"From: Alice <{sender}>\r\n"
        f"To: {to}\r\n"
        f"Subject: {subject}\r\n"
        f"Message-ID: <{abs(hash((subject, body, extra_headers)))}@example.com>\r\n"
        f"Date: Sat, 28 Nov 2026 10:00:00 +0000\r\n"
        f"{extra_headers}"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "\r\n"
        f"{body}"
    ).encode()
