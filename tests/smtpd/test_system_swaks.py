"""swaks, a real SMTP client, against the real listeners: submission with STARTTLS, implicit
TLS, pipelining, MX, and a relay attempt."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.smtpd.conftest import Server, World, body_of, stored

pytestmark = pytest.mark.skipif(shutil.which("swaks") is None, reason="swaks is not installed (deploy/install-deps.sh test)")

ALICE = "alice@example.test"


def swaks(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["swaks", "--server", "127.0.0.1", "--ehlo", "client.example", "--timeout", "20", *args],
        capture_output=True, text=True, timeout=60,
    )


def test_submission_with_starttls_and_auth_plain(server: Server, world: World) -> None:
    result = swaks("--port", str(server.submission), "--tls", "--auth", "PLAIN", "--auth-user", ALICE,
                   "--auth-password", world.alice_key, "--from", ALICE, "--to", "bob@example.test",
                   "--header", "Subject: from swaks")
    assert result.returncode == 0, result.stdout
    assert "<~  250 2.6.0 Message accepted" in result.stdout
    [received] = stored(world.bob)
    assert b"Subject: from swaks" in received and b" with ESMTPSA id " in received
    assert len(stored(world.alice, "Sent")) == 1
    assert world.alice_key not in result.stderr


def test_implicit_tls_with_auth_login_and_pipelining(server: Server, world: World) -> None:
    result = swaks("--port", str(server.submissions), "--tls-on-connect", "--auth", "LOGIN", "--auth-user", ALICE,
                   "--auth-password", world.alice_key, "--pipeline", "--from", ALICE,
                   "--to", "bob@example.test,carol@other.test")
    assert result.returncode == 0, result.stdout
    assert len(stored(world.bob)) == 1 and len(stored(world.carol)) == 1


def test_message_from_a_file_with_dots_arrives_intact(server: Server, world: World, tmp_path: Path) -> None:
    original = b"From: alice@example.test\r\nTo: bob@example.test\r\nSubject: dots\r\n\r\n.\r\n..two\r\n.one\r\nend\r\n"
    path = tmp_path / "message.eml"
    path.write_bytes(original[:-2])  # swaks ends the data with CRLF "." CRLF itself
    result = swaks("--port", str(server.submission), "--tls", "--auth", "PLAIN", "--auth-user", ALICE,
                   "--auth-password", world.alice_key, "--from", ALICE, "--to", "bob@example.test",
                   "--data", str(path))
    assert result.returncode == 0, result.stdout
    assert body_of(stored(world.bob)[0]) == original


def test_mx_accepts_mail_for_a_local_user(server: Server, world: World) -> None:
    result = swaks("--port", str(server.mx), "--from", "someone@remote.test", "--to", "carol@other.test")
    assert result.returncode == 0, result.stdout
    assert "AUTH" not in result.stdout.split("STARTTLS")[0].split("EHLO")[-1]
    assert len(stored(world.carol)) == 1


def test_mx_refuses_to_relay(server: Server, world: World) -> None:
    result = swaks("--port", str(server.mx), "--from", "someone@remote.test", "--to", "friend@remote.test")
    assert result.returncode != 0
    assert "<** 554 5.7.1 Relay access denied" in result.stdout


def test_submission_without_auth_is_refused(server: Server, world: World) -> None:
    result = swaks("--port", str(server.submission), "--tls", "--from", ALICE, "--to", "bob@example.test")
    assert result.returncode != 0
    assert "* 530 5.7.0 Authentication required" in result.stdout
    assert stored(world.bob) == []


def test_wrong_key_is_refused(server: Server, world: World) -> None:
    result = swaks("--port", str(server.submission), "--tls", "--auth", "PLAIN", "--auth-user", ALICE,
                   "--auth-password", "rm_abcdefghij_notthekeynotthekeynotthekeynotthekey", "--from", ALICE,
                   "--to", "bob@example.test")
    assert result.returncode != 0
    assert "* 535 5.7.8 Authentication credentials invalid" in result.stdout
