"""Sequence sets: parsing, `*` and `$`, resolution, bounds, and format_seqset."""

from __future__ import annotations

import time

import pytest

from relate.imapd.commands import Fetch
from relate.imapd.parse import Parsed, ParseError, parse_command
from relate.imapd.seqset import MAX_SEQSET_RANGES, SequenceSet, format_seqset


@pytest.mark.parametrize(
    ("text", "ranges"),
    [
        pytest.param("1", ((1, 1),), id="single"),
        pytest.param("1:5", ((1, 5),), id="range"),
        pytest.param("5:1", ((5, 1),), id="reversed-range"),
        pytest.param("*", ((None, None),), id="star"),
        pytest.param("1:*", ((1, None),), id="to-star"),
        pytest.param("*:4", ((None, 4),), id="star-first"),
        pytest.param("1,3,5:7", ((1, 1), (3, 3), (5, 7)), id="list"),
        pytest.param("4294967295", ((4294967295, 4294967295),), id="max-uid"),
    ],
)
def test_parse(text: str, ranges: tuple[tuple[int | None, int | None], ...]) -> None:
    seqset = SequenceSet.parse(text)
    assert seqset.ranges == ranges
    assert not seqset.saved
    assert str(seqset) == text


def test_saved_result() -> None:
    saved = SequenceSet.parse("$")
    assert saved.saved and saved.ranges == ()
    assert str(saved) == "$"
    with pytest.raises(ValueError):
        saved.resolve(10)


@pytest.mark.parametrize(
    "text",
    ["0", "1:0", "1:", ":1", "1,,2", ",1", "1,", "1:2:3", "$,1", "1:$", "$$", "4294967296", "a", "-1", ""],
)
def test_parse_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        SequenceSet.parse(text)


@pytest.mark.parametrize(
    ("text", "star", "resolved"),
    [
        pytest.param("5:1", 10, [(1, 5)], id="reversed"),
        pytest.param("1:*", 3, [(1, 3)], id="star"),
        pytest.param("5:*", 3, [(3, 5)], id="star-below-low"),
        pytest.param("*", 0, [], id="star-empty-mailbox"),
        pytest.param("1:3,2:6,8,7", 0, [(1, 8)], id="merged"),
        pytest.param("10,1,5", 0, [(1, 1), (5, 5), (10, 10)], id="sorted"),
    ],
)
def test_resolve(text: str, star: int, resolved: list[tuple[int, int]]) -> None:
    assert SequenceSet.parse(text).resolve(star) == resolved


def test_contains() -> None:
    seqset = SequenceSet.parse("2:4,9:*")
    assert [n for n in range(1, 13) if seqset.contains(n, star=11)] == [2, 3, 4, 9, 10, 11]


@pytest.mark.parametrize(
    ("numbers", "text"),
    [
        pytest.param([1, 2, 3, 5, 9, 8], "1:3,5,8:9", id="mixed"),
        pytest.param([7], "7", id="single"),
        pytest.param([3, 3, 3], "3", id="duplicates"),
        pytest.param([], "", id="empty"),
        pytest.param(range(1, 100_001), "1:100000", id="long-run"),
        pytest.param([4294967295, 1], "1,4294967295", id="extremes"),
    ],
)
def test_format_seqset(numbers: list[int], text: str) -> None:
    assert format_seqset(numbers) == text
    if text:
        assert SequenceSet.from_numbers(numbers) == SequenceSet.parse(text)


@pytest.mark.usefixtures("no_gc")
def test_huge_sequence_set_at_the_limit_parses_quickly() -> None:
    text = ",".join(str(n) for n in range(1, 2 * MAX_SEQSET_RANGES, 2))
    started = time.process_time()
    result = parse_command(b"A1 UID FETCH " + text.encode() + b" FLAGS\r\n", 1000)
    assert time.process_time() - started < 1.0
    assert isinstance(result, Parsed) and isinstance(result.command, Fetch)
    assert len(result.command.seqset.ranges) == MAX_SEQSET_RANGES


def test_sequence_set_over_the_limit_is_bad() -> None:
    text = ",".join(str(n) for n in range(1, 2 * MAX_SEQSET_RANGES + 2, 2))
    with pytest.raises(ParseError, match="ranges"):
        parse_command(b"A1 FETCH " + text.encode() + b" FLAGS\r\n", 1000)


def test_wide_ranges_cost_nothing() -> None:
    seqset = SequenceSet.parse("4294967295:1")
    assert seqset.resolve(star=1) == [(1, 4294967295)]
