"""Per-protocol counters: counted in memory by any process, flushed to shared totals, served as
Prometheus text by /metrics."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import gevent
import pytest
from prometheus_client.parser import text_string_to_metric_families

from relate import db, metrics
from relate.config import ConfigError, Settings
from relate.protocol.connection import Connection
from relate.protocol.server import Listener, ServiceGroup
from relate.store import metrics as stored
from tests.conftest import make_settings
from tests.webapp.conftest import MakeApi


@pytest.fixture(autouse=True)
def clean_counts() -> Iterator[None]:
    metrics.stop_flusher(final_flush=False)
    metrics.reset()
    yield
    metrics.stop_flusher(final_flush=False)
    metrics.reset()


def scrape(text: str) -> dict[str, float]:
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_counting_is_in_memory_until_flushed(store: Settings) -> None:
    metrics.incr("smtp", "messages_accepted")
    metrics.incr("smtp", "messages_accepted", 2)
    metrics.incr("imap", "connections")
    metrics.incr("imap", "ignored", 0)
    assert metrics.pending() == {("smtp", "messages_accepted"): 3, ("imap", "connections"): 1}
    assert stored.totals() == {}
    assert metrics.flush() is True
    assert metrics.pending() == {}
    assert stored.totals() == {("smtp", "messages_accepted"): 3, ("imap", "connections"): 1}


def test_flushes_from_several_processes_add_up(store: Settings) -> None:
    stored.add({("pop3", "logins"): 4})  # another process's flush
    metrics.incr("pop3", "logins", 3)
    metrics.flush()
    stored.add({("pop3", "logins"): 1, ("smtp", "connections"): 2})
    assert stored.totals() == {("pop3", "logins"): 8, ("smtp", "connections"): 2}


def test_names_are_normalised(store: Settings) -> None:
    metrics.incr("SMTP", "Messages Accepted!")
    metrics.incr("imap", "x" * 200)
    metrics.incr("", "---")
    keys = set(metrics.pending())
    assert ("smtp", "messages_accepted") in keys
    assert ("imap", "x" * metrics.MAX_NAME) in keys
    assert ("unknown", "unknown") in keys


def test_a_failed_flush_keeps_its_counts(store: Settings) -> None:
    metrics.incr("smtp", "connections", 5)
    db.configure("postgresql+psycopg2://nobody:x@127.0.0.1:1/none", pool_size=1)
    try:
        assert metrics.flush() is False
        metrics.incr("smtp", "connections")
        assert metrics.pending() == {("smtp", "connections"): 6}
    finally:
        db.configure(store.database_url, pool_size=5)
    assert metrics.flush() is True
    assert stored.totals() == {("smtp", "connections"): 6}


def test_the_flusher_greenlet_flushes_and_stops(store: Settings) -> None:
    metrics.incr("imap", "commands", 7)
    flusher = metrics.start_flusher(interval=0.05)
    assert metrics.start_flusher(interval=0.05) is flusher  # once per process
    for _ in range(100):
        if stored.totals():
            break
        gevent.sleep(0.02)
    assert stored.totals() == {("imap", "commands"): 7}
    metrics.incr("imap", "commands")
    metrics.stop_flusher()  # flushes what is left
    assert flusher.dead
    assert stored.totals() == {("imap", "commands"): 8}


def test_listeners_count_connections(store: Settings, tmp_path: Path) -> None:
    def hello(conn: Connection) -> None:
        conn.write(b"hi\r\n")

    settings = make_settings(store.database_url, tmp_path, Network__BindAddress="127.0.0.1",
                             Network__MaxConnectionsPerIp="1")
    group = ServiceGroup(settings)
    group.add(Listener("echo", 0, False, hello))
    group.start()
    try:
        port = group.bound_port("echo")
        with socket.create_connection(("127.0.0.1", port), timeout=5) as one:
            assert one.recv(10) == b"hi\r\n"
        for _ in range(100):
            if metrics.pending().get(("echo", "connections")) == 1 and group.connection_count == 0:
                break
            gevent.sleep(0.01)
        assert metrics.pending()[("echo", "connections")] == 1
    finally:
        group.stop(0)


def test_metrics_endpoint_serves_deployment_totals(api: MakeApi) -> None:
    server = api()
    stored.add({("smtp", "connections"): 10, ("imap", "auth_failures_total"): 2})  # other processes
    metrics.incr("smtp", "connections", 5)  # this process, not flushed yet
    response = server.http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    figures = scrape(response.text)
    assert figures["relate_smtp_connections_total"] == 15
    assert figures["relate_imap_auth_failures_total"] == 2
    assert figures["relate_database_up"] == 1
    assert "# TYPE relate_smtp_connections_total counter" in response.text
    # the API counts its own requests
    again = scrape(server.http.get("/metrics").text)
    assert again["relate_http_requests_total"] >= 1
    assert again["relate_http_responses_2xx_total"] >= 1


def test_metrics_endpoint_without_the_database(api: MakeApi, store: Settings) -> None:
    server = api()
    metrics.incr("pop3", "connections", 3)
    db.configure("postgresql+psycopg2://nobody:x@127.0.0.1:1/none", pool_size=1)
    try:
        figures = scrape(server.http.get("/metrics").text)
    finally:
        db.configure(store.database_url, pool_size=5)
    assert figures["relate_database_up"] == 0
    assert figures["relate_pop3_connections_total"] == 3


def test_metrics_endpoint_serves_the_search_index_backlog(api: MakeApi) -> None:
    from relate.store import accounts, mailboxes, messages, searchindex
    from tests.store.helpers import make_message

    server = api()
    user = accounts.create_user("backlog@example.com")
    inbox = mailboxes.get_mailbox(user.id, "INBOX").id
    for i in range(3):
        messages.append(user.id, inbox, make_message(f"waiting {i}"))
    waiting = 3 if searchindex.enabled() else 0  # SQLite has no search indexes to wait for
    assert scrape(server.http.get("/metrics").text)["relate_search_index_backlog"] == waiting
    searchindex.index_all()
    assert scrape(server.http.get("/metrics").text)["relate_search_index_backlog"] == 0


def test_metrics_token_is_asked_for_when_set(api: MakeApi) -> None:
    token = "m3tr1cs-" + "x" * 24
    server = api(Metrics__Token=token)
    for headers in ({}, {"Authorization": "Bearer wrong-token-of-some-length"}, {"Authorization": token},
                    {"Authorization": f"ApiKey {token}"}):
        refused = server.http.get("/metrics", headers=headers)
        assert refused.status_code == 401
        assert refused.headers["WWW-Authenticate"].startswith("Bearer")
        assert "relate_" not in refused.text
    allowed = server.http.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert allowed.status_code == 200
    assert scrape(allowed.text)["relate_database_up"] == 1


@pytest.mark.parametrize("token", ["short", "has a space in it somewhere"])
def test_a_weak_metrics_token_is_a_configuration_error(store: Settings, tmp_path: Path, token: str) -> None:
    with pytest.raises(ConfigError, match="Metrics__Token"):
        make_settings(store.database_url, tmp_path, Metrics__Token=token)
