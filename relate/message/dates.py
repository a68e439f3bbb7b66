"""The Date header (RFC 5322 §3.3, with the obsolete forms of §4.3) as an aware UTC datetime.

Invariant: `parse_date` never raises; anything it cannot read, or a date datetime cannot hold,
gives None. A date without a zone, or with "-0000", is taken as UTC.
"""

from __future__ import annotations

import datetime as dt
from email.utils import parsedate_tz

_MAX_LENGTH = 256


def parse_date(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    value = " ".join(value[:_MAX_LENGTH].split())
    try:
        fields = parsedate_tz(value)
        if fields is not None:
            offset = fields[9] or 0
            when = dt.datetime(*fields[:6], tzinfo=dt.timezone(dt.timedelta(seconds=offset)))
            return when.astimezone(dt.UTC)
        when = dt.datetime.fromisoformat(value)  # a common mistake: ISO 8601 in a Date header
        return (when if when.tzinfo else when.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)
    except Exception:  # ValueError, OverflowError, and whatever a malformed date finds
        return None
