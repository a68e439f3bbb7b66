"""API rate limits per client address and per user (Api__RateLimitPerIp, Api__RateLimitPerUser,
requests per minute), counted in relate.store.ratelimit so that every replica shares them.

A request over either limit gets 429 with Retry-After (seconds until the window ends). Most
requests are counted in memory and written to the shared counters in batches a few times a
second; a client near its limit is counted in the shared row on every request, so limits hold
across replicas within the tolerance relate.store.ratelimit states (at most 2 % of a limit
per other API process, exact for limits under 50). Health, readiness, metrics and the
daemons' internal endpoint are not limited. If the counters cannot be reached the request is
let through: a database outage must not be turned into a second one.
"""

from __future__ import annotations

import logging

from flask import request

from relate import metrics
from relate.config import Settings
from relate.protocol.server import limit_key
from relate.store import StoreError, ratelimit
from webapp.errors import ApiError

log = logging.getLogger("relate.webapp.ratelimit")

EXEMPT_PATHS = ("/healthz", "/readyz", "/metrics")
EXEMPT_PREFIXES = ("/api/internal/",)


def exempt() -> bool:
    return request.method == "OPTIONS" or request.path in EXEMPT_PATHS or request.path.startswith(EXEMPT_PREFIXES)


def check(settings: Settings, user_id: int | None) -> None:
    """Count this request; 429 when the client or the user is over its limit."""
    limits: dict[str, int] = {}
    if settings.api_rate_limit_per_ip:
        limits[f"ip:{limit_key(request.remote_addr or '-')}"] = settings.api_rate_limit_per_ip
    if settings.api_rate_limit_per_user and user_id is not None:
        limits[f"user:{user_id}"] = settings.api_rate_limit_per_user
    if not limits:
        return
    try:
        over = ratelimit.admit(limits)
    except StoreError as exc:
        log.warning("rate limit counters unavailable, not limiting: %s", exc)
        return
    if over:
        metrics.incr("http", "rate_limited")
        worst = max(over, key=lambda c: c.retry_after())
        raise ApiError(
            429,
            "too many requests; slow down",
            headers={"Retry-After": str(worst.retry_after())},
        )
