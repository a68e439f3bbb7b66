"""Label names and their IMAP keywords (relate.store.labels): a name that is not ASCII is
carried in modified UTF-7, every keyword is a 7-bit atom, and keywords read back as names."""

from __future__ import annotations

import re

import pytest

from relate.store import InvalidInput
from relate.store.labels import keyword_of, name_of, validate_name
from relate.store.messages import split_flags

# RFC 9051 §9: atom = 1*ATOM-CHAR; ATOM-CHAR = any CHAR (7-bit, not NUL) except atom-specials.
ATOM = re.compile(r'[^\x00-\x20\x7f-\U0010ffff(){%*"\\\]]+')
MUTF7_RUN = re.compile(r"&[A-Za-z0-9+,]*-")

VECTORS = [
    ("ascii", "Work", "Work"),
    ("dollar", "$Label1", "$Label1"),
    ("ascii-ampersand", "R&D", "R&D"),
    ("ascii-shifted-ampersand", "A&-B", "A&-B"),
    ("latin1", "Büro", "B&APw-ro"),
    ("upper-umlaut", "Ärger", "&AMQ-rger"),
    ("ampersand-beside-umlaut", "Tom&Jörg", "Tom&-J&APY-rg"),
    ("cjk", "日本語", "&ZeVnLIqe-"),
    ("emoji", "\U0001f4e7mail", "&2D3c5w-mail"),
    ("two-in-a-row", "ÜÜ", "&ANwA3A-"),
    ("punctuation-around", "#Büro-2025!", "#B&APw-ro-2025!"),
]


@pytest.mark.parametrize(("name", "keyword"), [pytest.param(n, k, id=i) for i, n, k in VECTORS])
def test_name_to_keyword_and_back(name: str, keyword: str) -> None:
    assert validate_name(name) == name
    assert keyword_of(name) == keyword
    assert name_of(keyword) == name
    assert ATOM.fullmatch(keyword) and keyword.isascii()
    assert split_flags([keyword])[1] == [keyword]  # the store takes it as a keyword
    if not name.isascii():  # what the encoding adds is letters, digits, + , & and - only
        assert set(MUTF7_RUN.sub("", keyword).replace("&-", "")) <= set(name)


@pytest.mark.parametrize(
    "keyword",
    [
        pytest.param("$Junk", id="plain"),
        pytest.param("R&D", id="bare-ampersand"),
        pytest.param("A&-B", id="shifted-ampersand-is-ascii"),
        pytest.param("&AGE-", id="run-of-printable-ascii"),
        pytest.param("&Jjp-", id="non-zero-pad-bits"),
        pytest.param("&ANw-&APw-", id="two-runs-the-encoder-writes-as-one"),
        pytest.param("&AAE-x", id="decodes-to-a-control-character"),
        pytest.param("&ACA-x", id="decodes-to-a-space"),
        pytest.param("Ünï", id="raw-utf8-from-before-alembic-0010"),
    ],
)
def test_other_keywords_show_as_they_are(keyword: str) -> None:
    assert name_of(keyword) == keyword


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        pytest.param("", "empty", id="empty"),
        pytest.param("   ", "empty", id="blank"),
        pytest.param("\\Seen", "backslash", id="system-flag"),
        pytest.param("Bü ro", "spaces", id="space"),
        pytest.param("Bü\u00a0ro", "spaces", id="no-break-space"),
        pytest.param("Bü\u2003ro", "spaces", id="em-space"),
        pytest.param("a\u0085b", "control", id="c1-control"),
        pytest.param("a\tb", "control", id="tab"),
        pytest.param("Bü(ro)", "(", id="parenthesis"),
        pytest.param("Bü]ro", "]", id="bracket"),
        pytest.param('Bü"ro', '"', id="quote"),
        pytest.param("Bü*", "*", id="wildcard"),
        pytest.param("B\ud800", "control", id="lone-surrogate"),
        pytest.param("&ANw-", "Ü", id="reads-as-another-name"),
        pytest.param("Ü" * 80, "too long", id="keyword-too-long"),
    ],
)
def test_names_that_cannot_be_labels(name: str, problem: str) -> None:
    with pytest.raises(InvalidInput, match=re.escape(problem)):
        validate_name(name)


def test_the_longest_name_whose_keyword_fits() -> None:
    name = "Ü" * 74  # 2 + ceil(74 * 16 / 6) = 200 characters
    assert len(keyword_of(validate_name(name))) == 200
