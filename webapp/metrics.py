"""GET /metrics: the Prometheus text format (version 0.0.4).

Per-protocol counters (`relate_<protocol>_<name>_total`) are the shared database totals that
every process flushes into (relate.metrics), plus what this process counted and has not
flushed yet, so the figure is the whole deployment's whatever replica is scraped.
`relate_database_up` says whether the totals could be read; when they could not, this
process's own counts are still served. `relate_search_index_backlog` is how many stored
messages wait for the search indexer (relate.store.searchindex; always 0 on SQLite): they
are found by searches all the same, at a cost that grows with their number.

With `Metrics__Token` set, a scrape must send `Authorization: Bearer <token>` (compared in
constant time) or gets 401; without it the endpoint is open, like /healthz and /readyz.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, jsonify, request
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from relate import metrics
from relate.store import StoreError, searchindex
from relate.store import metrics as stored
from webapp.apidoc import endpoint
from webapp.auth import header_holds
from webapp.auth import settings as current_settings

log = logging.getLogger("relate.webapp.metrics")

bp = Blueprint("metrics", __name__)

PROTOCOL_NAMES = {"smtp": "SMTP", "pop3": "POP3", "imap": "IMAP", "http": "HTTP API"}


class _Snapshot:
    """One scrape's figures as a prometheus_client collector."""

    def __init__(self, totals: dict[tuple[str, str], int], database_up: bool, backlog: int | None = None):
        self.totals = totals
        self.database_up = database_up
        self.backlog = backlog

    def collect(self) -> Iterator[Metric]:
        for (protocol, name), value in sorted(self.totals.items()):
            label = PROTOCOL_NAMES.get(protocol, protocol)
            family = CounterMetricFamily(
                f"relate_{protocol}_{name}", f"{label} {name.replace('_', ' ')}, all processes"
            )
            family.add_metric([], value)
            yield family
        up = GaugeMetricFamily("relate_database_up", "1 when the shared counters could be read")
        up.add_metric([], 1 if self.database_up else 0)
        yield up
        if self.backlog is not None:
            backlog = GaugeMetricFamily("relate_search_index_backlog",
                                        "stored messages not yet in the search indexes (found by searches all the same)")
            backlog.add_metric([], self.backlog)
            yield backlog


def snapshot() -> tuple[dict[tuple[str, str], int], bool]:
    """Deployment-wide totals: the database's plus this process's unflushed counts."""
    try:
        totals = stored.totals()
        up = True
    except StoreError as exc:
        log.warning("metric totals unavailable: %s", exc)
        totals, up = {}, False
    for key, n in metrics.pending().items():
        totals[key] = totals.get(key, 0) + n
    return totals, up


@bp.get("/metrics")
@endpoint(
    summary="Prometheus metrics: per-protocol counters from every service (Bearer Metrics__Token when set)",
    response={"type": "string"},
    content_type="text/plain",
    tags=["operations"],
    errors=(401,),
)
def prometheus_metrics() -> Any:
    token = current_settings().metrics_token
    if token and not header_holds(request.headers.get("Authorization"), "bearer", token):
        response = jsonify({"error": "metrics need the Metrics__Token bearer token"})
        response.status_code = 401
        response.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    totals, up = snapshot()
    backlog = None
    if up:
        try:
            backlog = searchindex.backlog()
        except StoreError as exc:
            log.warning("search index backlog unavailable: %s", exc)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(totals, up, backlog))
    return Response(generate_latest(registry), status=200, content_type=CONTENT_TYPE_PLAIN_0_0_4)
