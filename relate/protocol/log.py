"""Logging for the daemons: one line per record, a connection id and peer on every session line,
and no credentials anywhere.

The credentials rule (every daemon follows it; the filter below is the safety net, not the
mechanism):

- For a command that carries a secret, log the command verb only, never its arguments:
  SMTP/POP3 `AUTH`, IMAP `AUTHENTICATE` and `LOGIN`, POP3 `PASS` and `APOP`. `redact()`
  turns any client line into its loggable form and is the one function to call before a
  protocol trace reaches a logger.
- Never log a SASL continuation line (the client's answer to a `334`/`+` challenge) nor the
  contents of a literal that belongs to a secret-carrying command; not even at DEBUG.
- `RedactingFilter` sits on the handler `setup_logging` installs and rewrites whatever still
  looks like a password, SASL payload or bearer token before it is written.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
DATE_FORMAT = "%Y-%m-%dT%H:%M:%S"
REDACTED = "***"

# Verbs whose arguments are secret: SMTP/POP3 AUTH (RFC 4954, RFC 5034), IMAP AUTHENTICATE and
# LOGIN (RFC 9051 §6.2.2, §6.2.3), POP3 PASS and APOP (RFC 1939 §7).
SECRET_VERBS = frozenset({"AUTH", "AUTHENTICATE", "LOGIN", "PASS", "APOP"})
# SASL mechanism names are not secret and say what the client tried, so they are kept.
_SASL_VERBS = frozenset({"AUTH", "AUTHENTICATE"})
_SASL_MECHANISMS = (
    r"(?:PLAIN|LOGIN|XOAUTH2|OAUTHBEARER|CRAM-MD5|DIGEST-MD5|SCRAM-[A-Z0-9-]+|EXTERNAL|NTLM|GSSAPI)"
)
_MECHANISM = re.compile(_SASL_MECHANISMS, re.IGNORECASE)
# What the filter rewrites in any message. Verbs are matched in the upper case the protocols
# use (plain English "login" or "pass" in a message is left alone), except a SASL command with
# a mechanism name, which is unmistakable in any case.
_SASL_COMMAND = re.compile(
    rf"(?i)(?P<keep>\b(?:AUTHENTICATE|AUTH)[ \t]+{_SASL_MECHANISMS}[ \t]+)(?P<secret>[^\s\"']+)"
)
_SECRET_COMMAND = re.compile(r"(?P<keep>(?<![A-Za-z0-9_])(?:LOGIN|PASS|APOP)[ \t]+)(?P<secret>[^\r\n\"']+)")
_SECRET_VALUE = re.compile(
    r"(?i)(?P<keep>\b(?:password|passwd|pwd|secret|api[_-]?key|token)[\"']?[ \t]*[=:][ \t]*)"
    r"(?P<secret>\"[^\"]*\"|'[^']*'|[^\s,;\"'}]+)"
)
_HTTP_CREDENTIALS = re.compile(r"(?P<keep>\b(?:Bearer|ApiKey|Basic)[ \t]+)(?P<secret>[A-Za-z0-9._~+/=-]+)")
_PATTERNS = (_SASL_COMMAND, _SECRET_COMMAND, _SECRET_VALUE, _HTTP_CREDENTIALS)
# A word every one of the patterns above needs, in lower case: ASCII text whose lower-case
# form has none of them cannot match any pattern, so scrub() returns it after one search
# instead of four substitutions (most log lines: "connected", "closed", "message stored").
# Keep it a superset of the patterns. Only ASCII text takes that path: elsewhere re's case
# folding knows equivalents that str.lower() does not (U+017F, long s, matches "s").
_TRIGGER = re.compile(r"auth|login|pass|apop|pwd|secret|api[_-]?key|token|bearer|basic")


def redact(line: bytes | str) -> str:
    """The loggable form of one client line: the verb alone for secret-carrying commands.

    Keeps an IMAP tag and a SASL mechanism name (`a1 LOGIN ***`, `AUTH PLAIN ***`). Strips
    the line terminator; undecodable bytes become U+FFFD.
    """
    text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
    words = text.rstrip("\r\n").split()
    for i in (0, 1):  # position 1: after an IMAP tag
        if i < len(words) and words[i].upper() in SECRET_VERBS:
            head = words[: i + 1]
            rest = words[i + 1 :]
            if words[i].upper() in _SASL_VERBS and rest and _MECHANISM.fullmatch(rest[0]):
                head.append(rest.pop(0))
            return " ".join(head + ([REDACTED] if rest else []))
    return scrub(text.rstrip("\r\n"))


def scrub(text: str) -> str:
    """Rewrite anything in free text that looks like a credential."""
    if text.isascii() and not _TRIGGER.search(text.lower()):
        return text
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: m.group("keep") + REDACTED, text)
    return text


class RedactingFilter(logging.Filter):
    """Rewrites credentials out of every record that passes; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string is logging's problem to report, not ours
            return True
        cleaned = scrub(message)
        if cleaned != message:
            record.msg = cleaned
            record.args = None
        return True


class _LineFormatter(logging.Formatter):
    """The daemons' formatter. DATE_FORMAT counts whole seconds, so the time text is built
    once per second rather than once per record."""

    _last: tuple[int, str] = (-1, "")  # (the second, its text in DATE_FORMAT)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        if datefmt != DATE_FORMAT:  # e.g. the default one, which shows milliseconds
            return super().formatTime(record, datefmt)
        second = int(record.created)
        last_second, text = self._last
        if second != last_second:
            text = super().formatTime(record, datefmt)
            self._last = (second, text)
        return text


_installed_handler: logging.Handler | None = None


def setup_logging(level: str) -> None:
    """One line per record on stderr (time, level, logger, message), credentials filtered.

    Calling it again replaces the handler it installed before; other handlers are left alone.
    """
    global _installed_handler
    root = logging.getLogger()
    if _installed_handler is not None:
        root.removeHandler(_installed_handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_LineFormatter(LOG_FORMAT, DATE_FORMAT))
    handler.addFilter(RedactingFilter())
    root.addHandler(handler)
    root.setLevel(level.upper())
    _installed_handler = handler
    # LOG_FORMAT shows none of the thread, process or caller attributes, so records do not
    # compute them (the logging HOWTO's "Optimization"). The thread name matters most under
    # gevent: asking for it makes a dummy Thread for every greenlet that logs, that is for
    # every connection.
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging._srcfile = None
    # Libraries that narrate their own set-up speak only when something is wrong.
    for name in ("alembic", "sqlalchemy"):
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))


def format_peer(peer: tuple[str, int]) -> str:
    ip, port = peer
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


class ConnectionLogger(logging.LoggerAdapter):
    """Prefixes every message with `[conn_id peer]` and adds both as record attributes."""

    def __init__(self, logger: logging.Logger, extra: dict[str, str]) -> None:
        super().__init__(logger, extra)
        self._prefix = f"[{extra['conn_id']} {extra['peer']}] "  # built once per connection

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        extra = self.extra or {}
        more = kwargs.get("extra")
        kwargs["extra"] = {**extra, **more} if more else extra
        return f"{self._prefix}{msg}", kwargs


def connection_logger(base: logging.Logger, conn_id: str, peer: tuple[str, int]) -> ConnectionLogger:
    """The logger a session uses: every line says which connection and which client."""
    return ConnectionLogger(base, {"conn_id": conn_id, "peer": format_peer(peer)})
