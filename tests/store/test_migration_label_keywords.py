"""alembic 0010 (keywords are 7-bit): keywords, labels and filters stored as raw UTF-8 by the
revisions before become modified UTF-7, with a new MODSEQ for the entries that change; down
and up again change nothing more. On a fresh SQLite file and a fresh PostgreSQL database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, text

from relate import db, store
from relate.db import migrate
from relate.store import Conflict, accounts, labels, mailboxes, messages, userfilters
from tests.conftest import make_settings
from tests.store.helpers import make_message
from tests.store.migrations import run_step

BEFORE = "0009_body_wire_size"
LONG = "Ü" * 80  # its modified UTF-7 is longer than a keyword may be


def _keywords(conn: Connection) -> dict[int, list[str]]:
    rows = conn.execute(text("SELECT id, keywords FROM entries ORDER BY id"))
    return {entry_id: kw if isinstance(kw, list) else json.loads(kw) for entry_id, kw in rows}


def _modseqs(conn: Connection) -> dict[int, int]:
    return {int(i): int(m) for i, m in conn.execute(text("SELECT id, highest_modseq FROM mailboxes"))}


def _entry_modseqs(conn: Connection) -> dict[int, int]:
    return {int(i): int(m) for i, m in conn.execute(text("SELECT id, modseq FROM entries"))}


def _labels(conn: Connection) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {}
    for user_id, name in conn.execute(text("SELECT user_id, name FROM labels ORDER BY id")):
        found.setdefault(int(user_id), []).append(str(name))
    return found


def _state(engine: Engine) -> tuple[object, ...]:
    with engine.connect() as conn:
        return _keywords(conn), _modseqs(conn), _entry_modseqs(conn), _labels(conn)


def test_raw_utf8_keywords_migrate_to_modified_utf7(fresh_url: str, tmp_path: Path) -> None:
    store.open_store(make_settings(fresh_url, tmp_path), migrate=True, pool_size=2)
    engine = db.get_engine()
    run_step(engine, "downgrade", BEFORE)
    alice = accounts.create_user("alice@example.com")
    bob = accounts.create_user("bob@example.com")
    inbox, archive, sent = (mailboxes.get_mailbox(alice.id, name).id for name in ("INBOX", "Archive", "Sent"))
    # What the revisions before stored for labels named in the API: the name as the keyword.
    raw = messages.append(alice.id, inbox, make_message("raw"), ["Büro", "büro", "Work"])[1]
    mixed = messages.append(alice.id, inbox, make_message("mixed"), ["Ärger", "B&APw-ro", LONG])[1]
    plain = messages.append(alice.id, inbox, make_message("plain"), ["Work"])[1]
    filed = messages.append(alice.id, archive, make_message("filed"), ["Ünï"])[1]
    bobs = messages.append(bob.id, mailboxes.get_mailbox(bob.id, "INBOX").id, make_message("bob"), ["Büro"])[1]
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO labels (user_id, name, color, created_at) VALUES "
                          "(:a, 'Büro', '#111111', :now), (:a, 'Work', '', :now), (:a, :long, '', :now), "
                          "(:a, 'Ünï', '', :now), (:a, '&ANw-n&AO8-', '', :now), (:b, 'Büro', '', :now)"),
                     {"a": alice.id, "b": bob.id, "long": LONG, "now": "2026-12-01 10:00:00+00:00"})
    office = userfilters.create_filter(alice.id, "office", {"subject": "x"}, {"addLabel": "Büro", "flag": True})
    work = userfilters.create_filter(alice.id, "work", {"subject": "y"}, {"addLabel": "Work"})
    with engine.connect() as conn:
        before = _modseqs(conn), _entry_modseqs(conn)

    run_step(engine, "upgrade", "head")
    assert migrate.is_current(engine)
    with engine.connect() as conn:
        assert _keywords(conn) == {
            raw.id: ["B&APw-ro", "Work"],  # "büro" became b&APw-ro: the same keyword, kept once
            mixed.id: ["&AMQ-rger", "B&APw-ro", LONG],
            plain.id: ["Work"],
            filed.id: ["&ANw-n&AO8-"],
            bobs.id: ["B&APw-ro"],
        }
        modseqs, entry_modseqs = _modseqs(conn), _entry_modseqs(conn)
        # Alice's raw label "Ünï" merged into the label that already had its keyword.
        assert _labels(conn) == {alice.id: ["B&APw-ro", "Work", LONG, "&ANw-n&AO8-"], bob.id: ["B&APw-ro"]}
    assert modseqs[inbox] == before[0][inbox] + 1 and modseqs[archive] == before[0][archive] + 1
    assert modseqs[sent] == before[0][sent]
    for changed in (raw, mixed, filed, bobs):
        assert entry_modseqs[changed.id] > before[1][changed.id]
    assert entry_modseqs[plain.id] == before[1][plain.id]
    assert userfilters.get_filter(alice.id, office.id).actions == {"addLabel": "B&APw-ro", "flag": True}
    assert userfilters.get_filter(alice.id, work.id).actions == {"addLabel": "Work"}
    assert [(label.name, label.keyword) for label in labels.list_labels(alice.id)] == [
        ("Büro", "B&APw-ro"), ("Work", "Work"), ("Ünï", "&ANw-n&AO8-"), (LONG, LONG)]

    migrated = _state(engine)
    run_step(engine, "downgrade", BEFORE)
    assert _state(engine) == migrated
    run_step(engine, "upgrade", "head")
    assert _state(engine) == migrated


def test_names_whose_forms_differ_only_in_case_stay_apart(fresh_url: str, tmp_path: Path) -> None:
    # 模 is &aiE- and 梁 is &aIE-: one IMAP keyword, since keywords ignore case, but two names.
    assert labels.keyword_of("模").lower() == labels.keyword_of("梁").lower()
    store.open_store(make_settings(fresh_url, tmp_path), migrate=True, pool_size=2)
    engine = db.get_engine()
    run_step(engine, "downgrade", BEFORE)
    alice = accounts.create_user("alice@example.com")
    inbox = mailboxes.get_mailbox(alice.id, "INBOX").id
    first = messages.append(alice.id, inbox, make_message("first"), ["模"])[1]
    second = messages.append(alice.id, inbox, make_message("second"), ["梁"])[1]
    both = messages.append(alice.id, inbox, make_message("both"), ["梁", "模"])[1]
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO labels (user_id, name, color, created_at) VALUES "
                          "(:a, '模', '#111111', :now), (:a, '梁', '#222222', :now)"),
                     {"a": alice.id, "now": "2026-12-01 10:00:00+00:00"})
    userfilters.create_filter(alice.id, "beam", {"subject": "x"}, {"addLabel": "梁"})

    run_step(engine, "upgrade", "head")
    with engine.connect() as conn:
        assert _labels(conn) == {alice.id: ["&aiE-", "梁"]}  # the second keeps its raw keyword
        assert _keywords(conn) == {first.id: ["&aiE-"], second.id: ["梁"], both.id: ["&aiE-", "梁"]}
    assert sorted((label.name, label.color) for label in labels.list_labels(alice.id)) == [
        ("梁", "#222222"), ("模", "#111111")]
    assert [f.actions for f in userfilters.list_filters(alice.id)] == [{"addLabel": "梁"}]
    # A name of the user's own labels gives that label's keyword, raw or not.
    assert labels.keywords_for(alice.id, ["梁", "模", " 梁 ", "Büro", "Work"]) == ["梁", "&aiE-", "梁", "B&APw-ro", "Work"]


def test_a_label_whose_keyword_differs_only_in_case_from_another_is_refused(fresh_url: str, tmp_path: Path) -> None:
    store.open_store(make_settings(fresh_url, tmp_path), migrate=True, pool_size=2)
    alice = accounts.create_user("alice@example.com")
    labels.create_label(alice.id, "模")
    with pytest.raises(Conflict, match="same IMAP keyword as the label 模"):
        labels.create_label(alice.id, "梁")
    assert [label.name for label in labels.list_labels(alice.id)] == ["模"]
