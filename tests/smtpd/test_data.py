"""The DATA decoder and the BDAT collector, fed whole, byte by byte and split at every offset."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator

import pytest

from relate.smtpd.data import BdatCollector, DataReader

BIG = 1 << 20


def case(id_: str, *values: object) -> object:
    return pytest.param(*values, id=id_)


def feed_all(reader: DataReader, pieces: list[bytes]) -> bytes:
    """Feed pieces in order until done; return every byte left over (the pipelined rest)."""
    rest = b""
    for index, piece in enumerate(pieces):
        consumed = reader.feed(piece)
        if reader.done:
            rest = piece[consumed:] + b"".join(pieces[index + 1 :])
            break
        assert consumed == len(piece)
    return rest


def splittings(wire: bytes) -> Iterator[tuple[str, list[bytes]]]:
    yield "whole", [wire]
    yield "bytewise", [wire[i : i + 1] for i in range(len(wire))]
    for cut in range(1, len(wire)):
        yield f"split-{cut}", [wire[:cut], wire[cut:]]


# (wire bytes after the 354 reply, expected message, bare_line_ending)
DATA_CASES = [
    case("empty-message", b".\r\n", b"", False),
    case("one-line", b"Subject: hi\r\n\r\nbody\r\n.\r\n", b"Subject: hi\r\n\r\nbody\r\n", False),
    case("blank-lines", b"\r\n\r\n.\r\n", b"\r\n\r\n", False),
    case("dot-stuffed", b"..\r\n.\r\n", b".\r\n", False),
    case("dot-stuffed-text", b"a\r\n..b\r\n.\r\n", b"a\r\n.b\r\n", False),
    case("dot-stuffed-first-line", b"..x\r\n.\r\n", b".x\r\n", False),
    case("three-dots", b"...\r\n.\r\n", b"..\r\n", False),
    case("unstuffed-leading-dot", b".x\r\n.\r\n", b"x\r\n", False),
    case("dot-mid-line", b"a.b\r\n.\r\n", b"a.b\r\n", False),
    case("dot-then-space", b". \r\n.\r\n", b" \r\n", False),
    case("crlf-dot-crlf-inside-stuffed", b"x\r\n..\r\ny\r\n.\r\n", b"x\r\n.\r\ny\r\n", False),
    case("binary-8bit", b"\xff\xfe\x80\r\n.\r\n", b"\xff\xfe\x80\r\n", False),
    case("nul", b"a\x00b\r\n.\r\n", b"a\x00b\r\n", False),
    case("long-line", b"x" * 5000 + b"\r\n.\r\n", b"x" * 5000 + b"\r\n", False),
    # Everything below contains a bare CR or LF: content, never an end, always flagged.
    case("smuggle-lf-dot-lf", b"a\n.\nMAIL FROM:<x@y>\r\n.\r\n", None, True),
    case("smuggle-lf-dot-crlf", b"a\n.\r\nMAIL FROM:<x@y>\r\n.\r\n", None, True),
    case("smuggle-crlf-dot-lf", b"a\r\n.\nMAIL FROM:<x@y>\r\n.\r\n", None, True),
    case("smuggle-cr-dot-cr", b"a\r.\rMAIL FROM:<x@y>\r\n.\r\n", None, True),
    case("smuggle-cr-dot-crlf", b"a\r.\r\nMAIL FROM:<x@y>\r\n.\r\n", None, True),
    case("smuggle-crlf-dot-cr", b"a\r\n.\rMAIL FROM:<x@y>\r\n.\r\n", None, True),
    case("smuggle-crlf-dot-cr-cr", b"a\r\n.\r\r\n.\r\n", None, True),
    case("smuggle-first-line-lf", b".\nx\r\n.\r\n", None, True),
    case("bare-lf-line-ends", b"a\nb\n\r\n.\r\n", None, True),
    case("bare-cr", b"a\rb\r\n.\r\n", None, True),
    case("cr-cr-lf", b"a\r\r\n.\r\n", None, True),
    case("lf-then-dot-line", b"a\n..\r\n.\r\n", None, True),
]


@pytest.mark.parametrize(("wire", "message", "bare"), DATA_CASES)
def test_data_reader_every_splitting(wire: bytes, message: bytes | None, bare: bool) -> None:
    pipelined = b"QUIT\r\n"
    for name, pieces in splittings(wire + pipelined):
        reader = DataReader(BIG)
        rest = feed_all(reader, pieces)
        assert reader.done, name
        assert rest == pipelined, name
        assert reader.bare_line_ending is bare, name
        assert not reader.too_big, name
        if message is None:  # invalid: read to the real end, nothing kept
            with pytest.raises(RuntimeError):
                reader.message()
        else:
            assert reader.message() == message, name
            assert reader.size == len(message), name


def reference_decode(wire: bytes) -> tuple[bytes, int, bool] | None:
    """RFC 5321 §4.1.1.4 and §4.5.2 read literally: (message, consumed, bare), or None if unended."""
    end = (b"\r\n" + wire).find(b"\r\n.\r\n")  # the CRLF ending the DATA line counts
    if end < 0:
        return None
    content = wire[:end]  # up to and including the CRLF before the final dot
    starts = {0} | {match.end() for match in re.finditer(rb"\r\n", content)}
    message = bytes(byte for index, byte in enumerate(content) if not (index in starts and byte == 0x2E))
    bare = re.search(rb"\r(?!\n)|(?<!\r)\n", wire[: end + 3]) is not None
    return message, end + 3, bare


ALPHABET = [b"\r", b"\n", b".", b"a"]


def test_data_reader_matches_the_rfc_for_every_short_input() -> None:
    """Every string of CR, LF, "." and "a" up to 6 octets, then CRLF.CRLF: fed whole, octet by
    octet and split in two at every offset, the reader ends where RFC 5321 says and unstuffs
    exactly (a message with a bare line ending is only checked for where it ends)."""
    for length in range(7):
        for letters in itertools.product(ALPHABET, repeat=length):
            wire = b"".join(letters) + b"\r\n.\r\nNEXT"
            expected = reference_decode(wire)
            assert expected is not None
            message, consumed, bare = expected
            for name, pieces in splittings(wire):
                reader = DataReader(BIG)
                rest = feed_all(reader, pieces)
                assert reader.done, (wire, name)
                assert len(wire) - len(rest) == consumed, (wire, name)
                assert reader.bare_line_ending is bare, (wire, name)
                if not bare:
                    assert reader.message() == message, (wire, name)


def test_bdat_bare_line_endings_match_the_message_for_every_short_input() -> None:
    for length in range(6):
        for letters in itertools.product([b"\r", b"\n", b"a"], repeat=length):
            message = b"".join(letters)
            bare = re.search(rb"\r(?!\n)|(?<!\r)\n", message) is not None
            for cut in range(length + 1):
                collector = BdatCollector(BIG)
                run_bdat(collector, [(message[:cut], False), (message[cut:], True)], 1)
                assert collector.done and collector.size == len(message)
                assert collector.bare_line_ending is bare, (message, cut)
                if not bare:
                    assert collector.message() == message


@pytest.mark.parametrize(
    "wire",
    [
        pytest.param(b"", id="nothing"),
        pytest.param(b"abc", id="no-line-end"),
        pytest.param(b"abc\r\n", id="line-no-dot"),
        pytest.param(b"abc\r\n.", id="dot-no-crlf"),
        pytest.param(b"abc\r\n.\r", id="dot-cr"),
        pytest.param(b"abc\n.\n", id="lf-dot-lf"),
        pytest.param(b"abc\r\n.\n", id="crlf-dot-lf"),
        pytest.param(b"abc\n.\r\n", id="lf-dot-crlf"),
        pytest.param(b"abc\r.\r\n", id="cr-dot-crlf"),
        pytest.param(b"abc\r\n..\r\n", id="stuffed-dot-line"),
        pytest.param(b"abc\r\n. \r\n", id="dot-space"),
    ],
)
def test_data_reader_is_not_done_without_crlf_dot_crlf(wire: bytes) -> None:
    reader = DataReader(BIG)
    assert reader.feed(wire) == len(wire)
    assert not reader.done
    with pytest.raises(RuntimeError):
        reader.message()


def test_smuggled_commands_stay_inside_one_message() -> None:
    wire = b"Subject: a\r\n\r\nx\n.\nMAIL FROM:<evil@example.com>\nRCPT TO:<v@hosted.com>\nDATA\n\r\n.\r\nNOOP\r\n"
    reader = DataReader(BIG)
    consumed = reader.feed(wire)
    assert reader.done and reader.bare_line_ending
    assert wire[consumed:] == b"NOOP\r\n"


def test_consumed_stops_right_after_the_terminator() -> None:
    reader = DataReader(BIG)
    wire = b"a\r\n.\r\nMAIL FROM:<a@b.com>\r\n"
    assert reader.feed(wire) == len(b"a\r\n.\r\n")
    assert reader.feed(b"more") == 0


@pytest.mark.parametrize(
    ("max_size", "wire", "too_big", "size"),
    [
        case("exactly-at-limit", 7, b"12345\r\n.\r\n", False, 7),
        case("limit-is-message-bytes", 7, b"..\r\n12\r\n.\r\n", False, 7),
        case("one-over", 5, b"1234\r\n.\r\n", True, 6),
        case("far-over", 10, b"x" * 10_000 + b"\r\n.\r\n", True, 10_002),
    ],
)
def test_data_reader_size_limit(max_size: int, wire: bytes, too_big: bool, size: int) -> None:
    reader = DataReader(max_size)
    rest = feed_all(reader, [wire[i : i + 3] for i in range(0, len(wire), 3)] + [b"QUIT\r\n"])
    assert reader.done
    assert rest == b"QUIT\r\n"
    assert reader.too_big is too_big
    assert reader.size == size
    if too_big:
        with pytest.raises(RuntimeError):
            reader.message()


def test_data_reader_streams_into_a_sink_and_stops_at_the_limit() -> None:
    kept: list[bytes] = []
    reader = DataReader(10, sink=kept.append)
    feed_all(reader, [b"12345\r\n", b"67\r\n", b"890\r\n.\r\n"])
    assert reader.done and reader.too_big
    assert b"".join(kept) == b"12345\r\n"
    assert sum(len(part) for part in kept) <= 10

    kept.clear()
    reader = DataReader(100, sink=kept.append)
    feed_all(reader, [b"ab\r\n..c", b"\r\n.", b"\r\n"])
    assert reader.done and not reader.too_big
    assert b"".join(kept) == b"ab\r\n.c\r\n"
    with pytest.raises(RuntimeError):
        reader.message()  # the sink has the message


def test_data_reader_keeps_reading_after_the_sink_fails() -> None:
    calls: list[bytes] = []

    def sink(data: bytes) -> None:
        calls.append(data)
        raise OSError("disk full")

    reader = DataReader(100, sink=sink)
    rest = feed_all(reader, [b"a\r\n", b"b\r\n", b".\r\nQUIT\r\n"])
    assert reader.done and rest == b"QUIT\r\n"
    assert isinstance(reader.sink_error, OSError)
    assert calls == [b"a\r\n"]


def test_data_reader_rejects_a_non_positive_limit() -> None:
    with pytest.raises(ValueError):
        DataReader(0)


def test_data_reader_large_message_in_chunks() -> None:
    line = b"x" * 76 + b"\r\n"
    body = line * 20_000 + b"..leading dot\r\n" + line * 20_000
    wire = body + b".\r\n"
    reader = DataReader(len(body))
    rest = feed_all(reader, [wire[i : i + 65536] for i in range(0, len(wire), 65536)])
    assert reader.done and rest == b""
    assert reader.message() == body.replace(b"\r\n..leading", b"\r\n.leading")


# --- BDAT -----------------------------------------------------------------------------------


def run_bdat(collector: BdatCollector, chunks: list[tuple[bytes, bool]], piece: int) -> None:
    for data, last in chunks:
        collector.begin_chunk(len(data), last)
        for start in range(0, len(data), piece):
            assert collector.feed(data[start : start + piece]) == len(data[start : start + piece])
        assert collector.chunk_done


# (chunks, binary, message, bare_line_ending)
BDAT_CASES = [
    case("one-chunk", [(b"Subject: a\r\n\r\nbody\r\n", True)], False, b"Subject: a\r\n\r\nbody\r\n", False),
    case("zero-last", [(b"a\r\n", False), (b"", True)], False, b"a\r\n", False),
    case("dots-untouched", [(b".\r\n..\r\n.\r\n", True)], False, b".\r\n..\r\n.\r\n", False),
    case("crlf-split-across-chunks", [(b"a\r", False), (b"\nb\r\n", True)], False, b"a\r\nb\r\n", False),
    case("no-final-crlf", [(b"abc", True)], False, b"abc", False),
    case("binary-bytes", [(b"\x00\xff\r\n", True)], False, b"\x00\xff\r\n", False),
    case("bare-lf", [(b"a\nb\r\n", True)], False, None, True),
    case("bare-cr", [(b"a\rb\r\n", True)], False, None, True),
    case("bare-lf-at-chunk-start", [(b"a\r\n", False), (b"\nb", True)], False, None, True),
    case("cr-then-non-lf-chunk", [(b"a\r", False), (b"b", True)], False, None, True),
    case("final-cr", [(b"a\r", True)], False, None, True),
    case("final-cr-then-empty-last", [(b"a\r", False), (b"", True)], False, None, True),
    case(
        "smuggle-payload-is-content",
        [(b"a\n.\nMAIL FROM:<x@y>\r\n", True)],
        False,
        None,
        True,
    ),
    case("binarymime-not-checked", [(b"a\nb\rc", True)], True, b"a\nb\rc", False),
]


@pytest.mark.parametrize(("chunks", "binary", "message", "bare"), BDAT_CASES)
@pytest.mark.parametrize("piece", [1, 2, 3, 1000], ids=["bytewise", "pairs", "threes", "whole"])
def test_bdat_collector(
    chunks: list[tuple[bytes, bool]], binary: bool, message: bytes | None, bare: bool, piece: int
) -> None:
    collector = BdatCollector(BIG, binary=binary)
    run_bdat(collector, chunks, piece)
    assert collector.done
    assert collector.bare_line_ending is bare
    assert collector.size == sum(len(data) for data, _ in chunks)
    if message is None:  # invalid: read to the end, nothing kept
        with pytest.raises(RuntimeError):
            collector.message()
    else:
        assert collector.message() == message


def test_bdat_feed_takes_only_the_current_chunk() -> None:
    collector = BdatCollector(BIG)
    collector.begin_chunk(3, False)
    assert collector.feed(b"abcBDAT 2 LAST\r\n") == 3
    assert collector.chunk_done and not collector.done
    assert collector.feed(b"more") == 0
    collector.begin_chunk(2, True)
    assert collector.feed(b"de") == 2
    assert collector.done
    assert collector.message() == b"abcde"


def test_bdat_declared_size_over_the_limit_is_too_big_at_once() -> None:
    kept: list[bytes] = []
    collector = BdatCollector(10, sink=kept.append)
    collector.begin_chunk(4, False)
    collector.feed(b"1234")
    collector.begin_chunk(100, True)
    assert collector.too_big
    assert collector.feed(b"x" * 150) == 100
    assert collector.done and collector.size == 104
    assert b"".join(kept) == b"1234"


def test_bdat_exactly_at_the_limit() -> None:
    collector = BdatCollector(5)
    run_bdat(collector, [(b"12", False), (b"345", True)], 1)
    assert not collector.too_big
    assert collector.message() == b"12345"


@pytest.mark.parametrize(
    "steps",
    [
        pytest.param([(3, False), (1, False)], id="chunk-unfinished"),
        pytest.param([(0, True), (1, False)], id="after-last"),
    ],
)
def test_bdat_misuse_is_a_bug(steps: list[tuple[int, bool]]) -> None:
    collector = BdatCollector(BIG)
    collector.begin_chunk(*steps[0])
    with pytest.raises(RuntimeError):
        collector.begin_chunk(*steps[1])
