"""Subscriptions as names (RFC 9051 §6.3.7-8, RFC 5258 §3), and mailbox names that are not
valid modified UTF-7 (RFC 3501 §5.1.3): byte-exact replies, then stdlib imaplib and
IMAPClient the way mail clients use them. Every test runs on SQLite and PostgreSQL."""

from __future__ import annotations

from relate.store import mailboxes
from tests.imapd.conftest import Account, ImapServer, RawClient, untagged


def status_of(reply: list[bytes]) -> bytes:
    return reply[-1].split(b" ", 2)[1]


# -- subscriptions of names that need not exist ---------------------------------------------


def test_subscribe_a_name_that_does_not_exist(client: RawClient) -> None:
    assert client.command("a SUBSCRIBE Later/On")[-1].startswith(b"a OK")
    assert client.command("b SUBSCRIBE Later/On")[-1].startswith(b"b OK")  # already subscribed
    lines = untagged(client.command('c LIST (SUBSCRIBED) "" Later*'), b"LIST")
    assert lines == [b'* LIST (\\NonExistent \\Subscribed) "/" "Later/On"']
    assert untagged(client.command('d LSUB "" Later/*'), b"LSUB") == [b'* LSUB (\\Noselect) "/" "Later/On"']
    assert untagged(client.command('e LIST "" Later*'), b"LIST") == []  # LIST shows what exists
    assert client.command("f CREATE Later/On")[-1].startswith(b"f OK")  # the subscription is kept
    lines = untagged(client.command('g LIST (SUBSCRIBED) "" Later*'), b"LIST")
    assert lines == [b'* LIST (\\HasNoChildren \\Subscribed) "/" "Later/On"']
    assert untagged(client.command('h LSUB "" Later/*'), b"LSUB") == [b'* LSUB () "/" "Later/On"']


def test_delete_keeps_the_subscription(client: RawClient) -> None:
    client.command("a CREATE Gone")
    client.command("b SUBSCRIBE Gone")
    assert client.command("c DELETE Gone")[-1].startswith(b"c OK")
    lines = untagged(client.command('d LIST (SUBSCRIBED) "" Gone'), b"LIST")
    assert lines == [b'* LIST (\\NonExistent \\Subscribed) "/" "Gone"']
    assert untagged(client.command('e LSUB "" Gone'), b"LSUB") == [b'* LSUB (\\Noselect) "/" "Gone"']
    assert client.command("f UNSUBSCRIBE Gone")[-1].startswith(b"f OK")
    assert untagged(client.command('g LIST (SUBSCRIBED) "" Gone'), b"LIST") == []
    assert client.command("h UNSUBSCRIBE Gone")[-1].startswith(b"h OK")  # RFC 9051 §6.3.8: not subscribed


def test_recursivematch_reaches_parents_that_do_not_exist(client: RawClient) -> None:
    client.command("a SUBSCRIBE Ghost/Child")
    lines = untagged(client.command('b LIST (SUBSCRIBED RECURSIVEMATCH) "" %'), b"LIST")
    assert b'* LIST (\\NonExistent) "/" "Ghost" ("CHILDINFO" ("SUBSCRIBED"))' in lines
    lines = untagged(client.command('c LIST (SUBSCRIBED) "" %'), b"LIST")
    assert all(b'"Ghost"' not in line for line in lines)


def test_rename_takes_the_subscriptions_along(client: RawClient) -> None:
    client.command("a CREATE Work/Old/Inner")
    client.command("b SUBSCRIBE Work/Old")
    client.command("c SUBSCRIBE Work/Old/Inner")
    client.command("d SUBSCRIBE Work/Old/Deleted")  # names no mailbox, below the renamed one
    assert client.command("e RENAME Work/Old Kept/New")[-1].startswith(b"e OK")
    lines = untagged(client.command('f LSUB "" *'), b"LSUB")
    names = [line.rsplit(b" ", 1)[1] for line in lines]
    assert b'"Kept/New"' in names and b'"Kept/New/Inner"' in names and b'"Kept/New/Deleted"' in names
    assert not any(name.startswith(b'"Work/') for name in names)
    assert b'"Kept"' not in names  # the parent RENAME created is not subscribed
    # The sequence RFC 9051 §6.3.6 suggests to clients ends in the same state.
    assert client.command("g SUBSCRIBE Kept/New")[-1].startswith(b"g OK")
    assert client.command("h UNSUBSCRIBE Work/Old")[-1].startswith(b"h OK")
    assert untagged(client.command('i LSUB "" Work/*'), b"LSUB") == []


def test_rename_inbox_keeps_its_subscription(client: RawClient, account: Account) -> None:
    account.deliver()
    assert client.command("a RENAME INBOX Saved")[-1].startswith(b"a OK")
    lines = untagged(client.command('b LSUB "" *'), b"LSUB")
    assert b'* LSUB () "/" "INBOX"' in lines and b'* LSUB () "/" "Saved"' in lines


def test_create_subscribes_nothing_but_keeps_earlier_subscriptions(client: RawClient, account: Account) -> None:
    client.command("a SUBSCRIBE Planned/Leaf")
    client.command("b CREATE Planned/Leaf")
    assert mailboxes.get_mailbox(account.user_id, "Planned/Leaf").subscribed
    assert not mailboxes.get_mailbox(account.user_id, "Planned").subscribed


def test_subscribing_an_impossible_name_is_refused(client: RawClient) -> None:
    assert client.command('a SUBSCRIBE "a%b"')[-1].startswith(b"a NO [CANNOT]")
    assert client.command('b SUBSCRIBE "a//b"')[-1].startswith(b"b NO [CANNOT]")


def test_subscriptions_with_imaplib(server: ImapServer) -> None:
    conn = server.imaplib()
    assert conn.subscribe("Projects/Future")[0] == "OK"
    status, lines = conn.lsub('""', "Projects/*")
    assert status == "OK" and lines == [b'(\\Noselect) "/" "Projects/Future"']
    assert conn.create("Projects/Future")[0] == "OK"
    assert conn.delete("Projects/Future")[0] == "OK"
    status, lines = conn.list('""', "Projects/*")
    assert status == "OK" and lines == [None]  # the mailbox is gone ...
    status, lines = conn.lsub('""', "Projects/*")
    assert lines == [b'(\\Noselect) "/" "Projects/Future"']  # ... its subscription is not
    assert conn.unsubscribe("Projects/Future")[0] == "OK"
    assert conn.unsubscribe("Projects/Future")[0] == "OK"
    assert conn.lsub('""', "Projects/*")[1] == [None]


def test_subscriptions_with_imapclient(server: ImapServer) -> None:
    client = server.imapclient()
    client.create_folder("Lists/python")
    client.subscribe_folder("Lists/python")
    client.subscribe_folder("Lists/never-created")
    client.rename_folder("Lists", "Mailing")
    subscribed = {name for _, _, name in client.list_sub_folders("", "Mailing/*")}
    assert subscribed == {"Mailing/python", "Mailing/never-created"}
    assert client.list_sub_folders("", "Lists/*") == []
    existing = {name for _, _, name in client.list_folders("", "Mailing/*")}
    assert existing == {"Mailing/python"}


# -- names that are not valid modified UTF-7 --------------------------------------------------

INVALID_MUTF7 = "!#$&'+,-.0123456789:;<=>?@^_`|[}"  # "&'+,-" is no modified BASE64 run


def test_invalid_modified_utf7_name_is_no_not_bad(client: RawClient) -> None:
    name = INVALID_MUTF7
    assert status_of(client.command(f"a SELECT {name}")) == b"NO"
    assert status_of(client.command(f"b EXAMINE {name}")) == b"NO"
    assert client.command(f"c STATUS {name} (MESSAGES)")[-1].startswith(b"c NO [NONEXISTENT]")
    assert client.command(f"d DELETE {name}")[-1].startswith(b"d NO [NONEXISTENT]")
    assert client.command(f"e CREATE {name}")[-1].startswith(b"e NO [CANNOT]")
    assert client.command(f"f RENAME Archive {name}")[-1].startswith(b"f NO [CANNOT]")
    assert client.command(f"g SUBSCRIBE {name}")[-1].startswith(b"g NO [CANNOT]")
    assert client.command(f"h UNSUBSCRIBE {name}")[-1].startswith(b"h OK")
    assert client.command("i CREATE &Jjo")[-1].startswith(b"i NO [CANNOT]")  # unterminated run
    assert client.command('j CREATE "&AGE-"')[-1].startswith(b"j NO [CANNOT]")  # encodes "a"
    reply = client.command(f'k LIST "" {name}%*')  # as a pattern it matches nothing
    assert reply[-1].startswith(b"k OK") and untagged(reply, b"LIST") == []
    assert client.command(f'l LSUB "" {name}*')[-1].startswith(b"l OK")
    assert client.command("m NOOP")[-1].startswith(b"m OK")  # the connection is fine


def test_invalid_modified_utf7_copy_destination_is_trycreate(client: RawClient, account: Account) -> None:
    account.deliver()
    client.command("a SELECT INBOX")
    assert client.command("b COPY 1 &Jjo")[-1].startswith(b"b NO [TRYCREATE]")


def test_valid_modified_utf7_still_works(client: RawClient) -> None:
    assert client.command("a CREATE Entw&APw-rfe")[-1].startswith(b"a OK")
    assert client.command("b SUBSCRIBE Entw&APw-rfe")[-1].startswith(b"b OK")
    assert untagged(client.command('c LSUB "" Entw*'), b"LSUB") == [b'* LSUB () "/" "Entw&APw-rfe"']


def test_invalid_modified_utf7_with_imaplib(server: ImapServer) -> None:
    conn = server.imaplib()
    status, data = conn.select('"&Jjo"')
    assert status == "NO"
    status, data = conn.create('"R&D"')  # "&D" starts no valid modified BASE64 run
    assert status == "NO" and b"[CANNOT]" in data[0]
    assert conn.create('"R&-D"')[0] == "OK"  # the right spelling of "R&D"
    status, lines = conn.list('""', "R*")
    assert lines == [b'(\\HasNoChildren) "/" "R&-D"']
    assert conn.noop()[0] == "OK"
