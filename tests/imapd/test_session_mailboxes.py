"""CREATE, DELETE, RENAME, SUBSCRIBE, LIST (with LIST-EXTENDED and LIST-STATUS), LSUB, STATUS."""

from __future__ import annotations

import pytest

from relate.imapd.mailboxcmds import MAX_WILDCARDS, Pattern
from relate.imapd.responses import Bad
from relate.store import mailboxes
from tests.imapd.conftest import Account, ImapServer, RawClient, simple_message, untagged


@pytest.mark.parametrize(
    ("pattern", "name", "matches"),
    [
        pytest.param("*", "a/b/c", True, id="star-crosses-levels"),
        pytest.param("%", "a/b", False, id="percent-stops-at-delimiter"),
        pytest.param("a/%", "a/b", True, id="percent-one-level"),
        pytest.param("a/%/%", "a/b/c", True, id="percent-two-levels"),
        pytest.param("*test4", "x/test3/test4", True, id="star-suffix"),
        pytest.param("x/%t*4", "x/test3/test4", True, id="mixed"),
        pytest.param("inbox", "INBOX", True, id="inbox-any-case"),
        pytest.param("InBoX/%", "INBOX/sub", True, id="inbox-children-any-case"),
        pytest.param("INBOX/SUB", "INBOX/sub", False, id="only-inbox-folds"),
        pytest.param("Sent", "sent", False, id="other-names-case-sensitive"),
        pytest.param("", "", True, id="empty"),
        pytest.param("a**%%*b", "a/x/b", True, id="runs-collapse"),
    ],
)
def test_pattern(pattern: str, name: str, matches: bool) -> None:
    assert Pattern(pattern).match(name) is matches


def test_pattern_wildcards_are_bounded() -> None:
    Pattern("a%" * MAX_WILDCARDS)
    with pytest.raises(Bad):
        Pattern("a%" * (MAX_WILDCARDS + 1))
    hostile = Pattern("a*" * MAX_WILDCARDS + "b")
    assert not hostile.match("a" * 1000)  # linear in the name, no backtracking


def test_list_shows_hierarchy_and_special_use(client: RawClient) -> None:
    assert client.command("a CREATE Projects/2025/Q1")[-1].startswith(b"a OK")
    lines = untagged(client.command('b LIST "" *'), b"LIST")
    assert lines[0] == b'* LIST (\\HasNoChildren) "/" "INBOX"'
    assert b'* LIST (\\HasNoChildren \\Sent) "/" "Sent"' in lines
    assert b'* LIST (\\HasChildren) "/" "Projects"' in lines
    assert b'* LIST (\\HasChildren) "/" "Projects/2025"' in lines
    assert b'* LIST (\\HasNoChildren) "/" "Projects/2025/Q1"' in lines
    lines = untagged(client.command('c LIST "" Projects/%'), b"LIST")
    assert lines == [b'* LIST (\\HasChildren) "/" "Projects/2025"']
    lines = untagged(client.command('d LIST Projects/ %'), b"LIST")
    assert lines == [b'* LIST (\\HasChildren) "/" "Projects/2025"']


def test_list_empty_pattern_gives_delimiter(client: RawClient) -> None:
    assert untagged(client.command('a LIST "" ""'), b"LIST") == [b'* LIST (\\Noselect) "/" ""']
    assert untagged(client.command('b LIST "Foo/bar" ""'), b"LIST") == [b'* LIST (\\Noselect) "/" "Foo/"']


def test_create_rules(client: RawClient) -> None:
    assert client.command("a CREATE Trips/")[-1].startswith(b"a OK")  # trailing delimiter declared
    assert client.command("b CREATE Trips")[-1].startswith(b"b NO [ALREADYEXISTS]")
    assert client.command("c CREATE inbox")[-1].startswith(b"c NO [ALREADYEXISTS]")
    assert client.command("d CREATE Receipts (USE (\\Flagged))")[-1].startswith(b"d OK")
    assert client.command("e CREATE Other (USE (\\Sent))")[-1].startswith(b"e NO [USEATTR]")  # Sent has it
    assert client.command("f CREATE Weird (USE (\\Bogus))")[-1].startswith(b"f NO [USEATTR]")
    lines = untagged(client.command('g LIST "" Receipts'), b"LIST")
    assert lines == [b'* LIST (\\HasNoChildren \\Flagged) "/" "Receipts"']
    assert client.command('h CREATE "a%b"')[-1].startswith(b"h NO [CANNOT]")


def test_created_mailboxes_start_unsubscribed(client: RawClient) -> None:
    client.command("a CREATE Lists/rust")
    assert untagged(client.command('b LSUB "" Lists*'), b"LSUB") == []
    client.command("c SUBSCRIBE Lists/rust")
    lines = untagged(client.command('d LSUB "" Lists/*'), b"LSUB")
    assert lines == [b'* LSUB () "/" "Lists/rust"']
    # "%" shows the unsubscribed parent as \Noselect (RFC 3501 §6.3.9).
    lines = untagged(client.command('e LSUB "" %'), b"LSUB")
    assert b'* LSUB (\\Noselect) "/" "Lists"' in lines
    assert b'* LSUB () "/" "INBOX"' in lines
    client.command("f UNSUBSCRIBE Lists/rust")
    assert untagged(client.command('g LSUB "" Lists/*'), b"LSUB") == []


def test_delete_rules(client: RawClient, account: Account) -> None:
    assert client.command("a DELETE INBOX")[-1].startswith(b"a NO")
    assert client.command("b DELETE Nowhere")[-1].startswith(b"b NO [NONEXISTENT]")
    client.command("c CREATE Parent/Child")
    assert client.command("d DELETE Parent")[-1].startswith(b"d NO [HASCHILDREN]")
    assert client.command("e DELETE Parent/Child")[-1].startswith(b"e OK")
    assert client.command("f DELETE Parent")[-1].startswith(b"f OK")
    client.command("g SELECT Trash")
    assert client.command("h DELETE Trash")[-1].startswith(b"h OK")
    assert client.command("i FETCH 1 FLAGS")[-1].startswith(b"i BAD")  # deleting it deselected it


def test_uidvalidity_changes_when_a_name_is_reused(client: RawClient, account: Account) -> None:
    client.command("a CREATE Again")
    first = untagged(client.command("b STATUS Again (UIDVALIDITY)"), b"STATUS")
    client.command("c DELETE Again")
    client.command("d CREATE Again")
    second = untagged(client.command("e STATUS Again (UIDVALIDITY)"), b"STATUS")
    assert first != second


def test_rename_moves_children_and_keeps_uids(client: RawClient, account: Account) -> None:
    client.command("a CREATE Old/Inner")
    account.append(mailbox="Old")
    before = untagged(client.command("b STATUS Old (UIDVALIDITY UIDNEXT MESSAGES)"), b"STATUS")[0]
    assert client.command("c RENAME Old New")[-1].startswith(b"c OK")
    after = untagged(client.command("d STATUS New (UIDVALIDITY UIDNEXT MESSAGES)"), b"STATUS")[0]
    assert before.replace(b'"Old"', b'"New"') == after
    lines = untagged(client.command('e LIST "" New*'), b"LIST")
    assert lines == [b'* LIST (\\HasChildren) "/" "New"', b'* LIST (\\HasNoChildren) "/" "New/Inner"']
    assert client.command("f RENAME Nowhere Else")[-1].startswith(b"f NO [NONEXISTENT]")
    assert client.command("g RENAME New Sent")[-1].startswith(b"g NO [ALREADYEXISTS]")
    assert client.command("h RENAME New INBOX")[-1].startswith(b"h NO")


def test_rename_inbox_moves_messages_and_leaves_it_empty(client: RawClient, account: Account) -> None:
    account.deliver()
    account.deliver()
    assert client.command("a RENAME INBOX Old-Inbox")[-1].startswith(b"a OK")
    assert untagged(client.command("b STATUS INBOX (MESSAGES)"), b"STATUS") == [b'* STATUS "INBOX" (MESSAGES 0)']
    assert untagged(client.command('c STATUS "Old-Inbox" (MESSAGES)'), b"STATUS") == [
        b'* STATUS "Old-Inbox" (MESSAGES 2)'
    ]


def test_status_items(client: RawClient, account: Account, server: ImapServer) -> None:
    account.append(simple_message("one"), flags=("\\Seen",))
    account.append(simple_message("two"), flags=("\\Deleted",))
    size = sum(len(simple_message(s)) for s in ("one", "two"))
    box = mailboxes.get_mailbox(account.user_id, "INBOX")
    reply = client.command(
        "a STATUS INBOX (MESSAGES UIDNEXT UIDVALIDITY UNSEEN DELETED SIZE HIGHESTMODSEQ APPENDLIMIT RECENT)"
    )
    limit = server.settings.smtp.max_message_size
    assert untagged(reply, b"STATUS") == [
        f'* STATUS "INBOX" (MESSAGES 2 UIDNEXT 3 UIDVALIDITY {box.uid_validity} UNSEEN 1 DELETED 1 '
        f"SIZE {size} HIGHESTMODSEQ {box.highest_modseq} APPENDLIMIT {limit} RECENT 2)".encode()
    ]
    assert client.command("b STATUS Nowhere (MESSAGES)")[-1].startswith(b"b NO [NONEXISTENT]")


def test_list_extended_selection_and_return_options(client: RawClient) -> None:
    for name in ("Box/a", "Box/b/c", "Box/d"):
        client.command(f"x CREATE {name}")
    client.command("x SUBSCRIBE Box/a")
    client.command("x SUBSCRIBE Box/b/c")
    lines = untagged(client.command('a LIST (SUBSCRIBED) "" Box/*'), b"LIST")
    assert lines == [
        b'* LIST (\\HasNoChildren \\Subscribed) "/" "Box/a"',
        b'* LIST (\\HasNoChildren \\Subscribed) "/" "Box/b/c"',
    ]
    lines = untagged(client.command('b LIST (SUBSCRIBED RECURSIVEMATCH) "" Box/% RETURN (CHILDREN)'), b"LIST")
    assert lines == [
        b'* LIST (\\HasNoChildren \\Subscribed) "/" "Box/a"',
        b'* LIST (\\HasChildren) "/" "Box/b" ("CHILDINFO" ("SUBSCRIBED"))',
    ]
    lines = untagged(client.command('c LIST "" (Box/a Box/d) RETURN (SUBSCRIBED)'), b"LIST")
    assert lines == [
        b'* LIST (\\HasNoChildren \\Subscribed) "/" "Box/a"',
        b'* LIST (\\HasNoChildren) "/" "Box/d"',
    ]
    lines = untagged(client.command('d LIST (SPECIAL-USE) "" *'), b"LIST")
    assert [line.rsplit(b" ", 1)[1] for line in lines] == [b'"Archive"', b'"Drafts"', b'"Junk"', b'"Sent"', b'"Trash"']
    assert client.command('e LIST (RECURSIVEMATCH) "" *')[-1].startswith(b"e BAD")
    assert client.command('f LIST "" * RETURN (BOGUS)')[-1].startswith(b"f BAD")


def test_list_status(client: RawClient, account: Account) -> None:
    account.deliver()
    reply = client.command('a LIST "" (INBOX Sent) RETURN (STATUS (MESSAGES UNSEEN))')
    assert [line.rstrip(b"\r\n") for line in reply[:-1]] == [
        b'* LIST (\\HasNoChildren) "/" "INBOX"',
        b'* STATUS "INBOX" (MESSAGES 1 UNSEEN 1)',
        b'* LIST (\\HasNoChildren \\Sent) "/" "Sent"',
        b'* STATUS "Sent" (MESSAGES 0 UNSEEN 0)',
    ]


def test_namespace(client: RawClient) -> None:
    assert client.command("a NAMESPACE")[0] == b'* NAMESPACE (("" "/")) NIL NIL\r\n'


def test_international_names_in_modified_utf7_and_utf8(client: RawClient) -> None:
    assert client.command("a CREATE &ZeVnLIqe-")[-1].startswith(b"a OK")  # 日本語
    assert untagged(client.command('b LIST "" &ZeVnLIqe-'), b"LIST") == [b'* LIST (\\HasNoChildren) "/" "&ZeVnLIqe-"']
    client.command("c ENABLE UTF8=ACCEPT")
    lines = untagged(client.command('d LIST "" "\xe6\x97\xa5*"'.encode("latin-1")), b"LIST")
    assert lines == ['* LIST (\\HasNoChildren) "/" "日本語"'.encode()]
