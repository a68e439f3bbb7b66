"""SELECT and EXAMINE (IMAP4rev1 and IMAP4rev2 forms, CONDSTORE, QRESYNC), CLOSE, UNSELECT."""

from __future__ import annotations

import re

from relate.store import mailboxes
from tests.imapd.conftest import Account, RawClient


def lines(reply: list[bytes]) -> list[str]:
    return [line.decode().rstrip("\r\n") for line in reply]


def test_select_imap4rev1(client: RawClient, account: Account) -> None:
    account.append(flags=("\\Seen",))
    account.append(flags=("$Work",))
    box = mailboxes.get_mailbox(account.user_id, "INBOX")
    reply = lines(client.command("a SELECT INBOX"))
    assert reply == [
        "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Work)",
        "* 2 EXISTS",
        "* 2 RECENT",
        "* OK [UNSEEN 2] first unseen message",
        "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Work \\*)] flags the client may change permanently",
        f"* OK [UIDVALIDITY {box.uid_validity}] UIDs valid",
        "* OK [UIDNEXT 3] predicted next UID",
        f"* OK [HIGHESTMODSEQ {box.highest_modseq}] highest mod-sequence",
        "a OK [READ-WRITE] SELECT completed",
    ]
    # This session claimed \Recent: a second one does not see it (RFC 3501 §2.3.2).
    reply = lines(client.command("b EXAMINE INBOX"))
    assert "* 0 RECENT" in reply
    assert reply[-1] == "b OK [READ-ONLY] EXAMINE completed"
    assert "* OK [PERMANENTFLAGS ()] flags the client may change permanently" in reply


def test_examine_does_not_claim_recent(client: RawClient, account: Account) -> None:
    account.append()
    assert "* 1 RECENT" in lines(client.command("a EXAMINE INBOX"))
    assert "* 1 RECENT" in lines(client.command("b EXAMINE INBOX"))
    assert "* STATUS \"INBOX\" (RECENT 1)" in lines(client.command("c STATUS INBOX (RECENT)"))
    assert "* 1 RECENT" in lines(client.command("d SELECT INBOX"))
    assert "* STATUS \"INBOX\" (RECENT 0)" in lines(client.command("e STATUS INBOX (RECENT)"))


def test_select_imap4rev2(client: RawClient, account: Account) -> None:
    account.append()
    client.command("a ENABLE IMAP4rev2")
    reply = lines(client.command("b SELECT INBOX"))
    assert not any("RECENT" in line or "UNSEEN" in line for line in reply)
    assert '* LIST (\\HasNoChildren) "/" "INBOX"' in reply
    reply = lines(client.command("c FETCH 1 FLAGS"))
    assert reply[0] == "* 1 FETCH (FLAGS ())"
    reply = lines(client.command("d EXAMINE Sent"))
    assert reply[0] == "* OK [CLOSED] previous mailbox closed"  # RFC 9051 §7.1


def test_select_failure_leaves_selected_state(client: RawClient) -> None:
    client.command("a SELECT INBOX")
    assert client.command("b SELECT Nowhere")[-1].startswith(b"b NO [NONEXISTENT]")
    assert client.command("c FETCH 1:* FLAGS")[-1].startswith(b"c BAD")


def test_close_expunges_silently_and_unselect_does_not(client: RawClient, account: Account) -> None:
    for _ in range(3):
        account.append(flags=("\\Deleted",))
    client.command("a SELECT INBOX")
    reply = lines(client.command("b UNSELECT"))
    assert reply == ["b OK UNSELECT completed"]
    assert len(account.uids()) == 3
    client.command("c EXAMINE INBOX")
    assert lines(client.command("d CLOSE")) == ["d OK CLOSE completed"]
    assert len(account.uids()) == 3  # EXAMINE: read-only, nothing expunged
    client.command("e SELECT INBOX")
    assert lines(client.command("f CLOSE")) == ["f OK CLOSE completed"]
    assert account.uids() == []


def test_select_condstore_and_qresync(client: RawClient, account: Account) -> None:
    uids = [account.append() for _ in range(4)]
    client.command("a ENABLE QRESYNC")
    reply = lines(client.command("b SELECT INBOX"))
    validity = int(re.search(r"UIDVALIDITY (\d+)", " ".join(reply)).group(1))  # type: ignore[union-attr]
    modseq = int(re.search(r"HIGHESTMODSEQ (\d+)", " ".join(reply)).group(1))  # type: ignore[union-attr]
    client.command("c STORE 2 +FLAGS (\\Flagged)")
    client.command("d STORE 3 +FLAGS (\\Deleted)")
    client.command("e EXPUNGE")
    client.command("f UNSELECT")
    reply = lines(client.command(f"g SELECT INBOX (QRESYNC ({validity} {modseq} 1:{uids[-1]}))"))
    assert f"* VANISHED (EARLIER) {uids[2]}" in reply
    fetches = [line for line in reply if "FETCH" in line]
    assert len(fetches) == 1 and f"UID {uids[1]} FLAGS (\\Flagged)" in fetches[0] and "MODSEQ" in fetches[0]
    # A stale UIDVALIDITY means: no resynchronisation data, the client starts over.
    reply = lines(client.command(f"h SELECT INBOX (QRESYNC ({validity + 1} {modseq}))"))
    assert not any("VANISHED" in line or "FETCH" in line for line in reply)


def test_qresync_select_needs_enable(client: RawClient) -> None:
    assert client.command("a SELECT INBOX (QRESYNC (1 1))")[-1].startswith(b"a BAD")
    reply = lines(client.command("b SELECT INBOX (CONDSTORE)"))
    assert any(line.startswith("* OK [HIGHESTMODSEQ ") for line in reply)


def test_expunge_under_qresync_is_vanished(client: RawClient, account: Account) -> None:
    uids = [account.append(flags=("\\Deleted",)) for _ in range(3)]
    client.command("a ENABLE QRESYNC")
    client.command("b SELECT INBOX")
    reply = lines(client.command("c EXPUNGE"))
    box = mailboxes.get_mailbox(account.user_id, "INBOX")
    assert reply == [f"* VANISHED {uids[0]}:{uids[2]}", f"c OK [HIGHESTMODSEQ {box.highest_modseq}] EXPUNGE completed"]
