"""Every command out of order gets 503 5.5.1 (or its own RFC answer) and changes nothing."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.smtpd.conftest import Server, Smtp, World, stored

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (["RCPT TO:<bob@example.test>"], "503 5.5.1 Need MAIL before RCPT"),
        (["DATA"], "503 5.5.1 Need MAIL and RCPT before DATA"),
        (["MAIL FROM:<x@remote.test>", "DATA"], "503 5.5.1 Need RCPT before DATA"),
        (["MAIL FROM:<x@remote.test>", "RCPT TO:<nobody@example.test>", "DATA"], "554 5.5.1 No valid recipients"),
        (["MAIL FROM:<x@remote.test>", "MAIL FROM:<y@remote.test>"],
         "503 5.5.1 MAIL already given; send RSET to start over"),
        (["MAIL FROM:<x@remote.test>", "RSET", "RCPT TO:<bob@example.test>"], "503 5.5.1 Need MAIL before RCPT"),
        (["MAIL FROM:<x@remote.test>", "EHLO again.example", "RCPT TO:<bob@example.test>"],
         "503 5.5.1 Need MAIL before RCPT"),
        (["MAIL FROM:<x@remote.test>", "HELO again.example", "RCPT TO:<bob@example.test>"],
         "503 5.5.1 Need MAIL before RCPT"),
        (["DATA now"], "501 5.5.4 This command takes no arguments"),
        (["QUIT now"], "501 5.5.4 This command takes no arguments"),
        (["STARTTLS now"], "501 5.5.4 This command takes no arguments"),
    ],
    ids=["rcpt-before-mail", "data-before-mail", "data-before-rcpt", "data-no-valid-rcpt", "nested-mail",
         "rcpt-after-rset", "rcpt-after-ehlo", "rcpt-after-helo", "data-args", "quit-args", "starttls-args"],
)
def test_out_of_order_on_mx(server: Server, lines: list[str], expected: str) -> None:
    smtp = Smtp.connect(server.mx)
    smtp.ehlo()
    replies = [smtp.cmd(line) for line in lines]
    assert replies[-1] == expected
    assert smtp.cmd("NOOP") == "250 2.0.0 OK"


@pytest.mark.parametrize(
    "line",
    ["MAIL FROM:<x@remote.test>", "RCPT TO:<bob@example.test>", "DATA", "STARTTLS", "AUTH PLAIN"],
    ids=["mail", "rcpt", "data", "starttls", "auth"],
)
def test_commands_before_hello(server: Server, line: str) -> None:
    smtp = Smtp.connect(server.submission)
    assert smtp.cmd(line) == "503 5.5.1 Send EHLO or HELO first"


def test_bdat_before_mail_is_refused_and_its_octets_are_not_commands(server: Server) -> None:
    smtp = Smtp.connect(server.mx)
    smtp.ehlo()
    smtp.send("BDAT 20\r\nRSET\r\nQUIT\r\nNOOP\r\n\r\n")  # 20 octets that look like commands
    assert smtp.reply() == "503 5.5.1 Need MAIL and RCPT before BDAT"
    assert smtp.cmd("NOOP") == "250 2.0.0 OK"


def test_bdat_before_rcpt_is_refused_and_drained(server: Server) -> None:
    smtp = Smtp.connect(server.mx)
    smtp.ehlo()
    smtp.cmd("MAIL FROM:<x@remote.test>")
    smtp.send("BDAT 6 LAST\r\nQUIT\r\n")
    assert smtp.reply() == "503 5.5.1 Need RCPT before BDAT"
    assert smtp.cmd("NOOP") == "250 2.0.0 OK"


def test_data_after_bdat_is_refused(server: Server, world: World) -> None:
    smtp = Smtp.connect(server.mx)
    smtp.ehlo()
    smtp.cmd("MAIL FROM:<x@remote.test>")
    smtp.cmd("RCPT TO:<bob@example.test>")
    smtp.send("BDAT 9\r\nSubject: ")
    assert smtp.reply() == "250 2.0.0 9 octets received"
    assert smtp.cmd("DATA") == "503 5.5.1 DATA is not allowed after BDAT in the same transaction"
    smtp.send("BDAT 12 LAST\r\nx\r\n\r\nhello\r\n")
    assert smtp.reply() == "250 2.6.0 Message accepted"
    assert stored(world.bob)[0].endswith(b"\r\nSubject: x\r\n\r\nhello\r\n")


def test_auth_twice_is_refused(submitter: Callable[[], Smtp], world: World) -> None:
    smtp = submitter()
    assert smtp.cmd("AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdAB4") == "503 5.5.1 Already authenticated"


def test_auth_inside_a_transaction_is_refused(smtp_server: Callable[..., Server]) -> None:
    server = smtp_server(smtp={"require_authentication": False})
    smtp = Smtp.connect(server.submission)
    smtp.ehlo()
    smtp.starttls()
    smtp.ehlo()
    assert smtp.cmd("MAIL FROM:<x@remote.test>") == "250 2.1.0 Sender OK"
    assert smtp.cmd("AUTH PLAIN") == "503 5.5.1 AUTH is not allowed during a mail transaction"


def test_commands_after_starttls_need_a_new_ehlo(server: Server) -> None:
    smtp = Smtp.connect(server.mx)
    smtp.ehlo()
    smtp.starttls()
    assert smtp.cmd("MAIL FROM:<x@remote.test>") == "503 5.5.1 Send EHLO again after STARTTLS"
    smtp.ehlo()
    assert smtp.cmd("MAIL FROM:<x@remote.test>") == "250 2.1.0 Sender OK"


def test_second_starttls_is_refused(server: Server) -> None:
    smtp = Smtp.connect(server.mx)
    smtp.ehlo()
    smtp.starttls()
    smtp.ehlo()
    assert smtp.cmd("STARTTLS") == "503 5.5.1 TLS already active"


def test_starttls_on_implicit_tls_is_refused(server: Server) -> None:
    smtp = Smtp.connect(server.submissions, implicit_tls=True)
    smtp.ehlo()
    assert smtp.cmd("STARTTLS") == "503 5.5.1 TLS already active"
