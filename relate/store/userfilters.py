"""A user's filter rules: create, read, change, delete, and try one against recent mail.

The rules' meaning (conditions, actions, order) belongs to relate.store.filters, which runs
them inside every delivery, SMTP and API alike; this module only keeps them.

Invariants:
- Every function takes the owner's user id; another user's filter is NotFound.
- conditions and actions are checked with filters.validate before they are stored.
- Filters run in (position, id) order; the list is returned in that order.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from relate.db.models import Filter, MessageBody
from relate.message import ParsedMessage
from relate.store import filters, listing
from relate.store.errors import Conflict, InvalidInput, NotFound
from relate.store.session import read, transaction

MAX_FILTERS = 200  # per user
MAX_TEST = 100  # recent messages a test looks at


@dataclass(frozen=True)
class FilterInfo:
    id: int
    user_id: int
    name: str
    enabled: bool
    position: int
    conditions: dict[str, Any]
    actions: dict[str, Any]
    created_at: dt.datetime


def _info(f: Filter) -> FilterInfo:
    return FilterInfo(f.id, f.user_id, f.name, f.enabled, f.position, dict(f.conditions or {}),
                      dict(f.actions or {}), f.created_at)


def _check_name(name: str) -> str:
    name = (name or "").strip()
    if not name or len(name) > 200:
        raise InvalidInput("filter name must be 1 to 200 characters")
    return name


def list_filters(user_id: int) -> list[FilterInfo]:
    with read() as s:
        rows = s.scalars(select(Filter).where(Filter.user_id == user_id).order_by(Filter.position, Filter.id))
        return [_info(f) for f in rows]


def get_filter(user_id: int, filter_id: int) -> FilterInfo:
    with read() as s:
        f = s.get(Filter, filter_id)
        if f is None or f.user_id != user_id:
            raise NotFound("no such filter")
        return _info(f)


def create_filter(
    user_id: int, name: str, conditions: dict[str, Any], actions: dict[str, Any], *, enabled: bool = True,
    position: int = 100,
) -> FilterInfo:
    name = _check_name(name)
    conditions, actions = filters.validate(conditions, actions)
    with transaction() as t:
        if (t.s.scalar(select(func.count(Filter.id)).where(Filter.user_id == user_id)) or 0) >= MAX_FILTERS:
            raise Conflict(f"at most {MAX_FILTERS} filters")
        f = Filter(user_id=user_id, name=name, enabled=enabled, position=position, conditions=conditions,
                   actions=actions, created_at=dt.datetime.now(dt.UTC))
        t.s.add(f)
        t.s.flush()
        return _info(f)


def update_filter(
    user_id: int,
    filter_id: int,
    *,
    name: str | None = None,
    enabled: bool | None = None,
    position: int | None = None,
    conditions: dict[str, Any] | None = None,
    actions: dict[str, Any] | None = None,
) -> FilterInfo:
    with transaction() as t:
        f = t.s.get(Filter, filter_id)
        if f is None or f.user_id != user_id:
            raise NotFound("no such filter")
        new_conditions, new_actions = filters.validate(
            conditions if conditions is not None else dict(f.conditions or {}),
            actions if actions is not None else dict(f.actions or {}),
        )
        if name is not None:
            f.name = _check_name(name)
        if enabled is not None:
            f.enabled = enabled
        if position is not None:
            f.position = position
        f.conditions = new_conditions
        f.actions = new_actions
        t.s.flush()
        return _info(f)


def delete_filter(user_id: int, filter_id: int) -> None:
    with transaction() as t:
        f = t.s.get(Filter, filter_id)
        if f is None or f.user_id != user_id:
            raise NotFound("no such filter")
        t.s.delete(f)


def dry_run(user_id: int, filter_id: int, limit: int = 10) -> list[int]:
    """Ids of the user's `limit` most recent messages (at most MAX_TEST) the filter's
    conditions match, as delivery would match them."""
    rule = get_filter(user_id, filter_id)
    rows = listing.recent_rows(user_id, max(0, min(limit, MAX_TEST)))
    parsed = _parsed_with_text([r.body_id for r in rows])
    return [r.id for r in rows if r.body_id in parsed and filters.matches(rule.conditions, parsed[r.body_id])]


def _parsed_with_text(body_ids: list[int]) -> dict[int, ParsedMessage]:
    """The stored parse of each body with its search text put back (delivery matches on it)."""
    out: dict[int, ParsedMessage] = {}
    if not body_ids:
        return out
    with read() as s:
        q = select(MessageBody.id, MessageBody.meta, MessageBody.search_text).where(MessageBody.id.in_(body_ids))
        for body_id, meta, search_text in s.execute(q):
            parsed = ParsedMessage.from_json(meta)
            parsed.text = search_text or ""
            out[int(body_id)] = parsed
    return out
