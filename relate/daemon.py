"""Running one protocol daemon as its own process (`python -m relate.smtpd` and friends).

Every daemon starts the same way: read the settings (a bad value is one line naming the
variable, exit 1), exit 0 with a clear line when the protocol is disabled, open the store,
bind its listeners, then serve until SIGTERM/SIGINT and shut down gracefully.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from relate import metrics, store
from relate.config import ConfigError, Settings, load_settings
from relate.protocol.log import setup_logging
from relate.protocol.server import Listener, ServiceGroup
from relate.store import searchindex

log = logging.getLogger("relate.daemon")


def run(protocol: str, listeners: Callable[[Settings], list[Listener]], *, search_indexer: bool = False) -> int:
    """Entry point of one daemon; returns the process exit status. A daemon that stores
    messages runs the search indexer (relate.store.searchindex) with `search_indexer`."""
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"relate-{protocol}: {exc}", file=sys.stderr)
        return 1
    setup_logging(settings.log_level)
    section = {"smtp": "Smtp", "pop3": "Pop3", "imap": "Imap"}[protocol]
    if not getattr(settings, protocol).enabled:
        log.info("%s is disabled (%s__Enabled=false); exiting", protocol.upper(), section)
        return 0
    try:
        store.open_store(settings)
        group = ServiceGroup(settings)
        for listener in listeners(settings):
            group.add(listener)
        group.start()
    except (ConfigError, store.StoreError) as exc:
        print(f"relate-{protocol}: {exc}", file=sys.stderr)
        return 1
    group.install_signal_handlers()  # before anything says the daemon is up
    for name in group.listener_names:
        log.info("%s listening on %s:%d", name, settings.bind_address, group.bound_port(name))
    metrics.start_flusher()
    if search_indexer:
        searchindex.start()
    group.serve_forever()
    searchindex.stop()
    metrics.stop_flusher()
    store.close_store()
    return 0
