"""A session's view takes complete change events as they are, without reading the store.

A complete change (relate.store.events.Change.complete) is the whole of the write that spent
its MODSEQ. The one right after the view's MODSEQ is applied; one at or below it is already
in the view; after a gap, or for an incomplete change, the next refresh reads the store. Our
own writes move the view past themselves, or wait above a gap for the changes below them.
"""

from __future__ import annotations

import datetime as dt
import imaplib
import re
import time

import pytest

from relate.imapd.selected import SelectedMailbox
from relate.imapd.state import Enabled
from relate.store import events
from relate.store import messages as store_messages
from relate.store.types import EntryInfo, MailboxInfo
from tests.imapd.conftest import Account, ImapServer, simple_message

WHEN = dt.datetime(2026, 1, 5, 9, 30, tzinfo=dt.UTC)
BOX = MailboxInfo(id=7, user_id=1, name="INBOX", special_use=None, uid_validity=99, uid_next=4, highest_modseq=10,
                  subscribed=True)


def entry(uid: int, modseq: int, flags: frozenset[str] = frozenset()) -> EntryInfo:
    return EntryInfo(id=100 + uid, mailbox_id=BOX.id, uid=uid, modseq=modseq, body_id=200 + uid, size=1000 + uid,
                     internal_date=WHEN, flags=flags)


def view(*, condstore: bool = False) -> SelectedMailbox:
    subscription = events.Subscription(events.Bus(), BOX.user_id, 100)
    return SelectedMailbox(BOX.user_id, BOX, [entry(1, 5), entry(2, 8), entry(3, 10)], readonly=False,
                           enabled=Enabled(condstore=condstore, rev2=True), subscription=subscription)


def flags_change(modseq: int, *updates: tuple[int, int, list[str]], complete: bool = True) -> events.Change:
    """FLAGS as the STORE statement writes it: [uid, flag bits (seen 1, answered 2, flagged 4,
    deleted 8, draft 16), keywords]."""
    return events.Change(events.FLAGS, BOX.user_id, BOX.id, tuple(u[0] for u in updates), modseq, "INBOX",
                         entries=tuple(list(u) for u in updates), complete=complete)


def new_change(modseq: int, uid: int) -> events.Change:
    row = [100 + uid, uid, 200 + uid, 1000 + uid, WHEN.isoformat(), 1, ["$Work"], "t1", "carol@elsewhere.test"]
    return events.Change(events.NEW, BOX.user_id, BOX.id, (uid,), modseq, "INBOX", entries=(row,), complete=True)


def expunge_change(modseq: int, *uids: int) -> events.Change:
    return events.Change(events.EXPUNGE, BOX.user_id, BOX.id, uids, modseq, "INBOX", complete=True)


def test_the_next_changes_are_applied_without_a_read() -> None:
    v = view(condstore=True)
    v.note(flags_change(11, (2, 4, ["$Label"])))
    v.note(new_change(12, 4))
    v.note(expunge_change(13, 1))
    assert not v.dirty and v.modseq == 13
    assert v.entries[1].flags == {"\\Flagged", "$Label"} and v.entries[1].modseq == 11
    assert v.entries[3] == EntryInfo(id=104, mailbox_id=BOX.id, uid=4, modseq=12, body_id=204, size=1004,
                                     internal_date=WHEN, flags=frozenset({"\\Seen", "$Work"}), thread_id="t1",
                                     envelope_from="carol@elsewhere.test")
    assert [line.decode().rstrip() for line in v.report(allow_expunge=True)] == [
        "* 1 EXPUNGE",
        "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Work)",
        "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Work \\*)] flags the client may "
        "change permanently",
        "* 3 EXISTS",
        "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Label $Work)",
        "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Label $Work \\*)] flags the client may "
        "change permanently",
        "* 1 FETCH (FLAGS (\\Flagged $Label) UID 2 MODSEQ (11))",
    ]


def test_a_change_already_in_the_view_is_ignored() -> None:
    v = view()
    v.note(flags_change(9, (2, 1, [])))  # older than the snapshot the view was read in
    v.note(flags_change(10, (3, 1, [])))
    assert not v.dirty and v.modseq == 10 and v.entries[1].flags == frozenset()


@pytest.mark.parametrize("change", [
    flags_change(12, (2, 1, [])),  # a gap: 11 was not seen
    flags_change(11, (2, 1, []), complete=False),  # the short form, too long for one NOTIFY
    events.Change(events.NEW, BOX.user_id, BOX.id, (), 11, "INBOX"),  # a delivery that names no entries
    flags_change(11, (2, "x", [])),  # malformed
    events.Change(events.NEW, BOX.user_id, BOX.id, (4,), 11, "INBOX", entries=([1, 2],), complete=True),
])
def test_anything_else_makes_the_next_refresh_read(change: events.Change) -> None:
    v = view()
    v.note(change)
    assert v.dirty and v.modseq == 10 and v.entries[1].flags == frozenset()


def test_after_resync_nothing_is_applied_until_the_read() -> None:
    v = view()
    v.note(events.Change(events.RESYNC, 0))
    v.note(flags_change(11, (2, 1, [])))
    assert v.resync and v.modseq == 10 and v.entries[1].flags == frozenset()


def test_our_own_write_moves_the_view_past_it() -> None:
    v = view()
    v.record([entry(2, 11, frozenset({"\\Seen"}))])
    v.wrote(11)
    assert v.modseq == 11 and not v.dirty
    v.note(flags_change(11, (2, 1, [])))  # its own event, later
    assert v.modseq == 11 and not v.dirty


def test_our_write_above_a_gap_waits_for_the_changes_below_it() -> None:
    v = view()
    # Another session set \Answered on 2 with MODSEQ 11; ours set \Seen \Flagged on 2 and 3
    # with 12. Our write is answered before the other's event arrives.
    v.record([entry(2, 12, frozenset({"\\Seen", "\\Flagged"})), entry(3, 12, frozenset({"\\Seen", "\\Flagged"}))])
    v.wrote(12)
    assert v.modseq == 10 and not v.dirty and v.ahead == {12}
    v.note(flags_change(12, (2, 5, []), (3, 5, [])))  # our own event: already in the view
    v.note(flags_change(11, (2, 2, []), (1, 2, [])))
    assert v.modseq == 12 and not v.dirty and not v.ahead
    assert v.entries[0].flags == {"\\Answered"} and v.entries[0].modseq == 11
    assert v.entries[1].flags == {"\\Seen", "\\Flagged"} and v.entries[1].modseq == 12  # ours is newer


def test_our_write_takes_what_is_queued_first() -> None:
    v = view()
    v.subscription.offer(flags_change(11, (1, 4, [])))
    v.record([entry(2, 12, frozenset({"\\Seen"}))])
    v.wrote(12)
    assert v.modseq == 12 and not v.ahead and v.entries[0].flags == {"\\Flagged"}


def test_our_append_above_a_gap_is_read_in_order() -> None:
    v = view()
    v.wrote(12, [entry(5, 12)])  # another session's message (UID 4, MODSEQ 11) is not seen yet
    assert v.dirty and v.uids == [1, 2, 3]


@pytest.mark.postgres
def test_other_sessions_writes_reach_a_view_without_a_read(server: ImapServer, account: Account,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    if not server.settings.database_url.startswith("postgresql"):
        pytest.skip("complete change events are written by PostgreSQL's one-message writes")
    for _ in range(3):
        account.append()
    reads: list[int] = []
    real = store_messages.mailbox_changes

    def counted(user_id: int, mailbox_id: int, modseq: int) -> store_messages.MailboxChanges | None:
        reads.append(modseq)
        return real(user_id, mailbox_id, modseq)

    monkeypatch.setattr(store_messages, "mailbox_changes", counted)
    a, b = server.imaplib(), server.imaplib()
    a.select("INBOX")
    b.select("INBOX")
    b.store("1", "+FLAGS", "(\\Flagged $Work)")
    b.append("INBOX", "(\\Seen)", None, simple_message("fourth"))
    b.store("2", "+FLAGS", "(\\Deleted)")
    b.expunge()
    b.store("1", "-FLAGS", "($Work)")
    # a's view takes b's writes from their events; nothing is read back from the store.
    expected = {1: "\\Flagged", 3: "", 4: "\\Seen"}
    deadline = time.monotonic() + 5
    while (seen := _uid_flags(a)) != expected and time.monotonic() < deadline:
        time.sleep(0.02)
    assert seen == expected
    assert reads == []
    assert account.flags() == {1: {"\\Flagged"}, 3: frozenset(), 4: {"\\Seen"}}


def _uid_flags(client: imaplib.IMAP4) -> dict[int, str]:
    """UID -> flags but \\Recent after a UID FETCH of all (later responses, unsolicited ones too, win)."""
    typ, data = client.uid("FETCH", "1:*", "(FLAGS)")
    assert typ == "OK"
    out: dict[int, str] = {}
    for item in data:
        match = re.search(rb"UID (\d+)", item) if isinstance(item, bytes) else None
        flags = re.search(rb"FLAGS \(([^)]*)\)", item) if isinstance(item, bytes) else None
        if match and flags:
            out[int(match.group(1))] = " ".join(f for f in flags.group(1).decode().split() if f != "\\Recent")
    return out


def test_imaplib_sees_changes_on_both_backends(server: ImapServer, account: Account) -> None:
    """The same sequence on SQLite (changes read from the store) and PostgreSQL (applied)."""
    for _ in range(2):
        account.append()
    a, b = server.imaplib(), server.imaplib()
    a.select("INBOX")
    b.select("INBOX")
    b.store("2", "+FLAGS", "(\\Answered)")
    b.append("INBOX", None, None, simple_message("third"))
    b.store("1", "+FLAGS", "(\\Deleted)")
    b.expunge()
    a.noop()  # a poll: reads the store on both
    assert _uid_flags(a) == {2: "\\Answered", 3: ""}
    _, data = a.fetch("1:*", "(UID)")
    assert [d.decode() for d in data] == ["1 (UID 2)", "2 (UID 3)"]
