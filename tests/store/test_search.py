"""relate.store.search on SQLite and PostgreSQL: full-text candidates with IMAP substring
semantics, the REST `q` search, and the batch metadata reads."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select, text

from relate import db, store
from relate.db.models import MessageBody
from relate.store import accounts, mailboxes, messages
from relate.store import search as store_search
from tests.conftest import _truncate as truncate
from tests.conftest import make_settings

BODIES = {
    # uid: (subject, sender, body)
    1: ("Quarterly invoices", "billing@example.com", "Please find the invoices attached.\r\nRegards"),
    2: ("Lunch on Friday", "alice@example.com", "Shall we have LUNCH   on\r\nFriday at noon?"),
    3: ("Grüße aus München", "jörg@example.de", "Viele Grüße und bis bald. STRASSE 5"),
    4: ("100% discount_code", "shop@example.net", "Use code SAVE_50 for 100% off at shop.example.net"),
    5: ("Re: invoice", "bob@example.org", "Thanks, paid. Contact bob@example.org for questions."),
}


def raw_message(uid: int) -> bytes:
    subject, sender, body = BODIES[uid]
    return (
        f"From: Sender <{sender}>\r\nTo: Carol <carol@example.com>\r\nSubject: {subject}\r\n"
        f"Message-ID: <{uid}@example.com>\r\nDate: Sat, {uid} Mar 2026 10:00:00 +0000\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n"
        f"{body}\r\n"
    ).encode()


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def backend_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """One store per backend for the whole module: tests only add users of their own."""
    url = str(request.getfixturevalue("pg_database" if request.param == "postgres" else "sqlite_database"))
    store.open_store(make_settings(url, tmp_path_factory.mktemp("search")), migrate=False, pool_size=5)
    truncate(url)
    yield url
    store.bus.stop_listener()


@pytest.fixture(scope="module")
def mailbox(backend_url: str):
    user = accounts.create_user("carol@example.com")
    box = mailboxes.get_mailbox(user.id, "INBOX")
    for uid in BODIES:
        when = dt.datetime(2026, 3, uid, 10, 0, tzinfo=dt.UTC)
        messages.append(user.id, box.id, raw_message(uid), internal_date=when)
    return user, box


FULLTEXT = [
    # (field, value, UIDs)
    ("body", "invoices", {1}),
    ("body", "INVOICES attached", {1}),
    ("body", "invoice", {1}),  # a word's beginning is a substring too
    ("body", "lunch on friday", {2}),  # white space in the stored text is collapsed
    ("body", "lunch  on\tFriday", {2}),
    ("body", "noon?", {2}),
    ("body", "Lunch Friday", set()),  # a substring, not a bag of words
    ("body", "grüße", {3}),
    ("body", "GRÜSSE", {3}),  # case folding beyond ASCII
    ("body", "strasse", {3}),
    ("body", "100% off", {4}),  # LIKE wildcards are literal
    ("body", "save_50", {4}),
    ("body", "SAVE_5", {4}),
    ("body", "%", {4}),
    ("body", "_", {4}),
    ("body", "example.org", {5}),  # inside an e-mail address
    ("body", "voices", {1}),  # inside a word
    ("body", "ontact bob", {5}),
    ("body", "shop.example", {4}),
    ("body", "", {1, 2, 3, 4, 5}),
    ("body", "nothing like this", set()),
    ("subject", "invoice", {1, 5}),
    ("from", "example.com", {1, 2}),
    ("from", "Sender", {1, 2, 3, 4, 5}),
    ("to", "carol", {1, 2, 3, 4, 5}),
    ("text", "invoice", {1, 5}),
    ("text", "jörg", {3}),
    ("text", "münchen", {3}),
]


@pytest.mark.parametrize(("field", "value", "uids"), FULLTEXT, ids=[f"{f}-{v!r}" for f, v, _ in FULLTEXT])
def test_fulltext_uids(mailbox, field: str, value: str, uids: set[int]) -> None:
    user, box = mailbox
    assert store_search.fulltext_uids(user.id, box.id, field, value) == uids


def test_fulltext_uids_restricted_to_candidates(mailbox) -> None:
    user, box = mailbox
    assert store_search.fulltext_uids(user.id, box.id, "subject", "invoice", uids=[5, 2, 3]) == {5}
    assert store_search.fulltext_uids(user.id, box.id, "body", "", uids=[2, 99]) == {2}
    assert store_search.fulltext_uids(user.id, box.id, "body", "grüße", uids=[]) == set()


def test_fulltext_uids_stays_in_the_mailbox_and_the_user(mailbox) -> None:
    user, box = mailbox
    other = accounts.create_user("dave@example.com")
    messages.append(other.id, mailboxes.get_mailbox(other.id, "INBOX").id, raw_message(1))
    archive = mailboxes.get_mailbox(user.id, "Archive")
    assert store_search.fulltext_uids(user.id, archive.id, "body", "invoices") == set()
    assert store_search.fulltext_uids(other.id, box.id, "body", "invoices") == set()


def test_fulltext_uids_takes_like_wildcards_and_backslashes_literally(backend_url: str) -> None:
    user = accounts.create_user("grace@example.com")
    box = mailboxes.get_mailbox(user.id, "INBOX")
    bodies = ["Saved to C:\\Temp\\report_1.txt", "50% off_today", "plain words only", "a\\%b"]
    for n, body in enumerate(bodies, 1):
        messages.append(user.id, box.id, raw_message(1).replace(b"Please find the invoices attached.", body.encode())
                        .replace(b"<1@", f"<g{n}@".encode()))
    cases = {
        "c:\\temp\\": {1},  # a backslash is no escape character
        "p\\r": {1},
        "t_1": {1},  # "_" matches only "_"
        "report%": set(),  # "%" matches only "%"
        "50% off_": {2},
        "\\%": {4},
        "%": {2, 4},
        "_": {1, 2},
        "o": {1, 2, 3},
        "WORDS ONLY": {3},
    }
    for value, uids in cases.items():
        assert store_search.fulltext_uids(user.id, box.id, "body", value) == uids, value


def test_search_entries(mailbox) -> None:
    user, box = mailbox
    by_uid = {e.uid: e.id for e in messages.list_entries(user.id, box.id)}

    def ids(*uids: int) -> list[int]:
        return [by_uid[u] for u in uids]

    assert store_search.search_entries(user.id, "invoice") == ids(5, 1)  # newest first
    assert store_search.search_entries(user.id, "invoice paid") == ids(5)
    assert store_search.search_entries(user.id, '"on friday"') == ids(2)
    assert store_search.search_entries(user.id, '"friday on"') == []
    assert store_search.search_entries(user.id, "example", mailbox_id=box.id, limit=2) == ids(5, 4)
    assert store_search.search_entries(user.id, "example", limit=2, offset=2) == ids(3, 2)
    assert store_search.search_entries(user.id, "") == ids(5, 4, 3, 2, 1)
    trash = mailboxes.get_mailbox(user.id, "Trash")
    assert store_search.search_entries(user.id, "invoice", mailbox_id=trash.id) == []
    other = accounts.create_user("erin@example.com")
    assert store_search.search_entries(other.id, "invoice") == []


QUERY_TERMS = [
    ("words", "a b  c", ["a", "b", "c"]),
    ("phrase", 'x "two  words" y', ["x", "two words", "y"]),
    ("unclosed-phrase", '"open end', ["open end"]),
    ("duplicates", "a A a", ["a", "A"]),
    ("empty", '  "" ', []),
]


@pytest.mark.parametrize(("query", "terms"), [q[1:] for q in QUERY_TERMS], ids=[q[0] for q in QUERY_TERMS])
def test_query_terms(query: str, terms: list[str]) -> None:
    assert store_search.query_terms(query) == terms


def test_batch_metadata(mailbox) -> None:
    user, box = mailbox
    entries = messages.list_entries(user.id, box.id)
    body_ids = [e.body_id for e in entries]
    parsed = store_search.parsed_messages(body_ids)
    assert [parsed[b].subject for b in body_ids] == [BODIES[u][0] for u in sorted(BODIES)]
    envelopes = store_search.envelopes([*body_ids, 999_999])
    assert set(envelopes) == set(body_ids)
    assert envelopes[body_ids[0]][1] == "Quarterly invoices"
    assert envelopes[body_ids[0]][2] == [["Sender", None, "billing", "example.com"]]
    sections = store_search.header_sections(body_ids)
    raw = raw_message(1)
    assert sections[body_ids[0]] == raw[: raw.index(b"\r\n\r\n") + 4]


def test_header_sections_of_long_and_missing_headers(backend_url: str) -> None:
    user = accounts.create_user("frank@example.com")
    box = mailboxes.get_mailbox(user.id, "INBOX")
    long_header = b"X-Long: " + b"y" * (store_search.HEADER_PREFIX + 10) + b"\r\nSubject: late\r\n\r\nbody\r\n"
    no_header = b"just a body line\r\n" * 2000
    only_header = b"Subject: no body"
    for raw in (long_header, no_header, only_header):
        messages.append(user.id, box.id, raw)
    body_ids = [e.body_id for e in messages.list_entries(user.id, box.id)]
    sections = store_search.header_sections(body_ids)
    assert sections[body_ids[0]] == long_header[: -len(b"body\r\n")]
    assert sections[body_ids[1]] == b""
    assert sections[body_ids[2]] == only_header


def test_postgres_fulltext_query_uses_the_gin_index(backend_url: str, mailbox) -> None:
    """The full-text index holds the indexed bodies (alembic 0006): the indexed arm of a query
    uses it, the other finds the waiting bodies through their own small index."""
    if not backend_url.startswith("postgresql"):
        pytest.skip("the full-text index exists on PostgreSQL only")
    document = text(f"{store_search.FTS_DOCUMENT} @@ CAST(:q AS tsquery)").bindparams(q="'invoic':*")
    arms = store_search.indexed_arms(select(MessageBody.id), document, 0, True)
    with db.get_engine().connect() as conn:
        conn.execute(text("SET enable_seqscan = off"))
        for arm, index in zip(arms, ("ix_message_bodies_fts_indexed", "ix_message_bodies_unindexed"), strict=True):
            compiled = arm.compile(conn)
            plan = "\n".join(row[0] for row in conn.exec_driver_sql("EXPLAIN " + str(compiled), compiled.params))
            assert index in plan, plan


def test_postgres_imap_body_match_uses_the_trigram_index(backend_url: str, mailbox) -> None:
    """IMAP BODY/TEXT: a substring LIKE on lower(search_text) the pg_trgm index serves (for
    the indexed bodies; the waiting ones through their own index)."""
    if not backend_url.startswith("postgresql"):
        pytest.skip("the trigram index exists on PostgreSQL only")
    like = store_search._like([store_search.BODY_COLUMN], "voice_%")
    arms = store_search.indexed_arms(select(MessageBody.id), like, 0, True)
    with db.get_engine().connect() as conn:
        if not conn.execute(text("SELECT 1 FROM pg_indexes WHERE indexname = 'ix_message_bodies_trgm_indexed'")).first():
            pytest.skip("pg_trgm is not available on this server (the migration leaves the index out)")
        conn.execute(text("SET enable_seqscan = off"))
        for arm, index in zip(arms, ("ix_message_bodies_trgm_indexed", "ix_message_bodies_unindexed"), strict=True):
            compiled = arm.compile(conn)  # psycopg2 puts the value in the SQL, as for the real query
            plan = "\n".join(row[0] for row in conn.exec_driver_sql("EXPLAIN " + str(compiled), compiled.params))
            assert index in plan, plan
