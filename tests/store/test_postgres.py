"""PostgreSQL-only behaviour: cross-process UID allocation, cooperative I/O, restarts, NOTIFY."""

import subprocess
import sys
import time

import gevent
import pytest
from sqlalchemy import text

from relate import db, store
from relate.config import load_settings
from relate.store import TemporaryFailure, accounts, events, mailboxes, messages
from tests import pgcluster
from tests.store.helpers import make_message


def test_four_processes_deliver_2000_distinct_ascending_uids(pg_store, pg_database):
    bob = accounts.create_user("bob@example.com")
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.store.deliver_worker", pg_database, "bob@example.com", "500", f"p{n}"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for n in range(4)
    ]
    per_process = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        per_process.append([int(x) for x in out.split()])
    for uids in per_process:
        assert uids == sorted(uids) and len(uids) == 500  # ascending as each process saw them
    everything = [u for uids in per_process for u in uids]
    assert len(set(everything)) == 2000
    entries = messages.list_entries(bob.id, mailboxes.get_mailbox(bob.id, "INBOX").id)
    assert [e.uid for e in entries] == sorted(everything) == list(range(1, 2001))
    assert len({e.body_id for e in entries}) == 2000


def test_slow_query_does_not_stall_other_greenlets(pg_store):
    engine = db.get_engine()

    def slow():
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_sleep(1)"))

    def quick():
        for _ in range(100):
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        return time.monotonic()

    start = time.monotonic()
    sleeper = gevent.spawn(slow)
    gevent.sleep(0.05)  # let the sleeper's query reach the server
    finished_at = gevent.spawn(quick).get(timeout=10)
    sleeper.get(timeout=10)
    assert finished_at - start < 0.9, "quick queries were blocked by pg_sleep"
    assert time.monotonic() - start >= 1.0


def test_notify_reaches_subscribers_only_after_commit(pg_store):
    alice = accounts.create_user("alice@example.com")
    sub = events.bus.subscribe(alice.id)
    try:
        assert events.bus.listening.wait(timeout=10)
        messages.deliver(make_message(), store.Envelope("x@y.test", ("alice@example.com",)))
        change = sub.get(timeout=5)
        assert change is not None and change.kind == events.NEW and change.uids == (1,)
    finally:
        sub.close()


def test_notify_crosses_processes(pg_store, pg_database):
    accounts.create_user("bob@example.com")
    bob = accounts.find_user("bob@example.com")
    sub = events.bus.subscribe(bob.id)
    try:
        assert events.bus.listening.wait(timeout=10)
        subprocess.run(
            [sys.executable, "-m", "tests.store.deliver_worker", pg_database, "bob@example.com", "3", "x"],
            check=True, capture_output=True, timeout=60,
        )
        seen = []
        while len(seen) < 3:
            change = sub.get(timeout=10)
            assert change is not None
            if change.kind == events.NEW:
                seen.extend(change.uids)
        assert seen == [1, 2, 3]
    finally:
        sub.close()


@pytest.fixture
def private_cluster():
    if pgcluster.pg_bindir() is None:
        pytest.skip("PostgreSQL binaries are not installed")
    cluster = pgcluster.Cluster()
    cluster.start()
    yield cluster
    store.close_store()
    cluster.destroy()


def test_store_survives_a_postgresql_restart(private_cluster, tmp_path):
    settings = load_settings({
        "ConnectionStrings__DefaultConnection": private_cluster.url,
        "Data__Directory": str(tmp_path),
    })
    store.open_store(settings, migrate=True, pool_size=3)
    alice = accounts.create_user("alice@example.com")
    sub = events.bus.subscribe(alice.id)
    assert events.bus.listening.wait(timeout=10)
    private_cluster.stop("immediate")
    with pytest.raises(TemporaryFailure):
        messages.deliver(make_message(), store.Envelope("x@y.test", ("alice@example.com",)))
    resync = sub.get(timeout=10)
    assert resync is not None and resync.kind == events.RESYNC
    private_cluster.start()
    assert events.bus.listening.wait(timeout=20), "change listener did not reconnect"
    again = sub.get(timeout=10)
    assert again is not None and again.kind == events.RESYNC  # resync once the listener is back
    deadline = time.monotonic() + 20
    while True:
        try:
            messages.deliver(make_message(), store.Envelope("x@y.test", ("alice@example.com",)))
            break
        except TemporaryFailure:
            assert time.monotonic() < deadline, "store did not recover"
            gevent.sleep(0.2)
    change = sub.get(timeout=10)
    assert change is not None and change.kind == events.NEW
    sub.close()


def test_maildrop_lock_spans_connections_and_is_released_on_close(pg_store):
    from relate.store import locks

    held = locks.try_lock(locks.POP3_MAILDROP, 42)
    assert held is not None
    assert locks.try_lock(locks.POP3_MAILDROP, 42) is None
    assert locks.try_lock(locks.POP3_MAILDROP, 43) is not None
    held.release()
    again = locks.try_lock(locks.POP3_MAILDROP, 42)
    assert again is not None
    again.release()
