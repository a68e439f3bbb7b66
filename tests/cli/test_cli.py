import json

import pytest

from relate.store import accounts


def test_users_domains_addresses_keys(cli):
    out = cli("users", "add", "Alice@Example.com", "--name", "Alice", "--admin").stdout
    assert "alice@example.com" in out and "administrator" in out
    assert cli("domains", "list").stdout.split() == ["example.com"]
    cli("addresses", "add", "alice@example.com", "sales@example.com")
    listing = cli("users", "list").stdout
    assert "alice@example.com" in listing and "sales@example.com" in listing and "admin" in listing
    key = cli("keys", "create", "alice@example.com", "--name", "laptop", "--scopes", "smtp,imap").stdout.splitlines()[-1]
    assert key.startswith("rm_")
    data = json.loads(cli("keys", "create", "sales@example.com", "--name", "x", "--scopes", "api:read", "--json").stdout)
    assert data["key"].startswith(data["prefix"] + "_") and data["scopes"] == ["api:read"]
    rows = cli("keys", "list", "alice@example.com").stdout.splitlines()
    assert len(rows) == 2 and all("active" in r for r in rows)
    key_id = rows[0].split("\t")[0]
    assert "revoked" in cli("keys", "revoke", key_id).stdout
    assert "revoked" in cli("keys", "list", "alice@example.com").stdout
    cli("addresses", "remove", "sales@example.com")
    cli("users", "remove", "alice@example.com")
    assert cli("users", "list").stdout.strip() == ""


def test_users_add_password_prints_key_last(cli):
    out = cli("users", "add", "bob@example.com", "--password").stdout.splitlines()
    assert out[-1].startswith("rm_")


@pytest.mark.parametrize(
    "args,message",
    [
        (("users", "add", "not-an-address"), "not a valid address"),
        (("keys", "create", "nobody@example.com", "--name", "k", "--scopes", "smtp"), "no user"),
        (("keys", "revoke", "abc"), "not a key id"),
        (("keys", "revoke", "999"), "no such key"),
        (("domains", "remove", "example.org"), "not hosted"),
        (("import", "x@example.com", "/nonexistent/mbox"), "no such file"),
    ],
    ids=["bad-address", "unknown-user", "bad-key-id", "unknown-key", "unknown-domain", "missing-file"],
)
def test_user_errors_are_one_line_and_exit_1(cli, args, message):
    result = cli(*args, check=False)
    assert result.returncode == 1
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_duplicate_user(cli):
    cli("users", "add", "a@example.com")
    result = cli("users", "add", "A@example.com", check=False)
    assert result.returncode == 1 and "already in use" in result.stderr


def test_users_and_addresses_add_take_over_pending_requests(pg_cli):
    squatter = accounts.create_user("squatter@example.com")
    for address in ("newguy@example.com", "sales@example.com"):
        accounts.add_address(squatter.id, address, confirmed=False)
    added = pg_cli("users", "add", "newguy@example.com")
    assert "newguy@example.com" in added.stdout
    assert "dropped the pending request" in added.stderr  # logged
    pg_cli("addresses", "add", "newguy@example.com", "sales@example.com")
    newguy = accounts.find_user("newguy@example.com")
    assert newguy is not None and accounts.resolve_recipient("sales@example.com") == newguy.id
    assert accounts.pending_addresses() == []
    # A confirmed address of another user stays theirs.
    result = pg_cli("addresses", "add", "newguy@example.com", "squatter@example.com", check=False)
    assert result.returncode == 1 and "already in use" in result.stderr
    result = pg_cli("users", "add", "sales@example.com", check=False)
    assert result.returncode == 1 and "already in use" in result.stderr


def test_bad_scope(cli):
    cli("users", "add", "a@example.com")
    result = cli("keys", "create", "a@example.com", "--name", "k", "--scopes", "smtp,root", check=False)
    assert result.returncode == 1 and "unknown scope" in result.stderr


def test_bad_configuration_names_the_variable(cli):
    cli.env["Smtp__Port"] = "abc"
    result = cli("check-config", check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == "relate: Smtp__Port=abc: not a whole number"


def test_check_config_ok(cli):
    assert "configuration is valid" in cli("check-config").stdout


def test_migrate(cli):
    from relate.db.migrate import head_revision

    assert str(head_revision()) in cli("migrate").stdout
    assert "already at" in cli("migrate").stdout
