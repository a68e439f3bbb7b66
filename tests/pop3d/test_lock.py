"""The maildrop lock (RFC 1939 §8): one POP3 session per user across sessions, processes and
hosts; a dropped connection or a dead process releases it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from relate.config import Settings
from tests.pop3d.conftest import (
    Account,
    Daemon,
    Pop3Server,
    RawClient,
    make_account,
    start_server,
    stop_server,
)
from tests.protocol.conftest import wait_until
from tests.store.helpers import make_message

IN_USE = b"-ERR [IN-USE] maildrop already locked by another POP3 session\r\n"


def try_login(client: RawClient, account: Account) -> bytes:
    client.command(f"USER {account.address}")
    return client.command(f"PASS {account.key}")


def test_second_session_gets_in_use(pop3: Pop3Server, account: Account) -> None:
    account.deliver(make_message("locked"))
    first = pop3.raw_login(account)
    second = pop3.raw()
    assert try_login(second, account) == IN_USE
    assert second.command("STAT").startswith(b"-ERR")  # still in AUTHORIZATION
    assert first.command("STAT").startswith(b"+OK 1 ")  # the holder is undisturbed
    other = make_account("other@pop.test")
    pop3.raw_login(other).command("QUIT")  # other users are not affected
    first.command("QUIT")
    assert try_login(second, account).startswith(b"+OK")


def test_reconnecting_right_after_quit_succeeds(pop3: Pop3Server, account: Account) -> None:
    for _ in range(10):
        client = pop3.raw_login(account)
        assert client.command("QUIT").startswith(b"+OK")  # the lock is given back before this


def test_dropped_connection_releases_the_lock(pop3: Pop3Server, account: Account) -> None:
    first = pop3.raw_login(account)
    first.close()  # no QUIT: the client just goes away
    client = pop3.raw()

    def can_login() -> bool:
        return try_login(client, account).startswith(b"+OK")

    wait_until(can_login, timeout=5)


def test_lock_spans_processes(pg_store: Settings, tmp_path: Path, daemons: Callable[..., Daemon]) -> None:
    account = make_account()
    account.deliver(make_message("shared"))
    daemon = daemons(pg_store.database_url, tmp_path / "other-process")
    here = start_server(pg_store.database_url, tmp_path)
    try:
        check_lock_between(here, daemon, account)
    finally:
        stop_server(here)


def check_lock_between(here: Pop3Server, daemon: Daemon, account: Account) -> None:
    there = RawClient.open(daemon.port)
    assert there.line().startswith(b"+OK")
    there.command("STLS")
    there.start_tls()
    there.login(account)
    assert there.command("STAT").startswith(b"+OK 1 ")
    _, uidl_there = there.multiline("UIDL")
    assert try_login(here.raw(), account) == IN_USE

    there.command("QUIT")
    local = here.raw_login(account)
    assert local.multiline("UIDL")[1] == uidl_there  # the same UIDL from another replica
    remote = RawClient.open(daemon.tls_port, tls=True)
    remote.line()
    assert try_login(remote, account) == IN_USE
    local.command("QUIT")

    # A process that dies holding the lock releases it: PostgreSQL drops its session.
    holder = RawClient.open(daemon.tls_port, tls=True)
    holder.line()
    holder.login(account)
    assert try_login(here.raw(), account) == IN_USE
    daemon.kill()
    client = here.raw()
    wait_until(lambda: try_login(client, account).startswith(b"+OK"), timeout=10)
