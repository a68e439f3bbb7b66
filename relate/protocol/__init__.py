"""What the SMTP, POP3 and IMAP daemons share: listeners, TLS, the line reader, SASL, logging.

- `server`: ServiceGroup and Listener; one greenlet per connection, limits at accept,
  graceful stop.
- `connection`: Connection, the bounded line reader and writer with STARTTLS; the
  ProtocolIOError kinds every session handles.
- `tls`: server contexts from the configured files or a generated self-signed certificate.
- `sasl`: PLAIN and LOGIN decoding, pure.
- `log`: setup_logging, the per-connection logger and credential redaction.

Nothing here knows about a particular protocol's replies: callers pass them in (`refuse`).
"""

from relate.protocol.connection import (
    Connection,
    ConnectionClosed,
    Deadline,
    LineTooLong,
    ProtocolIOError,
    ServerShutdown,
    Timeout,
)
from relate.protocol.server import Listener, ServiceGroup

__all__ = [
    "Connection",
    "ConnectionClosed",
    "Deadline",
    "LineTooLong",
    "Listener",
    "ProtocolIOError",
    "ServerShutdown",
    "ServiceGroup",
    "Timeout",
]
