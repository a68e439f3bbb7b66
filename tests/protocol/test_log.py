"""Logging: one line per record, connection prefix, and no credentials ever written."""

from __future__ import annotations

import io
import logging

import pytest

from relate.protocol import log as plog


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        pytest.param(b"AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n", "AUTH PLAIN ***", id="smtp-auth-plain-ir"),
        pytest.param(b"AUTH LOGIN\r\n", "AUTH LOGIN", id="smtp-auth-login-no-ir"),
        pytest.param(b"auth login YWxpY2U=\r\n", "auth login ***", id="lowercase"),
        pytest.param(b"AUTH c2VjcmV0\r\n", "AUTH ***", id="auth-without-mechanism"),
        pytest.param(b"a1 LOGIN alice hunter2\r\n", "a1 LOGIN ***", id="imap-login"),
        pytest.param(b'a1 LOGIN "alice" {7}\r\n', "a1 LOGIN ***", id="imap-login-literal"),
        pytest.param(b"a2 AUTHENTICATE PLAIN AGFsaWNl\r\n", "a2 AUTHENTICATE PLAIN ***", id="imap-sasl-ir"),
        pytest.param(b"PASS hunter2\r\n", "PASS ***", id="pop3-pass"),
        pytest.param(b"APOP alice c4c9334bac560ecc979e58001b3e22fb\r\n", "APOP ***", id="pop3-apop"),
        pytest.param(b"USER alice\r\n", "USER alice", id="pop3-user-kept"),
        pytest.param(b"MAIL FROM:<alice@example.com>\r\n", "MAIL FROM:<alice@example.com>", id="mail-from"),
        pytest.param(b"a3 SELECT INBOX\r\n", "a3 SELECT INBOX", id="imap-select"),
        pytest.param(b"EHLO \xff\r\n", "EHLO \ufffd", id="undecodable"),
    ],
)
def test_redact(line: bytes, expected: str) -> None:
    assert plog.redact(line) == expected


@pytest.mark.parametrize(
    ("message", "secret"),
    [
        pytest.param("C: AUTH PLAIN AGFsaWNlAHNlY3JldA==", "AGFsaWNlAHNlY3JldA==", id="sasl-command"),
        pytest.param("client sent a1 authenticate plain AGFsaWNl", "AGFsaWNl", id="sasl-lowercase"),
        pytest.param("C: a1 LOGIN alice hunter2", "hunter2", id="imap-login"),
        pytest.param("C: PASS hunter2", "hunter2", id="pop3-pass"),
        pytest.param("connecting with password=hunter2 to db", "hunter2", id="key-value"),
        pytest.param('{"password": "hunter2"}', "hunter2", id="json"),
        pytest.param("Authorization: ApiKey rk_live_abcdef123", "rk_live_abcdef123", id="api-key-header"),
        pytest.param("Authorization: Bearer eyJhbGciOi.x.y", "eyJhbGciOi", id="bearer"),
    ],
)
def test_filter_scrubs(message: str, secret: str) -> None:
    record = logging.LogRecord("relate.smtpd", logging.INFO, __file__, 1, "%s", (message,), None)
    assert plog.RedactingFilter().filter(record) is True
    assert secret not in record.getMessage()
    assert plog.REDACTED in record.getMessage()


@pytest.mark.parametrize(
    "message",
    [
        pytest.param("login failed for alice@example.com", id="english-login"),
        pytest.param("all checks pass now", id="english-pass"),
        pytest.param("unknown user bob@example.com", id="user"),
        pytest.param("AUTH PLAIN ***", id="already-redacted"),
    ],
)
def test_filter_leaves_ordinary_text(message: str) -> None:
    record = logging.LogRecord("relate.smtpd", logging.INFO, __file__, 1, message, None, None)
    plog.RedactingFilter().filter(record)
    assert record.getMessage() == message


def test_setup_logging_one_line_per_record_and_filtered(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        plog.setup_logging("debug")
        plog.setup_logging("INFO")  # a second call replaces, not duplicates
        logger = plog.connection_logger(logging.getLogger("relate.smtpd"), "c7f3a2", ("192.0.2.1", 4242))
        logger.info("C: %s", "AUTH PLAIN AGFsaWNlAHNlY3JldA==")
        logger.debug("not shown at INFO")
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1, lines
    assert " INFO relate.smtpd [c7f3a2 192.0.2.1:4242] C: AUTH PLAIN ***" in lines[0]
    assert lines[0][:4].isdigit()  # starts with the time


def test_connection_logger_extra_and_ipv6() -> None:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    base = logging.getLogger("relate.test-protocol-log")
    base.addHandler(Keep())
    base.setLevel(logging.INFO)
    base.propagate = False
    plog.connection_logger(base, "abc123", ("2001:db8::1", 993)).info("hello %s", "there")
    assert records[0].getMessage() == "[abc123 [2001:db8::1]:993] hello there"
    assert records[0].conn_id == "abc123"  # type: ignore[attr-defined]
    assert records[0].peer == "[2001:db8::1]:993"  # type: ignore[attr-defined]
