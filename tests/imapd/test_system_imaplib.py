"""Python's imaplib against the real listeners, one test per command family."""

from __future__ import annotations

import email
import imaplib
import re
import time

import pytest

from tests.imapd.conftest import Account, ImapServer, simple_message


@pytest.fixture
def imap(server: ImapServer) -> imaplib.IMAP4:
    return server.imaplib()


def ok(result: tuple[str, list]) -> list:
    typ, data = result
    assert typ == "OK", data
    return data


def test_mailbox_family(imap: imaplib.IMAP4) -> None:
    ok(imap.create("Projects/Relate"))
    ok(imap.subscribe("Projects/Relate"))
    names = [line.decode() for line in ok(imap.list())]
    assert '(\\HasChildren) "/" "Projects"' in names
    assert '(\\HasNoChildren) "/" "Projects/Relate"' in names
    assert [line.decode() for line in ok(imap.lsub('""', "Projects/*"))] == ['() "/" "Projects/Relate"']
    ok(imap.rename("Projects/Relate", "Projects/Mail"))
    assert ok(imap.status("Projects/Mail", "(MESSAGES UIDNEXT)"))[0] == b'"Projects/Mail" (MESSAGES 0 UIDNEXT 1)'
    ok(imap.unsubscribe("Projects/Mail"))
    ok(imap.delete("Projects/Mail"))
    typ, data = imap.delete("Projects/Mail")
    assert typ == "NO" and b"[NONEXISTENT]" in data[0]
    assert ok(imap.namespace())[0] == b'(("" "/")) NIL NIL'


def test_append_fetch_store_search(imap: imaplib.IMAP4, account: Account) -> None:
    date = imaplib.Time2Internaldate(time.mktime((2025, 3, 4, 5, 6, 7, 0, 0, -1)))
    typ, data = imap.append("INBOX", "(\\Flagged)", date, simple_message("first"))
    assert typ == "OK" and data[0].startswith(b"[APPENDUID ")
    imap.append("INBOX", None, None, simple_message("second", body="needle in a haystack\r\n"))
    assert ok(imap.select("INBOX")) == [b"2"]
    data = ok(imap.fetch("1:2", "(UID FLAGS RFC822.SIZE ENVELOPE)"))
    assert b"FLAGS (\\Flagged \\Recent)" in data[0] and b'"first"' in data[0]
    data = ok(imap.fetch("2", "(BODY.PEEK[])"))
    assert email.message_from_bytes(data[0][1])["Subject"] == "second"
    assert ok(imap.search(None, "FLAGGED")) == [b"1"]
    assert ok(imap.search(None, "BODY", "needle")) == [b"2"]
    assert ok(imap.uid("SEARCH", "SUBJECT", "second")) == [b"2"]
    data = ok(imap.store("2", "+FLAGS", "(\\Answered $Done)"))
    assert data == [b"2 (FLAGS (\\Answered \\Recent $Done))"]
    data = ok(imap.uid("STORE", "1", "-FLAGS.SILENT", "(\\Flagged)"))
    assert data == [None]
    assert account.flags() == {1: frozenset(), 2: frozenset({"\\Answered", "$Done"})}
    ok(imap.fetch("1", "(RFC822)"))  # sets \Seen
    assert ok(imap.search(None, "SEEN")) == [b"1"]


def test_copy_move_expunge_close(imap: imaplib.IMAP4, account: Account) -> None:
    for subject in ("a", "b", "c"):
        account.append(simple_message(subject))
    ok(imap.select("INBOX"))
    typ, data = imap.copy("1:2", "Archive")
    assert typ == "OK"
    assert re.fullmatch(rb"\[COPYUID \d+ 1:2 1:2\] COPY completed", data[0])
    typ, data = imap.uid("MOVE", "3", "Trash")
    assert typ == "OK"
    assert imap.untagged_responses.pop("EXPUNGE") == [b"3"]
    ok(imap.store("1", "+FLAGS", "\\Deleted"))
    assert ok(imap.expunge()) == [b"1"]
    ok(imap.store("1", "+FLAGS", "\\Deleted"))
    ok(imap.close())
    assert account.uids() == [] and account.uids("Archive") == [1, 2] and account.uids("Trash") == [1]


def test_check_noop_unselect_and_logout(imap: imaplib.IMAP4, account: Account) -> None:
    ok(imap.select("INBOX"))
    account.deliver()
    ok(imap.noop())
    assert imap.untagged_responses.get("EXISTS")[-1] == b"1"
    ok(imap.check())
    ok(imap.unselect())
    typ, _ = imap.logout()
    assert typ == "BYE"


def test_examine_is_read_only(imap: imaplib.IMAP4, account: Account) -> None:
    account.append()
    ok(imap.select("INBOX", readonly=True))
    typ, _ = imap.store("1", "+FLAGS", "\\Seen")
    assert typ == "NO"
    ok(imap.fetch("1", "(BODY[])"))
    assert account.flags()[1] == frozenset()  # EXAMINE never sets \Seen


def test_plain_port_with_starttls(server: ImapServer, account: Account) -> None:
    from tests.imapd.conftest import insecure_context

    imap = server.imaplib(tls=False, login=False)
    imap.starttls(ssl_context=insecure_context())
    ok(imap.login(account.address, account.key))
    ok(imap.select("INBOX"))
    assert imap.logout()[0] == "BYE"


def test_a_trash_created_again_takes_the_trash_role(imap: imaplib.IMAP4, account: Account) -> None:
    """Thunderbird re-creates a deleted Trash with a plain CREATE; it is the \\Trash again."""
    ok(imap.delete("Trash"))
    assert ok(imap.list('""', "Trash")) == [None]
    ok(imap.create("Trash"))
    assert [line.decode() for line in ok(imap.list('""', "Trash"))] == ['(\\HasNoChildren \\Trash) "/" "Trash"']
    ok(imap.create("Trash/Old"))  # only the top-level default name takes the role
    assert b"\\Trash" not in ok(imap.list('""', "Trash/Old"))[0]
