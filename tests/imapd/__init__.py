"""IMAP daemon tests. `run_parser` plays the session's read loop around parse_command."""

from __future__ import annotations

import io

from relate.imapd.parse import NeedLiteral, Parsed, parse_command


def run_parser(
    wire: bytes, *, max_literal: int = 1_000_000, utf8: bool = False
) -> tuple[Parsed, list[bytes], list[NeedLiteral]]:
    """Feed one command's wire bytes through parse_command as the session would.

    Returns the parsed command, the octets of each APPEND message literal (the "sinks"), and
    every NeedLiteral seen on the way. Fails if the command does not end the wire.
    """
    stream = io.BytesIO(wire)
    buf = b""
    sinks: list[bytes] = []
    needs: list[NeedLiteral] = []
    while True:
        line = stream.readline()
        assert line, "the wire ended inside a command"
        buf += line
        result = parse_command(buf, max_literal, utf8)
        if isinstance(result, Parsed):
            assert stream.read() == b"", "bytes left after the command"
            return result, sinks, needs
        needs.append(result)
        assert not result.too_big
        data = stream.read(result.size)
        if result.is_append_message:
            sinks.append(data)  # a real session writes these to a spooled file
        else:
            buf += data
