"""Connection limits across the workers of one daemon (relate.protocol.limits): the shared table
of counts per worker, and two ServiceGroups in this process standing for two workers (the
daemon itself: tests/protocol/test_daemon_limits.py)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from relate.config import Settings
from relate.imapd.authcmds import UserSessions
from relate.protocol import limits
from relate.protocol.limits import SharedCounts
from relate.protocol.server import Listener, ServiceGroup
from tests.protocol.conftest import Client, make_settings, wait_until
from tests.protocol.test_server import echo, refuse_421

SLOTS = 8  # a tiny table: keys 8, 16, 24 ... all start probing at entry 0


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[tuple[SharedCounts, SharedCounts]]:
    """Two workers' views of one table."""
    path = tmp_path / "relate-limits-1"
    one, two = SharedCounts(path, 2, 0, SLOTS), SharedCounts(path, 2, 1, SLOTS)
    yield one, two
    one.close()
    two.close()


def _keys(counts: SharedCounts) -> list[int]:
    return [counts._ints[at] for at in range(0, counts._size, counts._width)]


def test_counts_are_summed_over_the_workers(workers: tuple[SharedCounts, SharedCounts]) -> None:
    one, two = workers
    with one.locked():
        assert one.add(5) and one.add(5)
    with two.locked():
        assert two.add(5)
        assert two.count(5) == one.count(5) == 3
        assert two.count(6) == 0
    with one.locked():
        one.remove(5)
        one.remove(5)
        one.remove(5)  # worker one counts none any more: its column stays at 0
    assert one.count(5) == 1
    with two.locked():
        two.remove(5)
    assert one.count(5) == 0
    assert _keys(one) == [0] * SLOTS  # the entry is free again


def test_a_key_past_a_tombstone_is_found_and_tombstones_are_freed(workers: tuple[SharedCounts, SharedCounts]) -> None:
    one = workers[0]
    with one.locked():
        for key in (8, 16, 24):  # one home: entries 0, 1, 2
            one.add(key)
        one.remove(8)  # entry 0 is a tombstone: 16 and 24 lie behind it
        assert _keys(one)[:3] == [8, 16, 24]
        assert one.count(24) == 1
        one.add(32)  # takes the tombstone over
        assert _keys(one)[:4] == [32, 16, 24, 0]
        one.remove(24)  # the entry after it is free: freed at once
        assert _keys(one)[:3] == [32, 16, 0]
        one.remove(32)  # a tombstone: 16 is behind it
        one.remove(16)  # freed, and the tombstone before it too
        assert _keys(one) == [0] * SLOTS


def test_a_full_table_admits_and_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(limits, "PROBES", 2)
    counts = SharedCounts(tmp_path / "relate-limits-1", 1, 0, SLOTS)
    with caplog.at_level(logging.WARNING, "relate.protocol.limits"), counts.locked():
        assert counts.add(8) and counts.add(16)
        assert not counts.add(24)  # both entries it may use are taken
        assert not counts.add(40)
        assert counts.count(24) == 0  # so it is under any limit
        counts.remove(24)  # not counted: nothing to take away
        assert counts.count(8) == counts.count(16) == 1
    warnings = [r.getMessage() for r in caplog.records if "no room" in r.getMessage()]
    assert len(warnings) == 1  # at most once a minute
    counts.close()


def test_a_dead_workers_counts_are_forgotten(workers: tuple[SharedCounts, SharedCounts]) -> None:
    one, two = workers
    with one.locked():
        for key in (8, 16, 3):
            one.add(key)
    with two.locked():
        two.add(16)
    one.clear_column(0)
    assert (two.count(8), two.count(16), two.count(3)) == (0, 1, 0)
    assert _keys(two)[:4] == [8, 16, 0, 0]  # 8 is a tombstone before 16 (freed with it); 3 is freed
    with two.locked():
        two.remove(16)
    assert _keys(two) == [0] * SLOTS


def test_forgetting_a_worker_of_a_daemon_without_a_table_creates_none(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "limits_path", lambda pid: tmp_path / f"relate-limits-{pid}")
    settings = make_settings(tmp_path, Network__Workers="2", ConnectionStrings__DefaultConnection="postgresql://x/y")
    limits.forget_worker(1234, settings, 1)
    assert not (tmp_path / "relate-limits-1234").exists()


def test_the_table_grows_with_the_limit() -> None:
    assert limits.table_slots(3) == 1024
    assert limits.table_slots(10_000) == 65_536  # the default: at most a third full
    assert limits.table_slots(10**6) == 65_536


@pytest.fixture
def two_groups(tmp_path: Path, server_ctx: object) -> Iterator[Callable[..., tuple[ServiceGroup, ServiceGroup]]]:
    """Two ServiceGroups sharing one table, as two workers of one daemon do."""
    made: list[ServiceGroup] = []
    tables: list[SharedCounts] = []

    def make(settings: Settings) -> tuple[ServiceGroup, ServiceGroup]:
        for column in (0, 1):
            counts = SharedCounts(tmp_path / "relate-limits-1", 2, column, 1024)
            group = ServiceGroup(settings, counts=counts)
            group.add(Listener("smtp-submission", 0, False, echo, refuse=refuse_421))
            group.start()
            made.append(group)
            tables.append(counts)
        return made[0], made[1]

    yield make
    for group in made:
        group.stop(0)
    for counts in tables:
        counts.close()


def test_the_total_limit_counts_both_groups(tmp_path: Path, two_groups: Callable[..., tuple[ServiceGroup, ServiceGroup]]) -> None:
    one, two = two_groups(make_settings(tmp_path, Network__MaxConnections="2"))
    first = Client.connect(one.bound_port("smtp-submission"), source="127.0.0.2")
    second = Client.connect(two.bound_port("smtp-submission"), source="127.0.0.3")
    assert first.line() == second.line() == b"hello\r\n"
    refused = Client.connect(one.bound_port("smtp-submission"), source="127.0.0.4")
    assert refused.line() == b"421 4.7.0 too many connections\r\n"
    assert one.connection_count == two.connection_count == 1
    second.send(b"QUIT\r\n")
    assert second.line() == b"bye\r\n"
    wait_until(lambda: two.connection_count == 0)
    again = Client.connect(one.bound_port("smtp-submission"), source="127.0.0.4")
    assert again.line() == b"hello\r\n"


def test_the_per_ip_limit_counts_both_groups(tmp_path: Path, two_groups: Callable[..., tuple[ServiceGroup, ServiceGroup]]) -> None:
    one, two = two_groups(make_settings(tmp_path, Network__MaxConnectionsPerIp="2"))
    kept = [Client.connect(group.bound_port("smtp-submission")) for group in (one, two)]
    assert [client.line() for client in kept] == [b"hello\r\n"] * 2
    refused = Client.connect(two.bound_port("smtp-submission"))
    assert refused.line() == b"421 4.7.0 too many connections from 127.0.0.1\r\n"
    other = Client.connect(two.bound_port("smtp-submission"), source="127.0.0.2")
    assert other.line() == b"hello\r\n"


def test_sessions_per_user_count_across_workers(workers: tuple[SharedCounts, SharedCounts]) -> None:
    one, two = (UserSessions(2, counts) for counts in workers)
    assert one.acquire(7) and two.acquire(7)
    assert not one.acquire(7) and not two.acquire(7)
    assert two.acquire(8)  # another user
    one.release(7)
    assert two.acquire(7)


def test_a_session_the_full_table_did_not_count_takes_nothing_off_another(tmp_path: Path) -> None:
    counts = SharedCounts(tmp_path / "relate-limits-1", 1, 0, 2)  # room for two keys
    sessions = UserSessions(5, counts)
    assert sessions.acquire(1) and sessions.acquire(2)
    assert sessions.acquire(3)  # no room for user 3: admitted, not counted
    sessions.release(1)  # room again
    assert sessions.acquire(3)  # counted this time
    sessions.release(3)  # one of the two sessions ends: the other is still counted
    with counts.locked():
        assert counts.count(limits.user_key(3)) == 1
    sessions.release(3)
    with counts.locked():
        assert counts.count(limits.user_key(3)) == 0
    counts.close()
