"""The SMTP daemon's store paths on PostgreSQL: group commit (many deliveries, few statements)
stores exactly what `messages.deliver` stores, keeps UIDs ascending under concurrency and
isolates a bad message; coalesced recipient look-ups answer like `accounts.resolve_recipient`."""

from __future__ import annotations

import gevent
import pytest
from sqlalchemy import insert, select, text

from relate import db
from relate.config import Settings
from relate.db.models import Filter, MessageBody
from relate.message import parse_message
from relate.store import (
    Delivered,
    Envelope,
    NotFound,
    accounts,
    bus,
    groupcommit,
    lookups,
    mailboxes,
    messages,
)

pytestmark = pytest.mark.postgres


def raw_message(subject: str, to: str = "bob@example.test", extra: str = "") -> bytes:
    return (
        f"From: Alice Example <alice@example.test>\r\nTo: Bob <{to}>\r\nCc: carol@other.test\r\n"
        f"Subject: {subject}\r\nDate: Sat, 28 Nov 2026 10:00:00 +0000\r\n{extra}"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHello there, this is the body.\r\n"
    ).encode()


def entries(user_id: int, mailbox: str = "INBOX") -> list[tuple[object, ...]]:
    box = mailboxes.get_mailbox(user_id, mailbox)
    return [
        (e.uid, e.size, sorted(e.flags), e.envelope_from, e.thread_id, messages.raw_message(e.body_id))
        for e in messages.list_entries(user_id, box.id)
    ]


@pytest.fixture
def people(pg_store: Settings) -> dict[str, int]:
    ids = {}
    for name in ("alice", "bob", "carol", "bob2", "carol2", "alice2"):
        domain = "other.test" if name.startswith("carol") else "example.test"
        ids[name] = accounts.create_user(f"{name}@{domain}").id
    for name in ("bob", "bob2"):
        mailboxes.create_mailbox(ids[name], "Newsletters")
        with db.get_engine().begin() as conn:
            conn.execute(insert(Filter).values(
                user_id=ids[name], name="news", position=0, conditions={"subject": "weekly"},
                actions={"moveTo": "Newsletters", "markRead": True, "addLabel": "news", "flag": True},
            ))
    return ids


def test_batch_stores_what_single_delivery_stores(people: dict[str, int]) -> None:
    subjects = ["one", "weekly digest", "three", "four"]
    for subject in subjects:
        raw = raw_message(subject)
        messages.deliver(raw, Envelope("alice@example.test", ("bob@example.test", "carol@other.test"),
                                       people["alice"], "smtp"))
    batch = [
        (raw_message(subject), Envelope("alice2@example.test", ("bob2@example.test", "carol2@other.test"),
                                        people["alice2"], "smtp"), parse_message(raw_message(subject)))
        for subject in subjects
    ]
    # Bodies are content-addressed: the batch finds the bodies the single deliveries stored.
    results = groupcommit.deliver_many(batch)
    for single, batched in (("bob", "bob2"), ("carol", "carol2")):
        for mailbox in ("INBOX", "Newsletters") if single == "bob" else ("INBOX",):
            assert entries(people[batched], mailbox) == [
                (uid, size, flags, "alice2@example.test", thread, raw)
                for uid, size, flags, _, thread, raw in entries(people[single], mailbox)
            ]
    assert [e[1:] for e in entries(people["alice2"], "Sent")] == [
        (size, flags, "alice2@example.test", thread, raw) for _, size, flags, _, thread, raw in entries(people["alice"], "Sent")
    ]
    assert [r.user_ids for r in results] == [tuple(sorted((people["bob2"], people["carol2"])))] * 4
    assert all(r.sent_entry is not None and r.sent_entry[0] == people["alice2"] for r in results)
    assert {len(r.summaries) for r in results} == {3}
    newsletter = mailboxes.get_mailbox(people["bob2"], "Newsletters")
    assert mailboxes.status(people["bob2"], newsletter.id).messages == 1


def test_body_row_matches_single_delivery(people: dict[str, int]) -> None:
    raw = raw_message("columns", extra="Message-ID: <single@example.test>\r\n")  # same length as "batchd"
    messages.deliver(raw, Envelope("alice@example.test", ("bob@example.test",)))
    raw2 = raw.replace(b"<single@", b"<batchd@")
    groupcommit.deliver_many([
        (raw2, Envelope("alice@example.test", ("bob@example.test",)), parse_message(raw2)),
        (raw2, Envelope("alice@example.test", ("carol@other.test",)), parse_message(raw2)),  # same content
    ])
    columns = [c for c in MessageBody.__table__.columns if c.name not in ("id", "sha256", "created_at")]
    with db.get_engine().connect() as conn:
        rows = conn.execute(select(*columns).order_by(MessageBody.id)).all()
    assert len(rows) == 2  # the batch stored its content once for both messages
    single, batched = (dict(row._mapping) for row in rows)
    assert batched.pop("message_id") == "batchd@example.test" and single.pop("message_id") == "single@example.test"
    for row in (single, batched):  # everything but what the Message-ID decides is the same
        row.pop("raw")
        row.pop("thread_id")
        for key in ("messageId", "threadId", "envelope"):
            row["meta"].pop(key)
    assert single == batched


def test_uids_ascend_without_gaps_under_concurrency(people: dict[str, int]) -> None:
    commit = groupcommit.GroupCommit()

    def sender(n: int) -> None:
        for i in range(10):
            raw = raw_message(f"load {n}.{i}", extra=f"Message-ID: <{n}.{i}@example.test>\r\n")
            commit.deliver(raw, Envelope("alice@example.test", ("bob@example.test",), people["alice"], "smtp"))

    gevent.joinall([gevent.spawn(sender, n) for n in range(30)], raise_error=True)
    assert 0 < commit.batches < 300 and commit.delivered <= 300
    for user, mailbox in ((people["bob"], "INBOX"), (people["alice"], "Sent")):
        box = mailboxes.get_mailbox(user, mailbox)
        uids = [e.uid for e in messages.list_entries(user, box.id)]
        assert uids == list(range(1, 301))
        status = mailboxes.status(user, box.id)
        assert status.messages == 300 and status.unseen == (300 if mailbox == "INBOX" else 0)
        assert mailboxes.get_mailbox(user, mailbox).uid_next == 301


def test_message_without_any_local_recipient_stores_nothing(people: dict[str, int]) -> None:
    raw = raw_message("nobody")
    [result] = groupcommit.deliver_many([(raw, Envelope("x@remote.test", ("gone@example.test",)), parse_message(raw))])
    assert result.body_id == 0 and result.entries == () and result.sent_entry is None
    with db.get_engine().connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM message_bodies")).scalar() == 0


def test_a_bad_message_fails_alone(people: dict[str, int]) -> None:
    with db.get_engine().begin() as conn:  # carol's account is broken: no mailboxes
        conn.execute(text("DELETE FROM mailboxes WHERE user_id = :u"), {"u": people["carol"]})
    commit = groupcommit.GroupCommit(workers=1)
    outcomes: dict[str, object] = {}

    def deliver(to: str, n: int) -> None:
        raw = raw_message(f"to {to} {n}", to=to)
        try:
            outcomes[f"{to} {n}"] = commit.deliver(raw, Envelope("x@remote.test", (to,)))
        except NotFound as error:
            outcomes[f"{to} {n}"] = error

    gevent.joinall([gevent.spawn(deliver, to, n) for n in range(3) for to in ("bob@example.test", "carol@other.test")])
    assert sorted(key for key, value in outcomes.items() if isinstance(value, NotFound)) == [
        "carol@other.test 0", "carol@other.test 1", "carol@other.test 2"]
    assert len(entries(people["bob"])) == 3


def test_change_events_carry_the_stored_values(people: dict[str, int]) -> None:
    raw = raw_message("evented")
    with bus.subscribe(people["bob"]) as subscription:
        [result] = groupcommit.deliver_many([(raw, Envelope("alice@example.test", ("bob@example.test",),
                                                            people["alice"], "smtp"), parse_message(raw))])
        change = subscription.get(timeout=5)
    assert change is not None and change.kind == "new" and change.mailbox == "INBOX" and change.origin == "smtp"
    user_id, box_id, uid = result.entries[0]
    assert (change.user_id, change.mailbox_id, change.uids) == (user_id, box_id, (uid,))
    entry = messages.list_entries(user_id, box_id)[0]
    assert change.modseq == entry.modseq
    summary = dict(result.summaries)[people["bob"]]
    assert change.extra == summary and summary["id"] == entry.id and summary["subject"] == "evented"


def test_an_event_too_big_for_notify_is_cut(people: dict[str, int]) -> None:
    name = "\u00e9" * 990  # JSON-escaped: almost 6 KB
    mailboxes.create_mailbox(people["bob"], name)
    with db.get_engine().begin() as conn:
        conn.execute(insert(Filter).values(user_id=people["bob"], name="long", position=1,
                                           conditions={"subject": "long"}, actions={"moveTo": name}))
    raw = raw_message("long " + "\u00e9" * 295)  # and the subject in the summary almost 2 KB more
    with bus.subscribe(people["bob"]) as subscription:
        groupcommit.deliver_many([(raw, Envelope("alice@example.test", ("bob@example.test",)), parse_message(raw))])
        change = subscription.get(timeout=5)
    assert change is not None and change.mailbox == name
    assert change.uids == () and change.extra == {}  # "re-read this mailbox"
    box = mailboxes.get_mailbox(people["bob"], name)
    [entry] = messages.list_entries(people["bob"], box.id)
    assert change.modseq == entry.modseq


@pytest.mark.parametrize(
    "subject",
    ["{notes} {now} %(now)s %s", "'; DROP TABLE entries; --", "back\\slash \"quoted\" $$dollar$$", "\u00fcnicode \u2603"],
    ids=["placeholders", "quote", "escapes", "unicode"],
)
def test_client_text_is_data_never_sql(people: dict[str, int], subject: str) -> None:
    raw = raw_message(subject).replace(b"Hello there", subject.encode())
    envelope = Envelope(f"{subject[:10]}@remote.test".replace(" ", "_"), ("bob@example.test",), people["alice"], "smtp")
    [result] = groupcommit.deliver_many([(raw, envelope, parse_message(raw))])
    assert dict(result.summaries)[people["bob"]]["subject"] == subject
    [stored] = entries(people["bob"])
    assert stored[5] == raw and stored[3] == envelope.mail_from


def test_coalesced_lookups_answer_like_the_store(people: dict[str, int]) -> None:
    accounts.add_address(people["bob"], "bobby@example.test", confirmed=True)
    accounts.add_address(people["bob"], "pending@example.test", confirmed=False)
    questions = ["bob@example.test", "BOBBY@Example.Test", "pending@example.test", "nobody@example.test",
                 "carol@other.test", "bob@remote.test", "not an address", "\"quoted\"@example.test"] * 5
    answers: dict[int, int | None] = {}
    finder = lookups.RecipientLookups()

    def ask(index: int, question: str) -> None:
        answers[index] = finder.resolve(question)

    gevent.joinall([gevent.spawn(ask, i, q) for i, q in enumerate(questions)], raise_error=True)
    assert [answers[i] for i in range(len(questions))] == [accounts.resolve_recipient(q) for q in questions]
    assert answers[0] == people["bob"] and answers[1] == people["bob"] and answers[4] == people["carol"]
    assert finder.queries < len(questions) / 2


def test_lookup_sees_a_change_committed_before_it(people: dict[str, int]) -> None:
    finder = lookups.RecipientLookups()
    assert finder.resolve("late@example.test") is None
    accounts.add_address(people["carol"], "late@example.test", confirmed=True)
    assert finder.resolve("late@example.test") == people["carol"]
    accounts.remove_address("late@example.test")
    assert finder.resolve("late@example.test") is None


def test_remembered_owners_mailboxes_and_filters_are_checked_when_written(people: dict[str, int]) -> None:
    directory = groupcommit._directory
    accounts.add_address(people["bob"], "bobby@example.test", confirmed=True)

    def deliver(subject: str, to: str = "bob@example.test") -> Delivered:
        raw = raw_message(subject, to=to)
        [result] = groupcommit.deliver_many([(raw, Envelope("alice@example.test", (to,), people["alice"], "smtp"),
                                              parse_message(raw))])
        return result

    deliver("first")
    reads, stale = directory.reads, directory.stale
    deliver("second")  # everything remembered: no read, and the guard lets it through
    assert (directory.reads, directory.stale) == (reads, stale)
    # A filter added after the answers were remembered applies to the very next message.
    mailboxes.create_mailbox(people["bob"], "Later")
    with db.get_engine().begin() as conn:
        conn.execute(insert(Filter).values(user_id=people["bob"], name="later", position=5,
                                           conditions={"subject": "later"}, actions={"moveTo": "Later"}))
    deliver("later please")
    assert directory.stale == stale + 1
    assert [e[5] for e in entries(people["bob"], "Later")] == [raw_message("later please")]
    # A renamed mailbox: the filter's target name no longer exists, so INBOX gets it.
    later = mailboxes.get_mailbox(people["bob"], "Later")
    with db.get_engine().begin() as conn:
        conn.execute(text("UPDATE mailboxes SET name = 'Elsewhere' WHERE id = :id"), {"id": later.id})
    deliver("later again")
    assert raw_message("later again") in [e[5] for e in entries(people["bob"], "INBOX")]
    # An address moved to another user since it was remembered goes to its new owner.
    deliver("to bobby", to="bobby@example.test")
    with db.get_engine().begin() as conn:
        conn.execute(text("UPDATE addresses SET user_id = :u WHERE address = 'bobby@example.test'"),
                     {"u": people["bob2"]})
    result = deliver("to bobby again", to="bobby@example.test")
    assert result.user_ids == (people["bob2"],)
    assert [e[5] for e in entries(people["bob2"], "INBOX")] == [raw_message("to bobby again", to="bobby@example.test")]
    # Every message was filed exactly once, the Sent copies included.
    assert len(entries(people["alice"], "Sent")) == 6
