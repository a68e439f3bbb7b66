"""Two sessions on one mailbox, and IDLE pushing what other sessions and processes do.

RFC 9051 §7.5.1: EXPUNGE is never sent during FETCH, STORE or SEARCH; the view of a session
changes only at the points the RFC allows. IDLE reports mail delivered by any process
within a second (the change bus: in-process on SQLite, LISTEN/NOTIFY on PostgreSQL).
"""

from __future__ import annotations

import os
import smtplib
import subprocess
import sys
import time
from pathlib import Path

import gevent
import pytest

from relate.protocol.server import ServiceGroup
from tests.imapd.conftest import Account, ImapServer, RawClient, simple_message

PUSH_DEADLINE = 1.0  # seconds from commit to the untagged response (the bar)
ROOT = Path(__file__).resolve().parents[2]


def lines(reply: list[bytes]) -> list[str]:
    return [line.decode().rstrip("\r\n") for line in reply]


def session(server: ImapServer, account: Account, mailbox: str = "INBOX") -> RawClient:
    client = server.raw(tls=True)
    client.login(account)
    assert client.command(f"s SELECT {mailbox}")[-1].startswith(b"s OK")
    return client


def idle(client: RawClient) -> None:
    client.send(b"i IDLE\r\n")
    assert client.line() == b"+ idling\r\n"


def line_within(client: RawClient, seconds: float) -> bytes:
    with gevent.Timeout(seconds, AssertionError(f"nothing pushed within {seconds}s")):
        return client.line()


def test_other_sessions_changes_show_at_noop(server: ImapServer, account: Account) -> None:
    account.append()
    a, b = session(server, account), session(server, account)
    a.send(b"x APPEND INBOX {%d+}\r\n" % len(simple_message()) + simple_message() + b"\r\n")
    assert lines(a.until(b"x"))[0] == "* 2 EXISTS"
    a.command("y STORE 1 +FLAGS.SILENT (\\Flagged)")
    # A selected first, so A, not B, was shown both messages as \\Recent (RFC 3501 §2.3.2).
    assert lines(b.command("n NOOP")) == ["* 2 EXISTS", "* 0 RECENT", "* 1 FETCH (FLAGS (\\Flagged))", "n OK NOOP completed"]


def test_expunge_is_held_back_during_fetch_store_search(server: ImapServer, account: Account) -> None:
    for _ in range(4):
        account.append()
    a, b = session(server, account), session(server, account)
    a.command("d STORE 2 +FLAGS.SILENT (\\Deleted)")
    assert lines(a.command("e EXPUNGE"))[0] == "* 2 EXPUNGE"
    # B still numbers the messages 1..4 and can fetch the expunged one's metadata.
    reply = lines(b.command("f FETCH 1:4 (UID)"))
    assert reply[:4] == [f"* {n} FETCH (UID {n})" for n in (1, 2, 3, 4)]
    assert not any("EXPUNGE" in line for line in reply)
    assert not any("EXPUNGE" in line for line in lines(b.command("g STORE 4 +FLAGS (\\Seen)")))
    reply = lines(b.command("h SEARCH ALL"))
    assert reply[0] == "* SEARCH 1 2 3 4" and not any("EXPUNGE" in line for line in reply)
    # A UID command may report it, and NOOP does.
    reply = lines(b.command("j UID SEARCH UID 3"))
    assert reply == ["* SEARCH 3", "* 2 EXPUNGE", "j OK UID SEARCH completed"]
    assert lines(b.command("k FETCH 1:* (UID)"))[:3] == ["* 1 FETCH (UID 1)", "* 2 FETCH (UID 3)", "* 3 FETCH (UID 4)"]


def test_both_sessions_expunging_the_same_message(server: ImapServer, account: Account) -> None:
    account.append(flags=("\\Deleted",))
    account.append()
    a, b = session(server, account), session(server, account)
    assert lines(a.command("x EXPUNGE"))[0] == "* 1 EXPUNGE"
    assert lines(b.command("y EXPUNGE"))[0] == "* 1 EXPUNGE"  # reported, though B removed nothing
    assert account.uids() == [2]


def test_flag_changes_from_another_session_never_lose_updates(server: ImapServer, account: Account) -> None:
    account.append()
    a, b = session(server, account), session(server, account)
    a.command("x STORE 1 +FLAGS (\\Answered)")
    b.command("y STORE 1 -FLAGS (\\Seen)")
    assert account.flags()[1] == frozenset({"\\Answered"})
    assert lines(b.command("z FETCH 1 FLAGS")) == ["* 1 FETCH (FLAGS (\\Answered))", "z OK FETCH completed"]


def test_idle_pushes_delivery_flags_and_expunge(server: ImapServer, account: Account) -> None:
    account.append()
    watcher = session(server, account)
    other = session(server, account)
    idle(watcher)
    start = time.monotonic()
    gevent.spawn(account.deliver)
    assert line_within(watcher, PUSH_DEADLINE) == b"* 2 EXISTS\r\n"
    assert time.monotonic() - start < PUSH_DEADLINE
    assert watcher.line() == b"* 2 RECENT\r\n"
    other.command("f STORE 1 +FLAGS.SILENT (\\Flagged)")
    assert line_within(watcher, PUSH_DEADLINE).startswith(b"* 1 FETCH (FLAGS (\\Flagged")
    other.command("g STORE 1 +FLAGS.SILENT (\\Deleted)")
    line_within(watcher, PUSH_DEADLINE)
    other.command("h EXPUNGE")
    assert line_within(watcher, PUSH_DEADLINE) == b"* 1 EXPUNGE\r\n"
    watcher.send(b"DONE\r\n")
    assert watcher.line() == b"i OK IDLE terminated\r\n"
    assert watcher.command("n NOOP") == [b"n OK NOOP completed\r\n"]


def test_idle_needs_done(server: ImapServer, account: Account) -> None:
    client = session(server, account)
    idle(client)
    client.send(b"a NOOP\r\n")
    assert client.line().startswith(b"i BAD")


def test_idle_without_a_selected_mailbox(server: ImapServer, account: Account) -> None:
    client = server.raw(tls=True)
    client.login(account)
    idle(client)
    client.send(b"DONE\r\n")
    assert client.line() == b"i OK IDLE terminated\r\n"


def test_deleting_the_selected_mailbox_elsewhere_ends_the_session(server: ImapServer, account: Account) -> None:
    client = server.raw(tls=True)
    client.login(account)
    client.command("a CREATE Doomed")
    client.command("b SELECT Doomed")
    idle(client)
    other = server.raw(tls=True)
    other.login(account)
    other.command("c DELETE Doomed")
    assert line_within(client, PUSH_DEADLINE).startswith(b"* BYE")


def test_shutdown_says_bye_to_idling_clients(server: ImapServer, account: Account) -> None:
    selected = session(server, account)
    idle(selected)
    unselected = server.raw(tls=True)
    unselected.login(account)
    idle(unselected)
    stopper = gevent.spawn(server.group.stop, 5)
    assert line_within(selected, 2.0) == b"* BYE server shutting down\r\n"
    assert line_within(unselected, 2.0) == b"* BYE server shutting down\r\n"
    stopper.join(timeout=5)
    assert selected.at_eof() and unselected.at_eof()


def test_idle_pushes_mail_received_over_smtp(server: ImapServer, account: Account) -> None:
    from relate.smtpd.service import MX, listeners

    smtp_group = ServiceGroup(server.settings, server.group._ssl_context)
    for listener in listeners(server.settings, ports={MX: 0}):
        smtp_group.add(listener)
    smtp_group.start()
    try:
        client = session(server, account)
        idle(client)

        def send() -> None:
            with smtplib.SMTP("127.0.0.1", smtp_group.bound_port(MX), timeout=10) as smtp:
                smtp.sendmail("carol@elsewhere.test", [account.address], simple_message("over smtp"))

        sender = gevent.spawn(send)
        with gevent.Timeout(10):
            sender.join()
        assert sender.exception is None, sender.exception
        assert line_within(client, PUSH_DEADLINE) == b"* 1 EXISTS\r\n"
    finally:
        smtp_group.stop(grace=1)


@pytest.mark.postgres
def test_idle_pushes_mail_delivered_by_another_process(server: ImapServer, account: Account) -> None:
    url = server.settings.database_url
    if not url.startswith("postgresql"):
        pytest.skip("other processes reach this one through PostgreSQL LISTEN/NOTIFY only")
    client = session(server, account)
    idle(client)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    worker = subprocess.Popen(
        [sys.executable, "-m", "tests.store.deliver_worker", url, account.address, "1", "push"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    # The worker needs a few seconds to start; measure from its commit (when it prints).
    out, err = worker.communicate(timeout=60)
    committed = time.monotonic()
    assert worker.returncode == 0, err
    assert out.split() == [b"1"]
    line = line_within(client, PUSH_DEADLINE + 1.0)
    assert line == b"* 1 EXISTS\r\n"
    assert time.monotonic() - committed < PUSH_DEADLINE
