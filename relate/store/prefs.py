"""Per-user preferences of the web UI and apps: one JSON object per user.

The store keeps what it is given; the API validates the values (webapp.api.preferences).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select

from relate.db.models import Preference
from relate.store.session import read, transaction
from relate.store.sql import insert_ignore


def get_preferences(user_id: int) -> tuple[dict[str, Any], dt.datetime | None]:
    """(stored values, when they last changed); ({}, None) for a user who never set any."""
    with read() as s:
        row = s.scalar(select(Preference).where(Preference.user_id == user_id))
        return (dict(row.data or {}), row.updated_at) if row else ({}, None)


def update_preferences(user_id: int, changes: dict[str, Any]) -> tuple[dict[str, Any], dt.datetime]:
    """Merge `changes` into the stored values; returns the result."""
    now = dt.datetime.now(dt.UTC)
    with transaction() as t:
        insert_ignore(t, Preference, {"user_id": user_id, "data": {}, "updated_at": now}, ["user_id"])
        q = select(Preference).where(Preference.user_id == user_id)
        row = t.s.scalar(q.with_for_update() if t.postgres else q)
        assert row is not None
        row.data = {**(row.data or {}), **changes}
        row.updated_at = now
        t.s.flush()
        return dict(row.data), now
