"""APPEND, FETCH (\\Seen, UID, CHANGEDSINCE, VANISHED), STORE, COPY, MOVE, EXPUNGE, UID EXPUNGE."""

from __future__ import annotations

import re

from relate.store import mailboxes
from tests.imapd.conftest import Account, RawClient, simple_message


def lines(reply: list[bytes]) -> list[str]:
    return [line.decode().rstrip("\r\n") for line in reply]


def append_literal(client: RawClient, tag: str, head: str, data: bytes, *, plus: bool = False) -> list[str]:
    if plus:
        client.send(f"{tag} {head} {{{len(data)}+}}\r\n".encode() + data + b"\r\n")
    else:
        client.send(f"{tag} {head} {{{len(data)}}}\r\n".encode())
        assert client.line().startswith(b"+ ")
        client.send(data + b"\r\n")
    return lines(client.until(tag.encode()))


def test_append_answers_appenduid_and_keeps_bytes_flags_and_date(client: RawClient, account: Account) -> None:
    raw = simple_message("appended")
    reply = append_literal(client, "a", 'APPEND Drafts (\\Draft $Todo \\Recent) "05-Feb-2024 10:11:12 +0100"', raw)
    box = mailboxes.get_mailbox(account.user_id, "Drafts")
    assert reply == [f"a OK [APPENDUID {box.uid_validity} 1] APPEND completed"]
    client.command("b SELECT Drafts")
    reply = lines(client.command("c FETCH 1 (FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[])"))
    assert reply[0] == (
        f'* 1 FETCH (FLAGS (\\Draft \\Recent $Todo) INTERNALDATE "05-Feb-2024 09:11:12 +0000" '
        f"RFC822.SIZE {len(raw)} BODY[] {{{len(raw)}}}"
    )
    assert client.command("d APPEND Nowhere {1+}\r\nx")[-1].startswith(b"d NO [TRYCREATE]")


def test_append_literal_plus_and_to_selected_mailbox_announces_exists(client: RawClient) -> None:
    client.command("a SELECT INBOX")
    reply = append_literal(client, "b", "APPEND INBOX", simple_message(), plus=True)
    assert reply[0] == "* 1 EXISTS"
    assert reply[-1].startswith("b OK [APPENDUID ")


def test_append_too_big_is_refused_before_continuation(server_factory, account: Account) -> None:
    server = server_factory(Smtp__MaxMessageSizeBytes="2048")
    client = server.raw(tls=True)
    client.login(account)
    client.send(b"a APPEND INBOX {4096}\r\n")
    assert client.line() == b"a NO [TOOBIG] literal too big\r\n"
    assert client.command("b NOOP")[-1].startswith(b"b OK")
    # LITERAL+ over the limit: the data is already on its way; the server closes (RFC 7888 §4).
    client.send(b"c APPEND INBOX {4096+}\r\n" + b"x" * 4096 + b"\r\n")
    assert client.line().startswith(b"c BAD [TOOBIG]")
    assert client.line().startswith(b"* BYE")
    assert account.uids() == []


def test_append_utf8_form(client: RawClient, account: Account) -> None:
    assert client.command("a APPEND INBOX UTF8 (~{3+}\r\nabc)")[-1].startswith(b"a BAD")  # not enabled
    client.command("b ENABLE UTF8=ACCEPT")
    raw = "Subject: Grüße\r\n\r\nhallo\r\n".encode()
    client.send(b"c APPEND INBOX UTF8 (~{%d+}\r\n" % len(raw) + raw + b")\r\n")
    assert client.until(b"c")[-1].startswith(b"c OK [APPENDUID")


def test_fetch_sets_seen_only_for_body_items_in_read_write(client: RawClient, account: Account) -> None:
    account.append()
    account.append()
    client.command("a EXAMINE INBOX")
    client.command("b FETCH 1 BODY[]")
    assert all("\\Seen" not in flags for flags in account.flags().values())
    client.command("c SELECT INBOX")
    reply = lines(client.command("d FETCH 1:2 (BODY.PEEK[HEADER] RFC822.HEADER FLAGS)"))
    assert all("\\Seen" not in flags for flags in account.flags().values())
    reply = lines(client.command("e FETCH 1 BODY[TEXT]"))
    assert reply[0].startswith("* 1 FETCH (BODY[TEXT] {") and reply[-2].endswith(" FLAGS (\\Seen \\Recent))")
    assert account.flags()[1] == frozenset({"\\Seen"})
    reply = lines(client.command("f FETCH 1 BODY[TEXT]"))
    assert "FLAGS" not in reply[-2]  # nothing changed this time
    reply = lines(client.command("g UID FETCH 2 RFC822"))
    assert reply[0].startswith("* 2 FETCH (UID 2 RFC822 {")
    assert "\\Seen" in account.flags()[2]


def test_fetch_sequence_numbers_are_checked(client: RawClient, account: Account) -> None:
    client.command("a SELECT INBOX")
    assert client.command("b FETCH 1:* FLAGS")[-1].startswith(b"b BAD")  # "*" in an empty mailbox
    assert client.command("c UID FETCH 1:* FLAGS")[-1].startswith(b"c OK")
    account.append()
    client.command("d NOOP")
    assert client.command("e FETCH 2 FLAGS")[-1].startswith(b"e BAD")
    assert lines(client.command("f UID FETCH 5:* UID")) == ["* 1 FETCH (UID 1)", "f OK UID FETCH completed"]


def test_store_forms(client: RawClient, account: Account) -> None:
    for _ in range(3):
        account.append()
    client.command("a SELECT INBOX")
    reply = lines(client.command("b STORE 1:2 +FLAGS (\\Flagged $Work)"))
    assert reply == [
        "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Work)",
        "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Work \\*)] flags the client may change permanently",
        "* 1 FETCH (FLAGS (\\Flagged \\Recent $Work))",
        "* 2 FETCH (FLAGS (\\Flagged \\Recent $Work))",
        "b OK STORE completed",
    ]
    assert lines(client.command("c STORE 1 -FLAGS.SILENT (\\Flagged)")) == ["c OK STORE completed"]
    assert lines(client.command("d UID STORE 3 FLAGS \\Seen")) == [
        "* 3 FETCH (FLAGS (\\Seen \\Recent) UID 3)", "d OK UID STORE completed"]
    assert account.flags() == {1: {"$Work"}, 2: {"\\Flagged", "$Work"}, 3: {"\\Seen"}}
    assert client.command("e STORE 1 +FLAGS (\\Bogus)")[-1].startswith(b"e BAD")
    client.command("f EXAMINE INBOX")
    assert client.command("g STORE 1 +FLAGS (\\Seen)")[-1].startswith(b"g NO")


def test_store_unchangedsince_reports_modified(client: RawClient, account: Account) -> None:
    for _ in range(3):
        account.append()
    client.command("a SELECT INBOX (CONDSTORE)")
    reply = lines(client.command("b FETCH 1:3 (MODSEQ)"))
    modseqs = [int(re.search(r"MODSEQ \((\d+)\)", line).group(1)) for line in reply[:3]]  # type: ignore[union-attr]
    client.command("c STORE 2 +FLAGS (\\Answered)")
    reply = lines(client.command(f"d STORE 1:3 (UNCHANGEDSINCE {max(modseqs)}) +FLAGS.SILENT (\\Seen)"))
    assert reply[-1] == "d OK [MODIFIED 2] conditional STORE failed for some messages"
    changed = [line for line in reply if "FETCH" in line]
    assert len(changed) == 2 and all("MODSEQ (" in line and "UID " in line for line in changed)
    assert account.flags()[2] == frozenset({"\\Answered"})


def test_copy_answers_copyuid(client: RawClient, account: Account) -> None:
    for _ in range(3):
        account.append()
    archive = mailboxes.get_mailbox(account.user_id, "Archive")
    client.command("a SELECT INBOX")
    reply = lines(client.command("b COPY 1,3 Archive"))
    assert reply == [f"b OK [COPYUID {archive.uid_validity} 1,3 1:2] COPY completed"]
    assert client.command("c COPY 1 Nowhere")[-1].startswith(b"c NO [TRYCREATE]")
    reply = lines(client.command("d UID COPY 2 INBOX"))
    assert reply[0] == "* 4 EXISTS"  # copied into the selected mailbox itself
    assert account.uids("Archive") == [1, 2]


def test_move_is_copyuid_then_expunge(client: RawClient, account: Account) -> None:
    for _ in range(4):
        account.append()
    trash = mailboxes.get_mailbox(account.user_id, "Trash")
    client.command("a SELECT INBOX")
    reply = lines(client.command("b MOVE 2:3 Trash"))
    assert reply == [
        f"* OK [COPYUID {trash.uid_validity} 2:3 1:2] moved",
        "* 3 EXPUNGE",
        "* 2 EXPUNGE",
        "b OK MOVE completed",
    ]
    assert account.uids() == [1, 4] and account.uids("Trash") == [1, 2]
    reply = lines(client.command("c UID MOVE 4 INBOX"))  # to itself: new UID, same place
    assert reply[1:] == ["* 2 EXPUNGE", "* 2 EXISTS", "* 2 RECENT", "c OK UID MOVE completed"]
    assert account.uids() == [1, 5]


def test_expunge_and_uid_expunge(client: RawClient, account: Account) -> None:
    for _ in range(5):
        account.append(flags=("\\Deleted",))
    client.command("a SELECT INBOX")
    reply = lines(client.command("b UID EXPUNGE 2,4"))
    assert reply == ["* 4 EXPUNGE", "* 2 EXPUNGE", "b OK UID EXPUNGE completed"]
    client.command("c STORE 1 -FLAGS (\\Deleted)")
    reply = lines(client.command("d EXPUNGE"))
    assert reply == ["* 3 EXPUNGE", "* 2 EXPUNGE", "d OK EXPUNGE completed"]
    assert account.uids() == [1]


def test_changedsince_and_vanished(client: RawClient, account: Account) -> None:
    uids = [account.append() for _ in range(4)]
    client.command("a ENABLE QRESYNC")
    reply = lines(client.command("b SELECT INBOX"))
    modseq = int(re.search(r"HIGHESTMODSEQ (\d+)", " ".join(reply)).group(1))  # type: ignore[union-attr]
    client.command("c STORE 1 +FLAGS.SILENT (\\Seen)")
    client.command("d UID STORE 3 +FLAGS.SILENT (\\Deleted)")
    client.command("e UID EXPUNGE 3")
    reply = lines(client.command(f"f UID FETCH 1:* (FLAGS) (CHANGEDSINCE {modseq} VANISHED)"))
    assert reply[0] == f"* VANISHED (EARLIER) {uids[2]}"
    assert reply[1].startswith(f"* 1 FETCH (UID {uids[0]} FLAGS (\\Seen \\Recent) MODSEQ (")
    assert len(reply) == 3
    assert client.command("g FETCH 1:* FLAGS (CHANGEDSINCE 1 VANISHED)")[-1].startswith(b"g BAD")
