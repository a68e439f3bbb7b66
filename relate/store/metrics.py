"""Per-protocol counters summed over every process: each process adds what it counted since
its last flush (relate.metrics), so a row is the total over all replicas and restarts and only
ever grows, as a Prometheus counter must."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from relate.db.models import MetricCounter
from relate.store.session import read, retrying, transaction


def add(deltas: dict[tuple[str, str], int]) -> None:
    """Add each (protocol, name) delta to its running total, in one transaction."""
    items = sorted((k, v) for k, v in deltas.items() if v)
    if not items:
        return

    def run() -> None:
        now = dt.datetime.now(dt.UTC)
        with transaction() as t:
            dialect = postgresql if t.postgres else sqlite
            for (protocol, name), delta in items:  # sorted: one lock order for every process
                stmt = dialect.insert(MetricCounter).values(
                    protocol=protocol, name=name, value=delta, updated_at=now
                )
                stmt = stmt.on_conflict_do_update(
                    index_elements=["protocol", "name"],
                    set_={"value": MetricCounter.value + delta, "updated_at": now},
                )
                t.s.execute(stmt)

    retrying(run)


def totals() -> dict[tuple[str, str], int]:
    with read() as s:
        rows = s.execute(select(MetricCounter.protocol, MetricCounter.name, MetricCounter.value)).all()
    return {(protocol, name): int(value) for protocol, name, value in rows}
