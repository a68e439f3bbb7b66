"""Rate limits per client address and per user, shared by replicas (429 with Retry-After)."""

from __future__ import annotations

import time

import gevent
import pytest

from relate.config import Settings
from relate.store import ratelimit
from tests.webapp.conftest import MakeApi, make_key, make_user

LIMITS = {"Api__RateLimitPerIp": "5", "Api__RateLimitPerUser": "8", "Api__TrustedProxies": "1"}


@pytest.fixture(autouse=True)
def not_at_a_window_edge() -> None:
    """Counting tests must not straddle two windows: start with a few seconds of window left."""
    left = ratelimit.WINDOW_SECONDS - time.time() % ratelimit.WINDOW_SECONDS
    if left < 5:
        time.sleep(left + 0.05)


def test_counts_per_key_and_window(store: Settings) -> None:
    t = 1_800_000_000.0  # a window boundary (divisible by 60)
    assert [c.count for c in ratelimit.hit(["ip:a", "user:1"], now=t)] == [1, 1]
    assert [c.count for c in ratelimit.hit(["ip:a", "user:2"], now=t + 10)] == [2, 1]
    assert [c.count for c in ratelimit.hit(["ip:a"], now=t + 59)] == [3]
    fresh = ratelimit.hit(["ip:a"], now=t + 60)
    assert fresh[0].count == 1 and fresh[0].window_start == int(t) + 60
    assert ratelimit.hit(["ip:a"], now=t + 65)[0].retry_after(now=t + 65) == 55


def test_concurrent_hits_are_all_counted(store: Settings) -> None:
    t = 1_800_000_000.0
    jobs = [gevent.spawn(ratelimit.hit, ["ip:b", "user:9"], t) for _ in range(40)]
    gevent.joinall(jobs, raise_error=True)
    assert ratelimit.hit(["user:9", "ip:b"], now=t)[0].count == 41


def test_per_address_limit(api: MakeApi) -> None:
    server = api(**LIMITS)
    client = server.new_http(X_Forwarded_For="203.0.113.7")
    answers = [client.get("/api/discovery").status_code for _ in range(7)]
    assert answers == [200] * 5 + [429] * 2
    refused = client.get("/api/discovery")
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.json() == {"error": "too many requests; slow down"}
    # another address is not affected, nor are health checks
    assert server.new_http(X_Forwarded_For="203.0.113.8").get("/api/discovery").status_code == 200
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200


def test_failed_authentication_counts_too(api: MakeApi) -> None:
    server = api(**LIMITS)
    client = server.new_http(X_Forwarded_For="203.0.113.9", Authorization="ApiKey rm_aaaaaaaaaa_" + "x" * 43)
    answers = [client.get("/api/session").status_code for _ in range(6)]
    assert answers == [401] * 5 + [429]


def test_per_user_limit_across_addresses(api: MakeApi) -> None:
    server = api(**LIMITS)
    alice = make_user("alice@example.test")
    key = make_key(alice, "api:read")
    answers = [
        server.new_http(X_Forwarded_For=f"198.51.100.{n}", Authorization=f"Bearer {key}").get("/api/session").status_code
        for n in range(10)
    ]
    assert answers == [200] * 8 + [429] * 2


def test_limits_are_shared_by_replicas(api: MakeApi) -> None:
    first, second = api(**LIMITS), api(**LIMITS)
    answers = []
    for n in range(6):
        replica = (first, second)[n % 2]
        answers.append(replica.new_http(X_Forwarded_For="192.0.2.1").get("/api/discovery").status_code)
    assert answers == [200] * 5 + [429]


@pytest.mark.parametrize("setting", ["Api__RateLimitPerIp", "Api__RateLimitPerUser"])
def test_zero_turns_a_limit_off(api: MakeApi, setting: str) -> None:
    server = api(**{**LIMITS, "Api__RateLimitPerIp": "0", "Api__RateLimitPerUser": "0", setting: "0"})
    client = server.new_http(X_Forwarded_For="192.0.2.2")
    assert all(client.get("/api/session").status_code == 200 for _ in range(12))


# -- approximate shared counting (PostgreSQL) ----------------------------------------------------


def shared_total(key: str, now: float) -> int:
    """The shared row's count (adding nothing)."""
    window = ratelimit.window_of(now)
    return ratelimit._add_postgres({(key, window): 0})[(key, window)]


def test_far_from_the_limit_hits_are_written_in_batches(pg_store: Settings) -> None:
    counters = ratelimit.SharedCounters(flush_interval=3600)  # flushed by hand below
    t = 1_800_000_000.0
    for _ in range(15):  # budget(1000) = 20: the first is written, the next 14 counted here
        assert counters.admit({"ip:lazy": 1000}, now=t) == []
    assert counters.writes == 1
    assert shared_total("ip:lazy", t) == 1
    assert counters.flush()
    assert counters.writes == 2
    assert shared_total("ip:lazy", t) == 15


def test_a_process_writes_once_its_unwritten_hits_reach_the_budget(pg_store: Settings) -> None:
    counters = ratelimit.SharedCounters(flush_interval=3600)
    t = 1_800_000_000.0
    for _ in range(1 + 3 * (ratelimit.budget(1000) + 1)):
        counters.admit({"ip:budget": 1000}, now=t)
    assert counters.writes == 4  # never more than budget(1000) hits unwritten
    assert shared_total("ip:budget", t) == 1 + 3 * (ratelimit.budget(1000) + 1)


def test_the_flusher_writes_pending_hits_within_its_interval(pg_store: Settings) -> None:
    counters = ratelimit.SharedCounters(flush_interval=0.05)
    t = time.time()
    for _ in range(10):
        counters.admit({"user:flushed": 1000}, now=t)
    gevent.sleep(0.3)
    assert shared_total("user:flushed", t) == 10
    counters.stop()


def test_near_the_limit_every_hit_is_exact(pg_store: Settings) -> None:
    counters = ratelimit.SharedCounters(flush_interval=3600)
    t = 1_800_000_000.0
    ratelimit._add_postgres({("ip:near", ratelimit.window_of(t)): 970})  # other replicas' hits
    answers = [counters.admit({"ip:near": 1000}, now=t) for _ in range(40)]
    admitted = sum(1 for a in answers if not a)
    assert admitted == 30  # exactly up to the limit: within budget(1000) of it, every hit is written
    assert answers[-1][0].count == 1010 and answers[-1][0].key == "ip:near"


@pytest.mark.parametrize("limit", [5, 60, 1000])
def test_replicas_together_stay_within_the_tolerance(pg_store: Settings, limit: int) -> None:
    """P processes counting one key, none flushing: at most limit + (P - 1) x budget get through."""
    replicas = [ratelimit.SharedCounters(flush_interval=3600) for _ in range(3)]
    t = 1_800_000_000.0
    admitted = 0
    for n in range(3 * limit):
        if not replicas[n % 3].admit({"ip:shared": limit}, now=t):
            admitted += 1
    assert limit <= admitted <= limit + 2 * ratelimit.budget(limit)


def test_admit_is_exact_on_sqlite(store: Settings) -> None:
    if store.database_url.startswith("postgresql"):
        pytest.skip("the in-memory counters are SQLite's")
    t = 1_800_000_000.0
    answers = [ratelimit.admit({"ip:lite": 3}, now=t) for _ in range(5)]
    assert [bool(a) for a in answers] == [False, False, False, True, True]
