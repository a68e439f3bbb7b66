import pytest

from relate.store import events, throttle
from relate.store.events import Change


def test_throttle_delays_then_blocks_and_success_clears_login(store):
    ip, login = "192.0.2.7", "alice@example.com"
    assert throttle.check(ip, login) == throttle.Verdict(0.0, False)
    for _ in range(throttle.FREE_FAILURES):
        throttle.record_failure(ip, login)
    first = throttle.check(ip, login)
    assert first.delay > 0 and not first.blocked
    for _ in range(throttle.BLOCK_FAILURES_PER_LOGIN - throttle.FREE_FAILURES):
        throttle.record_failure(ip, login)
    verdict = throttle.check(ip, login)
    assert verdict.blocked and verdict.delay == throttle.MAX_DELAY
    # Another address from another IP is not affected by this login's failures.
    assert throttle.check("198.51.100.1", "bob@example.com") == throttle.Verdict(0.0, False)
    throttle.record_success(login)
    after = throttle.check("198.51.100.1", login)
    assert not after.blocked and after.delay == 0


def test_throttle_counts_per_ip_across_logins(store):
    ip = "192.0.2.8"
    for n in range(throttle.BLOCK_FAILURES_PER_IP):
        throttle.record_failure(ip, f"user{n}@example.com")
    assert throttle.check(ip, "someone@example.com").blocked
    assert throttle.purge() == 0  # nothing is older than the window yet


def test_subscription_overflow_becomes_one_resync():
    sub = events.Subscription(events.bus, 5, maxsize=3)
    for uid in range(10):
        sub.offer(Change(events.NEW, 5, 1, (uid,)))
    got = sub.drain()
    assert [c.kind for c in got][-1] == events.RESYNC
    assert len(got) <= 3


def test_subscription_filters_other_users():
    sub = events.Subscription(events.bus, 5, maxsize=10)
    sub.offer(Change(events.NEW, 6, 1, (1,)))
    sub.offer(Change(events.RESYNC, 0))
    assert [c.kind for c in sub.drain()] == [events.RESYNC]


@pytest.mark.parametrize(
    "change",
    [
        Change(events.NEW, 1, 2, (1, 2, 3, 7), 9, "INBOX", origin="c1", extra={"subject": "Hi"}),
        Change(events.MAILBOX_RENAMED, 1, 2, mailbox="B", old_name="A"),
        Change(events.RESYNC, 0),
    ],
    ids=["new", "rename", "resync"],
)
def test_change_json_round_trip(change):
    assert Change.from_json(change.to_json()) == change


def test_oversized_change_drops_details_but_still_fits():
    change = Change(events.EXPUNGE, 1, 2, tuple(range(1, 200_000, 2)), 5, "INBOX")
    text = change.to_json()
    assert len(text.encode()) <= events.NOTIFY_LIMIT
    back = Change.from_json(text)
    assert back.uids == () and back.kind == events.EXPUNGE and back.mailbox_id == 2
