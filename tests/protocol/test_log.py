"""Logging: one line per record, connection prefix, and no credentials ever written."""

from __future__ import annotations

import io
import logging
import time

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
        pytest.param("Authorization: Basic YWxpY2U6aHVudGVyMg==", "YWxpY2U6aHVudGVyMg==", id="basic"),
        pytest.param("secret: hunter2", "hunter2", id="secret"),
        pytest.param("TOKEN=abc123def", "abc123def", id="token-upper-case"),
        pytest.param("api_key=abc123def", "abc123def", id="api-key"),
        pytest.param("C: APOP alice c4c9334bac", "c4c9334bac", id="apop"),
        pytest.param("pwd = hunter2", "hunter2", id="pwd"),
        # re's case folding matches U+017F (long s) to "s", str.lower() does not: non-ASCII text
        # must not take the fast path
        pytest.param("pa\u017f\u017fword=hunter2", "hunter2", id="non-ascii-case-fold"),
        pytest.param("TO\u212aEN=hunter2", "hunter2", id="kelvin-sign"),
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


@pytest.mark.parametrize(
    "message",
    [
        "AUTH PLAIN AGFsaWNl", "a1 authenticate plain x", "a1 LOGIN alice x", "PASS x", "APOP alice x",
        "password=x", "PassWd: x", "PWD=x", "Secret=x", "ApiKey x", "api-key=x", "api_key=x", "apikey=x",
        "token=x", "Bearer x", "Basic x",
    ],
)
def test_every_pattern_needs_a_trigger_word(message: str) -> None:
    # scrub() skips ASCII text without a trigger word: each pattern's match must contain one.
    assert any(pattern.search(message) for pattern in plog._PATTERNS), message
    assert plog._TRIGGER.search(message.lower()), message


def test_setup_logging_one_line_per_record_and_filtered(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    for flag in ("logThreads", "logProcesses", "logMultiprocessing", "_srcfile"):
        monkeypatch.setattr(logging, flag, getattr(logging, flag))  # setup_logging turns them off
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


def test_connection_logger_merges_a_call_s_extra() -> None:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    base = logging.getLogger("relate.test-protocol-log-extra")
    base.addHandler(Keep())
    base.setLevel(logging.INFO)
    base.propagate = False
    logger = plog.connection_logger(base, "abc123", ("192.0.2.1", 25))
    logger.info("one", extra={"mailbox": "INBOX"})
    logger.info("two")
    assert [r.getMessage() for r in records] == ["[abc123 192.0.2.1:25] one", "[abc123 192.0.2.1:25] two"]
    assert records[0].mailbox == "INBOX" and records[0].conn_id == "abc123"  # type: ignore[attr-defined]
    assert not hasattr(records[1], "mailbox")


def test_line_formatter_time_follows_every_record() -> None:
    # The time text is reused within one second only.
    formatter = plog._LineFormatter(plog.LOG_FORMAT, plog.DATE_FORMAT)
    base = 1_800_000_000.0
    moments = [base, base + 0.5, base + 1.0, base + 1.999, base, base + 3600.25]

    def formatted(created: float) -> str:
        record = logging.LogRecord("relate.smtpd", logging.INFO, __file__, 1, "m", None, None)
        record.created = created
        return formatter.format(record).split(" ", 1)[0]

    assert [formatted(t) for t in moments] == [
        time.strftime(plog.DATE_FORMAT, time.localtime(t)) for t in moments
    ]
    record = logging.LogRecord("relate.smtpd", logging.INFO, __file__, 1, "m", None, None)
    assert formatter.formatTime(record) == logging.Formatter().formatTime(record)  # default format: msecs
