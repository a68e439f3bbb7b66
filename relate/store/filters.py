"""Per-user filters, run once at delivery (DESIGN.md §5).

A filter is {conditions, actions}:
- conditions: {"match": "all"|"any", "from": str, "to": str, "subject": str, "body": str,
  "hasAttachment": bool}; text conditions are case-insensitive substring matches; absent
  conditions are ignored, and a filter with none never matches.
- actions: {"markRead": bool, "flag": bool, "addLabel": str (a label's IMAP keyword, see
  relate.store.labels), "moveTo": str (mailbox name),
  "delete": bool (to Trash), "stop": bool}.
Filters run in `position` order; "stop" ends the run after that filter matched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from relate.db.models import Filter
from relate.message import ParsedMessage
from relate.store.errors import InvalidInput
from relate.store.session import Tx

TEXT_CONDITIONS = ("from", "to", "subject", "body")
CONDITION_KEYS = {*TEXT_CONDITIONS, "hasAttachment", "match"}
ACTION_KEYS = {"markRead", "flag", "addLabel", "moveTo", "delete", "stop"}


@dataclass
class Plan:
    """Where and how a delivered message lands for one user."""

    mailbox: str | None = None  # None: INBOX
    special_use: str | None = None  # e.g. '\\Trash' for the delete action
    seen: bool = False
    flagged: bool = False
    keywords: list[str] = field(default_factory=list)


def validate(conditions: Any, actions: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Check a filter's JSON shape; raises InvalidInput naming the bad field."""
    if not isinstance(conditions, dict):
        raise InvalidInput("conditions: must be an object")
    if not isinstance(actions, dict):
        raise InvalidInput("actions: must be an object")
    for key, value in conditions.items():
        if key not in CONDITION_KEYS:
            raise InvalidInput(f"conditions.{key}: unknown condition")
        if key in TEXT_CONDITIONS and (not isinstance(value, str) or len(value) > 500):
            raise InvalidInput(f"conditions.{key}: must be a string of at most 500 characters")
        if key == "hasAttachment" and not isinstance(value, bool):
            raise InvalidInput("conditions.hasAttachment: must be true or false")
        if key == "match" and value not in ("all", "any"):
            raise InvalidInput("conditions.match: must be 'all' or 'any'")
    for key, value in actions.items():
        if key not in ACTION_KEYS:
            raise InvalidInput(f"actions.{key}: unknown action")
        if key in ("markRead", "flag", "delete", "stop") and not isinstance(value, bool):
            raise InvalidInput(f"actions.{key}: must be true or false")
        if key in ("addLabel", "moveTo") and (not isinstance(value, str) or not value.strip() or len(value) > 200):
            raise InvalidInput(f"actions.{key}: must be a non-empty string")
    return conditions, actions


def matches(conditions: dict[str, Any], parsed: ParsedMessage) -> bool:
    tests: list[bool] = []
    haystacks = {
        "from": f"{parsed.from_display} {parsed.from_addr}",
        "to": " ".join(f"{n} {a}" for n, a in (*parsed.to, *parsed.cc)),
        "subject": parsed.subject,
        "body": parsed.text,
    }
    for key in TEXT_CONDITIONS:
        needle = conditions.get(key)
        if isinstance(needle, str) and needle:
            tests.append(needle.lower() in haystacks[key].lower())
    if isinstance(conditions.get("hasAttachment"), bool):
        tests.append(conditions["hasAttachment"] == parsed.has_attachments)
    if not tests:
        return False
    return any(tests) if conditions.get("match") == "any" else all(tests)


def apply(actions: dict[str, Any], plan: Plan) -> bool:
    """Apply one matching filter's actions; returns True when processing should stop."""
    if actions.get("markRead"):
        plan.seen = True
    if actions.get("flag"):
        plan.flagged = True
    label = actions.get("addLabel")
    if isinstance(label, str) and label and label.lower() not in {k.lower() for k in plan.keywords}:
        plan.keywords.append(label)
    target = actions.get("moveTo")
    if isinstance(target, str) and target:
        plan.mailbox = target
    if actions.get("delete"):
        plan.mailbox, plan.special_use = None, "\\Trash"
    return bool(actions.get("stop"))


def run(rules: list[tuple[dict[str, Any], dict[str, Any]]], parsed: ParsedMessage) -> Plan:
    plan = Plan()
    for conditions, actions in rules:
        if matches(conditions, parsed) and apply(actions, plan):
            break
    return plan


def plan_for(t: Tx, user_id: int, parsed: ParsedMessage) -> Plan:
    rows = t.s.execute(
        select(Filter.conditions, Filter.actions)
        .where(Filter.user_id == user_id, Filter.enabled.is_(True))
        .order_by(Filter.position, Filter.id)
    ).all()
    return run([(c, a) for c, a in rows], parsed)
