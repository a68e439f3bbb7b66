"""SEARCH keys that read stored messages (addresses, subject, any header, sent date, body and
text), against a real store on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest

from relate import store
from relate.imapd import search as imap_search
from relate.imapd.commands import Search
from relate.imapd.fetch import MessageCache
from relate.store import accounts, mailboxes, messages
from relate.store.types import EntryInfo
from tests.conftest import _truncate as truncate
from tests.conftest import make_settings
from tests.imapd import run_parser

MESSAGES = [
    # UID 1: encoded words, 8-bit names, a zone that moves the day, lists and extra headers.
    b"From: =?utf-8?q?Fran=C3=A7ois?= <francois@example.fr>\r\n"
    + 'To: "Jörg Müller" <joerg@example.de>, Team: ann@example.com, ben@example.com;\r\n'.encode()
    + b"Cc: Carla <carla@example.it>\r\n"
    b"Bcc: secret@example.net\r\n"
    b"Subject: =?iso-8859-1?q?Gr=FC=DFe?= aus Paris\r\n"
    b"Date: Wed, 4 Mar 2026 23:30:00 -0800\r\n"
    b"List-Id: Team list <team.example.com>\r\n"
    b"X-Priority: 1 (Highest)\r\n"
    b"X-Long: first part\r\n"
    b"  folded second part\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n" + b"Bonjour! Wir sehen uns zum Mittagessen.\r\n",
    # UID 2: no Date, no Subject; a multipart with an attachment whose text is not body text.
    b"From: alice@example.com\r\n"
    b"To: bob@example.org\r\n"
    b"X-Mailer: Relate Test Mailer 1.0\r\n"
    b"Content-Type: multipart/mixed; boundary=b\r\n"
    b"\r\n"
    b"--b\r\n"
    b"Content-Type: text/plain\r\n"
    b"\r\n"
    b"Lunch on Friday?\r\n"
    b"--b\r\n"
    b"Content-Type: text/plain; name=notes.txt\r\n"
    b"Content-Disposition: attachment; filename=notes.txt\r\n"
    b"\r\n"
    b"attachment words only\r\n"
    b"--b--\r\n",
    # UID 3: LF-only, an ISO date, a subject spelled plainly.
    b"From: Bob <bob@example.org>\n"
    b"To: alice@example.com\n"
    b"Subject: Re: lunch\n"
    b"Date: 2026-03-06T08:00:00+01:00\n"
    b"\n"
    b"Friday works. See you at noon.\n",
]
INTERNAL = [
    dt.datetime(2026, 3, 5, 7, 30, tzinfo=dt.UTC),
    dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC),
    dt.datetime(2026, 3, 6, 7, 0, tzinfo=dt.UTC),
]


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def view(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """One store per backend for the whole module (the messages are only read)."""
    url = str(request.getfixturevalue("pg_database" if request.param == "postgres" else "sqlite_database"))
    store.open_store(make_settings(url, tmp_path_factory.mktemp("search")), migrate=False, pool_size=5)
    truncate(url)
    user = accounts.create_user("carol@example.com")
    box = mailboxes.get_mailbox(user.id, "INBOX")
    for raw, when in zip(MESSAGES, INTERNAL, strict=True):
        messages.append(user.id, box.id, raw, internal_date=when, flags=["\\Seen"] if raw is MESSAGES[2] else [])
    entries = messages.list_entries(user.id, box.id)
    yield user.id, box.id, [(i + 1, e) for i, e in enumerate(entries)]
    store.bus.stop_listener()


def run(view: tuple[int, int, list[tuple[int, EntryInfo]]], wire: str, cache: MessageCache | None = None) -> list[int]:
    user_id, mailbox_id, pairs = view
    parsed, _, _ = run_parser(b"A1 SEARCH " + wire.encode() + b"\r\n", utf8=True)
    assert isinstance(parsed.command, Search)
    found = imap_search.search(
        parsed.command.key, pairs, user_id=user_id, mailbox_id=mailbox_id, cache=cache or MessageCache(),
        highest_seq=len(pairs), highest_uid=pairs[-1][1].uid,
    )
    return [e.uid for _, e in found]


CASES = [
    # (SEARCH criteria, matching UIDs)
    ('FROM "françois"', [1]),  # the decoded display name
    ('FROM "=?utf-8?q?Fran=C3"', [1]),  # the header as written
    ("FROM FRANCOIS@EXAMPLE.FR", [1]),
    ('FROM "François <francois@"', [1]),
    ("FROM example", [1, 2, 3]),
    ("FROM bob", [3]),
    ('FROM ""', [1, 2, 3]),
    ('TO "jörg müller"', [1]),
    ('TO "JÖRG"', [1]),  # case folding beyond ASCII
    ("TO team", [1]),  # a group's name
    ("TO ben@example.com", [1]),
    ("TO alice", [3]),
    ("CC carla", [1]),
    ('CC ""', [1]),
    ("BCC secret", [1]),
    ("BCC alice", []),
    ('SUBJECT "grüße"', [1]),
    ('SUBJECT "GRÜSSE"', [1]),
    ("SUBJECT =FC=DF", [1]),
    ("SUBJECT lunch", [3]),
    ('SUBJECT "aus paris"', [1]),
    ('SUBJECT ""', [1, 3]),  # every message having a Subject
    ("HEADER X-Priority highest", [1]),
    ('HEADER x-priority ""', [1]),
    ('HEADER X-Mailer ""', [2]),
    ('HEADER X-Mailer "relate test"', [2]),
    ('HEADER List-Id "<team.example"', [1]),
    ('HEADER X-Long "part folded second"', [1]),  # folding is undone before matching
    ('HEADER Subject "grüße"', [1]),
    ('HEADER Date ""', [1, 3]),
    ("HEADER X-Absent x", []),
    ("BODY mittagessen", [1]),
    ("BODY lunch", [2]),
    ('BODY "works. see"', [3]),
    ("BODY attachment", []),  # attachments are not body text
    ("BODY friday", [2, 3]),
    ('BODY ""', [1, 2, 3]),
    ("TEXT friday", [2, 3]),
    ('TEXT "relate test mailer"', [2]),  # a header only TEXT sees
    ("TEXT paris", [1]),
    ('TEXT "grüße"', [1]),
    ("TEXT X-Long", [1]),
    ("TEXT nowhere", []),
    ("SENTON 4-Mar-2026", [1]),  # 23:30 at -0800 is still the 4th where it was written
    ("ON 5-Mar-2026", [1]),  # the internal date is kept in UTC
    ("SENTON 1-Mar-2026", [2]),  # no Date: the internal date stands in
    ("SENTON 6-Mar-2026", [3]),
    ("SENTBEFORE 5-Mar-2026", [1, 2]),
    ("SENTSINCE 5-Mar-2026", [3]),
    ("SENTSINCE 1-Jan-2027", []),
    ("OR FROM bob BODY mittagessen", [1, 3]),
    ("NOT FROM example.fr", [2, 3]),
    ("SEEN TEXT friday", [3]),
    ("UNSEEN FROM example SUBJECT paris", [1]),
    ("NOT (OR HEADER X-Mailer \"\" SUBJECT lunch)", [1]),
    ("2:* OR TEXT noon BCC secret", [3]),
]


@pytest.mark.parametrize(("wire", "uids"), CASES, ids=[c[0] for c in CASES])
def test_key(view, wire: str, uids: list[int]) -> None:
    assert run(view, wire) == uids


def test_metadata_already_cached_is_used(view) -> None:
    cache = MessageCache()
    for _, entry in view[2]:
        cache.parsed(entry.body_id)
        cache.raw(entry.body_id)
    loads = cache.loads
    assert run(view, "OR SUBJECT paris HEADER X-Mailer relate", cache) == [1, 2]
    assert cache.loads == loads
