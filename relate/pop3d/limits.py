"""Every POP3 limit, with its default and the rule it comes from.

Connections in total and per client address are limited at accept by the shared listener
(`Network__MaxConnections`, `Network__MaxConnectionsPerIp`, relate.protocol.server).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    # RFC 2449 §4 caps a command at 255 octets with CRLF; we allow more so that AUTH PLAIN
    # with an initial response fits for the longest addresses (RFC 5034 §4 lets clients send it).
    max_line: int = 1024
    # The client's answer to an AUTH challenge: base64 of a PLAIN response, with CRLF.
    max_sasl_line: int = 12_290
    # Before login each command must arrive within this many seconds ...
    auth_timeout: float = 60.0
    # ... and the whole AUTHORIZATION state may last this long.
    login_deadline: float = 300.0
    # RFC 1939 §3: the inactivity autologout timer must be at least 10 minutes.
    idle_timeout: float = 600.0
    # Unknown, malformed or wrong-state commands before the connection is closed.
    max_bad_commands: int = 10
    # How long a login waits for the maildrop lock before answering [IN-USE] (RFC 2449 §8.1.1):
    # long enough for a session that has just ended to let go of it.
    lock_wait: float = 1.0
    # Failed logins in one connection before it is closed (the shared throttle also counts them).
    max_auth_failures: int = 3
    # \Seen set by RETR is written in batches: after this many messages ...
    seen_batch: int = 500
    # ... or once the client has been silent this long.
    seen_flush_delay: float = 0.5
    # Messages kept ready to send between STAT/LIST and RETR (the wire form, dot-stuffed).
    max_cached_message: int = 1 << 20  # larger messages are read from the store at RETR
    session_cache_bytes: int = 32 << 20
    # Octets of stored messages read from the store in one query.
    fetch_batch_bytes: int = 4 << 20
