"""relate.store.pop3: the INBOX listing with POP3 sizes, raw bodies in batches, sizes written
back, and set-wise \\Seen."""

from __future__ import annotations

import gevent
import pytest
from sqlalchemy import select

from relate import db, store
from relate.db.models import MessageBody
from relate.store import NotFound, events, mailboxes, messages
from relate.store import pop3 as pop3_store
from tests.pop3d.conftest import Account, forget_wire_sizes, make_account
from tests.pop3d.tricky import on_the_wire, tricky_messages
from tests.store.helpers import make_message


def test_inbox_listing_oldest_first_and_exact_bodies(account: Account) -> None:
    raws = [raw for _, raw in tricky_messages(big=False)]
    uids = [account.append(raw) for raw in raws]
    make_account("other@pop.test").deliver(make_message("someone else's"))
    inbox = pop3_store.inbox_listing(account.user_id)
    assert inbox.mailbox_id == mailboxes.get_mailbox(account.user_id, "INBOX").id
    assert [e.uid for e in inbox.entries] == uids
    assert [e.size for e in inbox.entries] == [len(r) for r in raws]
    assert [e.wire_size for e in inbox.entries] == [len(on_the_wire(r)) for r in raws]
    bodies = pop3_store.raw_bodies([e.body_id for e in inbox.entries] + [999_999])
    assert [bodies[e.body_id] for e in inbox.entries] == raws
    assert 999_999 not in bodies


def test_store_wire_sizes_fills_only_what_is_missing(account: Account) -> None:
    uids = [account.deliver(make_message(f"m{i}", body="bare\nline\n" * i)) for i in range(3)]
    bodies = [e.body_id for e in pop3_store.inbox_listing(account.user_id).entries]
    sizes = [e.wire_size for e in pop3_store.inbox_listing(account.user_id).entries]
    forget_wire_sizes(bodies[:2])
    listing = pop3_store.inbox_listing(account.user_id)
    assert [(e.uid, e.wire_size) for e in listing.entries] == [(uids[0], None), (uids[1], None), (uids[2], sizes[2])]
    # The first two are missing; the third is stored (and never rewritten); 999999 is gone.
    assert pop3_store.store_wire_sizes({bodies[0]: sizes[0], bodies[1]: sizes[1], bodies[2]: 1, 999_999: 5}) == 2
    assert [e.wire_size for e in pop3_store.inbox_listing(account.user_id).entries] == sizes
    assert pop3_store.store_wire_sizes({bodies[0]: 1}) == 0


def test_store_wire_sizes_skips_a_locked_body(pg_store: object) -> None:
    """A body another transaction holds (a delivery that found it) is left for a later session,
    without waiting for that transaction."""
    account = make_account()
    account.deliver(make_message("one"))
    account.deliver(make_message("two"))
    bodies = [e.body_id for e in pop3_store.inbox_listing(account.user_id).entries]
    forget_wire_sizes(bodies)
    with db.get_engine().connect() as other, other.begin():
        other.execute(select(MessageBody.id).where(MessageBody.id == bodies[0]).with_for_update(read=True))
        with gevent.Timeout(5):
            assert pop3_store.store_wire_sizes({bodies[0]: 10, bodies[1]: 20}) == 1
    assert [e.wire_size for e in pop3_store.inbox_listing(account.user_id).entries] == [None, 20]


def test_inbox_listing_needs_an_inbox(store: object) -> None:
    with pytest.raises(NotFound):
        pop3_store.inbox_listing(424242)


def test_mark_seen_is_store_flags_set_wise(account: Account) -> None:
    uids = [account.deliver(make_message(f"m{i}")) for i in range(4)]
    inbox = mailboxes.get_mailbox(account.user_id, "INBOX")
    messages.store_flags(account.user_id, inbox.id, [uids[0]], "add", ["\\Seen"])
    before = mailboxes.get_mailbox(account.user_id, "INBOX").highest_modseq
    with store.bus.subscribe(account.user_id) as sub:
        changed = pop3_store.mark_seen(account.user_id, inbox.id, [uids[2], uids[0], uids[1], 12345], origin="s1")
        change = sub.get(5)
    assert changed == [uids[1], uids[2]]
    assert change is not None and change.kind == events.FLAGS
    assert change.uids == (uids[1], uids[2]) and change.origin == "s1"
    after = mailboxes.get_mailbox(account.user_id, "INBOX").highest_modseq
    assert change.modseq == after > before
    entries = {e.uid: e for e in messages.list_entries(account.user_id, inbox.id)}
    assert [uid for uid in uids if entries[uid].seen] == uids[:3]
    assert entries[uids[1]].modseq == entries[uids[2]].modseq == after
    # Nothing left to change: no new MODSEQ, no event.
    assert pop3_store.mark_seen(account.user_id, inbox.id, uids[:3]) == []
    assert mailboxes.get_mailbox(account.user_id, "INBOX").highest_modseq == after
    status = mailboxes.status(account.user_id, inbox.id)
    assert (status.messages, status.unseen) == (4, 1)


def test_mark_seen_only_in_ones_own_mailbox(account: Account) -> None:
    other = make_account("other@pop.test")
    uid = other.deliver(make_message("not yours"))
    theirs = mailboxes.get_mailbox(other.user_id, "INBOX")
    with pytest.raises(NotFound):
        pop3_store.mark_seen(account.user_id, theirs.id, [uid])
    assert other.seen_uids() == []
