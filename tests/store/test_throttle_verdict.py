"""The throttle's verdict counts the login's failures, and a success clears them (and skips the
write when its check counted none), on both databases."""

from relate.store import throttle


def test_a_success_clears_the_failures_its_check_counted(store):
    for _ in range(2):
        throttle.record_failure("192.0.2.1", "Bob@Example.com")
    verdict = throttle.check("192.0.2.1", "bob@example.com")
    assert verdict.login_failures == 2 and verdict.delay == 0 and not verdict.blocked
    throttle.record_success("bob@example.com", verdict)
    after = throttle.check("192.0.2.1", "bob@example.com")
    assert after.login_failures == 0
    assert throttle.check("192.0.2.1", None).login_failures == 0  # the IP's failures are kept:
    assert throttle._counts(["ip:192.0.2.1"], throttle.dt.datetime.now(throttle.dt.UTC) - throttle.WINDOW) == {
        "ip:192.0.2.1": 2}


def test_a_success_without_failures_writes_nothing_and_without_a_verdict_clears(store):
    clean = throttle.check("192.0.2.2", "carol@example.com")
    assert clean.login_failures == 0
    throttle.record_failure("192.0.2.2", "carol@example.com")  # after the check: stays
    throttle.record_success("carol@example.com", clean)
    assert throttle.check("192.0.2.2", "carol@example.com").login_failures == 1
    throttle.record_success("carol@example.com")  # no verdict: always clears
    assert throttle.check("192.0.2.2", "carol@example.com").login_failures == 0
