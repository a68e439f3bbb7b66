"""Sequence sets: `1:4,7,9:*` of message numbers or UIDs (RFC 9051 §9), and `$` (RFC 5182).

Invariants:
- A SequenceSet is never expanded into its members: `*` stays symbolic (None) until the
  session resolves it against the mailbox (the highest sequence number or UID), and a range
  like `4294967295:1` costs one tuple. At most MAX_SEQSET_RANGES ranges per set.
- Numbers are non-zero 32-bit values; a range may be written in either order (RFC 9051 §9
  seq-range: "2:4" and "4:2" are the same).
- `$` (the saved search result, RFC 5182 §2.1) is a whole set on its own, never part of a
  list; the session substitutes its saved result before resolving.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from relate.imapd.grammar import MAX_NUMBER, ParseError, Reader

MAX_SEQSET_RANGES = 10_000  # per set; bounds CPU and memory for a hostile "1,2,3,...".

_SEQSET = re.compile(rb"[0-9:*,$]+")


@dataclass(frozen=True)
class SequenceSet:
    """Ranges as written; None stands for `*`. `saved` is `$` and then `ranges` is empty."""

    ranges: tuple[tuple[int | None, int | None], ...] = ()
    saved: bool = False

    @classmethod
    def parse(cls, text: str | bytes) -> SequenceSet:
        """Parse wire text (`"1:3,5"`, `"$"`); ValueError if malformed or too large."""
        data = text.encode("ascii") if isinstance(text, str) else text
        if data == b"$":
            return cls(saved=True)
        if data.count(b",") >= MAX_SEQSET_RANGES:
            raise ValueError(f"sequence set has more than {MAX_SEQSET_RANGES} ranges")
        ranges = []
        for part in data.split(b","):
            first, colon, last = part.partition(b":")
            low = _seq_number(first)
            ranges.append((low, _seq_number(last) if colon else low))
        return cls(tuple(ranges))

    @classmethod
    def from_numbers(cls, numbers: Iterable[int]) -> SequenceSet:
        """The compressed set of `numbers` (e.g. to keep a SEARCH result for `$`)."""
        return cls(tuple(_compress(numbers)))

    @property
    def has_star(self) -> bool:
        return any(low is None or high is None for low, high in self.ranges)

    def resolve(self, star: int) -> list[tuple[int, int]]:
        """Inclusive (low, high) ranges, ascending and merged, with `*` taken as `star`.

        `star` is the highest sequence number or UID in the mailbox (0 when empty). The
        result may name numbers with no message (UIDs are sparse); callers intersect.
        Raises ValueError for `$`: substitute the saved result first.
        """
        if self.saved:
            raise ValueError("the saved result ($) must be substituted before resolving")
        pairs = []
        for low, high in self.ranges:
            a = star if low is None else low
            b = star if high is None else high
            a, b = min(a, b), max(a, b)
            if b >= 1:
                pairs.append((max(a, 1), b))
        pairs.sort()
        merged: list[tuple[int, int]] = []
        for a, b in pairs:
            if merged and a <= merged[-1][1] + 1:
                if b > merged[-1][1]:
                    merged[-1] = (merged[-1][0], b)
            else:
                merged.append((a, b))
        return merged

    def contains(self, number: int, star: int) -> bool:
        """Whether `number` is in the set (linear in the ranges; use resolve() for many)."""
        return any(a <= number <= b for a, b in self.resolve(star))

    def __str__(self) -> str:
        if self.saved:
            return "$"
        return ",".join(_format_range(low, high) for low, high in self.ranges)


def _seq_number(token: bytes) -> int | None:
    if token == b"*":
        return None
    if not token.isdigit() or len(token) > 10:
        raise ValueError("invalid sequence number")
    value = int(token)
    if not 1 <= value <= MAX_NUMBER:
        raise ValueError("sequence number out of range")
    return value


def _format_range(low: int | None, high: int | None) -> str:
    a = "*" if low is None else str(low)
    return a if low == high else f"{a}:{'*' if high is None else high}"


def _compress(numbers: Iterable[int]) -> list[tuple[int | None, int | None]]:
    ranges: list[tuple[int | None, int | None]] = []
    for n in sorted(set(numbers)):
        last = ranges[-1][1] if ranges else None
        if last is not None and n == last + 1:
            ranges[-1] = (ranges[-1][0], n)
        else:
            ranges.append((n, n))
    return ranges


def format_seqset(numbers: Iterable[int]) -> str:
    """`[1, 2, 3, 5, 9, 8]` -> `"1:3,5,8:9"` (for COPYUID, VANISHED, ESEARCH ALL...).

    Returns "" for no numbers; the caller decides what an empty set means in its response.
    """
    return str(SequenceSet(tuple(_compress(numbers))))


def read_seqset(r: Reader, *, allow_star: bool = True, allow_saved: bool = True) -> SequenceSet:
    """Read a sequence-set at the cursor; `*` and `$` can be refused (QRESYNC known-uids)."""
    found = r.match(_SEQSET)
    if found is None:
        raise r.error("expected sequence set")
    try:
        seqset = SequenceSet.parse(found.group())
    except ValueError as exc:
        raise ParseError(str(exc), r.tag) from None
    if seqset.saved and not allow_saved:
        raise r.error("$ is not allowed here")
    if seqset.has_star and not allow_star:
        raise r.error("* is not allowed here")
    return seqset
