"""Every FETCH data item: its typed form, \\Seen side effect, and response name."""

from __future__ import annotations

import pytest

from relate.imapd import fetchatt as fa
from relate.imapd.commands import Fetch
from relate.imapd.parse import Parsed, ParseError, parse_command


def fetch_items(items: bytes) -> tuple[fa.FetchAtt, ...]:
    result = parse_command(b"A1 FETCH 1 " + items + b"\r\n", 1000)
    assert isinstance(result, Parsed) and isinstance(result.command, Fetch)
    return result.command.attributes


H = fa.Section(text="HEADER.FIELDS", fields=("DATE", "FROM"))

ITEMS = [
    # (wire, item, response name, sets \Seen)
    ("FLAGS", fa.Flags(), "FLAGS", False),
    ("UID", fa.Uid(), "UID", False),
    ("INTERNALDATE", fa.InternalDate(), "INTERNALDATE", False),
    ("RFC822.SIZE", fa.Rfc822Size(), "RFC822.SIZE", False),
    ("ENVELOPE", fa.Envelope(), "ENVELOPE", False),
    ("BODYSTRUCTURE", fa.BodyStructure(), "BODYSTRUCTURE", False),
    ("BODY", fa.BodyStructure(extensible=False), "BODY", False),
    ("MODSEQ", fa.ModSeq(), "MODSEQ", False),
    ("RFC822", fa.Rfc822(), "RFC822", True),
    ("RFC822.HEADER", fa.Rfc822Header(), "RFC822.HEADER", False),
    ("RFC822.TEXT", fa.Rfc822Text(), "RFC822.TEXT", True),
    ("BODY[]", fa.BodySection(), "BODY[]", True),
    ("BODY.PEEK[]", fa.BodySection(peek=True), "BODY[]", False),
    ("BODY[]<0.2048>", fa.BodySection(partial=fa.Partial(0, 2048)), "BODY[]<0>", True),
    ("BODY[HEADER]", fa.BodySection(fa.Section(text="HEADER")), "BODY[HEADER]", True),
    ("BODY[TEXT]", fa.BodySection(fa.Section(text="TEXT")), "BODY[TEXT]", True),
    ("BODY[1]", fa.BodySection(fa.Section((1,))), "BODY[1]", True),
    ("BODY[1.2.3]", fa.BodySection(fa.Section((1, 2, 3))), "BODY[1.2.3]", True),
    ("BODY[1.2.MIME]", fa.BodySection(fa.Section((1, 2), "MIME")), "BODY[1.2.MIME]", True),
    ("BODY[4.2.HEADER]", fa.BodySection(fa.Section((4, 2), "HEADER")), "BODY[4.2.HEADER]", True),
    ("BODY[3.TEXT]", fa.BodySection(fa.Section((3,), "TEXT")), "BODY[3.TEXT]", True),
    ("BODY[HEADER.FIELDS (DATE FROM)]", fa.BodySection(H), "BODY[HEADER.FIELDS (DATE FROM)]", True),
    (
        "BODY.PEEK[HEADER.FIELDS.NOT (Received)]<10.20>",
        fa.BodySection(
            fa.Section(text="HEADER.FIELDS.NOT", fields=("Received",)), fa.Partial(10, 20), peek=True
        ),
        "BODY[HEADER.FIELDS.NOT (Received)]<10>",
        False,
    ),
    (
        'BODY[2.HEADER.FIELDS ("X-%" "List-Id")]',
        fa.BodySection(fa.Section((2,), "HEADER.FIELDS", ("X-%", "List-Id"))),
        'BODY[2.HEADER.FIELDS ("X-%" List-Id)]',
        True,
    ),
    (
        "body.peek[header.fields (from to)]",
        fa.BodySection(fa.Section(text="HEADER.FIELDS", fields=("from", "to")), peek=True),
        "BODY[HEADER.FIELDS (from to)]",
        False,
    ),
    ("BINARY[]", fa.Binary(), "BINARY[]", True),
    ("BINARY[1.2]", fa.Binary((1, 2)), "BINARY[1.2]", True),
    ("BINARY.PEEK[1]<0.100>", fa.Binary((1,), fa.Partial(0, 100), peek=True), "BINARY[1]<0>", False),
    ("BINARY.SIZE[1]", fa.BinarySize((1,)), "BINARY.SIZE[1]", False),
    ("BINARY.SIZE[]", fa.BinarySize(), "BINARY.SIZE[]", False),
]


@pytest.mark.parametrize(
    ("wire", "item", "name", "sets_seen"), [pytest.param(*row, id=row[0]) for row in ITEMS]
)
def test_fetch_item(wire: str, item: fa.FetchAtt, name: str, sets_seen: bool) -> None:
    assert fetch_items(wire.encode()) == (item,)
    assert fetch_items(b"(" + wire.encode() + b")") == (item,)
    assert item.response_name == name
    assert item.sets_seen is sets_seen


def test_all_items_in_one_list() -> None:
    wire = " ".join(row[0] for row in ITEMS).encode()
    assert fetch_items(b"(" + wire + b")") == tuple(row[1] for row in ITEMS)


@pytest.mark.parametrize(
    ("macro", "items"),
    [
        pytest.param("ALL", (fa.Flags(), fa.InternalDate(), fa.Rfc822Size(), fa.Envelope()), id="all"),
        pytest.param("FAST", (fa.Flags(), fa.InternalDate(), fa.Rfc822Size()), id="fast"),
        pytest.param(
            "full",
            (fa.Flags(), fa.InternalDate(), fa.Rfc822Size(), fa.Envelope(), fa.BodyStructure(False)),
            id="full",
        ),
    ],
)
def test_macros_expand(macro: str, items: tuple[fa.FetchAtt, ...]) -> None:
    assert fetch_items(macro.encode()) == items


def test_duplicates_are_dropped() -> None:
    assert fetch_items(b"(FLAGS UID FLAGS)") == (fa.Flags(), fa.Uid())


@pytest.mark.parametrize(
    "wire",
    [
        "BODY[MIME]",
        "BODY[0]",
        "BODY[1.0]",
        "BODY[1.]",
        "BODY[.1]",
        "BODY[HEADER.FIELDS]",
        "BODY[HEADER.FIELDS ()]",
        "BODY[HEADER.FIELDS (Subject:)]",
        "BODY[HEADER.FIELDS (A B]",
        "BODY[FOO]",
        "BODY[1.FOO]",
        "BODY[TEXT.MIME]",
        "BODY[]<0.0>",
        "BODY[]<5>",
        "BODY[]<a.1>",
        "BODY[",
        "BINARY[TEXT]",
        "BINARY[1.MIME]",
        "BINARY.SIZE[1]<0.1>",
        "BODY.PEEK",
        "BINARY",
        "BINARY.PEEK",
        "FOO",
        "RFC822.PEEK",
        "(FLAGS",
        "FLAGS)",
    ],
)
def test_invalid_items_are_bad(wire: str) -> None:
    with pytest.raises(ParseError):
        parse_command(b"A1 FETCH 1 " + wire.encode() + b"\r\n", 1000)
