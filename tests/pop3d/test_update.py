"""The UPDATE state (RFC 1939 §6): DELE only marks, QUIT removes exactly the marked messages
in one transaction, nothing else removes anything; every change reaches the change bus."""

from __future__ import annotations

from relate import store
from relate.store import events, messages
from tests.pop3d.conftest import Account, Pop3Server
from tests.protocol.conftest import wait_until
from tests.store.helpers import make_message


def collect(sub: store.Subscription, kind: str, timeout: float = 5.0) -> list[store.Change]:
    """Changes of `kind` that reach the subscription within `timeout` (the first one waits)."""
    found: list[store.Change] = []
    change = sub.get(timeout)
    while change is not None:
        if change.kind == kind:
            found.append(change)
        change = sub.get(0.2)
    return found


def test_quit_removes_marked_messages_in_one_change(pop3: Pop3Server, account: Account) -> None:
    uids = [account.deliver(make_message(f"m{i}")) for i in range(4)]
    with store.bus.subscribe(account.user_id) as sub:
        client = pop3.raw_login(account)
        client.command("DELE 1")
        client.command("DELE 3")
        client.command("DELE 4")
        assert account.inbox_uids() == uids  # marked, not removed
        assert client.command("QUIT") == b"+OK bye (3 messages removed)\r\n"
        assert client.at_eof()
        assert account.inbox_uids() == [uids[1]]
        expunged = collect(sub, events.EXPUNGE)
    assert [c.uids for c in expunged] == [(uids[0], uids[2], uids[3])]
    assert expunged[0].origin  # the session's id, so its own observers can tell


def test_dropped_connection_deletes_nothing(pop3: Pop3Server, account: Account) -> None:
    uids = [account.deliver(make_message(f"m{i}")) for i in range(2)]
    client = pop3.raw_login(account)
    client.command("DELE 1")
    client.command("DELE 2")
    client.close()
    wait_until(lambda: pop3.group.connection_count == 0)
    assert account.inbox_uids() == uids


def test_rset_then_quit_deletes_nothing(pop3: Pop3Server, account: Account) -> None:
    uids = [account.deliver(make_message(f"m{i}")) for i in range(2)]
    client = pop3.raw_login(account)
    client.command("DELE 1")
    client.command("RSET")
    assert client.command("QUIT") == b"+OK bye (0 messages removed)\r\n"
    assert account.inbox_uids() == uids


def test_quit_before_login_changes_nothing(pop3: Pop3Server, account: Account) -> None:
    uid = account.deliver(make_message("kept"))
    client = pop3.raw()
    assert client.command("QUIT") == b"+OK bye\r\n"
    assert client.at_eof()
    assert account.inbox_uids() == [uid]


def test_only_the_snapshot_is_removed(pop3: Pop3Server, account: Account) -> None:
    old = account.deliver(make_message("old"))
    client = pop3.raw_login(account)
    new = account.deliver(make_message("new"))
    client.command("DELE 1")
    client.command("QUIT")
    assert account.inbox_uids() == [new]
    assert old != new


def test_message_removed_elsewhere_during_the_session(pop3: Pop3Server, account: Account) -> None:
    uids = [account.deliver(make_message(f"m{i}")) for i in range(2)]
    client = pop3.raw_login(account)
    client.command("DELE 1")
    client.command("DELE 2")
    inbox = store.mailboxes.get_mailbox(account.user_id, "INBOX")
    messages.expunge(account.user_id, inbox.id, [uids[0]], only_deleted=False)  # e.g. an IMAP client
    assert client.command("QUIT") == b"+OK bye (1 message removed)\r\n"
    assert account.inbox_uids() == []


def test_retr_emits_a_flags_change(pop3: Pop3Server, account: Account) -> None:
    uids = [account.deliver(make_message(f"m{i}")) for i in range(3)]
    with store.bus.subscribe(account.user_id) as sub:
        client = pop3.raw_login(account)
        client.multiline("RETR 1")
        client.multiline("RETR 3")
        client.multiline("RETR 3")  # retrieved twice, flagged once
        client.command("QUIT")
        flagged = collect(sub, events.FLAGS)
    assert sorted(uid for change in flagged for uid in change.uids) == [uids[0], uids[2]]
    assert account.seen_uids() == [uids[0], uids[2]]


def test_retrieved_then_deleted_messages_are_just_removed(pop3: Pop3Server, account: Account) -> None:
    uids = [account.deliver(make_message(f"m{i}")) for i in range(2)]
    client = pop3.raw_login(account)
    client.multiline("RETR 1")
    client.command("DELE 1")
    client.multiline("RETR 2")
    client.command("QUIT")
    assert account.inbox_uids() == [uids[1]]
    assert account.seen_uids() == [uids[1]]


def test_server_shutdown_says_goodbye_and_deletes_nothing(pop3: Pop3Server, account: Account) -> None:
    uid = account.deliver(make_message("m"))
    client = pop3.raw_login(account)
    client.command("DELE 1")
    pop3.group.stop(0)
    assert client.line() == b"-ERR [SYS/TEMP] server shutting down\r\n"
    assert client.at_eof()
    assert account.inbox_uids() == [uid]
