"""relate.pop3d.parse: command lines into verbs and arguments. Pure, table-driven."""

from __future__ import annotations

import pytest

from relate.pop3d.errors import BadCommand
from relate.pop3d.parse import Command, line_count, message_number, parse_command

GOOD = [
    pytest.param(b"STAT\r\n", Command("STAT"), id="bare-verb"),
    pytest.param(b"stat\r\n", Command("STAT"), id="lower-case"),
    pytest.param(b"LIST 3\r\n", Command("LIST", ("3",)), id="one-arg"),
    pytest.param(b"TOP 1 10\r\n", Command("TOP", ("1", "10")), id="two-args"),
    pytest.param(b"TOP  1\t10 \r\n", Command("TOP", ("1", "10")), id="loose-spacing"),
    pytest.param(b"RETR 1\n", Command("RETR", ("1",)), id="bare-lf"),
    pytest.param(b"USER j\xc3\xb6rg@example.test\r\n", Command("USER", ("jörg@example.test",)), id="utf8-user"),
    pytest.param(b"PASS secret with spaces\r\n", Command("PASS", ("secret with spaces",)), id="pass-rest-of-line"),
    pytest.param(b"PASS\r\n", Command("PASS"), id="pass-without-arg"),
    pytest.param(b"AUTH PLAIN AGEAYg==\r\n", Command("AUTH", ("PLAIN", "AGEAYg==")), id="auth-ir"),
    pytest.param(b"  NOOP\r\n", Command("NOOP"), id="leading-space"),
    pytest.param(b"LAST\r\n", Command("LAST"), id="unknown-but-well-formed"),
]


@pytest.mark.parametrize(("line", "expected"), GOOD)
def test_parse_good(line: bytes, expected: Command) -> None:
    assert parse_command(line) == expected


BAD = [
    pytest.param(b"\r\n", id="empty"),
    pytest.param(b"   \r\n", id="blank"),
    pytest.param(b"RETRIEVE 1\r\n", id="verb-too-long"),
    pytest.param(b"R3TR 1\r\n", id="digit-in-verb"),
    pytest.param(b"LIST \x00\r\n", id="nul"),
    pytest.param(b"LIST 1\r2\r\n", id="cr-inside"),
    pytest.param(b"USER \xff\xfe\r\n", id="not-utf8"),
    pytest.param(b"\xc3\x9cSER x\r\n", id="non-ascii-verb"),
]


@pytest.mark.parametrize("line", BAD)
def test_parse_bad(line: bytes) -> None:
    with pytest.raises(BadCommand):
        parse_command(line)


@pytest.mark.parametrize(("arg", "value"), [("1", 1), ("0042", 42), ("4294967295", 4294967295)])
def test_message_number(arg: str, value: int) -> None:
    assert message_number(arg) == value


@pytest.mark.parametrize("arg", ["0", "-1", "+1", "1.0", "x", "", "٣", "12345678901"])
def test_bad_message_number(arg: str) -> None:
    with pytest.raises(BadCommand):
        message_number(arg)


@pytest.mark.parametrize(("arg", "value"), [("0", 0), ("10", 10)])
def test_line_count(arg: str, value: int) -> None:
    assert line_count(arg) == value


@pytest.mark.parametrize("arg", ["-1", "a", "", "1e3"])
def test_bad_line_count(arg: str) -> None:
    with pytest.raises(BadCommand):
        line_count(arg)
