import pytest

from relate.store import (
    Conflict,
    Envelope,
    Forbidden,
    InvalidInput,
    NotFound,
    accounts,
    events,
    groupcommit,
    mailboxes,
    messages,
    userfilters,
)
from relate.store.types import SPECIAL_MAILBOXES
from tests.store.helpers import make_message


@pytest.fixture
def user(store):
    return accounts.create_user("a@example.com")


def names(user_id):
    return [m.name for m in mailboxes.list_mailboxes(user_id)]


def test_create_makes_parents(user):
    mailboxes.create_mailbox(user.id, "Projects/2026/Q4")
    assert {"Projects", "Projects/2026", "Projects/2026/Q4"} <= set(names(user.id))
    with pytest.raises(Conflict):
        mailboxes.create_mailbox(user.id, "Projects/2026")


@pytest.mark.parametrize("bad", ["", "a//b", "/a", "a/", "a*", "a%b", "x\x01", "x" * 1001],
                         ids=["empty", "empty-level", "leading-slash", "trailing-slash", "star", "percent", "control", "long"])
def test_bad_names(user, bad):
    with pytest.raises(InvalidInput):
        mailboxes.create_mailbox(user.id, bad)


def test_inbox_is_case_insensitive(user):
    assert mailboxes.get_mailbox(user.id, "inbox").name == "INBOX"
    with pytest.raises(Conflict):
        mailboxes.create_mailbox(user.id, "Inbox")
    box = mailboxes.create_mailbox(user.id, "inbox/child")
    assert box.name == "INBOX/child"


def test_rename_moves_children(user):
    mailboxes.create_mailbox(user.id, "A/B/C")
    before = mailboxes.get_mailbox(user.id, "A/B").uid_validity
    mailboxes.rename_mailbox(user.id, "A", "Z/Y")
    assert {"Z", "Z/Y", "Z/Y/B", "Z/Y/B/C"} <= set(names(user.id))
    assert "A" not in names(user.id)
    assert mailboxes.get_mailbox(user.id, "Z/Y/B").uid_validity == before


def test_rename_inbox_moves_messages_and_keeps_inbox(user):
    inbox = mailboxes.get_mailbox(user.id, "INBOX")
    for i in range(3):
        messages.append(user.id, inbox.id, make_message(f"m{i}"))
    mailboxes.rename_mailbox(user.id, "INBOX", "Old")
    old = mailboxes.get_mailbox(user.id, "Old")
    assert [e.uid for e in messages.list_entries(user.id, old.id)] == [1, 2, 3]
    assert messages.list_entries(user.id, inbox.id) == []
    assert mailboxes.get_mailbox(user.id, "INBOX").id == inbox.id


def test_rename_rules(user):
    mailboxes.create_mailbox(user.id, "A")
    with pytest.raises(Conflict):
        mailboxes.rename_mailbox(user.id, "A", "Sent")
    with pytest.raises(Forbidden):
        mailboxes.rename_mailbox(user.id, "A", "inbox")
    with pytest.raises(NotFound):
        mailboxes.rename_mailbox(user.id, "Nope", "B")
    with pytest.raises(InvalidInput):
        mailboxes.rename_mailbox(user.id, "A", "A/B")


def test_delete_rules(user):
    with pytest.raises(Forbidden):
        mailboxes.delete_mailbox(user.id, "INBOX")
    mailboxes.create_mailbox(user.id, "P/C")
    with pytest.raises(Conflict):
        mailboxes.delete_mailbox(user.id, "P")
    mailboxes.delete_mailbox(user.id, "P/C")
    mailboxes.delete_mailbox(user.id, "P")
    with pytest.raises(NotFound):
        mailboxes.delete_mailbox(user.id, "P")


def test_recreated_mailbox_gets_greater_uidvalidity(user):
    first = mailboxes.create_mailbox(user.id, "X")
    mailboxes.delete_mailbox(user.id, "X")
    second = mailboxes.create_mailbox(user.id, "X")
    assert second.uid_validity > first.uid_validity


def test_subscriptions(user):
    mailboxes.create_mailbox(user.id, "S")
    mailboxes.set_subscribed(user.id, "S", False)
    assert not mailboxes.get_mailbox(user.id, "S").subscribed
    mailboxes.set_subscribed(user.id, "S", True)
    assert mailboxes.get_mailbox(user.id, "S").subscribed


def test_status_counts(user):
    inbox = mailboxes.get_mailbox(user.id, "INBOX")
    raws = [make_message(f"s{i}") for i in range(3)]
    for raw in raws:
        messages.append(user.id, inbox.id, raw)
    messages.store_flags(user.id, inbox.id, [1], "add", ["\\Seen"])
    messages.store_flags(user.id, inbox.id, [2], "add", ["\\Deleted"])
    st = mailboxes.status(user.id, inbox.id)
    assert (st.messages, st.unseen, st.deleted, st.size) == (3, 2, 1, sum(map(len, raws)))


def test_mailbox_events(user):
    sub = events.bus.subscribe(user.id)
    try:
        mailboxes.create_mailbox(user.id, "E")
        mailboxes.rename_mailbox(user.id, "E", "F")
        mailboxes.delete_mailbox(user.id, "F")
        kinds = []
        while len(kinds) < 3:
            change = sub.get(timeout=5)
            assert change is not None
            kinds.append(change.kind)
        assert kinds == [events.MAILBOX_CREATED, events.MAILBOX_RENAMED, events.MAILBOX_DELETED]
    finally:
        sub.close()


def test_other_users_mailboxes_are_invisible(user):
    other = accounts.create_user("b@example.com")
    box = mailboxes.get_mailbox(other.id, "INBOX")
    with pytest.raises(NotFound):
        mailboxes.get_mailbox_by_id(user.id, box.id)
    with pytest.raises(NotFound):
        messages.append(user.id, box.id, make_message())


# -- special-use roles ------------------------------------------------------------------------

ROLES = [(use, name) for name, use in SPECIAL_MAILBOXES if use]


def uses(user_id):
    return {m.name: m.special_use for m in mailboxes.list_mailboxes(user_id)}


@pytest.mark.parametrize(("use", "name"), ROLES, ids=[name for _, name in ROLES])
def test_a_deleted_role_is_taken_again_by_its_default_name(user, use, name):
    mailboxes.delete_mailbox(user.id, name)  # as IMAP DELETE may
    assert mailboxes.find_special(user.id, use) is None
    assert mailboxes.create_mailbox(user.id, name).special_use == use
    assert mailboxes.find_special(user.id, use).name == name


def test_a_default_name_takes_no_role_another_mailbox_has(user):
    mailboxes.rename_mailbox(user.id, "Trash", "Bin")  # the role follows the mailbox
    assert mailboxes.create_mailbox(user.id, "Trash").special_use is None
    assert mailboxes.create_mailbox(user.id, "Old/Trash").special_use is None
    mailboxes.delete_mailbox(user.id, "Bin")  # now there is no \\Trash, and only "Trash" would take it
    assert mailboxes.create_mailbox(user.id, "New/Trash").special_use is None
    assert mailboxes.create_mailbox(user.id, "trash").special_use is None
    assert mailboxes.create_mailbox(user.id, "Deleted", "\\Trash").special_use == "\\Trash"  # a role asked for


@pytest.mark.parametrize(("use", "name"), ROLES, ids=[name for _, name in ROLES])
def test_a_deleted_role_is_taken_again_by_a_mailbox_renamed_to_its_default_name(user, use, name):
    mailboxes.delete_mailbox(user.id, name)  # as IMAP DELETE may
    mailboxes.create_mailbox(user.id, "Old")
    assert mailboxes.rename_mailbox(user.id, "Old", name).special_use == use
    assert mailboxes.find_special(user.id, use).name == name


def test_a_renamed_mailbox_keeps_its_role_and_takes_none_another_has(user):
    assert mailboxes.rename_mailbox(user.id, "Trash", "Bin").special_use == "\\Trash"
    mailboxes.create_mailbox(user.id, "Old")
    assert mailboxes.rename_mailbox(user.id, "Old", "Trash").special_use is None  # Bin has the role
    mailboxes.delete_mailbox(user.id, "Bin")
    mailboxes.delete_mailbox(user.id, "Sent")
    assert mailboxes.rename_mailbox(user.id, "Trash", "Sent").special_use == "\\Sent"
    assert mailboxes.rename_mailbox(user.id, "Sent", "Old/Trash").special_use == "\\Sent"  # a role stays


def test_renaming_inbox_to_a_missing_roles_name_gives_the_new_mailbox_the_role(user):
    mailboxes.delete_mailbox(user.id, "Archive")
    assert mailboxes.rename_mailbox(user.id, "INBOX", "Archive").special_use == "\\Archive"
    assert uses(user.id)["INBOX"] is None


def test_ensure_special_recreates_a_missing_role(user):
    trash = mailboxes.find_special(user.id, "\\Trash")
    assert mailboxes.ensure_special(user.id, "\\Trash") == trash
    mailboxes.delete_mailbox(user.id, "Trash")
    again = mailboxes.ensure_special(user.id, "\\Trash")
    assert again.name == "Trash" and again.special_use == "\\Trash" and again.subscribed
    assert again.id != trash.id and mailboxes.ensure_special(user.id, "\\Trash") == again


def test_ensure_special_picks_a_free_name(user):
    mailboxes.rename_mailbox(user.id, "Trash", "Bin")
    mailboxes.create_mailbox(user.id, "Trash")  # an ordinary mailbox: Bin has the role
    mailboxes.create_mailbox(user.id, "Trash 2")
    mailboxes.delete_mailbox(user.id, "Bin")
    assert mailboxes.ensure_special(user.id, "\\Trash").name == "Trash 3"
    assert uses(user.id)["Trash"] is None and uses(user.id)["Trash 3"] == "\\Trash"


@pytest.mark.parametrize("name", [name for name, _ in SPECIAL_MAILBOXES])
def test_keep_special_refuses_special_mailboxes(user, name):
    with pytest.raises(Conflict):
        mailboxes.delete_mailbox(user.id, name, keep_special=True)
    assert name in names(user.id)


def test_keep_special_deletes_ordinary_mailboxes(user):
    mailboxes.create_mailbox(user.id, "Plain")
    mailboxes.delete_mailbox(user.id, "Plain", keep_special=True)
    assert "Plain" not in names(user.id)


def test_a_filters_delete_goes_to_a_recreated_trash(user):
    userfilters.create_filter(user.id, "bin it", {"subject": "spam"}, {"delete": True})
    mailboxes.delete_mailbox(user.id, "Trash")
    messages.deliver(make_message("spam offer"), Envelope("carol@example.com", (user.primary_address,)))
    trash = mailboxes.find_special(user.id, "\\Trash")
    assert trash is not None and trash.name == "Trash"
    assert len(messages.list_entries(user.id, trash.id)) == 1
    assert messages.list_entries(user.id, mailboxes.get_mailbox(user.id, "INBOX").id) == []


def test_the_sent_copy_goes_to_a_recreated_sent(user):
    mailboxes.delete_mailbox(user.id, "Sent")
    messages.deliver(make_message("out"), Envelope(user.primary_address, ("nobody@elsewhere.test",),
                                                   sender_user_id=user.id))
    sent = mailboxes.find_special(user.id, "\\Sent")
    assert sent is not None and len(messages.list_entries(user.id, sent.id)) == 1


def test_group_commit_files_into_recreated_mailboxes_too(user):
    userfilters.create_filter(user.id, "bin it", {"subject": "spam"}, {"delete": True})
    mailboxes.delete_mailbox(user.id, "Trash")
    mailboxes.delete_mailbox(user.id, "Sent")
    groupcommit.deliver(make_message("spam again"), Envelope(user.primary_address, (user.primary_address,),
                                                             sender_user_id=user.id))
    trash, sent = mailboxes.find_special(user.id, "\\Trash"), mailboxes.find_special(user.id, "\\Sent")
    assert trash is not None and len(messages.list_entries(user.id, trash.id)) == 1
    assert sent is not None and len(messages.list_entries(user.id, sent.id)) == 1
    assert messages.list_entries(user.id, mailboxes.get_mailbox(user.id, "INBOX").id) == []
