"""The SMTP daemon as its own process (`python -m relate.smtpd`) and inside the all-in-one
process (`python -m relate serve`), and a SIGKILL in the middle of a concurrent load."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import gevent
import pytest

from relate.config import Settings
from relate.store import mailboxes, messages
from tests.smtpd.conftest import World, client_context, message

ROOT = Path(__file__).resolve().parents[2]
ALICE = "alice@example.test"


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def wait_for_greeting(port: int, proc: subprocess.Popen[bytes], *, tls: bool = False, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the daemon exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as plain:
                sock = client_context().wrap_socket(plain) if tls else plain
                if sock.recv(100).startswith(b"220 "):
                    return
        except OSError:
            gevent.sleep(0.05)
    raise AssertionError(f"no SMTP greeting on port {port}")


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without Relate Mail variables, running the code of this tree."""
    env = {key: value for key, value in os.environ.items() if "__" not in key}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def daemon_env(settings: Settings, data_dir: Path, **extra: str) -> dict[str, str]:
    env = clean_env()
    env.update({
        "ConnectionStrings__DefaultConnection": settings.database_url,
        "Database__AutoMigrate": "false",
        "Data__Directory": str(data_dir),
        "Network__BindAddress": "127.0.0.1",
        "Smtp__ServerName": "mail.example.test",
        "Network__ShutdownGraceSeconds": "2",
        **extra,
    })
    return env


@pytest.fixture
def daemon(world: World, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], list[int], Path]]:
    """`python -m relate.smtpd` on free ports: (process, [submission, submissions, mx], log file)."""
    ports = free_ports(3)
    log_path = tmp_path / "smtpd.log"
    env = daemon_env(world.settings, tmp_path / "data", Smtp__Port=str(ports[0]), Smtp__SecurePort=str(ports[1]),
                     Smtp__MxPort=str(ports[2]), Tls__AllowInsecureAuth="true")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "relate.smtpd"], cwd=ROOT, env=env, stdout=log, stderr=log)
    try:
        for port, tls in zip(ports, (False, True, False), strict=True):
            wait_for_greeting(port, proc, tls=tls)
        yield proc, ports, log_path
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def inbox_message_ids(user_id: int, mailbox: str = "INBOX") -> list[str]:
    box = mailboxes.get_mailbox(user_id, mailbox)
    found = []
    for entry in messages.list_entries(user_id, box.id):
        match = re.search(rb"\r\nMessage-ID: <([^>]+)>", messages.raw_message(entry.body_id))
        assert match is not None
        found.append(match.group(1).decode())
    return found


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_daemon_serves_every_listener_and_stops_on_sigterm(
    daemon: tuple[subprocess.Popen[bytes], list[int], Path], world: World
) -> None:
    proc, (submission, submissions, mx), log_path = daemon
    client = smtplib.SMTP("127.0.0.1", submission, local_hostname="client.example", timeout=10)
    client.starttls(context=client_context())
    client.login(ALICE, world.alice_key)
    client.sendmail(ALICE, ["bob@example.test"], message(subject="via the daemon"))
    client.quit()
    secure = smtplib.SMTP_SSL("127.0.0.1", submissions, local_hostname="client.example", timeout=10,
                              context=client_context())
    secure.login(ALICE, world.alice_key)
    secure.quit()
    inbound = smtplib.SMTP("127.0.0.1", mx, local_hostname="client.example", timeout=10)
    inbound.sendmail("someone@remote.test", ["carol@other.test"], message(subject="inbound"))
    inbound.quit()
    assert len(inbox_message_ids(world.bob)) == 1 and len(inbox_message_ids(world.carol)) == 1
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0
    log = log_path.read_text()
    for name in ("smtp-submission", "smtp-submissions", "smtp-mx"):
        assert re.search(rf"{name} listening on 127\.0\.0\.1:\d+", log)
    assert "message " in log and " stored: from=<alice@example.test> recipients=1" in log
    assert world.alice_key not in log and world.alice_key.split("_")[2] not in log


def test_disabled_daemon_exits_cleanly(tmp_path: Path) -> None:
    env = clean_env(Smtp__Enabled="false", Data__Directory=str(tmp_path))
    result = subprocess.run([sys.executable, "-m", "relate.smtpd"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0
    assert "SMTP is disabled (Smtp__Enabled=false)" in result.stderr


def test_bad_configuration_is_one_line(tmp_path: Path) -> None:
    env = clean_env(Smtp__Port="submission", Data__Directory=str(tmp_path))
    result = subprocess.run([sys.executable, "-m", "relate.smtpd"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr == "relate-smtp: Smtp__Port=submission: not a whole number\n"


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_sigkill_under_load_loses_no_acknowledged_message(
    daemon: tuple[subprocess.Popen[bytes], list[int], Path], world: World
) -> None:
    proc, (submission, _, _), _ = daemon
    acknowledged: list[str] = []
    recipients = ["bob@example.test", "carol@other.test"]

    def client(number: int) -> None:
        try:
            smtp = smtplib.SMTP("127.0.0.1", submission, local_hostname="client.example", timeout=20)
            smtp.login(ALICE, world.alice_key)  # Tls__AllowInsecureAuth: plaintext keeps the load light
            for i in range(10_000):
                message_id = f"crash.{number}.{i}@example.test"
                raw = (f"From: {ALICE}\r\nTo: {recipients[i % 2]}\r\nSubject: load {number}/{i}\r\n"
                       f"Message-ID: <{message_id}>\r\n\r\n" + "body line\r\n" * 40).encode()
                smtp.sendmail(ALICE, [recipients[i % 2]], raw)
                acknowledged.append(message_id)  # only after the 250
        except (smtplib.SMTPException, OSError):
            return  # the daemon is gone

    clients = [gevent.spawn(client, n) for n in range(12)]
    deadline = time.monotonic() + 60
    while len(acknowledged) < 150 and time.monotonic() < deadline:
        gevent.sleep(0.01)
    assert len(acknowledged) >= 150, "the load never got going"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    gevent.joinall(clients, timeout=30)
    assert all(c.dead for c in clients)

    stored = inbox_message_ids(world.bob) + inbox_message_ids(world.carol)
    sent = inbox_message_ids(world.alice, "Sent")
    assert len(stored) == len(set(stored)), "a message was stored twice"
    assert sorted(stored) == sorted(sent), "INBOX and Sent copies disagree"
    missing = set(acknowledged) - set(stored)
    assert not missing, f"{len(missing)} acknowledged messages were lost"
    assert len(stored) - len(acknowledged) <= len(clients)  # at most the ones in flight at the kill


@pytest.mark.skipif(shutil.which("swaks") is None, reason="swaks is not installed")
def test_all_in_one_prints_a_working_swaks_line(tmp_path: Path) -> None:
    smtp_ports = free_ports(4)
    env = clean_env()
    env.update({
        "Data__Directory": str(tmp_path / "data"),
        "Smtp__Port": str(smtp_ports[0]), "Smtp__SecurePort": str(smtp_ports[1]), "Smtp__MxPort": str(smtp_ports[2]),
        "Api__Port": str(smtp_ports[3]), "Pop3__Enabled": "false", "Imap__Enabled": "false",
        "Network__ShutdownGraceSeconds": "1",
    })
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "relate", "serve"], cwd=tmp_path, env=env,
                                stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        assert proc.stdout is not None
        printed: list[str] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            printed.append(line.rstrip("\n"))
            if line.startswith("Press Ctrl-C"):
                break
        text = "\n".join(printed)
        ports = f"127.0.0.1: {smtp_ports[0]} (STARTTLS), {smtp_ports[1]} (TLS), {smtp_ports[2]} (MX)"
        assert ports in text, f"{text}\n{log_path.read_text()[-3000:]}"
        command = next(line.split("try", 1)[1].strip() for line in printed if line.strip().startswith("try"))
        result = subprocess.run([*shlex.split(command), "--timeout", "20"], capture_output=True, text=True,
                                timeout=60)
        assert result.returncode == 0, result.stdout
        assert "250 2.6.0 Message accepted" in result.stdout
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            assert proc.wait(20) == 0, log_path.read_text()[-3000:]
        finally:
            if proc.poll() is None:
                proc.kill()
