"""What an SMTP session knows: the listener's fixed policy, the session, the mail transaction.

Invariants:
- `Listening` is per listener and its policy is read-only (it only remembers reply bytes
  built from its settings, the same for every session); `Session` is per connection;
  `Transaction` is per MAIL command and is replaced whole (never patched back) by RSET,
  HELO/EHLO, STARTTLS and the end of a message, as RFC 5321 §4.1.1.5 and §4.1.4 ask.
- Replies are queued with `reply()` and written by `flush()`. The session flushes before it
  waits for input, so a pipelined group (RFC 2920) gets its replies in one write and a
  client that waits for each reply never waits on us.
- Nothing here touches the database or parses a command; it is plain state.
"""

from __future__ import annotations

import functools
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import Any, Literal

from relate.config import Settings
from relate.protocol.connection import Connection
from relate.smtpd import replies
from relate.smtpd.command import MailFrom
from relate.smtpd.data import BdatCollector
from relate.smtpd.replies import Reply
from relate.store import AuthResult

Mode = Literal["submission", "mx"]

# RFC 5321 §4.5.3.2: the deadlines of every read, in seconds.
COMMAND_TIMEOUT = 300.0  # §4.5.3.2.7: "at least 5 minutes" awaiting the next command
DATA_BLOCK_TIMEOUT = 180.0  # §4.5.3.2.5: each block of DATA or BDAT content must arrive in 3 minutes
SASL_TIMEOUT = 60.0  # one answer to a 334 challenge (RFC 4954): a client answers at once
# §4.5.3.2.6 (the client waits 10 minutes for the reply after the final dot) bounds how long
# the store may take to commit; the store's own statement timeouts are far shorter.
MAX_ERRORS = 20  # 5xx replies in one session before 421 and disconnect (a client gone astray)
SESSION_CACHE_LIMIT = 256  # sender and recipient look-ups remembered per session


@dataclass(frozen=True)
class Timeouts:
    """Read deadlines (tests shorten them)."""

    command: float = COMMAND_TIMEOUT
    data_block: float = DATA_BLOCK_TIMEOUT
    sasl: float = SASL_TIMEOUT


@dataclass(frozen=True)
class Listening:
    """One listener's fixed policy: what kind of port it is and what it offers.

    What every session of the listener sends alike (the greeting, EHLO's keyword lines) is
    built once here from the settings, which never change while the listener runs.
    """

    settings: Settings
    mode: Mode  # "submission" (587, 465: AUTH, the user's own mail) or "mx" (25: inbound only)
    starttls: bool  # STARTTLS can be offered (plaintext port with a TLS context)
    timeouts: Timeouts = field(default_factory=Timeouts)
    # EHLO's lines after the first, by (STARTTLS offered, AUTH offered); filled by hello.ehlo
    ehlo_lines: dict[tuple[bool, bool], bytes] = field(default_factory=dict, compare=False, repr=False)

    @property
    def hostname(self) -> str:
        return self.settings.smtp.server_name or "localhost"

    @property
    def max_size(self) -> int:
        return self.settings.smtp.max_message_size

    @functools.cached_property
    def greeting(self) -> bytes:
        """The 220 greeting line (RFC 5321 §4.3.1)."""
        return replies.GREETING.format(host=self.hostname)


@dataclass
class Transaction:
    """One mail transaction, from MAIL to the end of its message (or RSET)."""

    mail: MailFrom  # the accepted MAIL command
    recipients: list[str] = field(default_factory=list)  # accepted RCPTs, normalised, in order, no repeats
    # The store addresses those RCPTs deliver to, in order, no repeats: the same as
    # `recipients` except for postmaster, which may stand for several administrators.
    deliver_to: list[str] = field(default_factory=list)
    rcpt_attempts: int = 0  # RCPT commands tried, accepted or not (NEED_RCPT vs NO_VALID_RECIPIENTS)
    bdat: BdatCollector | None = None  # set by the first BDAT; DATA is refused after it (RFC 3030 §2)
    content: bytearray | None = None  # the stored message as it is received: trace header, then content
    failed: Reply | None = None  # a BDAT chunk was refused: later chunks are drained and get this reply


@dataclass
class Session:
    """One client connection's SMTP state. Each field says when it changes."""

    conn: Connection  # the client; its socket becomes the TLS socket after STARTTLS
    listening: Listening  # the listener's policy; never changes
    helo: str | None = None  # argument of the last HELO/EHLO; None before one and after STARTTLS
    esmtp: bool = False  # the last hello was EHLO, so extensions (PIPELINING among them) are in force
    tls_restarted: bool = False  # STARTTLS completed: EHLO must be sent again (RFC 3207 §4.2)
    auth: AuthResult | None = None  # set by a successful AUTH; never reset (AUTH cannot be repeated)
    transaction: Transaction | None = None  # set by MAIL; None after RSET, HELO/EHLO, STARTTLS, end of message
    errors: int = 0  # 5xx replies sent; at MAX_ERRORS the session ends with 421
    messages: int = 0  # messages accepted, for the per-message id in the logs and Received
    closing: bool = False  # QUIT or a fatal error: end after flushing the queued replies
    senders: dict[str, bool] = field(default_factory=dict)  # owns_address answers for this login
    recipients: dict[str, int | None] = field(default_factory=dict)  # recipient look-ups (user id or None)
    _out: list[bytes] = field(default_factory=list)  # replies queued and not yet written

    @property
    def tls(self) -> bool:
        return self.conn.tls

    @property
    def ip(self) -> str:
        return self.conn.peer[0]

    @property
    def auth_offered(self) -> bool:
        """AUTH is offered: on submission, over TLS or where plaintext auth is allowed."""
        return self.listening.mode == "submission" and (self.tls or self.listening.settings.allow_insecure_auth)

    @property
    def message_id(self) -> str:
        """An id for the current message, for Received and the log: connection id and a count."""
        return f"{self.conn.conn_id}.{self.messages + 1}"

    def reply(self, reply: Reply, **values: object) -> None:
        self._out.append(reply.format(**values))

    def reply_bytes(self, data: bytes) -> None:
        self._out.append(data)

    def flush(self, timeout: float | None = None) -> None:
        """Write the queued replies (`timeout` per chunk; default: the connection's)."""
        if self._out:
            data = b"".join(self._out)
            self._out.clear()
            if timeout is None:
                self.conn.write(data)
            else:
                self.conn.write(data, timeout)

    def reset(self) -> None:
        """Forget everything learned on the plaintext connection (after STARTTLS)."""
        self.helo = None
        self.esmtp = False
        self.tls_restarted = True
        self.auth = None
        self.transaction = None
        self.senders.clear()
        self.recipients.clear()


def remember(cache: MutableMapping[str, Any], key: str, value: object) -> None:
    """Store a look-up in a bounded per-session cache."""
    if len(cache) >= SESSION_CACHE_LIMIT:
        cache.clear()
    cache[key] = value
