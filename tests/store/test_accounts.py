import pytest

from relate.store import Conflict, Forbidden, InvalidInput, NotFound, accounts, mailboxes
from relate.store.types import AddressInfo


def test_create_user_makes_primary_address_domain_and_special_mailboxes(store):
    user = accounts.create_user("Alice@Example.COM", "Alice")
    assert user.primary_address == "alice@example.com"
    assert accounts.is_hosted_domain("example.com")
    boxes = {m.name: m.special_use for m in mailboxes.list_mailboxes(user.id)}
    assert boxes == {
        "INBOX": None, "Sent": "\\Sent", "Drafts": "\\Drafts", "Trash": "\\Trash",
        "Junk": "\\Junk", "Archive": "\\Archive",
    }
    assert accounts.resolve_recipient("ALICE@example.com") == user.id


def test_address_belongs_to_one_user(store):
    a = accounts.create_user("a@example.com")
    b = accounts.create_user("b@example.com")
    accounts.add_address(a.id, "sales@example.com", confirmed=True)
    with pytest.raises(Conflict):
        accounts.add_address(b.id, "Sales@example.com", confirmed=True)
    with pytest.raises(Conflict):
        accounts.create_user("sales@example.com")


def test_pending_address_receives_nothing_until_confirmed(store):
    a = accounts.create_user("a@example.com")
    accounts.add_address(a.id, "info@example.com", confirmed=False)
    assert accounts.resolve_recipient("info@example.com") is None
    assert not accounts.owns_address(a.id, "info@example.com")
    assert [p.address for p in accounts.pending_addresses()] == ["info@example.com"]
    accounts.confirm_address("info@example.com")
    assert accounts.resolve_recipient("info@example.com") == a.id
    assert accounts.owns_address(a.id, "info@example.com")


def test_unhosted_domain_does_not_receive(store):
    a = accounts.create_user("a@example.com")
    accounts.add_domain("other.test")
    accounts.add_address(a.id, "a@other.test", confirmed=False)
    accounts.confirm_address("a@other.test")
    assert accounts.resolve_recipient("a@other.test") == a.id
    accounts.remove_domain("other.test")
    assert accounts.resolve_recipient("a@other.test") is None


def test_requests_are_only_for_hosted_domains(store):
    a = accounts.create_user("a@example.com")
    with pytest.raises(InvalidInput, match=r"gmail\.com is not a domain hosted here"):
        accounts.add_address(a.id, "x@gmail.com", confirmed=False)
    assert accounts.list_addresses(a.id) == [AddressInfo("a@example.com", a.id, True, True)]


def test_confirming_never_hosts_a_domain(store):
    a = accounts.create_user("a@example.com")
    accounts.add_domain("other.test")
    accounts.add_address(a.id, "x@other.test", confirmed=False)
    accounts.remove_domain("other.test")  # before an administrator looked at the request
    with pytest.raises(Conflict, match=r"other\.test is not a domain hosted here"):
        accounts.confirm_address("x@other.test")
    assert "other.test" not in accounts.hosted_domains()
    assert [p.address for p in accounts.pending_addresses()] == ["x@other.test"]


def test_pending_requests_are_limited(store):
    a = accounts.create_user("a@example.com")
    for n in range(accounts.MAX_PENDING_ADDRESSES):
        accounts.add_address(a.id, f"p{n}@example.com", confirmed=False)
    with pytest.raises(Conflict, match="wait for an administrator"):
        accounts.add_address(a.id, "one-more@example.com", confirmed=False)
    accounts.confirm_address("p0@example.com")  # a confirmed one no longer counts
    accounts.add_address(a.id, "one-more@example.com", confirmed=False)
    accounts.add_address(a.id, "assigned@example.com", confirmed=True)  # no limit on an administrator
    assert len(accounts.pending_addresses()) == accounts.MAX_PENDING_ADDRESSES


def test_an_administrators_creation_takes_over_a_pending_request(store, caplog):
    squatter = accounts.create_user("squatter@example.com")
    other = accounts.create_user("other@example.com")
    for address in ("newguy@example.com", "sales@example.com", "mine@example.com"):
        accounts.add_address(squatter.id, address, confirmed=False)
    with caplog.at_level("WARNING", logger="relate.store.accounts"):
        newguy = accounts.create_user("newguy@example.com")
    assert "newguy@example.com" in caplog.text and f"user {squatter.id}" in caplog.text
    assert accounts.resolve_recipient("newguy@example.com") == newguy.id
    assert accounts.add_address(other.id, "sales@example.com", confirmed=True).user_id == other.id
    assert accounts.add_address(squatter.id, "mine@example.com", confirmed=True).confirmed  # their own: confirmed
    assert accounts.pending_addresses() == []
    assert [a.address for a in accounts.list_addresses(squatter.id)] == ["mine@example.com", "squatter@example.com"]


def test_a_pending_request_does_not_take_over_when_told_not_to(store):
    squatter = accounts.create_user("squatter@example.com")
    accounts.add_address(squatter.id, "newguy@example.com", confirmed=False)
    with pytest.raises(Conflict):
        accounts.create_user("newguy@example.com", over_pending=False)  # an OIDC sign-in
    other = accounts.create_user("other@example.com")
    with pytest.raises(Conflict):
        accounts.add_address(other.id, "newguy@example.com", confirmed=False)  # another user's request


def test_a_confirmed_address_is_never_taken_over(store):
    a = accounts.create_user("a@example.com")
    b = accounts.create_user("b@example.com")
    accounts.add_domain("other.test")
    accounts.add_address(a.id, "x@other.test", confirmed=False)
    accounts.confirm_address("x@other.test")
    with pytest.raises(Conflict):
        accounts.create_user("x@other.test")
    with pytest.raises(Conflict):
        accounts.add_address(b.id, "x@other.test", confirmed=True)
    with pytest.raises(Conflict):
        accounts.add_address(b.id, "a@example.com", confirmed=True)
    assert accounts.resolve_recipient("x@other.test") == a.id


def test_primary_address_cannot_be_removed(store):
    accounts.create_user("a@example.com")
    with pytest.raises(Conflict):
        accounts.remove_address("a@example.com")


def test_remove_address_checks_owner(store):
    a = accounts.create_user("a@example.com")
    b = accounts.create_user("b@example.com")
    accounts.add_address(a.id, "x@example.com", confirmed=True)
    with pytest.raises(NotFound):
        accounts.remove_address("x@example.com", user_id=b.id)
    accounts.remove_address("x@example.com", user_id=a.id)
    assert accounts.resolve_recipient("x@example.com") is None


@pytest.mark.parametrize("bad", ["", "noat", "@example.com", "a@", "a b@example.com", "a@@example.com",
                                 "a@exa mple.com", ".a@example.com", "a..b@example.com", "a@-x.com", "x" * 65 + "@example.com"],
                         ids=["empty", "no-at", "no-local", "no-domain", "space", "double-at", "space-domain",
                              "leading-dot", "double-dot", "bad-label", "local-too-long"])
def test_bad_addresses_are_refused(store, bad):
    with pytest.raises(InvalidInput):
        accounts.create_user(bad)


def test_domains(store):
    assert accounts.add_domain("Example.ORG.") == "example.org"
    with pytest.raises(Conflict):
        accounts.add_domain("example.org")
    assert "example.org" in accounts.list_domains()
    accounts.remove_domain("example.org")
    with pytest.raises(NotFound):
        accounts.remove_domain("example.org")


def test_remove_user_removes_everything_of_theirs(store):
    a = accounts.create_user("a@example.com")
    accounts.add_address(a.id, "alias@example.com", confirmed=True)
    accounts.remove_user("alias@example.com")
    assert accounts.find_user("a@example.com") is None
    assert mailboxes.list_mailboxes(a.id) == []
    accounts.create_user("alias@example.com")  # the address is free again


def test_forbidden_is_a_store_error():
    assert issubclass(Forbidden, Exception)


def test_user_lock_is_exclusive(store):
    from relate.store import locks

    with locks.try_lock(locks.POP3_MAILDROP, 7) as held:
        assert held is not None
        assert locks.try_lock(locks.POP3_MAILDROP, 7) is None
    relock = locks.try_lock(locks.POP3_MAILDROP, 7)
    assert relock is not None
    relock.release()
