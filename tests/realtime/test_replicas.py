"""Across processes: two API replicas (gunicorn, gevent worker), two IMAP daemons, the SMTP and
POP3 daemons, one PostgreSQL. Every change, from every origin, reaches the user's sockets on
both replicas within a second, and never another user's."""

from __future__ import annotations

import imaplib
import poplib
import smtplib
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from relate import db, store
from relate.config import Settings
from relate.store import keys
from tests.conftest import _admin_exec, _sqlalchemy_url, make_settings, require_postgres
from tests.realtime.conftest import WsClient, http, make_message, make_user
from tests.realtime.replicas import Deployment, Process

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(180)]

LATENCY = 1.0  # seconds from a change's acknowledgement to its event on every socket


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    admin = require_postgres()
    name = f"relate_rt_{uuid.uuid4().hex[:10]}"
    _admin_exec(admin, f"CREATE DATABASE {name}")
    url = _sqlalchemy_url(admin, name)
    from relate.db import migrate

    engine = db.engine.create(url, pool_size=2)
    migrate.upgrade(engine)
    engine.dispose()
    deployment = Deployment(url, tmp_path_factory.mktemp("replicas"))
    try:
        api1 = deployment.start_api("api1")
        api2 = deployment.start_api("api2")
        deployment.start_imap("imap1", api1)
        deployment.start_imap("imap2", api2)
        deployment.start_smtp("smtp", api1)
        deployment.start_pop3("pop3", api2)
        yield deployment
    finally:
        deployment.stop()
        store.close_store()
        _admin_exec(admin, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def here(deployment: Deployment, tmp_path: Path) -> Iterator[Settings]:
    """This process on the deployment's database (to make users and keys)."""
    settings = make_settings(deployment.database_url, tmp_path, Database__AutoMigrate="false")
    store.open_store(settings, migrate=False, pool_size=3)
    store.accounts.ensure_domains(["example.test"])
    yield settings
    store.bus.stop_listener()


def ws_url(process: Process) -> str:
    return f"ws://127.0.0.1:{process.port}/api/ws"


def open_socket(process: Process, key: str) -> WsClient:
    client = WsClient(ws_url(process), {"Authorization": f"Bearer {key}"}).connect()
    client.wait_for("Hello")
    return client.pump_in_background()


def arrived(sockets: list[WsClient], kind: str, since: float, match: Any = lambda f: True) -> list[dict[str, Any]]:
    """The matching frame from every socket, each within LATENCY of `since`."""
    frames = []
    for ws in sockets:
        frame = ws.wait_for(kind, match, timeout=5)
        delay = ws.arrival[id(frame)] - since
        assert delay < LATENCY, f"{kind} reached {ws.url} after {delay:.3f}s"
        frames.append(frame)
    return frames


def email_frames(ws: WsClient) -> list[dict[str, Any]]:
    return [f for f in ws.seen if f["type"] not in ("Hello", "Heartbeat")]


def test_every_event_from_every_origin_reaches_both_replicas(deployment: Deployment, here: Settings):
    api1, api2 = deployment.processes["api1"], deployment.processes["api2"]
    tag = uuid.uuid4().hex[:6]
    alice, bob = make_user(f"alice{tag}"), make_user(f"bob{tag}")
    sockets = [open_socket(api1, alice.key), open_socket(api2, alice.key)]
    bystander = open_socket(api2, bob.key)

    # SMTP (MX) delivery: NewEmail and the new unread count, from the 250 on.
    with smtplib.SMTP("127.0.0.1", deployment.processes["smtp"].port, timeout=10) as smtp:
        smtp.sendmail("someone@elsewhere.test", [alice.address], make_message("over SMTP", to=alice.address))
        since = time.monotonic()
    new = arrived(sockets, "NewEmail", since, lambda f: f["data"]["subject"] == "over SMTP")
    assert new[0]["data"] == new[1]["data"] and new[0]["data"]["mailbox"] == "INBOX"
    first = new[0]["data"]
    counts = arrived(sockets, "UnreadCountChanged", since)
    assert counts[0]["data"]["unreadCount"] == 1

    # IMAP STORE on one IMAP process.
    imap1 = imaplib.IMAP4("127.0.0.1", deployment.processes["imap1"].port, timeout=10)
    imap1.login(alice.address, alice.key)
    imap1.select("INBOX")
    typ, _ = imap1.uid("STORE", str(first["uid"]), "+FLAGS", r"(\Seen)")
    since = time.monotonic()
    assert typ == "OK"
    updated = arrived(sockets, "EmailUpdated", since)
    assert updated[0]["data"]["id"] == first["id"] and updated[0]["data"]["isRead"] is True
    arrived(sockets, "UnreadCountChanged", since, lambda f: f["data"]["unreadCount"] == 0)

    # CREATE and MOVE on the other IMAP process.
    imap2 = imaplib.IMAP4("127.0.0.1", deployment.processes["imap2"].port, timeout=10)
    imap2.login(alice.address, alice.key)
    assert imap2.create("Projects")[0] == "OK"
    since = time.monotonic()
    created = arrived(sockets, "MailboxChanged", since)
    assert created[0]["data"]["change"] == "created" and created[0]["data"]["name"] == "Projects"
    imap2.select("INBOX")
    typ, _ = imap2.uid("MOVE", str(first["uid"]), "Projects")
    since = time.monotonic()
    assert typ == "OK"
    deleted = arrived(sockets, "EmailDeleted", since)
    assert deleted[0]["data"]["ids"] == [first["id"]]
    moved = arrived(sockets, "NewEmail", since, lambda f: f["data"]["mailbox"] == "Projects")
    assert moved[0]["data"]["subject"] == "over SMTP"

    # APPEND on the first IMAP process.
    typ, _ = imap1.append("INBOX", "", imaplib.Time2Internaldate(time.time()), make_message("appended", to=alice.address))
    since = time.monotonic()
    assert typ == "OK"
    appended = arrived(sockets, "NewEmail", since, lambda f: f["data"]["subject"] == "appended")[0]["data"]

    # STORE \Deleted and EXPUNGE on the second.
    imap2.select("INBOX")
    imap2.uid("STORE", str(appended["uid"]), "+FLAGS", r"(\Deleted)")
    since = time.monotonic()
    arrived(sockets, "EmailUpdated", since, lambda f: f["data"]["id"] == appended["id"])
    assert imap2.expunge()[0] == "OK"
    since = time.monotonic()
    assert arrived(sockets, "EmailDeleted", since)[0]["data"]["ids"] == [appended["id"]]

    # RENAME and DELETE.
    assert imap1.rename("Projects", "Done")[0] == "OK"
    since = time.monotonic()
    renamed = arrived(sockets, "MailboxChanged", since, lambda f: f["data"]["change"] == "renamed")
    assert renamed[0]["data"]["oldName"] == "Projects" and renamed[0]["data"]["name"] == "Done"
    imap1.select("Done")
    imap1.uid("STORE", "1:*", "+FLAGS", r"(\Deleted)")
    imap1.expunge()
    imap1.select("INBOX")
    assert imap1.delete("Done")[0] == "OK"
    since = time.monotonic()
    arrived(sockets, "MailboxChanged", since, lambda f: f["data"]["change"] == "deleted")
    imap1.logout()
    imap2.logout()

    # POP3 RETR (marks \Seen) and DELE.
    with smtplib.SMTP("127.0.0.1", deployment.processes["smtp"].port, timeout=10) as smtp:
        for subject in ("pop one", "pop two"):
            smtp.sendmail("someone@elsewhere.test", [alice.address], make_message(subject, to=alice.address))
            since = time.monotonic()
            arrived(sockets, "NewEmail", since, lambda f, subject=subject: f["data"]["subject"] == subject)
    pop = poplib.POP3("127.0.0.1", deployment.processes["pop3"].port, timeout=10)
    try:
        pop.user(alice.address)
        pop.pass_(alice.key)
        pop.retr(1)
        pop.dele(2)
        pop.quit()
    except poplib.error_proto as exc:
        pytest.fail(f"POP3 said {exc}; its log ends:\n{deployment.processes['pop3'].log.read_text()[-3000:]}")
    since = time.monotonic()
    read = arrived(sockets, "EmailUpdated", since, lambda f: f["data"]["subject"] == "pop one")
    assert read[0]["data"]["isRead"] is True
    assert len(arrived(sockets, "EmailDeleted", since)[0]["data"]["ids"]) == 1

    # REST on one replica reaches the sockets of both.
    email_id = read[0]["data"]["id"]
    status, _ = http("PATCH", f"http://127.0.0.1:{api2.port}/api/emails/{email_id}", {"isFlagged": True},
                     {"Authorization": f"Bearer {alice.key}"})
    since = time.monotonic()
    assert status == 200
    flagged = arrived(sockets, "EmailUpdated", since, lambda f: f["data"]["id"] == email_id)
    assert flagged[0]["data"]["isFlagged"] is True

    # A daemon's notification received by one replica reaches the sockets on both.
    email = {"id": 10**9, "from": "n@elsewhere.test", "fromDisplay": "N", "subject": "notified",
             "receivedAt": "2026-01-01T00:00:00Z", "hasAttachments": False}
    status, _ = http("POST", f"http://127.0.0.1:{api1.port}/api/internal/notifications/new-email",
                     {"userIds": [alice.id], "email": email}, {"Authorization": f"ApiKey {deployment.internal_key}"})
    since = time.monotonic()
    assert status == 202
    assert arrived(sockets, "NewEmail", since, lambda f: f["data"]["id"] == 10**9)[0]["data"]["subject"] == "notified"

    # Bob saw none of it; nothing arrived twice (the store's event and the daemons'
    # notifications describe the same emails); the daemons' notifications were accepted.
    time.sleep(0.3)
    assert email_frames(bystander) == []
    for ws in sockets:
        ids = [f["data"]["id"] for f in ws.seen if f["type"] == "NewEmail"]
        assert len(ids) == len(set(ids)) == 6
    for daemon in ("smtp", "imap1", "imap2", "pop3"):
        log = deployment.processes[daemon].log.read_text()
        assert "notification" not in log.lower() or "refused" not in log.lower(), log[-2000:]
    for ws in [*sockets, bystander]:
        ws.close()


def test_revoking_a_key_closes_its_sockets_on_every_replica(deployment: Deployment, here: Settings):
    tag = uuid.uuid4().hex[:6]
    carol = make_user(f"carol{tag}")
    sockets = [open_socket(deployment.processes["api1"], carol.key), open_socket(deployment.processes["api2"], carol.key)]
    keys.revoke_key(carol.key_id)
    for ws in sockets:
        code, reason = ws.wait_closed(timeout=5)
        assert code == 1008 and "revoked" in reason


def test_a_lost_listener_connection_makes_every_socket_resynchronise(deployment: Deployment, here: Settings):
    tag = uuid.uuid4().hex[:6]
    dave = make_user(f"dave{tag}")
    sockets = [open_socket(deployment.processes["api1"], dave.key), open_socket(deployment.processes["api2"], dave.key)]
    dsn = store.postgres_dsn(deployment.database_url)
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = 'relate-bus' AND datname = current_database() AND pid <> pg_backend_pid()")
        assert cur.rowcount >= 2  # both API replicas listen (and this test process)
    conn.close()
    for ws in sockets:
        # One when the connection is lost, one when the listener is back (anything committed
        # in between was missed).
        assert ws.wait_for("Resync", timeout=10)["data"]["mailboxId"] is None
        assert ws.wait_for("Resync", timeout=10)["data"]["mailboxId"] is None
    # and events flow again afterwards
    store.messages.deliver(make_message("after the outage", to=dave.address),
                           store.Envelope("x@elsewhere.test", (dave.address,)))
    for ws in sockets:
        ws.wait_for("NewEmail", lambda f: f["data"]["subject"] == "after the outage", timeout=10)
        ws.close()
