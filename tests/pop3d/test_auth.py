"""Login: USER/PASS and AUTH PLAIN, TLS required for passwords, RFC 3206 response codes,
key scopes and addresses, the shared throttle, and no credentials in the logs."""

from __future__ import annotations

import base64
import logging

import pytest

from relate.pop3d.limits import Limits
from relate.store import accounts, keys, throttle
from tests.pop3d.conftest import Account, Pop3Server, ServerFactory, make_account


def plain(authzid: str, user: str, password: str) -> str:
    return base64.b64encode(f"{authzid}\0{user}\0{password}".encode()).decode()


def test_password_refused_before_tls(pop3: Pop3Server, account: Account) -> None:
    client = pop3.raw(tls=False)
    assert client.command(f"USER {account.address}").startswith(b"-ERR [AUTH] ")
    assert client.command(f"PASS {account.key}").startswith(b"-ERR")
    assert client.command(f"AUTH PLAIN {plain('', account.address, account.key)}").startswith(b"-ERR [AUTH] ")
    assert client.command("AUTH PLAIN").startswith(b"-ERR [AUTH] ")
    # ... and nothing was learned: after STLS the same credentials work.
    assert client.command("STLS").startswith(b"+OK")
    client.start_tls()
    client.login(account)


def test_insecure_auth_allowed_by_setting(make_server: ServerFactory, account: Account) -> None:
    server = make_server(Tls__AllowInsecureAuth="true")
    client = server.raw(tls=False)
    client.login(account)
    assert client.command("STAT").startswith(b"+OK 0 0")


def test_pass_needs_user(pop3: Pop3Server, account: Account) -> None:
    client = pop3.raw()
    assert client.command(f"PASS {account.key}").startswith(b"-ERR")
    client.login(account)


@pytest.mark.parametrize("how", ["wrong-key", "no-pop3-scope", "unknown-address", "revoked"])
def test_bad_credentials(pop3: Pop3Server, account: Account, how: str) -> None:
    login, key = account.address, account.key
    if how == "wrong-key":
        key = key[:-4] + "AAAA"
    elif how == "no-pop3-scope":
        _, key = keys.create_key(account.user_id, "imap only", "imap smtp")
    elif how == "unknown-address":
        login = "nobody@pop.test"
    else:
        keys.revoke_key(keys.list_keys(account.user_id)[0].id)
    client = pop3.raw()
    client.command(f"USER {login}")
    assert client.command(f"PASS {key}") == b"-ERR [AUTH] authentication failed\r\n"
    assert client.command("STAT").startswith(b"-ERR")  # still not logged in


def test_login_with_any_confirmed_address(pop3: Pop3Server, account: Account) -> None:
    accounts.add_address(account.user_id, "alias@pop.test", confirmed=True)
    accounts.add_address(account.user_id, "pending@pop.test", confirmed=False)
    client = pop3.raw()
    client.command("USER pending@pop.test")
    assert client.command(f"PASS {account.key}").startswith(b"-ERR [AUTH]")
    client.command("USER ALIAS@pop.test")
    assert client.command(f"PASS {account.key}").startswith(b"+OK alias@pop.test has 0 messages")


def test_another_users_key_does_not_open_this_maildrop(pop3: Pop3Server, account: Account) -> None:
    other = make_account("other@pop.test")
    client = pop3.raw()
    client.command(f"USER {account.address}")
    assert client.command(f"PASS {other.key}").startswith(b"-ERR [AUTH]")


def test_auth_plain_with_initial_response(pop3: Pop3Server, account: Account) -> None:
    client = pop3.raw()
    assert client.command(f"AUTH PLAIN {plain('', account.address, account.key)}").startswith(b"+OK")
    assert client.command("STAT").startswith(b"+OK")


def test_auth_plain_with_continuation(pop3: Pop3Server, account: Account) -> None:
    client = pop3.raw()
    assert client.command("auth plain") == b"+ \r\n"  # RFC 5034 §4: "+" SP empty challenge
    assert client.command(plain(account.address, account.address, account.key)).startswith(b"+OK")


def test_auth_plain_cancel_and_garbage(pop3: Pop3Server, account: Account) -> None:
    client = pop3.raw()
    assert client.command("AUTH PLAIN") == b"+ \r\n"
    assert client.command("*") == b"-ERR authentication cancelled\r\n"
    assert client.command("AUTH PLAIN !!notbase64").startswith(b"-ERR")
    assert client.command("AUTH PLAIN") == b"+ \r\n"
    assert client.command(base64.b64encode(b"no nuls").decode()).startswith(b"-ERR")
    assert client.command("AUTH CRAM-MD5").startswith(b"-ERR unsupported mechanism")
    assert client.command(f"AUTH PLAIN {plain('other@pop.test', account.address, account.key)}").startswith(
        b"-ERR [AUTH]"
    )
    client.login(account)  # the session survived all of that


def test_auth_without_mechanism_lists_them(pop3: Pop3Server) -> None:
    client = pop3.raw()
    assert client.multiline("AUTH") == (b"+OK SASL mechanisms follow\r\n", b"PLAIN\r\n")


def test_failures_close_the_connection_and_feed_the_throttle(make_server: ServerFactory, account: Account) -> None:
    server = make_server(Limits(max_auth_failures=2))
    client = server.raw()
    client.command(f"USER {account.address}")
    assert client.command("PASS wrong-1") == b"-ERR [AUTH] authentication failed\r\n"
    assert client.command(f"AUTH PLAIN {plain('', account.address, 'wrong-2')}") == (
        b"-ERR [AUTH] authentication failed; too many failures, closing\r\n"
    )
    assert client.at_eof()
    throttle.record_failure("127.0.0.1", account.address)  # a third failure, from anywhere
    assert throttle.check("127.0.0.1", account.address).delay > 0


def test_blocked_login_gets_login_delay(pop3: Pop3Server, account: Account) -> None:
    for _ in range(throttle.BLOCK_FAILURES_PER_LOGIN):
        throttle.record_failure("192.0.2.1", account.address)
    client = pop3.raw()
    client.command(f"USER {account.address}")
    # Blocked before the key is even checked: the right key does not help.
    assert client.command(f"PASS {account.key}").startswith(b"-ERR [LOGIN-DELAY] ")
    other = make_account("other@pop.test")
    client.login(other)  # the block is per login name (and per IP), not global


def test_success_clears_the_login_failures(pop3: Pop3Server, account: Account) -> None:
    for _ in range(throttle.FREE_FAILURES):
        throttle.record_failure("192.0.2.7", account.address)
    assert throttle.check("192.0.2.7", account.address).delay > 0
    pop3.raw_login(account).command("QUIT")
    assert throttle.check("198.51.100.7", account.address).delay == 0  # the IP's own count stays


def test_credentials_never_logged(pop3: Pop3Server, account: Account, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    client = pop3.raw()
    client.login(account)
    client.command("QUIT")
    client = pop3.raw()
    client.command(f"AUTH PLAIN {plain('', account.address, account.key)}")
    client.command("QUIT")
    client = pop3.raw()
    client.command("AUTH PLAIN")
    client.command(plain("", account.address, account.key))
    client.command("QUIT")
    client = pop3.raw()
    client.command(f"USER {account.address}")
    client.command("PASS wrong-secret-value")
    secret = account.key.split("_", 2)[2]
    assert secret not in caplog.text
    assert plain("", account.address, account.key) not in caplog.text
    assert "wrong-secret-value" not in caplog.text
    assert "logged in as alice@pop.test" in caplog.text
    assert all(record.getMessage().startswith("[") for record in caplog.records if record.name == "relate.pop3d")
