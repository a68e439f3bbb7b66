"""Small dialect helpers shared by the store modules."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult

from relate.store.session import Tx


def insert_ignore(t: Tx, model: Any, values: dict[str, Any], conflict: list[str]) -> int:
    """INSERT ... ON CONFLICT (conflict) DO NOTHING; returns the number of rows inserted."""
    dialect = postgresql if t.postgres else sqlite
    stmt = dialect.insert(model).values(**values).on_conflict_do_nothing(index_elements=conflict)
    return rowcount(t.s.execute(stmt))


def rowcount(result: Any) -> int:
    """Rows matched by an INSERT, UPDATE or DELETE result."""
    assert isinstance(result, CursorResult)
    return int(result.rowcount or 0)
