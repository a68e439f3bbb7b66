"""A whole POP3 session with stdlib poplib and a byte-level client: the TRANSACTION commands,
numbering, sizes, UIDL, errors that leave the session going, and both TLS modes."""

from __future__ import annotations

import poplib

import pytest

from relate import metrics
from relate.pop3d.limits import Limits
from relate.pop3d.maildrop import CacheBudget
from tests.pop3d.conftest import Account, Pop3Server, ServerFactory, insecure_context, unstuff
from tests.pop3d.tricky import on_the_wire, tricky_messages
from tests.protocol.conftest import wait_until
from tests.store.helpers import make_message


def fill(account: Account, big: bool = False) -> list[bytes]:
    raws = [raw for _, raw in tricky_messages(big=big)]
    for raw in raws:
        account.append(raw)
    return raws


def test_poplib_downloads_every_tricky_message_over_stls(pop3: Pop3Server, account: Account) -> None:
    raws = fill(account)
    client = pop3.login(account)
    count, total = client.stat()
    assert (count, total) == (len(raws), sum(len(on_the_wire(r)) for r in raws))
    _, listing, _ = client.list()
    assert listing == [f"{i} {len(on_the_wire(r))}".encode() for i, r in enumerate(raws, start=1)]
    for number, raw in enumerate(raws, start=1):
        _, lines, _ = client.retr(number)
        # poplib removes the stuffing and the CRLFs; put the line ends back.
        assert b"".join(line + b"\r\n" for line in lines) == on_the_wire(raw), number
    assert client.quit().startswith(b"+OK")


def test_wire_bytes_sizes_and_stuffing(pop3: Pop3Server, account: Account) -> None:
    raws = fill(account, big=True)
    client = pop3.raw_login(account)
    for number, raw in enumerate(raws, start=1):
        status, body = client.multiline(f"RETR {number}")
        expected = on_the_wire(raw)
        assert status == f"+OK {len(expected)} octets\r\n".encode()
        assert unstuff(body) == expected
        assert client.command(f"LIST {number}") == f"+OK {number} {len(expected)}\r\n".encode()
    client.command("QUIT")


@pytest.mark.parametrize(
    "limits",
    [Limits(session_cache_bytes=0), Limits(fetch_batch_bytes=1, max_cached_message=300)],
    ids=["no-cache", "one-at-a-time"],
)
def test_download_when_little_is_cached(make_server: ServerFactory, account: Account, limits: Limits) -> None:
    raws = fill(account)
    client = make_server(limits).raw_login(account)
    _, head = client.multiline("TOP 4 1")
    assert unstuff(head) == on_the_wire(raws[3]).split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n.leading dot\r\n"
    for number, raw in enumerate(raws, start=1):
        status, body = client.multiline(f"RETR {number}")
        assert status == f"+OK {len(on_the_wire(raw))} octets\r\n".encode()
        assert unstuff(body) == on_the_wire(raw)
    assert client.command("STAT") == f"+OK {len(raws)} {sum(len(on_the_wire(r)) for r in raws)}\r\n".encode()


def test_retr_without_stat_reads_ahead(pop3: Pop3Server, account: Account) -> None:
    raws = fill(account)
    client = pop3.raw_login(account)
    _, uidl = client.multiline("UIDL")  # what a client that tracks UIDs does first
    assert len(uidl.splitlines()) == len(raws)
    for number, raw in reversed(list(enumerate(raws, start=1))):
        status, body = client.multiline(f"RETR {number}")
        assert status == f"+OK {len(on_the_wire(raw))} octets\r\n".encode()
        assert unstuff(body) == on_the_wire(raw)
    assert client.command("LIST 1") == f"+OK 1 {len(on_the_wire(raws[0]))}\r\n".encode()


def test_process_cache_budget() -> None:
    budget = CacheBudget(100)
    assert budget.take(60) and not budget.take(41) and budget.take(40)
    budget.give(100)
    assert budget.used == 0 and budget.take(100)


def test_stored_crlf_message_is_sent_exactly(pop3: Pop3Server, account: Account) -> None:
    raw = make_message("exact", body="line\r\n.dot\r\n")
    account.deliver(raw)
    client = pop3.raw_login(account)
    _, body = client.multiline("RETR 1")
    assert body == raw.replace(b"\r\n.dot", b"\r\n..dot")
    assert unstuff(body) == raw


def test_implicit_tls_with_poplib(pop3: Pop3Server, account: Account) -> None:
    raw = make_message("over 995")
    account.deliver(raw)
    client = pop3.implicit_tls()
    assert "STLS" not in client.capa()
    client.user(account.address)
    client.pass_(account.key)
    assert client.stat() == (1, len(raw))
    _, lines, _ = client.retr(1)
    assert b"".join(line + b"\r\n" for line in lines) == raw
    client.quit()


def test_plain_login_when_insecure_auth_is_allowed(make_server: ServerFactory, account: Account) -> None:
    server = make_server(Tls__AllowInsecureAuth="true")
    account.deliver(make_message("plain"))
    client = server.plain()
    assert {"USER", "SASL", "STLS"} <= set(client.capa())
    client.user(account.address)
    client.pass_(account.key)
    assert client.stat()[0] == 1
    client.quit()


def test_maildrop_is_inbox_at_login_oldest_first(pop3: Pop3Server, account: Account) -> None:
    first = account.deliver(make_message("first"))
    second = account.deliver(make_message("second"))
    client = pop3.raw_login(account)
    account.deliver(make_message("arrives during the session"))
    status, listing = client.multiline("LIST")
    assert status.startswith(b"+OK 2 messages")
    assert [line.split()[0] for line in listing.splitlines()] == [b"1", b"2"]
    assert b"Subject: first" in client.multiline("RETR 1")[1]
    assert b"Subject: second" in client.multiline("RETR 2")[1]
    assert client.command("RETR 3").startswith(b"-ERR")
    _, uidl = client.multiline("UIDL")
    assert [line.split()[1].split(b".")[1] for line in uidl.splitlines()] == [str(first).encode(), str(second).encode()]
    client.command("QUIT")


def test_top(pop3: Pop3Server, account: Account) -> None:
    account.deliver(make_message("top", body="one\r\n.two\r\nthree\r\n"))
    client = pop3.raw_login(account)
    _, head = client.multiline("TOP 1 0")
    assert head.endswith(b"\r\n\r\n") and b"Subject: top" in head and b"one" not in head
    _, two = client.multiline("TOP 1 2")
    assert two.endswith(b"\r\n\r\none\r\n..two\r\n")
    _, everything = client.multiline("TOP 1 100")
    assert everything.endswith(b"three\r\n")
    assert client.command("TOP 1 x").startswith(b"-ERR")
    assert client.command("TOP 1").startswith(b"-ERR")
    client.command("QUIT")
    assert account.seen_uids() == []  # TOP never sets \Seen


def test_retr_sets_seen(pop3: Pop3Server, account: Account) -> None:
    uids = [account.deliver(make_message(f"m{i}")) for i in range(3)]
    retrieved = metrics.pending().get(("pop3", "messages_retrieved"), 0)
    client = pop3.raw_login(account)
    client.multiline("RETR 2")
    # Stored once the client pauses, without waiting for QUIT.
    wait_until(lambda: account.seen_uids() == [uids[1]], timeout=5)
    client.multiline("RETR 3")
    client.command("QUIT")
    assert account.seen_uids() == uids[1:]
    wait_until(lambda: metrics.pending().get(("pop3", "messages_retrieved"), 0) == retrieved + 2)


def test_seen_is_stored_in_batches(make_server: ServerFactory, account: Account) -> None:
    server = make_server(Limits(seen_batch=2, seen_flush_delay=30))
    uids = [account.deliver(make_message(f"m{i}")) for i in range(3)]
    client = server.raw_login(account)
    client.multiline("RETR 1")
    client.command("NOOP")
    assert account.seen_uids() == []
    client.multiline("RETR 2")
    client.command("NOOP")  # reading this command stored the batch of two
    assert account.seen_uids() == uids[:2]
    client.multiline("RETR 3")
    client.close()  # a dropped connection still records what was retrieved
    wait_until(lambda: account.seen_uids() == uids, timeout=5)


def test_dele_rset_and_message_number_errors(pop3: Pop3Server, account: Account) -> None:
    for i in range(3):
        account.deliver(make_message(f"m{i}"))
    client = pop3.raw_login(account)
    assert client.command("DELE 2") == b"+OK message 2 marked for deletion\r\n"
    assert client.command("DELE 2").startswith(b"-ERR")
    assert client.command("RETR 2").startswith(b"-ERR")
    assert client.command("LIST 2").startswith(b"-ERR")
    assert client.command("UIDL 2").startswith(b"-ERR")
    assert client.command("STAT").startswith(b"+OK 2 ")
    _, listing = client.multiline("LIST")
    assert [line.split()[0] for line in listing.splitlines()] == [b"1", b"3"]
    assert client.command("RSET").startswith(b"+OK")
    assert client.command("STAT").startswith(b"+OK 3 ")
    for bad in ("RETR 0", "RETR 4", "RETR x", "RETR", "DELE 99999999999", "LIST 1 2"):
        assert client.command(bad).startswith(b"-ERR"), bad
    assert client.command("NOOP") == b"+OK\r\n"
    assert client.command("QUIT").startswith(b"+OK")
    assert client.at_eof()
    assert len(account.inbox_uids()) == 3


def test_unknown_commands_and_wrong_state(pop3: Pop3Server, account: Account) -> None:
    client = pop3.raw()
    assert client.command("LAST").startswith(b"-ERR")  # fetchmail may try it
    assert client.command("APOP x y").startswith(b"-ERR")
    assert client.command("STAT").startswith(b"-ERR")
    assert client.command("NOOP").startswith(b"-ERR")
    client.login(account)
    assert client.command("LAST").startswith(b"-ERR")
    assert client.command("USER x").startswith(b"-ERR")
    assert client.command("STLS").startswith(b"-ERR")
    assert client.command("STAT").startswith(b"+OK")


def test_uidl_stable_across_sessions_and_servers(make_server: ServerFactory, account: Account) -> None:
    for i in range(3):
        account.deliver(make_message(f"m{i}"))
    first = make_server()
    client = first.raw_login(account)
    _, before = client.multiline("UIDL")
    assert client.command("UIDL 2") == b"+OK 2 " + before.splitlines()[1].split()[1] + b"\r\n"
    client.command("DELE 1")
    client.command("QUIT")
    first.group.stop(0)
    second = make_server()  # a restart, or another replica on the same database
    client = second.raw_login(account)
    _, after = client.multiline("UIDL")
    ids_before = [line.split()[1] for line in before.splitlines()]
    ids_after = [line.split()[1] for line in after.splitlines()]
    assert ids_after == ids_before[1:]
    assert len(set(ids_before)) == 3
    for uid in ids_before:
        assert 1 <= len(uid) <= 70 and all(0x21 <= b <= 0x7E for b in uid)


def test_capa_by_state(pop3: Pop3Server, account: Account) -> None:
    client = pop3.plain()
    before = client.capa()
    assert "STLS" in before and "USER" not in before and "SASL" not in before
    for cap in ("TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"):
        assert cap in before
    assert before["IMPLEMENTATION"] == ["Relate-Mail"]
    client.stls(insecure_context())
    after_tls = client.capa()
    assert after_tls["SASL"] == ["PLAIN"] and "USER" in after_tls and "STLS" not in after_tls
    client.user(account.address)
    client.pass_(account.key)
    logged_in = client.capa()
    assert "USER" not in logged_in and "SASL" not in logged_in and "UIDL" in logged_in


def test_pipelined_commands_are_answered_in_order(pop3: Pop3Server, account: Account) -> None:
    for i in range(3):
        account.deliver(make_message(f"p{i}"))
    client = pop3.raw_login(account)
    client.send(b"STAT\r\nRETR 1\r\nLIST 2\r\nDELE 3\r\nNOOP\r\nQUIT\r\n")
    assert client.line().startswith(b"+OK 3 ")
    assert client.line().endswith(b" octets\r\n") and b"Subject: p0" in client.body()
    assert client.line().startswith(b"+OK 2 ")
    assert client.line().startswith(b"+OK message 3")
    assert client.line() == b"+OK\r\n"
    assert client.line().startswith(b"+OK bye (1 message removed)")
    assert client.at_eof()


def test_empty_maildrop(pop3: Pop3Server, account: Account) -> None:
    client = pop3.login(account)
    assert client.stat() == (0, 0)
    assert client.list()[1] == []
    assert client.uidl()[1] == []
    client.quit()


def test_poplib_error_replies_do_not_end_the_session(pop3: Pop3Server, account: Account) -> None:
    client = pop3.login(account)
    with pytest.raises(poplib.error_proto):
        client.retr(1)
    assert client.noop().startswith(b"+OK")
