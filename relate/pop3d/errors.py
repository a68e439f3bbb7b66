"""The three ways a POP3 command can fail; `relate.pop3d.session` maps them to the wire in one place.

- Pop3Error: "-ERR", optionally with an RFC 2449 §8 / RFC 3206 response code; the session
  goes on (no such message, wrong password, maildrop locked).
- BadCommand: a Pop3Error the client should not have sent (unknown verb, bad syntax, wrong
  state, overlong line). These are counted, and too many close the connection.
- CloseConnection: answer "-ERR" and end the session (too many failed logins).
Store failures (relate.store.TemporaryFailure) become "-ERR [SYS/TEMP]" in the same place.
"""

from __future__ import annotations

# Response codes (RFC 2449 §8.1 IN-USE and LOGIN-DELAY, RFC 3206 SYS/TEMP, SYS/PERM and AUTH).
IN_USE = "IN-USE"
LOGIN_DELAY = "LOGIN-DELAY"
SYS_TEMP = "SYS/TEMP"
SYS_PERM = "SYS/PERM"
AUTH = "AUTH"


class Pop3Error(Exception):
    """Answer "-ERR [code] text" and go on. str(exc) is the text the client sees."""

    def __init__(self, text: str, code: str = ""):
        super().__init__(text)
        self.code = code


class BadCommand(Pop3Error):
    """A command that should not have been sent; counts towards Limits.max_bad_commands."""


class CloseConnection(Pop3Error):
    """Answer "-ERR [code] text" and close the connection."""
