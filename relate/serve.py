"""The all-in-one process (`python -m relate`): every enabled service in one gevent process.

It uses the embedded defaults (SQLite under ./data, a self-signed certificate, unprivileged
ports, loopback), migrates the database, makes sure a development user exists with a fresh
API key, prints how to connect, and stops cleanly on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import importlib
import logging
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass

import gevent
import gevent.event
from gevent.pywsgi import WSGIServer

from relate import metrics, store
from relate.config import ConfigError, Settings
from relate.protocol.log import setup_logging
from relate.protocol.server import Listener, ServiceGroup
from relate.store import searchindex

log = logging.getLogger("relate.serve")

DEV_KEY_NAME = "all-in-one"
DEV_KEY_SCOPES = "smtp pop3 imap api:read api:write app"


@dataclass(frozen=True)
class Service:
    name: str  # "smtp", "pop3", "imap"
    module: str  # provides listeners(settings) -> list[Listener]

    def enabled(self, settings: Settings) -> bool:
        return bool(getattr(settings, self.name).enabled)


SERVICES = (
    Service("smtp", "relate.smtpd.service"),
    Service("pop3", "relate.pop3d.service"),
    Service("imap", "relate.imapd.service"),
)


def load_listeners(settings: Settings) -> tuple[list[Listener], list[str]]:
    """Listeners of every enabled protocol service this installation has, and the names of
    the ones it does not have."""
    listeners: list[Listener] = []
    missing: list[str] = []
    for service in SERVICES:
        if not service.enabled(settings):
            log.info("%s is disabled (%s__Enabled=false)", service.name.upper(), service.name.capitalize())
            continue
        try:
            module = importlib.import_module(service.module)
        except ModuleNotFoundError as exc:
            if not exc.name or not service.module.startswith(exc.name):
                raise  # something the service itself imports is missing: a real error
            missing.append(service.name)
            continue
        factory: Callable[[Settings], list[Listener]] = module.listeners
        listeners.extend(factory(settings))
    return listeners, missing


def ensure_dev_user(settings: Settings) -> tuple[str, str] | None:
    """In development mode: the development user and a new API key for it (older all-in-one keys
    are revoked, since a key is shown only once)."""
    if not settings.development:
        return None
    from relate.store import accounts, keys

    user = accounts.ensure_development_user()
    for old in keys.list_keys(user.id):
        if old.name == DEV_KEY_NAME:
            keys.revoke_key(old.id)
    _, key = keys.create_key(user.id, DEV_KEY_NAME, DEV_KEY_SCOPES)
    return user.primary_address, key


def summary(settings: Settings, group: ServiceGroup, api_port: int, dev: tuple[str, str] | None,
            missing: list[str]) -> str:
    host = settings.bind_address if settings.bind_address not in ("0.0.0.0", "::") else "127.0.0.1"
    db = "PostgreSQL" if store.postgres_dsn(settings.database_url) else f"SQLite at {settings.database_url.split('///', 1)[-1]}"
    lines = ["", "Relate Mail is running", f"  database        {db}", f"  web and API     http://{host}:{api_port}/"]

    def port(name: str) -> int | None:
        try:
            return group.bound_port(name)
        except KeyError:
            return None

    rows = [
        ("SMTP submission", [("smtp-submission", "STARTTLS"), ("smtp-submissions", "TLS"), ("smtp-mx", "MX")]),
        ("POP3", [("pop3", "STLS"), ("pop3s", "TLS")]),
        ("IMAP", [("imap", "STARTTLS"), ("imaps", "TLS")]),
    ]
    for label, ports in rows:
        bound = [f"{p} ({mode})" for name, mode in ports if (p := port(name))]
        if bound:
            lines.append(f"  {label:<15} {host}: {', '.join(bound)}")
    if missing:
        lines.append(f"  not in this build: {', '.join(m.upper() for m in missing)}")
    if dev:
        address, key = dev
        lines += [
            f"  user            {address}",
            f"  API key         {key}",
            "                  (the password for SMTP, POP3 and IMAP, and a bearer token for the API)",
        ]
        submission = port("smtp-submission")
        if submission:
            lines.append(
                f"  try             swaks --server {host}:{submission} --tls --auth PLAIN "
                f"--auth-user {address} --auth-password '{key}' --from {address} --to {address}"
            )
    lines.append("Press Ctrl-C to stop.")
    return "\n".join(lines)


def serve(settings: Settings) -> int:
    setup_logging(settings.log_level)
    store.open_store(settings)
    dev = ensure_dev_user(settings)

    listeners, missing = load_listeners(settings)
    group = ServiceGroup(settings)
    for listener in listeners:
        group.add(listener)
    group.start()

    from webapp import create_app

    api = WSGIServer((settings.bind_address, settings.api_port), create_app(settings), log=None,
                     error_log=logging.getLogger("relate.api"))
    try:
        api.start()
    except OSError as exc:
        group.stop(0)
        raise ConfigError(f"Api__Port={settings.api_port}: cannot listen on {settings.bind_address}: {exc.strerror}") from None

    stop = gevent.event.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):  # before the summary says we are up
        gevent.signal_handler(signum, stop.set)
    print(summary(settings, group, api.server_port, dev, missing), flush=True)
    metrics.start_flusher()
    searchindex.start()  # PostgreSQL only: bodies delivered here are indexed after their commit
    stop.wait()
    print("stopping...", file=sys.stderr, flush=True)
    api.stop(timeout=settings.shutdown_grace_seconds)
    group.stop(settings.shutdown_grace_seconds)
    searchindex.stop()
    metrics.stop_flusher()
    store.close_store()
    return 0
