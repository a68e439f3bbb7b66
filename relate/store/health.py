"""Is the database reachable? (the API's /readyz and the daemons' start-up check)."""

from __future__ import annotations

from sqlalchemy import text

from relate.store.session import read


def ping() -> None:
    """Raises TemporaryFailure when the database cannot answer."""
    with read() as s:
        s.execute(text("SELECT 1"))
