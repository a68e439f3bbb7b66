"""IMAPClient (the library many Python mail tools use) against the real listeners."""

from __future__ import annotations

import gevent
import pytest
from imapclient import IMAPClient

from tests.imapd.conftest import Account, ImapServer, simple_message


@pytest.fixture
def client(server: ImapServer) -> IMAPClient:
    return server.imapclient()


def test_capabilities_and_id(client: IMAPClient) -> None:
    for name in (b"IMAP4REV2", b"IDLE", b"MOVE", b"UIDPLUS", b"CONDSTORE", b"QRESYNC", b"SPECIAL-USE", b"ESEARCH"):
        assert client.has_capability(name.decode())
    server_id = client.id_({"name": "test"})
    assert server_id[0][:2] == (b"name", b"Relate Mail")


def test_folders(client: IMAPClient) -> None:
    client.create_folder("Clients/IMAPClient")
    assert client.folder_exists("Clients/IMAPClient")
    folders = {name: flags for flags, _, name in client.list_folders()}
    assert b"\\Sent" in folders["Sent"] and b"\\HasChildren" in folders["Clients"]
    assert client.find_special_folder(b"\\Trash") == "Trash"
    client.subscribe_folder("Clients/IMAPClient")
    assert [name for _, _, name in client.list_sub_folders("Clients", "*")] == ["Clients/IMAPClient"]
    client.rename_folder("Clients/IMAPClient", "Clients/Renamed")
    assert client.folder_status("Clients/Renamed", ["MESSAGES", "UIDNEXT"]) == {b"MESSAGES": 0, b"UIDNEXT": 1}
    client.delete_folder("Clients/Renamed")
    assert not client.folder_exists("Clients/Renamed")
    assert client.namespace().personal == (("", "/"),)


def test_messages(client: IMAPClient, account: Account) -> None:
    client.append("INBOX", simple_message("one"), flags=[b"$Label1"])
    client.append("INBOX", simple_message("two"))
    info = client.select_folder("INBOX")
    assert info[b"EXISTS"] == 2 and b"READ-WRITE" in info
    fetched = client.fetch([1, 2], ["UID", "FLAGS", "ENVELOPE", "BODY.PEEK[HEADER.FIELDS (SUBJECT)]"])
    assert fetched[1][b"ENVELOPE"].subject == b"one"
    assert b"$Label1" in fetched[1][b"FLAGS"]
    assert client.search(["SUBJECT", "two"]) == [2]
    client.add_flags([1], [b"\\Flagged"])
    assert client.get_flags([1])[1] == (b"\\Flagged", b"\\Recent", b"$Label1")
    client.copy([1], "Archive")
    client.move([2], "Trash")
    assert client.search("ALL") == [1]
    client.delete_messages([1])
    client.uid_expunge([1])
    assert account.uids() == [] and account.uids("Archive") == [1] and account.uids("Trash") == [1]


def test_condstore_and_qresync(client: IMAPClient, account: Account) -> None:
    for _ in range(3):
        account.append()
    assert client.enable("CONDSTORE", "QRESYNC") == [b"CONDSTORE", b"QRESYNC"]
    info = client.select_folder("INBOX")
    highest = info[b"HIGHESTMODSEQ"]
    client.add_flags([2], [b"\\Seen"])
    changed = client.fetch([1, 2, 3], ["FLAGS"], modifiers=[f"CHANGEDSINCE {highest}"])
    assert list(changed) == [2] and changed[2][b"MODSEQ"][0] > highest


def test_idle(client: IMAPClient, account: Account) -> None:
    client.select_folder("INBOX")
    client.idle()
    gevent.spawn_later(0.1, account.deliver)
    responses = client.idle_check(timeout=3)
    assert (1, b"EXISTS") in responses
    client.idle_done()
    client.logout()
