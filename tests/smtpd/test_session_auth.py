"""AUTH PLAIN and LOGIN with API keys: every way in, every way of failing, the throttle, and
no credential in the log."""

from __future__ import annotations

import base64
import logging
import smtplib
import time
from collections.abc import Callable

import pytest

from relate.store import throttle
from tests.smtpd.conftest import Server, Smtp, World

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)

ALICE = "alice@example.test"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def plain(user: str, key: str, authzid: str = "") -> str:
    return b64(f"{authzid}\0{user}\0{key}")


@pytest.fixture
def tls_session(server: Server) -> Callable[[], Smtp]:
    def make() -> Smtp:
        smtp = Smtp.connect(server.submission)
        smtp.ehlo()
        smtp.starttls()
        smtp.ehlo()
        return smtp

    return make


def test_smtplib_login_and_send(server: Server, world: World) -> None:
    client = server.smtp()
    assert client.login(ALICE, world.alice_key) == (235, b"2.7.0 Authentication successful")
    client.sendmail(ALICE, ["bob@example.test"], b"Subject: hi\r\n\r\nhello\r\n")
    client.quit()


def test_plain_with_initial_response(tls_session: Callable[[], Smtp], world: World) -> None:
    smtp = tls_session()
    assert smtp.cmd(f"AUTH PLAIN {plain(ALICE, world.alice_key)}") == "235 2.7.0 Authentication successful"


def test_plain_without_initial_response(tls_session: Callable[[], Smtp], world: World) -> None:
    smtp = tls_session()
    assert smtp.cmd("AUTH PLAIN") == "334 "
    assert smtp.cmd(plain(ALICE, world.alice_key)) == "235 2.7.0 Authentication successful"


def test_login(tls_session: Callable[[], Smtp], world: World) -> None:
    smtp = tls_session()
    assert smtp.cmd("AUTH LOGIN") == "334 VXNlcm5hbWU6"
    assert smtp.cmd(b64(ALICE)) == "334 UGFzc3dvcmQ6"
    assert smtp.cmd(b64(world.alice_key)) == "235 2.7.0 Authentication successful"


def test_login_with_initial_response(tls_session: Callable[[], Smtp], world: World) -> None:
    smtp = tls_session()
    assert smtp.cmd(f"AUTH LOGIN {b64(ALICE)}") == "334 UGFzc3dvcmQ6"
    assert smtp.cmd(b64(world.alice_key)) == "235 2.7.0 Authentication successful"


def test_any_confirmed_address_is_a_login(tls_session: Callable[[], Smtp], world: World) -> None:
    smtp = tls_session()
    assert smtp.cmd(f"AUTH PLAIN {plain('Alice.Alias@Example.Test', world.alice_key)}").startswith("235 ")


def test_authzid_naming_the_same_user_is_accepted(tls_session: Callable[[], Smtp], world: World) -> None:
    smtp = tls_session()
    assert smtp.cmd(f"AUTH PLAIN {plain(ALICE, world.alice_key, authzid=ALICE)}").startswith("235 ")


@pytest.mark.parametrize(
    "case",
    ["wrong-key", "imap-only-key", "pending-address", "someone-elses-address", "authzid-other-user",
     "unknown-login", "malformed-plain"],
)
def test_bad_credentials(tls_session: Callable[[], Smtp], world: World, case: str) -> None:
    response = {
        "wrong-key": plain(ALICE, world.alice_key[:-4] + "AAAA"),
        "imap-only-key": plain(ALICE, world.alice_imap_key),
        "pending-address": plain("alice.pending@example.test", world.alice_key),
        "someone-elses-address": plain("bob@example.test", world.alice_key),
        "authzid-other-user": plain(ALICE, world.alice_key, authzid="bob@example.test"),
        "unknown-login": plain("nobody@example.test", world.alice_key),
        "malformed-plain": b64(f"{ALICE}\0{world.alice_key}"),
    }[case]
    smtp = tls_session()
    assert smtp.cmd(f"AUTH PLAIN {response}") == "535 5.7.8 Authentication credentials invalid"
    assert smtp.cmd("MAIL FROM:<alice@example.test>") == "530 5.7.0 Authentication required"


@pytest.mark.parametrize("step", [0, 1], ids=["at-username", "at-password"])
def test_star_cancels_login(tls_session: Callable[[], Smtp], step: int) -> None:
    smtp = tls_session()
    smtp.cmd("AUTH LOGIN")
    if step:
        smtp.cmd(b64(ALICE))
    assert smtp.cmd("*") == "501 5.7.0 Authentication cancelled"
    assert smtp.cmd("NOOP") == "250 2.0.0 OK"


def test_star_cancels_plain(tls_session: Callable[[], Smtp]) -> None:
    smtp = tls_session()
    assert smtp.cmd("AUTH PLAIN") == "334 "
    assert smtp.cmd("*") == "501 5.7.0 Authentication cancelled"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("AUTH CRAM-MD5", "504 5.5.4 Unrecognized authentication mechanism"),
        ("AUTH PLAIN not*base64", "501 5.5.2 Cannot decode base64 response"),
        ("AUTH", "501 5.5.4 Syntax: AUTH mechanism [initial-response]"),
    ],
    ids=["mechanism", "base64", "syntax"],
)
def test_auth_errors(tls_session: Callable[[], Smtp], line: str, expected: str) -> None:
    smtp = tls_session()
    assert smtp.cmd(line) == expected


def test_bad_base64_answer_to_a_challenge(tls_session: Callable[[], Smtp]) -> None:
    smtp = tls_session()
    smtp.cmd("AUTH PLAIN")
    assert smtp.cmd("@@@") == "501 5.5.2 Cannot decode base64 response"


def test_overlong_answer_is_refused(tls_session: Callable[[], Smtp]) -> None:
    smtp = tls_session()
    smtp.cmd("AUTH PLAIN")
    assert smtp.cmd("A" * 13_000) == "500 5.5.6 Authentication exchange line is too long"
    assert smtp.cmd("NOOP") == "250 2.0.0 OK"


def plain_line(octets: int) -> str:
    """An AUTH PLAIN line with a well-formed initial response (a wrong key) of `octets`
    octets, CRLF included; `octets` - 13 must be a multiple of 4."""
    size = octets - len("AUTH PLAIN \r\n")
    assert size % 4 == 0
    raw = size // 4 * 3 - len(f"\0{ALICE}\0")
    line = f"AUTH PLAIN {plain(ALICE, 'k' * raw)}"
    assert len(line) + 2 == octets
    return line


BAD_CREDENTIALS = "535 5.7.8 Authentication credentials invalid"
LINE_TOO_LONG = "500 5.5.2 Line too long"


@pytest.mark.parametrize("octets", [1_005, 12_001, 12_285], ids=["over-1000", "12001", "near-12288"])
def test_long_initial_response_is_read(tls_session: Callable[[], Smtp], octets: int) -> None:
    """RFC 4954 §4: an AUTH command line of up to 12288 octets must be accepted."""
    smtp = tls_session()
    assert smtp.cmd(plain_line(octets)) == BAD_CREDENTIALS
    assert smtp.cmd("NOOP") == "250 2.0.0 OK"


@pytest.mark.parametrize("octets", [12_289, 13_001], ids=["12289", "13001"])
def test_overlong_auth_line_is_refused(tls_session: Callable[[], Smtp], world: World, octets: int) -> None:
    smtp = tls_session()
    assert smtp.cmd(plain_line(octets)) == LINE_TOO_LONG
    assert smtp.cmd("NOOP") == "250 2.0.0 OK"  # the rest of the line was read and dropped
    smtp.login(ALICE, world.alice_key)


def test_long_answer_to_a_challenge_is_read(tls_session: Callable[[], Smtp]) -> None:
    smtp = tls_session()
    assert smtp.cmd("AUTH PLAIN") == "334 "
    assert smtp.cmd(plain_line(12_285).removeprefix("AUTH PLAIN ")) == BAD_CREDENTIALS


@pytest.mark.parametrize("authenticated", [False, True], ids=["before-auth", "after-auth"])
def test_other_commands_keep_the_1000_octet_limit(
    tls_session: Callable[[], Smtp], world: World, authenticated: bool
) -> None:
    smtp = tls_session()
    if authenticated:
        smtp.login(ALICE, world.alice_key)
    mail = f"MAIL FROM:<{ALICE}> AUTH="
    mail += "x" * (1_100 - 2 - len(mail))  # 1,100 octets with CRLF
    assert smtp.cmd(mail) == LINE_TOO_LONG
    assert smtp.cmd("NOOP " + "x" * 12_000) == LINE_TOO_LONG
    assert smtp.cmd(f"MAIL FROM:<{ALICE}>") == ("250 2.1.0 Sender OK" if authenticated else "530 5.7.0 Authentication required")


def test_long_auth_line_where_auth_is_not_offered(server: Server) -> None:
    for port in (server.mx, server.submission):  # MX never offers AUTH; submission not before TLS
        smtp = Smtp.connect(port)
        smtp.ehlo()
        assert smtp.cmd(plain_line(1_005)) == LINE_TOO_LONG
        assert smtp.cmd("NOOP") == "250 2.0.0 OK"


def test_auth_before_tls_is_refused(server: Server, world: World) -> None:
    smtp = Smtp.connect(server.submission)
    smtp.ehlo()
    assert smtp.cmd(f"AUTH PLAIN {plain(ALICE, world.alice_key)}") == (
        "538 5.7.11 Encryption required for requested authentication mechanism"
    )
    assert smtp.cmd("MAIL FROM:<alice@example.test>") == "530 5.7.0 Must issue a STARTTLS command first"


def test_insecure_auth_when_allowed(smtp_server: Callable[..., Server], world: World) -> None:
    server = smtp_server(allow_insecure_auth=True)
    client = server.smtp(starttls=False)
    client.login(ALICE, world.alice_key)
    client.sendmail(ALICE, ["bob@example.test"], b"Subject: plaintext\r\n\r\nhi\r\n")
    client.quit()


def test_implicit_tls_login(server: Server, world: World) -> None:
    client = server.smtps()
    client.login(ALICE, world.alice_key)
    client.quit()


def test_failures_are_counted_per_ip_and_login(tls_session: Callable[[], Smtp], world: World) -> None:
    for _ in range(3):
        smtp = tls_session()
        assert smtp.cmd(f"AUTH PLAIN {plain(ALICE, 'rm_aaaaaaaaaa_' + 'x' * 43)}").startswith("535 ")
        smtp.close()
    assert throttle.check("127.0.0.1", None).delay > 0  # the IP's failures
    assert throttle.check("10.9.9.9", ALICE).delay > 0  # the login's failures, from any IP


def test_failures_slow_down_the_next_attempt(tls_session: Callable[[], Smtp], world: World) -> None:
    for _ in range(throttle.FREE_FAILURES):
        throttle.record_failure("127.0.0.1", ALICE)
    smtp = tls_session()
    started = time.monotonic()
    assert smtp.cmd(f"AUTH PLAIN {plain(ALICE, world.alice_key)}").startswith("235 ")
    assert time.monotonic() - started >= 0.5


def test_blocked_login_is_refused_even_with_the_right_key(
    tls_session: Callable[[], Smtp], world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(throttle, "MAX_DELAY", 0.0)  # the refusal is the point here, not the wait
    for _ in range(throttle.BLOCK_FAILURES_PER_LOGIN):
        throttle.record_failure("192.0.2.7", ALICE)
    smtp = tls_session()
    assert smtp.cmd(f"AUTH PLAIN {plain(ALICE, world.alice_key)}") == "454 4.7.0 Temporary authentication failure"


def test_success_clears_the_login_failures(tls_session: Callable[[], Smtp], world: World) -> None:
    throttle.record_failure("192.0.2.8", ALICE)
    smtp = tls_session()
    smtp.login(ALICE, world.alice_key)
    assert throttle.check("192.0.2.9", ALICE).delay == 0


def test_credentials_never_reach_the_log(
    tls_session: Callable[[], Smtp], world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    smtp = tls_session()
    smtp.cmd(f"AUTH PLAIN {plain(ALICE, world.alice_key)}")
    smtp = tls_session()
    smtp.cmd("AUTH LOGIN")
    smtp.cmd(b64(ALICE))
    smtp.cmd(b64(world.alice_key))
    smtp = tls_session()
    smtp.cmd(f"AUTH PLAIN {plain(ALICE, 'rm_wrongwrong_' + 'y' * 43)}")
    text = caplog.text
    assert "AUTH PLAIN" in text  # the command is logged, its argument is not
    for secret in (world.alice_key, plain(ALICE, world.alice_key), b64(world.alice_key), "y" * 43):
        assert secret not in text
    secret_part = world.alice_key.split("_", 2)[2]
    assert secret_part not in text


def test_smtplib_rejects_bad_key(server: Server, world: World) -> None:
    client = server.smtp()
    with pytest.raises(smtplib.SMTPAuthenticationError) as failure:
        client.login(ALICE, "rm_notavalid_keyatallxxxxxxxxxxxxxxxxxxxxxxxxxx")
    assert failure.value.smtp_code == 535
