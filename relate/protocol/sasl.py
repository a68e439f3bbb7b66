"""SASL PLAIN and LOGIN, shared by SMTP AUTH, POP3 AUTH and IMAP AUTHENTICATE. Pure: no sockets.

Invariants:
- Credentials are decoded strictly: base64 from the RFC 4648 alphabet only (a missing final
  padding is tolerated), UTF-8 only (RFC 4616 §2), no NUL inside a LOGIN field.
- SaslError messages are safe to send to the client and to log: they never quote input.
- A client answers a challenge with "*" to cancel (RFC 4954 §4, RFC 9051 §6.2.2, RFC 5034 §4):
  SaslCancelled, which each protocol maps to its own reply (501, BAD, -ERR).
- Whether an authzid different from the username is allowed is the caller's decision;
  Relate Mail does not support acting for another user, so daemons reject it.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass, field

MECHANISMS = ("PLAIN", "LOGIN")
# The LOGIN mechanism's challenges (draft-murchison-sasl-login): "Username:" and "Password:".
LOGIN_USERNAME_PROMPT = "VXNlcm5hbWU6"
LOGIN_PASSWORD_PROMPT = "UGFzc3dvcmQ6"
# An initial response of "=" is an empty one (RFC 4954 §4, RFC 4959 §3).
EMPTY_RESPONSE = "="
MAX_RESPONSE_LENGTH = 12_288  # encoded; RFC 4954 §4 lets servers bound it. Keys are far shorter.


class SaslError(Exception):
    """The exchange failed; str() is a reason fit for the client."""


class SaslCancelled(SaslError):
    """The client answered a challenge with "*"."""

    def __init__(self) -> None:
        super().__init__("authentication cancelled")


@dataclass(frozen=True)
class Credentials:
    """What a finished exchange yields. The password never appears in repr()."""

    username: str  # the authentication identity (RFC 4616 authcid): a login address
    password: str = field(repr=False)  # the API key
    authzid: str = ""  # identity to act as; empty means "the username"


def is_cancel(line: str | bytes) -> bool:
    """Whether a response line is the "*" that cancels the exchange."""
    text = line.decode("ascii", "replace") if isinstance(line, bytes) else line
    return text.strip() == "*"


def decode_base64(data: str | bytes) -> bytes:
    """Strict base64 of one response line (terminator and surrounding blanks ignored)."""
    if isinstance(data, bytes):
        try:
            text = data.decode("ascii")
        except UnicodeDecodeError:
            raise SaslError("response is not base64") from None
    else:
        text = data
    text = text.strip()
    if len(text) > MAX_RESPONSE_LENGTH:
        raise SaslError("response too long")
    if text in ("", EMPTY_RESPONSE):
        return b""
    if "=" not in text:
        text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise SaslError("response is not base64") from None


def _utf8(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SaslError(f"{what} is not valid UTF-8") from None


def decode_plain(response: str | bytes) -> tuple[str, str, str]:
    """PLAIN (RFC 4616 §2): base64 of `authzid NUL authcid NUL passwd` → (authzid, authcid, passwd)."""
    raw = decode_base64(response)
    if not raw:
        raise SaslError("empty PLAIN response")
    parts = raw.split(b"\x00")
    if len(parts) != 3:
        raise SaslError("PLAIN response must be authzid, username and password separated by NUL")
    authzid = _utf8(parts[0], "authzid")
    authcid = _utf8(parts[1], "username")
    passwd = _utf8(parts[2], "password")
    if not authcid:
        raise SaslError("empty username")
    if not passwd:
        raise SaslError("empty password")
    return authzid, authcid, passwd


def decode_login_response(response: str | bytes, what: str = "username") -> str:
    """One LOGIN answer (the username or the password), decoded and checked."""
    raw = decode_base64(response)
    if not raw:
        raise SaslError(f"empty {what}")
    if b"\x00" in raw:
        raise SaslError(f"{what} contains NUL")
    return _utf8(raw, what)


def authenticate(
    mechanism: str,
    initial_response: str | bytes | None,
    ask: Callable[[str], str | bytes],
) -> Credentials:
    """Run one PLAIN or LOGIN exchange.

    `initial_response` is the optional argument after the mechanism (RFC 4954 §4, RFC 4959);
    None or "" when absent, "=" when explicitly empty. `ask(challenge)` sends the base64
    `challenge` in the protocol's own form ("334 ...", "+ ...") and returns the client's next
    line. Raises SaslCancelled on "*", SaslError on anything malformed or unsupported.
    """

    def answer(challenge: str) -> str | bytes:
        line = ask(challenge)
        if is_cancel(line):
            raise SaslCancelled()
        return line

    initial = initial_response or None  # "" is "no initial response"; "=" is an empty one
    mech = mechanism.upper()
    if mech == "PLAIN":
        authzid, username, password = decode_plain(initial if initial is not None else answer(""))
        return Credentials(username=username, password=password, authzid=authzid)
    if mech == "LOGIN":
        first = initial if initial is not None else answer(LOGIN_USERNAME_PROMPT)
        username = decode_login_response(first, "username")
        password = decode_login_response(answer(LOGIN_PASSWORD_PROMPT), "password")
        return Credentials(username=username, password=password)
    raise SaslError("unsupported authentication mechanism")
