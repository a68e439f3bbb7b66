"""Message content over the wire: DATA termination and smuggling, exact dot-unstuffing, the
size limit while streaming, BDAT chunks."""

from __future__ import annotations

from collections.abc import Callable

import gevent
import pytest

from tests.smtpd.conftest import Server, Smtp, World, body_of, stored

BARE = "554 5.6.0 Message contains bare CR or LF; lines must end with CRLF"
TOO_BIG = "552 5.3.4 Message size exceeds fixed maximum message size"
ACCEPTED = "250 2.6.0 Message accepted"


def mx_transaction(server: Server, recipient: str = "bob@example.test") -> Smtp:
    smtp = Smtp.connect(server.mx)
    smtp.ehlo()
    assert smtp.cmd("MAIL FROM:<someone@remote.test>") == "250 2.1.0 Sender OK"
    assert smtp.cmd(f"RCPT TO:<{recipient}>") == "250 2.1.5 Recipient OK"
    return smtp


SMUGGLING = [b"\n.\n", b"\n.\r\n", b"\r\n.\n", b"\r.\r", b"\r.\r\n", b"\r\n.\r"]


@pytest.mark.parametrize("fake_end", SMUGGLING, ids=[repr(s)[2:-1] for s in SMUGGLING])
def test_smuggled_second_message_is_never_delivered(server: Server, world: World, fake_end: bytes) -> None:
    smtp = mx_transaction(server)
    assert smtp.cmd("DATA").startswith("354 ")
    smtp.send(
        b"From: someone@remote.test\r\nSubject: first\r\n\r\nfirst" + fake_end
        + b"MAIL FROM:<alice@example.test>\r\nRCPT TO:<carol@other.test>\r\nDATA\r\n"
        + b"From: alice@example.test\r\nSubject: smuggled\r\n\r\nsmuggled\r\n.\r\n"
        + b"NOOP\r\n"
    )
    assert smtp.reply() == BARE  # one answer, after the real end of data
    assert smtp.reply() == "250 2.0.0 OK"  # then the NOOP: nothing in between was a command
    assert stored(world.bob) == [] and stored(world.carol) == []


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    "content",
    [b"line\nline\r\n", b"line\rline\r\n", b"ends with bare cr\r", b"\n"],
    ids=["bare-lf", "bare-cr", "cr-before-end", "only-lf"],
)
def test_bare_line_endings_are_refused(server: Server, content: bytes) -> None:
    smtp = mx_transaction(server)
    assert smtp.data(content + b"\r\n.\r\n") == BARE
    assert smtp.cmd("NOOP") == "250 2.0.0 OK"


def test_dot_unstuffing_is_exact(server: Server, world: World) -> None:
    original = (
        b"Subject: dots\r\n\r\n.\r\n..\r\n.leading\r\n...three\r\n. space\r\ntrailing.\r\n"
        b"middle . dot\r\n.\r\n\r\n.\r\nlast"
    )
    wire = original.replace(b"\r\n.", b"\r\n..") + b"\r\n.\r\n"
    smtp = mx_transaction(server)
    assert smtp.data(wire) == ACCEPTED
    assert body_of(stored(world.bob)[0]) == original + b"\r\n"


def test_smtplib_dot_stuffing_round_trips(server: Server, world: World) -> None:
    original = b"Subject: x\r\n\r\n.hidden\r\n..\r\n.\r\nend\r\n"
    client = server.smtp(server.mx, starttls=False)
    client.sendmail("someone@remote.test", ["bob@example.test"], original)
    client.quit()
    assert body_of(stored(world.bob)[0]) == original


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_empty_message(server: Server, world: World) -> None:
    smtp = mx_transaction(server)
    assert smtp.data(b".\r\n") == ACCEPTED
    assert body_of(stored(world.bob)[0]) == b""


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_long_lines_and_binary_octets_are_kept(server: Server, world: World) -> None:
    original = b"Subject: long\r\n\r\n" + b"x" * 5000 + b"\r\n\x00\x01\xfe\xff\r\n"
    smtp = mx_transaction(server)
    assert smtp.data(original + b".\r\n") == ACCEPTED
    assert body_of(stored(world.bob)[0]) == original


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_oversize_data_is_read_to_the_end_then_refused(smtp_server: Callable[..., Server], world: World) -> None:
    server = smtp_server(smtp={"max_message_size": 2000})
    smtp = mx_transaction(server)
    assert smtp.cmd("DATA").startswith("354 ")
    smtp.send(b"Subject: big\r\n\r\n" + b"y" * 78 + b"\r\n")
    for _ in range(100):  # 8 KB, well past the limit: the server keeps reading without a word
        smtp.send(b"z" * 78 + b"\r\n")
    gevent.sleep(0.05)
    smtp.client.sock.settimeout(0.1)
    with pytest.raises(TimeoutError):
        smtp.client.sock.recv(1)
    smtp.client.sock.settimeout(5)
    smtp.send(b".\r\n")
    assert smtp.reply() == TOO_BIG
    assert smtp.cmd("NOOP") == "250 2.0.0 OK"
    assert stored(world.bob) == []


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_message_at_the_limit_is_accepted(smtp_server: Callable[..., Server], world: World) -> None:
    server = smtp_server(smtp={"max_message_size": 2000})
    content = b"Subject: fits\r\n\r\n" + b"a" * (2000 - 17 - 2) + b"\r\n"
    assert len(content) == 2000
    smtp = mx_transaction(server)
    assert smtp.data(content + b".\r\n") == ACCEPTED
    smtp = mx_transaction(server)
    assert smtp.data(b"b" + content + b".\r\n") == TOO_BIG


def test_refused_data_with_content_already_sent_closes_the_connection(server: Server, world: World) -> None:
    smtp = Smtp.connect(server.mx)
    smtp.ehlo()
    smtp.cmd("MAIL FROM:<someone@remote.test>")
    smtp.cmd("RCPT TO:<friend@remote.test>")
    # A client that did not wait for 354: its message must not run as commands.
    smtp.send("DATA\r\nRSET\r\nMAIL FROM:<x@remote.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n")
    assert smtp.reply() == "554 5.5.1 No valid recipients"
    assert smtp.at_eof()
    assert stored(world.bob) == []


# --- BDAT (RFC 3030) ---------------------------------------------------------------------


def test_bdat_chunks_make_one_message_byte_for_byte(server: Server, world: World) -> None:
    chunks = [b"Subject: chunked\r\n\r\nbinary-clean: \r\n.\r\n", b"MAIL FROM:<x@remote.test>\r\n",
              b"\r\n.\r\nstill the same message\r", b"\n"]
    smtp = mx_transaction(server)
    for chunk in chunks[:-1]:
        smtp.send(b"BDAT %d\r\n" % len(chunk) + chunk)
        assert smtp.reply() == f"250 2.0.0 {len(chunk)} octets received"
    smtp.send(b"BDAT %d LAST\r\n" % len(chunks[-1]) + chunks[-1])
    assert smtp.reply() == ACCEPTED
    assert [body_of(m) for m in stored(world.bob)] == [b"".join(chunks)]


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_bdat_pipelined_in_one_write(server: Server, world: World) -> None:
    smtp = Smtp.connect(server.mx)
    smtp.ehlo()
    smtp.send(
        "MAIL FROM:<someone@remote.test>\r\nRCPT TO:<bob@example.test>\r\n"
        "BDAT 14\r\nSubject: a\r\n\r\nBDAT 3 LAST\r\nb\r\nNOOP\r\n"
    )
    assert [smtp.reply() for _ in range(5)] == [
        "250 2.1.0 Sender OK", "250 2.1.5 Recipient OK", "250 2.0.0 14 octets received", ACCEPTED,
        "250 2.0.0 OK",
    ]
    assert body_of(stored(world.bob)[0]) == b"Subject: a\r\n\r\nb\r\n"


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_bdat_zero_last_ends_the_message(server: Server, world: World) -> None:
    smtp = mx_transaction(server)
    smtp.send(b"BDAT 15\r\nSubject: z\r\n\r\nz")
    assert smtp.reply() == "250 2.0.0 15 octets received"
    assert smtp.cmd("BDAT 0 LAST") == ACCEPTED
    assert body_of(stored(world.bob)[0]) == b"Subject: z\r\n\r\nz"


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_bdat_bare_lf_is_refused_after_last(server: Server, world: World) -> None:
    smtp = mx_transaction(server)
    smtp.send(b"BDAT 11\r\nSubject: \nx")
    assert smtp.reply() == BARE
    smtp.send(b"BDAT 4 LAST\r\nmore")
    assert smtp.reply() == BARE
    assert smtp.cmd("NOOP") == "250 2.0.0 OK"
    assert smtp.cmd("RCPT TO:<bob@example.test>") == "503 5.5.1 Need MAIL before RCPT"
    assert stored(world.bob) == []


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_bdat_over_the_limit_is_drained_then_refused(smtp_server: Callable[..., Server], world: World) -> None:
    server = smtp_server(smtp={"max_message_size": 2000})
    smtp = mx_transaction(server)
    smtp.send(b"BDAT 1500\r\n" + b"a" * 1498 + b"\r\n")
    assert smtp.reply() == "250 2.0.0 1500 octets received"
    smtp.send(b"BDAT 1500 LAST\r\n" + b"NOOP\r\n" * 250)
    assert smtp.reply() == TOO_BIG
    assert smtp.cmd("NOOP") == "250 2.0.0 OK"
    assert stored(world.bob) == []


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_bdat_far_over_the_limit_closes(smtp_server: Callable[..., Server]) -> None:
    server = smtp_server(smtp={"max_message_size": 2000})
    smtp = mx_transaction(server)
    smtp.send(b"BDAT 100000000000 LAST\r\n")
    assert smtp.reply() == TOO_BIG
    assert smtp.at_eof()


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize("line", ["BDAT", "BDAT -5", "BDAT 5 FIRST", "BDAT five"])
def test_bdat_syntax_error_closes(server: Server, line: str) -> None:
    smtp = mx_transaction(server)
    assert smtp.cmd(line) == "501 5.5.4 Syntax: BDAT size [LAST]"
    assert smtp.at_eof()


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_binarymime_is_not_offered(server: Server) -> None:
    smtp = Smtp.connect(server.mx)
    smtp.ehlo()
    assert smtp.cmd("MAIL FROM:<someone@remote.test> BODY=BINARYMIME") == "504 5.5.4 Unsupported BODY type"
