"""The change bus as the real-time layer relies on it (PostgreSQL LISTEN/NOTIFY)."""

from __future__ import annotations

import time

import psycopg2
import pytest

from relate import store as relate_store
from relate.store import events, keys
from relate.store.events import KEY_REVOKED, NEW_EMAIL_NOTICE, Change
from tests.realtime.conftest import make_user

pytestmark = pytest.mark.timeout(60)


def test_a_quiet_bus_is_not_a_lost_one(pg_store, monkeypatch: pytest.MonkeyPatch):
    """Minutes without mail must not make every IDLE session and socket resynchronise."""
    monkeypatch.setattr(events, "LISTEN_IDLE_CHECK", 0.3)
    relate_store.bus.stop_listener()
    with relate_store.bus.subscribe(None) as sub:
        assert relate_store.bus.listening.wait(10)
        assert sub.get(timeout=1.5) is None  # several idle checks went by
        make_user("quiet")  # a change still arrives afterwards
        change = sub.get(timeout=5)
        assert change is not None and change.kind == events.MAILBOX_CREATED


def test_a_dead_listener_connection_is_noticed_while_quiet(pg_store, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(events, "LISTEN_IDLE_CHECK", 0.3)
    relate_store.bus.stop_listener()
    with relate_store.bus.subscribe(None) as sub:
        assert relate_store.bus.listening.wait(10)
        conn = psycopg2.connect(relate_store.postgres_dsn(pg_store.database_url))
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'relate-bus' "
                        "AND pid <> pg_backend_pid() AND datname = current_database()")
        conn.close()
        kinds = []
        deadline = time.monotonic() + 10
        while len(kinds) < 2 and time.monotonic() < deadline:
            change = sub.get(timeout=1)
            if change is not None:
                kinds.append(change.kind)
        assert kinds == [events.RESYNC, events.RESYNC]  # lost, then back


def test_revoking_a_key_is_announced(store):
    alice = make_user("alice")
    with store_bus() as sub:
        keys.revoke_key(alice.key_id)
        change = next_of(sub, KEY_REVOKED)
        assert change.user_id == alice.id and change.extra == {"keyId": alice.key_id}
        keys.revoke_key(alice.key_id)  # already revoked: nothing new to say
        assert all(c.kind != KEY_REVOKED for c in drain(sub, 0.5))


def test_expunge_events_carry_the_entry_ids(store):
    from tests.realtime.conftest import deliver

    alice = make_user("alice")
    delivered = deliver(alice)
    entry_id = delivered.summaries[0][1]["id"]
    box = relate_store.mailboxes.get_mailbox(alice.id, "INBOX")
    with store_bus() as sub:
        relate_store.messages.expunge(alice.id, box.id, [1], only_deleted=False)
        change = next_of(sub, events.EXPUNGE)
        assert change.uids == (1,) and change.extra == {"ids": [entry_id]}


def test_an_announced_notice_reaches_subscribers(store):
    from relate.store import realtime

    with store_bus() as sub:
        realtime.announce([Change(NEW_EMAIL_NOTICE, 7, extra={"id": 99, "subject": "s"})])
        change = next_of(sub, NEW_EMAIL_NOTICE)
        assert change.user_id == 7 and change.extra == {"id": 99, "subject": "s"}


# -- helpers ---------------------------------------------------------------------------------


def store_bus() -> events.Subscription:
    sub = relate_store.bus.subscribe(None)
    if relate_store.bus.uses_postgres:
        assert relate_store.bus.listening.wait(10)
    return sub


def drain(sub: events.Subscription, seconds: float) -> list[Change]:
    out = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        change = sub.get(timeout=max(0.01, deadline - time.monotonic()))
        if change is not None:
            out.append(change)
    return out


def next_of(sub: events.Subscription, kind: str, timeout: float = 5.0) -> Change:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        change = sub.get(timeout=max(0.01, deadline - time.monotonic()))
        if change is not None and change.kind == kind:
            return change
    raise AssertionError(f"no {kind} change within {timeout}s")
