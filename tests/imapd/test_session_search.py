"""SEARCH in the session: `* SEARCH`, ESEARCH return options, SAVE and `$`, MODSEQ, charsets."""

from __future__ import annotations

import imaplib
import re

import pytest

from tests.imapd.conftest import Account, ImapServer, RawClient, simple_message


@pytest.fixture
def client(server: ImapServer, account: Account) -> RawClient:
    for subject in ("alpha", "beta", "gamma", "delta", "epsilon"):
        account.append(simple_message(subject))
    client = server.raw(tls=True)
    client.login(account)
    client.command("s SELECT INBOX")
    client.command("s STORE 2,4 +FLAGS (\\Flagged)")
    client.command("s STORE 3 +FLAGS (\\Deleted)")
    client.command("s EXPUNGE")  # UIDs 1 2 4 5 are now messages 1 2 3 4
    return client


def lines(reply: list[bytes]) -> list[str]:
    return [line.decode().rstrip("\r\n") for line in reply]


def test_plain_search_imap4rev1(client: RawClient) -> None:
    assert lines(client.command("a SEARCH FLAGGED")) == ["* SEARCH 2 3", "a OK SEARCH completed"]
    assert lines(client.command("b UID SEARCH FLAGGED")) == ["* SEARCH 2 4", "b OK UID SEARCH completed"]
    assert lines(client.command('c SEARCH SUBJECT "nothing"')) == ["* SEARCH", "c OK SEARCH completed"]
    assert lines(client.command("d SEARCH CHARSET UTF-8 SUBJECT gamma")) == ["* SEARCH", "d OK SEARCH completed"]


def test_esearch_return_options(client: RawClient) -> None:
    assert lines(client.command("a SEARCH RETURN (MIN MAX COUNT ALL) NOT FLAGGED"))[0] == (
        '* ESEARCH (TAG "a") MIN 1 MAX 4 COUNT 2 ALL 1,4'
    )
    assert lines(client.command("b UID SEARCH RETURN () ALL"))[0] == '* ESEARCH (TAG "b") UID ALL 1:2,4:5'
    assert lines(client.command("c SEARCH RETURN (COUNT) 99"))[0] == '* ESEARCH (TAG "c") COUNT 0'
    assert lines(client.command("d SEARCH RETURN (MIN) 99"))[0] == '* ESEARCH (TAG "d")'


def test_imap4rev2_always_answers_esearch(client: RawClient) -> None:
    client.command("a ENABLE IMAP4rev2")
    assert lines(client.command("b SEARCH FLAGGED")) == ['* ESEARCH (TAG "b") ALL 2:3', "b OK SEARCH completed"]


def test_save_and_use_the_result(client: RawClient) -> None:
    assert lines(client.command("a SEARCH RETURN (SAVE) FLAGGED")) == ["a OK SEARCH completed"]
    reply = lines(client.command("b FETCH $ (UID)"))
    assert reply[:2] == ["* 2 FETCH (UID 2)", "* 3 FETCH (UID 4)"]
    assert lines(client.command("c UID SEARCH UID $"))[0] == "* SEARCH 2 4"
    # SAVE with MIN and MAX only keeps those two (RFC 5182 §2.4).
    client.command("d SEARCH RETURN (SAVE MIN MAX) ALL")
    assert lines(client.command("e SEARCH $"))[0] == "* SEARCH 1 4"
    # Expunged messages drop out of $; a new SELECT empties it.
    client.command("f STORE 4 +FLAGS.SILENT (\\Deleted)")
    client.command("g EXPUNGE")
    assert lines(client.command("h SEARCH $"))[0] == "* SEARCH 1"
    client.command("i SELECT INBOX")
    assert lines(client.command("j SEARCH $"))[0] == "* SEARCH"


def test_failed_save_empties_the_result(client: RawClient) -> None:
    client.command("a SEARCH RETURN (SAVE) ALL")
    assert client.command("b SEARCH RETURN (SAVE) CHARSET KOI8-U SUBJECT x")[-1].startswith(b"b NO [BADCHARSET")
    assert lines(client.command("c SEARCH $"))[0] == "* SEARCH"


def test_modseq_search(client: RawClient) -> None:
    reply = lines(client.command("a FETCH 2 (MODSEQ)"))
    assert reply[0].startswith("* OK [HIGHESTMODSEQ ")  # CONDSTORE enabled by this command
    modseq = int(re.search(r"MODSEQ \((\d+)\)", reply[1]).group(1))  # type: ignore[union-attr]
    # Messages 2 and 3 were flagged by one STORE: they share the highest MODSEQ.
    assert lines(client.command(f"b SEARCH MODSEQ {modseq}"))[0] == f"* SEARCH 2 3 (MODSEQ {modseq})"
    reply = lines(client.command(f"c SEARCH RETURN (MIN) MODSEQ {modseq}"))
    assert reply[0].startswith('* ESEARCH (TAG "c") MIN 2 MODSEQ ')


def test_badcharset_lists_what_works(client: RawClient) -> None:
    reply = lines(client.command("a SEARCH CHARSET X-UNKNOWN TEXT hi"))
    assert reply[-1].startswith("a NO [BADCHARSET (UTF-8 US-ASCII")
    reply = lines(client.command('b SEARCH CHARSET X-UNKNOWN TEXT "grüße"'.encode()))  # 8-bit in that charset
    assert reply[-1].startswith("b NO [BADCHARSET (UTF-8 US-ASCII")


def test_body_and_text_match_substrings_with_imaplib(server: ImapServer, account: Account) -> None:
    """RFC 9051 §6.4.4: BODY and TEXT are case-insensitive substrings, on both databases."""
    account.append(simple_message("bill", body="Please pay the attached INVOICES today.\r\n"))
    account.append(simple_message("lunch", body="Lunch at noon? 100% sure_thing, C:\\Temp\r\n"))
    account.append(simple_message("nothing", body="Nothing to see here.\r\n"))
    conn = server.imaplib()
    conn.select("INBOX")

    def search(*criteria: str) -> list[int]:
        status, data = conn.search(None, *criteria)
        assert status == "OK"
        return [int(n) for n in data[0].split()]

    assert search("BODY", "voice") == [1]  # inside a word
    assert search("BODY", '"ices tod"') == [1]  # across words, any case
    assert search("BODY", '"pay the invoices"') == []  # a substring, not a set of words
    assert search("TEXT", "unc") == [2]  # the body or the header (Subject: lunch)
    assert search("TEXT", "BIL") == [1]
    assert search("BODY", "bil") == []  # BODY is the body only
    assert search("BODY", '"0% s"') == [2]  # LIKE wildcards are plain characters
    assert search("BODY", "e_t") == [2]
    assert search("BODY", '"e%t"') == []
    assert search("BODY", '"c:\\\\temp"') == [2]  # a backslash too
    assert search("OR", "BODY", "see", "BODY", "noon") == [2, 3]


GREETINGS = (
    b"From: J\xc3\xb6rg <joerg@example.de>\r\nTo: alice@imap.test\r\n"
    b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= aus K\xc3\xb6ln\r\nDate: Mon, 06 Jan 2025 10:00:00 +0000\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n"
    b"\r\nEine na\xc3\xafve Frage zum Caf\xc3\xa9.\r\n"
)


def test_imaplib_search_with_charset_takes_8bit_quoted_strings(server: ImapServer, account: Account) -> None:
    """Python's documented `search("UTF-8", ...)` sends the strings quoted, as 8-bit octets in
    that charset (RFC 9051 §6.4.4), on both databases."""
    account.append(simple_message("plain", body="A naive question.\r\n"))
    account.append(GREETINGS)
    conn = server.imaplib()
    conn.select("INBOX")
    assert conn.search("UTF-8", 'SUBJECT "grüße aus köln"'.encode()) == ("OK", [b"2"])
    assert conn.search("UTF-8", 'BODY "naïve"'.encode()) == ("OK", [b"2"])
    assert conn.search("UTF-8", 'TEXT "café"'.encode(), 'FROM "jörg"'.encode()) == ("OK", [b"2"])
    assert conn.search("UTF-8", 'BODY "naïveté"'.encode()) == ("OK", [b""])
    assert conn.uid("SEARCH", "CHARSET", "UTF-8", 'BODY "naïve"'.encode()) == ("OK", [b"2"])
    assert conn.search("ISO-8859-1", 'BODY "café"'.encode("latin-1")) == ("OK", [b"2"])
    for charset, criterion in [("US-ASCII", 'BODY "café"'.encode()), ("UTF-8", b'BODY "caf\xe9"')]:
        with pytest.raises(imaplib.IMAP4.error, match=r"BAD.*not valid"):
            conn.search(charset, criterion)
    with pytest.raises(imaplib.IMAP4.error, match=r"UTF8=ACCEPT"):
        conn.search(None, 'BODY "naïve"'.encode())  # no CHARSET: the IMAP4rev1 rule stands
    assert conn.noop()[0] == "OK"
