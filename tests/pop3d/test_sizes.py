"""POP3 sizes come from the store: every path that stores a body stores its wire size, STAT
and LIST read no body, and a body stored without a size (before alembic 0009) is read once,
sized and written back in the background. Real sessions over loopback, on SQLite and
PostgreSQL."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import gevent
import pytest
from sqlalchemy import event, select

from relate import db
from relate.config import Settings
from relate.db.models import Entry, MessageBody
from relate.pop3d import sizes
from relate.store import Envelope, bulkload, groupcommit, mailboxes, messages
from relate.store import pop3 as pop3_store
from relate.submit import submit
from tests.pop3d.conftest import Account, Pop3Server, assert_exact_sizes, forget_wire_sizes, make_account
from tests.pop3d.tricky import on_the_wire, tricky_messages
from tests.protocol.conftest import wait_until
from tests.store.helpers import make_message

CASES = [*tricky_messages(big=False), ("empty-message", b"")]
FROM_AFAR = "sender@elsewhere.test"

Store = Callable[[Settings, Account, list[bytes]], list[int]]  # stores the messages; their UIDs


def _inbox(account: Account) -> int:
    return mailboxes.get_mailbox(account.user_id, "INBOX").id


def _uid(account: Account, delivered: Any) -> int:
    return next(uid for user, _, uid in delivered.entries if user == account.user_id)


def smtp_delivery(settings: Settings, account: Account, raws: list[bytes]) -> list[int]:
    """What the SMTP daemon calls, all at once: on PostgreSQL they share group commits."""
    envelope = Envelope(FROM_AFAR, (account.address,))
    jobs = [gevent.spawn(groupcommit.deliver, raw, envelope) for raw in raws]
    gevent.joinall(jobs, raise_error=True)
    return [_uid(account, job.value) for job in jobs]


def single_delivery(settings: Settings, account: Account, raws: list[bytes]) -> list[int]:
    """messages.deliver: SQLite's delivery, and big or retried messages' on PostgreSQL."""
    return [_uid(account, messages.deliver(raw, Envelope(FROM_AFAR, (account.address,)))) for raw in raws]


def imap_append(settings: Settings, account: Account, raws: list[bytes]) -> list[int]:
    """IMAP APPEND and `relate import` (messages.append)."""
    return [messages.append(account.user_id, _inbox(account), raw, origin="imap")[1].uid for raw in raws]


def bulk_load(settings: Settings, account: Account, raws: list[bytes]) -> list[int]:
    first = mailboxes.get_mailbox(account.user_id, "INBOX").uid_next
    bulkload.append_many(account.user_id, _inbox(account), [bulkload.Item(raw) for raw in raws], batch=4)
    return list(range(first, first + len(raws)))


def api_send(settings: Settings, account: Account, raws: list[bytes]) -> list[int]:
    """POST /api/emails/send, from another user of this server."""
    sender = make_account("sender@pop.test")
    return [_uid(account, submit(settings, sender.user_id, raw, sender.address, [account.address]).delivered)
            for raw in raws]


def stored_wire_sizes(account: Account) -> dict[int, int | None]:
    """UID -> message_bodies.wire_size of the account's INBOX."""
    with db.get_engine().connect() as conn:
        rows = conn.execute(
            select(Entry.uid, MessageBody.wire_size).join(MessageBody, MessageBody.id == Entry.body_id)
            .where(Entry.user_id == account.user_id, Entry.mailbox_id == _inbox(account))
        )
        return {int(uid): size for uid, size in rows}


@pytest.mark.parametrize("store_them", [smtp_delivery, single_delivery, imap_append, bulk_load, api_send],
                         ids=lambda f: f.__name__.replace("_", "-"))
def test_every_insert_path_stores_the_pop3_size(store: Settings, pop3: Pop3Server, account: Account,
                                                 store_them: Store) -> None:
    raws = [raw for _, raw in CASES]
    uids = store_them(store, account, raws)
    assert stored_wire_sizes(account) == {uid: len(on_the_wire(raw)) for uid, raw in zip(uids, raws, strict=True)}
    in_uid_order = [raw for _, raw in sorted(zip(uids, raws, strict=True))]
    client = pop3.raw_login(account)
    assert_exact_sizes(client, in_uid_order)
    assert client.command("QUIT").startswith(b"+OK")


READS_RAW = re.compile(r"\s*SELECT\b.*\braw\b.*\bFROM message_bodies\b", re.DOTALL | re.IGNORECASE)


@dataclass
class BodyReads:
    """Statements through the store's engine that select message_bodies.raw (the POP3 daemon
    runs in this process, so its reads go through the same engine)."""

    statements: list[str] = field(default_factory=list)

    def record(self, conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if READS_RAW.match(statement):
            self.statements.append(statement)

    def take(self) -> int:
        count, self.statements = len(self.statements), []
        return count


@pytest.fixture
def body_reads(store: Settings) -> Iterator[BodyReads]:
    reads = BodyReads()
    engine = db.get_engine()
    event.listen(engine, "before_cursor_execute", reads.record)
    yield reads
    event.remove(engine, "before_cursor_execute", reads.record)


def test_stat_list_and_uidl_read_no_body(pop3: Pop3Server, account: Account, body_reads: BodyReads) -> None:
    raws = [raw for _, raw in CASES]
    for raw in raws:
        account.deliver(raw)
    client = pop3.raw_login(account)
    sent = [on_the_wire(raw) for raw in raws]
    assert client.command("STAT") == f"+OK {len(sent)} {sum(map(len, sent))}\r\n".encode()
    _, listing = client.multiline("LIST")
    assert listing.splitlines()[1] == f"2 {len(sent[1])}".encode()
    assert client.command("LIST 3") == f"+OK 3 {len(sent[2])}\r\n".encode()
    client.multiline("UIDL")
    assert body_reads.take() == 0
    assert client.multiline("RETR 2")[1]  # the hook does see the daemon read a body
    assert body_reads.take() >= 1
    assert client.command("QUIT").startswith(b"+OK")


def test_sizes_not_stored_are_read_once_and_written_back(pop3: Pop3Server, account: Account,
                                                         body_reads: BodyReads) -> None:
    raws = [raw for _, raw in CASES]
    for raw in raws:
        account.deliver(raw)
    entries = messages.list_entries(account.user_id, _inbox(account))
    forget_wire_sizes([e.body_id for e in entries[::2]])
    client = pop3.raw_login(account)
    assert_exact_sizes(client, raws)
    assert client.command("QUIT").startswith(b"+OK")
    assert body_reads.take() >= 1
    wait_until(lambda: sizes.writer.idle)
    assert stored_wire_sizes(account) == {e.uid: len(on_the_wire(raw)) for e, raw in zip(entries, raws, strict=True)}

    client = pop3.raw_login(account)  # the next poll: every size is stored now
    sent = [on_the_wire(raw) for raw in raws]
    assert client.command("STAT") == f"+OK {len(sent)} {sum(map(len, sent))}\r\n".encode()
    client.multiline("LIST")
    assert body_reads.take() == 0
    assert client.command("QUIT").startswith(b"+OK")


def test_size_writer_keeps_a_bounded_queue(account: Account) -> None:
    for i in range(5):
        account.deliver(make_message(f"m{i}", body="bare\nlines\n" * i))
    listed = pop3_store.inbox_listing(account.user_id).entries
    forget_wire_sizes([e.body_id for e in listed])
    writer = sizes.SizeWriter(batch=2, max_pending=3)
    writer.add({e.body_id: e.wire_size or 0 for e in listed})  # room for the first three only
    assert len(writer.pending) == 3
    wait_until(lambda: writer.idle)
    assert writer.written == 3
    assert [e.wire_size for e in pop3_store.inbox_listing(account.user_id).entries] == [
        *(e.wire_size for e in listed[:3]), None, None]
