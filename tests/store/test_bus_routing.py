"""The in-process bus offers a change to its user's subscriptions, the catch-all ones, and
(RESYNC to user 0) everyone; closing a subscription removes it from the routing."""

from relate.store import events
from relate.store.events import Bus, Change


def test_a_change_reaches_its_user_and_the_catch_all_only():
    bus = Bus()
    alice, alice2, bob, everyone = bus.subscribe(1), bus.subscribe(1), bus.subscribe(2), bus.subscribe(None)
    bus.publish_local([Change(events.NEW, 1, 10, (5,))])
    assert [c.uids for c in alice.drain()] == [(5,)]
    assert [c.uids for c in alice2.drain()] == [(5,)]
    assert [c.uids for c in everyone.drain()] == [(5,)]
    assert bob.drain() == []


def test_resync_for_everyone_reaches_every_subscription():
    bus = Bus()
    subs = [bus.subscribe(1), bus.subscribe(2), bus.subscribe(None)]
    bus.publish_local([Change(events.RESYNC, 0)])
    assert [[c.kind for c in s.drain()] for s in subs] == [[events.RESYNC]] * 3


def test_a_closed_subscription_gets_nothing_and_the_others_still_do():
    bus = Bus()
    first, second = bus.subscribe(7), bus.subscribe(7)
    first.close()
    first.close()  # twice is harmless
    bus.publish_local([Change(events.FLAGS, 7, 3, (1,)), Change(events.EXPUNGE, 7, 3, (1,))])
    assert first.drain() == []
    assert [c.kind for c in second.drain()] == [events.FLAGS, events.EXPUNGE]
    second.close()
    bus.publish_local([Change(events.NEW, 7, 3, (2,))])
    assert second.drain() == []
