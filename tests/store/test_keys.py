import pytest
from sqlalchemy import select

from relate import db
from relate.db.models import ApiKey
from relate.store import Forbidden, InvalidInput, NotFound, accounts, keys


def test_key_format_and_only_hash_stored(store):
    user = accounts.create_user("a@example.com")
    info, key = keys.create_key(user.id, "phone", "smtp,imap")
    assert key.startswith(info.prefix + "_")
    assert len(key.split("_")[2]) >= 40
    with db.get_engine().connect() as conn:
        row = conn.execute(select(ApiKey.prefix, ApiKey.secret_hash, ApiKey.scopes)).one()
    secret = key.split("_")[2]
    assert secret.encode() not in bytes(row.secret_hash)
    assert len(row.secret_hash) == 32
    assert row.scopes == "imap smtp"


def test_authenticate_with_any_confirmed_address(store):
    user = accounts.create_user("a@example.com")
    accounts.add_address(user.id, "alias@example.com", confirmed=True)
    accounts.add_address(user.id, "pending@example.com", confirmed=False)
    _, key = keys.create_key(user.id, "mail", "smtp pop3 imap")
    for login in ("a@example.com", "ALIAS@example.com"):
        result = keys.authenticate(login, key, "imap")
        assert result is not None and result.user_id == user.id
    assert keys.authenticate("pending@example.com", key, "imap") is None


def test_authenticate_refuses_wrong_scope_wrong_user_bad_key(store):
    a = accounts.create_user("a@example.com")
    accounts.create_user("b@example.com")
    _, key = keys.create_key(a.id, "smtp only", "smtp")
    assert keys.authenticate("a@example.com", key, "imap") is None
    assert keys.authenticate("b@example.com", key, "smtp") is None
    assert keys.authenticate("a@example.com", key[:-1] + ("A" if key[-1] != "A" else "B"), "smtp") is None
    assert keys.authenticate("a@example.com", "garbage", "smtp") is None
    assert keys.authenticate("not an address", key, "smtp") is None
    assert keys.authenticate("a@example.com", key, "smtp") is not None


def test_revocation_is_immediate(store):
    a = accounts.create_user("a@example.com")
    info, key = keys.create_key(a.id, "k", "smtp")
    assert keys.authenticate("a@example.com", key, "smtp")
    keys.revoke_key(info.id)
    assert keys.authenticate("a@example.com", key, "smtp") is None
    assert keys.list_keys(a.id) == []
    assert len(keys.list_keys(a.id, include_revoked=True)) == 1


def test_revoke_checks_owner(store):
    a = accounts.create_user("a@example.com")
    b = accounts.create_user("b@example.com")
    info, _ = keys.create_key(a.id, "k", "smtp")
    with pytest.raises(NotFound):
        keys.revoke_key(info.id, user_id=b.id)


def test_no_scope_escalation(store):
    a = accounts.create_user("a@example.com")
    with pytest.raises(Forbidden):
        keys.create_key(a.id, "k", "api:write", granted_by=frozenset({"api:read"}))
    keys.create_key(a.id, "k", "api:read", granted_by=frozenset({"api:read", "api:write"}))


@pytest.mark.parametrize("scopes", ["", "root", "smtp,admin"], ids=["empty", "unknown", "one-unknown"])
def test_bad_scopes(store, scopes):
    a = accounts.create_user("a@example.com")
    with pytest.raises(InvalidInput):
        keys.create_key(a.id, "k", scopes)


def test_last_used_is_recorded(store):
    a = accounts.create_user("a@example.com")
    info, key = keys.create_key(a.id, "k", "imap")
    assert keys.get_key(info.id).last_used_at is None
    keys.authenticate("a@example.com", key, "imap")
    assert keys.get_key(info.id).last_used_at is not None
