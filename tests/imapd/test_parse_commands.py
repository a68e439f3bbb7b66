"""Every command's forms, table-driven: wire line -> typed command, or BAD."""

from __future__ import annotations

from datetime import date

import pytest

from relate.imapd import commands as c
from relate.imapd import fetchatt as fa
from relate.imapd import searchkeys as sk
from relate.imapd.parse import Parsed, ParseError, parse_command
from relate.imapd.seqset import SequenceSet

S = SequenceSet.parse


def parse(line: bytes, *, utf8: bool = False) -> Parsed:
    result = parse_command(line + b"\r\n", 1_000_000, utf8)
    assert isinstance(result, Parsed)
    return result


VALID = [
    ("capability", b"A1 CAPABILITY", c.Capability()),
    ("capability-lowercase", b"a1 capability", c.Capability()),
    ("noop", b"A1 NOOP", c.Noop()),
    ("logout", b"A1 LOGOUT", c.Logout()),
    ("starttls", b"A1 STARTTLS", c.StartTls()),
    ("namespace", b"A1 NAMESPACE", c.Namespace()),
    ("idle", b"A1 IDLE", c.Idle()),
    ("check", b"A1 CHECK", c.Check()),
    ("close", b"A1 CLOSE", c.Close()),
    ("unselect", b"A1 UNSELECT", c.Unselect()),
    ("expunge", b"A1 EXPUNGE", c.Expunge()),
    ("uid-expunge", b"A1 UID EXPUNGE 3000:3002", c.Expunge(S("3000:3002"))),
    ("authenticate", b"A1 AUTHENTICATE PLAIN", c.Authenticate("PLAIN")),
    (
        "authenticate-sasl-ir",
        b"A1 AUTHENTICATE plain AGJvYgBzZWNyZXQ=",
        c.Authenticate("PLAIN", "AGJvYgBzZWNyZXQ="),
    ),
    ("authenticate-empty-ir", b"A1 AUTHENTICATE EXTERNAL =", c.Authenticate("EXTERNAL", "=")),
    (
        "authenticate-ir-unpadded",
        b"A1 AUTHENTICATE PLAIN AGJvYgBzZWNyZXQ",
        c.Authenticate("PLAIN", "AGJvYgBzZWNyZXQ"),
    ),
    ("login-atoms", b"A1 LOGIN bob secret", c.Login("bob", "secret")),
    (
        "login-quoted-escapes",
        b'A1 LOGIN "bob@example.org" "se\\"cr\\\\et"',
        c.Login("bob@example.org", 'se"cr\\et'),
    ),
    ("login-nil-is-a-string", b"A1 LOGIN NIL NIL", c.Login("NIL", "NIL")),
    ("enable", b"A1 ENABLE condstore UTF8=ACCEPT", c.Enable(("CONDSTORE", "UTF8=ACCEPT"))),
    ("select", b"A1 SELECT INBOX", c.Select("INBOX")),
    ("select-inbox-any-case", b"A1 SELECT inBox", c.Select("INBOX")),
    ("select-inbox-child", b"A1 SELECT Inbox/Lists", c.Select("INBOX/Lists")),
    ("select-inboxes-is-not-inbox", b"A1 SELECT inboxes", c.Select("inboxes")),
    ("examine", b"A1 EXAMINE Archive", c.Select("Archive", readonly=True)),
    ("select-condstore", b"A1 SELECT INBOX (CONDSTORE)", c.Select("INBOX", condstore=True)),
    (
        "select-qresync-minimal",
        b"A1 SELECT INBOX (QRESYNC (67890007 90060115194045000))",
        c.Select("INBOX", qresync=c.QResync(67890007, 90060115194045000)),
    ),
    (
        "select-qresync-known-uids",
        b"A1 SELECT INBOX (QRESYNC (67890007 90060115194045000 41:211,214:541))",
        c.Select("INBOX", qresync=c.QResync(67890007, 90060115194045000, S("41:211,214:541"))),
    ),
    (
        "select-qresync-seq-match",
        b"A1 SELECT INBOX (QRESYNC (67890007 90060115194045000 41:211 (1:5 10:15)))",
        c.Select(
            "INBOX",
            qresync=c.QResync(67890007, 90060115194045000, S("41:211"), (S("1:5"), S("10:15"))),
        ),
    ),
    (
        "select-qresync-seq-match-only",
        b"A1 EXAMINE INBOX (QRESYNC (1 2 (1 10)))",
        c.Select("INBOX", readonly=True, qresync=c.QResync(1, 2, None, (S("1"), S("10")))),
    ),
    (
        "select-condstore-and-qresync",
        b"A1 SELECT INBOX (CONDSTORE QRESYNC (1 2))",
        c.Select("INBOX", condstore=True, qresync=c.QResync(1, 2)),
    ),
    ("create", b"A1 CREATE Projects/2024", c.Create("Projects/2024")),
    (
        "create-special-use",
        b"A1 CREATE MySpecial (USE (\\Drafts \\sent \\X-Custom))",
        c.Create("MySpecial", ("\\Drafts", "\\Sent", "\\X-Custom")),
    ),
    ("create-use-empty", b"A1 CREATE x (USE ())", c.Create("x")),
    ("create-mutf7", b"A1 CREATE &ZeVnLIqe-", c.Create("\u65e5\u672c\u8a9e")),
    ("delete", b'A1 DELETE "Old Stuff"', c.Delete("Old Stuff")),
    ("rename", b"A1 RENAME Drafts inbox/Drafts", c.Rename("Drafts", "INBOX/Drafts")),
    ("subscribe", b"A1 SUBSCRIBE #news.comp.mail.mime", c.Subscribe("#news.comp.mail.mime")),
    ("unsubscribe", b"A1 UNSUBSCRIBE Sent", c.Unsubscribe("Sent")),
    ("list-basic", b'A1 LIST "" *', c.List("", ("*",))),
    ("list-percent-reference", b"A1 LIST ~/Mail/ %", c.List("~/Mail/", ("%",))),
    ("list-pattern-with-bracket", b'A1 LIST "" foo]%', c.List("", ("foo]%",))),
    ("list-pattern-inbox-kept", b'A1 LIST "" inbox', c.List("", ("inbox",))),
    (
        "list-select-options",
        b'A1 LIST (SUBSCRIBED REMOTE RECURSIVEMATCH) "" "*"',
        c.List(
            "",
            ("*",),
            select_options=frozenset({"SUBSCRIBED", "REMOTE", "RECURSIVEMATCH"}),
            extended=True,
        ),
    ),
    (
        "list-select-special-use",
        b'A1 LIST (special-use) "" *',
        c.List("", ("*",), select_options=frozenset({"SPECIAL-USE"}), extended=True),
    ),
    ("list-select-empty", b'A1 LIST () "" %', c.List("", ("%",), extended=True)),
    (
        "list-multiple-patterns",
        b'A1 LIST "" ("INBOX" Drafts Sent/%)',
        c.List("", ("INBOX", "Drafts", "Sent/%"), extended=True),
    ),
    (
        "list-return-options",
        b'A1 LIST "" % RETURN (SUBSCRIBED CHILDREN SPECIAL-USE)',
        c.List(
            "",
            ("%",),
            return_options=frozenset({"SUBSCRIBED", "CHILDREN", "SPECIAL-USE"}),
            extended=True,
        ),
    ),
    (
        "list-return-status",
        b'A1 LIST "" % RETURN (STATUS (MESSAGES UIDNEXT SIZE))',
        c.List(
            "",
            ("%",),
            return_options=frozenset({"STATUS"}),
            status_items=("MESSAGES", "UIDNEXT", "SIZE"),
            extended=True,
        ),
    ),
    ("list-return-empty", b'A1 LIST "" % RETURN ()', c.List("", ("%",), extended=True)),
    ("lsub", b'A1 LSUB "#news." "comp.mail.*"', c.Lsub("#news.", "comp.mail.*")),
    (
        "status-every-item",
        b"A1 STATUS INBOX (MESSAGES UIDNEXT UIDVALIDITY UNSEEN DELETED SIZE RECENT HIGHESTMODSEQ APPENDLIMIT)",
        c.Status("INBOX", c.STATUS_ITEMS),
    ),
    ("status-case-and-duplicates", b"A1 status inbox (messages MESSAGES)", c.Status("INBOX", ("MESSAGES",))),
    ("search-one-key", b"A1 SEARCH UNSEEN", c.Search(sk.FlagKey("\\Seen", False))),
    (
        "search-keys-and",
        b"A1 SEARCH FLAGGED SINCE 1-Feb-1994",
        c.Search(sk.And((sk.FlagKey("\\Flagged"), sk.DateKey("internal", "since", date(1994, 2, 1))))),
    ),
    (
        "search-charset",
        b"A1 SEARCH CHARSET utf-8 SUBJECT hello",
        c.Search(sk.TextKey("SUBJECT", "hello"), charset="UTF-8"),
    ),
    (
        "search-return",
        b"A1 SEARCH RETURN (MIN MAX COUNT ALL SAVE) DELETED",
        c.Search(sk.FlagKey("\\Deleted"), return_options=frozenset({"MIN", "MAX", "COUNT", "ALL", "SAVE"})),
    ),
    (
        "search-return-empty-means-all",
        b"A1 SEARCH RETURN () ALL",
        c.Search(sk.AllKey(), return_options=frozenset({"ALL"})),
    ),
    (
        "search-return-and-charset",
        b"A1 SEARCH RETURN (COUNT) CHARSET US-ASCII TO bob",
        c.Search(sk.TextKey("TO", "bob"), charset="US-ASCII", return_options=frozenset({"COUNT"})),
    ),
    ("uid-search", b"A1 UID SEARCH UID 1:*", c.Search(sk.UidKey(S("1:*")), uid=True)),
    ("fetch-single", b"A1 FETCH 2:4 FLAGS", c.Fetch(S("2:4"), (fa.Flags(),))),
    ("fetch-macro", b"A1 FETCH 1 fast", c.Fetch(S("1"), fa.MACROS["FAST"])),
    (
        "fetch-list",
        b"A1 FETCH 1:* (UID RFC822.SIZE)",
        c.Fetch(S("1:*"), (fa.Uid(), fa.Rfc822Size())),
    ),
    (
        "fetch-changedsince",
        b"A1 FETCH 1:* (FLAGS) (CHANGEDSINCE 12345)",
        c.Fetch(S("1:*"), (fa.Flags(),), changed_since=12345),
    ),
    (
        "uid-fetch-vanished",
        b"A1 UID FETCH 300:500 (FLAGS) (VANISHED CHANGEDSINCE 12345)",
        c.Fetch(S("300:500"), (fa.Flags(),), changed_since=12345, vanished=True, uid=True),
    ),
    ("fetch-saved", b"A1 FETCH $ UID", c.Fetch(S("$"), (fa.Uid(),))),
    (
        "store-replace",
        b"A1 STORE 2:4 FLAGS (\\Deleted)",
        c.Store(S("2:4"), c.StoreMode.REPLACE, ("\\Deleted",)),
    ),
    (
        "store-add-silent",
        b"A1 STORE 1 +FLAGS.SILENT (\\seen $Label1)",
        c.Store(S("1"), c.StoreMode.ADD, ("\\Seen", "$Label1"), silent=True),
    ),
    (
        "store-remove-lowercase",
        b"A1 STORE 1 -flags.silent (\\Flagged)",
        c.Store(S("1"), c.StoreMode.REMOVE, ("\\Flagged",), silent=True),
    ),
    (
        "store-without-parens",
        b"A1 STORE 1 +FLAGS \\Seen \\Flagged",
        c.Store(S("1"), c.StoreMode.ADD, ("\\Seen", "\\Flagged")),
    ),
    ("store-empty-list", b"A1 STORE 1 FLAGS ()", c.Store(S("1"), c.StoreMode.REPLACE, ())),
    (
        "store-unchangedsince",
        b"A1 STORE 7,5,9 (UNCHANGEDSINCE 320162338) +FLAGS.SILENT (\\Deleted)",
        c.Store(S("7,5,9"), c.StoreMode.ADD, ("\\Deleted",), silent=True, unchanged_since=320162338),
    ),
    (
        "store-unchangedsince-zero",
        b"A1 UID STORE 1 (UNCHANGEDSINCE 0) FLAGS (x)",
        c.Store(S("1"), c.StoreMode.REPLACE, ("x",), unchanged_since=0, uid=True),
    ),
    ("copy", b"A1 COPY 2:4 MEETING", c.Copy(S("2:4"), "MEETING")),
    ("copy-saved", b"A1 COPY $ Trash", c.Copy(S("$"), "Trash")),
    ("uid-copy", b"A1 UID COPY 4827313:4828442 Archive", c.Copy(S("4827313:4828442"), "Archive", uid=True)),
    ("move", b"A1 MOVE 1 inbox", c.Move(S("1"), "INBOX")),
    ("uid-move", b"A1 uid move 42 Trash", c.Move(S("42"), "Trash", uid=True)),
    ("id-nil", b"A1 ID NIL", c.Id(None)),
    ("id-empty", b"A1 ID ()", c.Id(())),
    (
        "id-params",
        b'A1 ID ("name" "sodr" "version" "19.34" "vendor" NIL)',
        c.Id((("name", "sodr"), ("version", "19.34"), ("vendor", None))),
    ),
]


@pytest.mark.parametrize(("wire", "expected"), [pytest.param(w, e, id=i) for i, w, e in VALID])
def test_valid_commands(wire: bytes, expected: c.Command) -> None:
    parsed = parse(wire)
    assert parsed.tag == "A1" or parsed.tag == "a1"
    assert parsed.command == expected


INVALID = [
    ("noop-extra-argument", b"A1 NOOP extra"),
    ("trailing-space", b"A1 NOOP "),
    ("login-missing-password", b"A1 LOGIN bob"),
    ("login-extra-argument", b"A1 LOGIN bob pass extra"),
    ("login-bad-escape", b'A1 LOGIN "bo\\b" pass'),
    ("login-unterminated-quote", b'A1 LOGIN "bob pass'),
    ("authenticate-bad-base64", b"A1 AUTHENTICATE PLAIN !!!"),
    ("authenticate-not-base64", b"A1 AUTHENTICATE PLAIN AG.v"),
    ("authenticate-double-equals", b"A1 AUTHENTICATE PLAIN =="),
    ("authenticate-missing-ir", b"A1 AUTHENTICATE PLAIN "),
    ("enable-nothing", b"A1 ENABLE"),
    ("select-no-mailbox", b"A1 SELECT"),
    ("select-unknown-parameter", b"A1 SELECT INBOX (FOO)"),
    ("select-duplicate-parameter", b"A1 SELECT INBOX (CONDSTORE CONDSTORE)"),
    ("select-empty-parameters", b"A1 SELECT INBOX ()"),
    ("qresync-zero-uidvalidity", b"A1 SELECT INBOX (QRESYNC (0 1))"),
    ("qresync-star-in-known-uids", b"A1 SELECT INBOX (QRESYNC (1 1 1:*))"),
    ("qresync-saved-in-known-uids", b"A1 SELECT INBOX (QRESYNC (1 1 $))"),
    ("qresync-unclosed", b"A1 SELECT INBOX (QRESYNC (1 1)"),
    ("create-unknown-parameter", b"A1 CREATE x (FOO (bar))"),
    ("create-use-without-backslash", b"A1 CREATE x (USE (Sent))"),
    ("rename-one-name", b"A1 RENAME a"),
    ("list-recursivematch-alone", b'A1 LIST (RECURSIVEMATCH) "" *'),
    ("list-recursivematch-remote", b'A1 LIST (REMOTE RECURSIVEMATCH) "" *'),
    ("list-unknown-selection", b'A1 LIST (BOGUS) "" *'),
    ("list-empty-patterns", b'A1 LIST "" ()'),
    ("list-unknown-return", b'A1 LIST "" * RETURN (BOGUS)'),
    ("list-return-without-keyword", b'A1 LIST "" * (CHILDREN)'),
    ("list-status-unknown-item", b'A1 LIST "" * RETURN (STATUS (BOGUS))'),
    ("list-missing-pattern", b'A1 LIST ""'),
    ("lsub-missing-pattern", b"A1 LSUB x"),
    ("status-empty", b"A1 STATUS INBOX ()"),
    ("status-unknown-item", b"A1 STATUS INBOX (BOGUS)"),
    ("status-no-parens", b"A1 STATUS INBOX MESSAGES"),
    ("search-no-keys", b"A1 SEARCH"),
    ("search-unknown-return", b"A1 SEARCH RETURN (BOGUS) ALL"),
    ("search-unknown-key", b"A1 SEARCH BOGUS"),
    ("search-charset-without-keys", b"A1 SEARCH CHARSET UTF-8"),
    ("fetch-missing-items", b"A1 FETCH 1:2"),
    ("fetch-zero", b"A1 FETCH 0 FLAGS"),
    ("fetch-empty-list", b"A1 FETCH 1 ()"),
    ("fetch-macro-in-list", b"A1 FETCH 1 (ALL)"),
    ("fetch-vanished-without-uid", b"A1 FETCH 1 (FLAGS) (CHANGEDSINCE 1 VANISHED)"),
    ("fetch-vanished-without-changedsince", b"A1 UID FETCH 1 (FLAGS) (VANISHED)"),
    ("fetch-duplicate-modifier", b"A1 FETCH 1 (FLAGS) (CHANGEDSINCE 1 CHANGEDSINCE 2)"),
    ("fetch-unknown-modifier", b"A1 FETCH 1 (FLAGS) (PARTIAL 1:5)"),
    ("store-no-flags", b"A1 STORE 1 FLAGS"),
    ("store-bad-item", b"A1 STORE 1 FLAGZ (\\Seen)"),
    ("store-bad-modifier", b"A1 STORE 1 (UNCHANGED 5) FLAGS ()"),
    ("store-modseq-not-number", b"A1 STORE 1 (UNCHANGEDSINCE x) FLAGS ()"),
    ("store-star-flag", b"A1 STORE 1 FLAGS (\\*)"),
    ("copy-no-mailbox", b"A1 COPY 1"),
    ("move-bad-seqset", b"A1 MOVE 1:: Trash"),
    ("uid-unknown-subcommand", b"A1 UID FOO 1"),
    ("uid-noop", b"A1 UID NOOP"),
    ("uid-expunge-no-set", b"A1 UID EXPUNGE"),
    ("id-nothing", b"A1 ID"),
    ("id-missing-value", b'A1 ID ("name")'),
    ("id-atom-field", b"A1 ID (name x)"),
    ("id-too-many", b"A1 ID (" + b" ".join(b'"k%d" "v"' % i for i in range(31)) + b")"),
    ("id-field-too-long", b'A1 ID ("' + b"k" * 31 + b'" "v")'),
    ("append-no-literal", b"A1 APPEND INBOX"),
    ("append-not-literal", b"A1 APPEND INBOX (\\Seen) hello"),
    ("append-utf8-not-enabled", b"A1 APPEND INBOX UTF8 (~{3}"),
    ("append-bad-date", b'A1 APPEND INBOX "31-Feb-2024 00:00:00 +0000" {3}'),
]


@pytest.mark.parametrize("wire", [pytest.param(w, id=i) for i, w in INVALID])
def test_invalid_commands_are_bad(wire: bytes) -> None:
    with pytest.raises(ParseError) as caught:
        parse_command(wire + b"\r\n", 1_000_000)
    assert caught.value.tag == "A1"
    assert not caught.value.garbage
    assert caught.value.message


GARBAGE = [
    ("http-request", b"GET / HTTP/1.1", "GET"),
    ("smtp-greeting", b"EHLO mail.example.org", "EHLO"),
    ("pop3-user", b"USER bob", "USER"),
    ("tls-client-hello", b"\x16\x03\x01\x02\x00\x01", None),
    ("untagged", b"* OK hello", None),
    ("continuation", b"+ hello", None),
    ("tag-only", b"A1", "A1"),
    ("double-space", b"A1  NOOP", "A1"),
    ("unknown-command", b"A1 XYZZY", "A1"),
    ("nul-byte", b"\x00A1 NOOP", None),
]


@pytest.mark.parametrize(("wire", "tag"), [pytest.param(w, t, id=i) for i, w, t in GARBAGE])
def test_garbage_lines_are_flagged(wire: bytes, tag: str | None) -> None:
    with pytest.raises(ParseError) as caught:
        parse_command(wire + b"\r\n", 1_000_000)
    assert caught.value.garbage
    assert caught.value.tag == tag


def test_empty_line_is_bad_without_tag_but_not_garbage() -> None:
    with pytest.raises(ParseError) as caught:
        parse_command(b"\r\n", 1_000_000)
    assert caught.value.tag is None
    assert not caught.value.garbage


@pytest.mark.parametrize(
    ("command", "verb"),
    [
        pytest.param(c.Select("INBOX"), "SELECT", id="select"),
        pytest.param(c.Select("INBOX", readonly=True), "EXAMINE", id="examine"),
        pytest.param(c.Expunge(), "EXPUNGE", id="expunge"),
        pytest.param(c.Expunge(S("1")), "UID EXPUNGE", id="uid-expunge"),
        pytest.param(c.Fetch(S("1"), (), uid=True), "UID FETCH", id="uid-fetch"),
        pytest.param(c.Search(sk.AllKey()), "SEARCH", id="search"),
        pytest.param(c.Store(S("1"), c.StoreMode.ADD, (), uid=True), "UID STORE", id="uid-store"),
        pytest.param(c.Copy(S("1"), "x", uid=True), "UID COPY", id="uid-copy"),
        pytest.param(c.Move(S("1"), "x"), "MOVE", id="move"),
        pytest.param(c.StartTls(), "STARTTLS", id="starttls"),
    ],
)
def test_verb_names_the_command_for_replies(command: c.Command, verb: str) -> None:
    assert command.verb == verb


def test_credentials_stay_out_of_repr() -> None:
    login = parse(b"A1 LOGIN bob hunter2").command
    auth = parse(b"A1 AUTHENTICATE PLAIN AGJvYgBodW50ZXIy").command
    assert "hunter2" not in repr(login)
    assert "AGJvYgBodW50ZXIy" not in repr(auth)


def test_tag_may_hold_any_astring_char_but_plus() -> None:
    assert parse(b"a.b]c$1 NOOP").tag == "a.b]c$1"
    with pytest.raises(ParseError):
        parse_command(b"a+b NOOP\r\n", 1_000)


def test_search_charset_outside_the_list_is_a_no_not_a_bad() -> None:
    search = parse(b"A1 SEARCH CHARSET KLINGON TEXT qapla").command
    assert isinstance(search, c.Search)
    assert search.charset == "KLINGON" and not search.charset_supported
    assert parse(b"A1 SEARCH CHARSET iso-8859-1 ALL").command.charset_supported  # type: ignore[attr-defined]


def test_invalid_modified_utf7_is_a_name_not_a_syntax_error() -> None:
    assert parse(b"A1 SELECT &Jjo").command == c.Select("&Jjo")
    assert parse(b"A1 RENAME Old R&D").command == c.Rename("Old", "R&D")
    listed = parse(b'A1 LIST "" !#$&\'+,-.0123456789:;<=>?@^_`|[}%*').command
    assert isinstance(listed, c.List) and listed.patterns == ("!#$&'+,-.0123456789:;<=>?@^_`|[}%*",)


def test_utf8_mailbox_names_when_enabled() -> None:
    command = parse('A1 SELECT "Entwürfe"'.encode(), utf8=True).command
    assert command == c.Select("Entwürfe")
    # Once UTF8=ACCEPT is on, "&" is just a character: no modified UTF-7.
    assert parse(b"A1 SELECT &ZeVnLIqe-", utf8=True).command == c.Select("&ZeVnLIqe-")
