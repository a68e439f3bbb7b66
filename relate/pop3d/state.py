"""The state of one POP3 session, and what every session of a daemon shares."""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field

from relate.config import Settings
from relate.pop3d.limits import Limits
from relate.pop3d.maildrop import Maildrop, Message
from relate.protocol.connection import Connection
from relate.protocol.log import ConnectionLogger
from relate.store.locks import UserLock
from relate.store.types import AuthResult

IMPLEMENTATION = "Relate-Mail"


class State(enum.Enum):
    # RFC 1939 §3. UPDATE is entered and left inside QUIT, so no command ever sees it.
    AUTHORIZATION = "AUTHORIZATION"
    TRANSACTION = "TRANSACTION"


@dataclass(frozen=True)
class Pop3Config:
    """What every session of one daemon shares; built once from the settings."""

    server_name: str  # in the greeting
    allow_insecure_auth: bool  # Tls__AllowInsecureAuth: password login without TLS
    limits: Limits = field(default_factory=Limits)

    @classmethod
    def from_settings(cls, settings: Settings, limits: Limits | None = None) -> Pop3Config:
        return cls(settings.pop3.server_name or "localhost", settings.allow_insecure_auth, limits or Limits())


@dataclass
class Session:
    conn: Connection  # the client; conn.tls tells whether TLS is on
    config: Pop3Config
    state: State = State.AUTHORIZATION  # TRANSACTION from a successful login to the end
    user_name: str | None = None  # set by USER, cleared by PASS (either way) and by STLS
    auth: AuthResult | None = None  # set at login
    lock: UserLock | None = None  # the maildrop lock, held from login to the end of the session
    maildrop: Maildrop | None = None  # set at login
    bad_commands: int = 0  # unknown, malformed and wrong-state commands so far
    auth_failures: int = 0  # failed logins in this connection
    closing: bool = False  # set when the reply being written is the last one
    tls_next: bool = False  # STLS was answered +OK: the handshake follows the reply
    retrieved: Message | None = None  # set by RETR: marked \Seen once the reply is written
    login_by: float = field(init=False)  # monotonic time by which AUTHORIZATION must be over

    def __post_init__(self) -> None:
        self.login_by = time.monotonic() + self.config.limits.login_deadline

    @property
    def log(self) -> ConnectionLogger:
        return self.conn.log

    @property
    def secure(self) -> bool:
        """Whether a password may be sent here: TLS is on, or insecure auth is allowed."""
        return self.conn.tls or self.config.allow_insecure_auth

    @property
    def can_start_tls(self) -> bool:
        return not self.conn.tls and self.conn.ssl_context is not None

    def read_timeout(self) -> float:
        """The deadline for the next command: short before login, the autologout timer after."""
        limits = self.config.limits
        if self.state is State.TRANSACTION:
            return limits.idle_timeout
        return max(0.001, min(limits.auth_timeout, self.login_by - time.monotonic()))

    def drop_maildrop(self) -> None:
        """End of session: store what RETR marked \\Seen, release the lock. Never raises."""
        if self.maildrop is not None:
            self.maildrop.close()
            self.maildrop = None
        if self.lock is not None:
            self.lock.release()
            self.lock = None
