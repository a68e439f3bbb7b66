"""What the IMAP session says: the three error kinds, capability lists, response lines.

Invariants:
- A handler reports failure by raising `No` or `Bad` (tagged NO / BAD, RFC 9051 §7.1.2-3),
  or `Bye` to end the connection (RFC 9051 §7.1.5). The session turns them into wire bytes
  in one place (session.Session._run_command); handlers never write a tagged reply.
- Store errors map to response codes in `store_error`, the only place that decides which
  RFC 5530 code a NotFound or Conflict becomes. Handlers that need a different code for a
  particular argument (TRYCREATE for a COPY destination) catch NotFound themselves.
- Capabilities are advertised only when they work in the current state (RFC 9051 §6.1.1):
  LOGINDISABLED and no AUTH=PLAIN before TLS unless insecure authentication is allowed, no
  STARTTLS once TLS is on.
"""

from __future__ import annotations

from relate import store

# Advertised after login, in this order (RFC 9051 §7.2.2: clients ignore unknown names).
# BINARY is deliberately absent; the IMAP4rev2 base covers it for clients that enable it.
AUTHENTICATED_CAPABILITIES = (
    "IMAP4rev2",
    "IMAP4rev1",
    "LITERAL+",  # RFC 7888
    "ID",  # RFC 2971
    "ENABLE",  # RFC 5161
    "IDLE",  # RFC 2177
    "NAMESPACE",  # RFC 2342
    "UIDPLUS",  # RFC 4315
    "MOVE",  # RFC 6851
    "UNSELECT",  # RFC 3691
    "CHILDREN",  # RFC 3348
    "SPECIAL-USE",  # RFC 6154
    "CREATE-SPECIAL-USE",  # RFC 6154 §3
    "LIST-EXTENDED",  # RFC 5258
    "LIST-STATUS",  # RFC 5819
    "ESEARCH",  # RFC 4731
    "SEARCHRES",  # RFC 5182
    "CONDSTORE",  # RFC 7162
    "QRESYNC",  # RFC 7162
    "STATUS=SIZE",  # RFC 8438
    "UTF8=ACCEPT",  # RFC 6855
)
# Before login: what a client needs to decide how to log in (RFC 9051 §6.2).
GREETING_CAPABILITIES = ("IMAP4rev2", "IMAP4rev1", "SASL-IR", "LITERAL+", "ID", "ENABLE", "IDLE")
# ENABLE-able extensions (RFC 5161 §3.1), by upper-cased name, with their advertised spelling.
ENABLEABLE = {
    "CONDSTORE": "CONDSTORE",
    "QRESYNC": "QRESYNC",
    "UTF8=ACCEPT": "UTF8=ACCEPT",
    "IMAP4REV2": "IMAP4rev2",
}


class CommandError(Exception):
    """A command failed; `status` is "NO" or "BAD", `code` an RFC 5530 response code."""

    status = "NO"

    def __init__(self, text: str, code: str | None = None) -> None:
        super().__init__(text)
        self.text = text
        self.code = code


class No(CommandError):
    """Tagged NO: the command was understood but could not be carried out."""

    status = "NO"


class Bad(CommandError):
    """Tagged BAD: the command is not valid here (syntax, state, arguments)."""

    status = "BAD"


class Bye(Exception):
    """End the connection after `* BYE text` (RFC 9051 §7.1.5)."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


def store_error(exc: store.StoreError) -> CommandError:
    """The reply for a store error raised by a mailbox or message operation."""
    if isinstance(exc, store.TemporaryFailure):
        return No("temporary server failure, try again later", "UNAVAILABLE")
    if isinstance(exc, store.NotFound):
        return No(str(exc), "NONEXISTENT")
    if isinstance(exc, store.Conflict):
        return No(str(exc), "ALREADYEXISTS")
    if isinstance(exc, store.OverQuota):
        return No(str(exc), "OVERQUOTA")
    if isinstance(exc, store.InvalidInput | store.Forbidden):
        return No(str(exc), "CANNOT")
    return No("server error", "SERVERBUG")


def capabilities(*, authenticated: bool, tls: bool, plaintext_allowed: bool, append_limit: int) -> str:
    """The capability list for the session's current state, space-separated."""
    if authenticated:
        return " ".join((*AUTHENTICATED_CAPABILITIES, f"APPENDLIMIT={append_limit}"))
    names = list(GREETING_CAPABILITIES)
    if not tls:
        names.append("STARTTLS")
    names.append("AUTH=PLAIN" if plaintext_allowed else "LOGINDISABLED")
    return " ".join(names)


def tagged(tag: str, status: str, text: str, code: str | None = None) -> bytes:
    """`tag OK [CODE] text` with CRLF."""
    coded = f"[{code}] " if code else ""
    return f"{tag} {status} {coded}{text}\r\n".encode()


def untagged(text: str | bytes) -> bytes:
    """`* text` with CRLF."""
    data = text.encode() if isinstance(text, str) else text
    return b"* " + data + b"\r\n"


class Done:
    """What a handler returns for its tagged OK: text and optional response code.

    `modseq`: under QRESYNC, the tagged OK carries the HIGHESTMODSEQ the client now knows
    (RFC 7162 §3.2.10), filled in by the session once all changes have been reported.
    """

    __slots__ = ("code", "modseq", "text")

    def __init__(self, text: str = "", code: str | None = None, *, modseq: bool = False) -> None:
        self.text = text
        self.code = code
        self.modseq = modseq


ANSWERED = Done("(already answered)")  # the handler wrote its tagged reply itself (STARTTLS)
