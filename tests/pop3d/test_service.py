"""The daemon as an operator runs it: `python -m relate.pop3d` and the all-in-one process, the
listeners chosen by the settings, a disabled protocol, bad configuration, a graceful stop."""

from __future__ import annotations

import os
import poplib
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from relate.config import Settings, load_settings
from relate.pop3d.service import listeners
from tests.pop3d.conftest import REPO, Daemon, free_port, insecure_context, make_account
from tests.store.helpers import make_message


def settings_with(tmp_path: Path, **env: str) -> Settings:
    return load_settings({"Data__Directory": str(tmp_path), **env})


def test_listeners_follow_the_settings(tmp_path: Path) -> None:
    both = listeners(settings_with(tmp_path, Pop3__Port="1110", Pop3__SecurePort="1995"))
    assert [(x.name, x.port, x.implicit_tls, x.tls_protocol, x.setting) for x in both] == [
        ("pop3", 1110, False, "pop3", "Pop3__Port"),
        ("pop3s", 1995, True, "pop3", "Pop3__SecurePort"),
    ]
    assert [x.name for x in listeners(settings_with(tmp_path, Pop3__Port="0"))] == ["pop3s"]
    assert [x.name for x in listeners(settings_with(tmp_path, Pop3__SecurePort="0"))] == ["pop3"]
    assert listeners(settings_with(tmp_path, Pop3__Port="0", Pop3__SecurePort="0")) == []
    defaults = listeners(settings_with(tmp_path))
    assert [x.port for x in defaults] == [110, 995]


def test_all_in_one_includes_pop3(tmp_path: Path) -> None:
    from relate.serve import load_listeners

    found, missing = load_listeners(settings_with(tmp_path, Pop3__Port="1110", Pop3__SecurePort="1995"))
    assert {"pop3", "pop3s"} <= {x.name for x in found}
    assert "pop3" not in missing
    found, _ = load_listeners(settings_with(tmp_path, Pop3__Enabled="false"))
    assert not {"pop3", "pop3s"} & {x.name for x in found}


def run_daemon(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    variables = {k: v for k, v in os.environ.items() if "__" not in k}
    variables.update({"PYTHONPATH": str(REPO), "Data__Directory": str(tmp_path), **env})
    return subprocess.run([sys.executable, "-m", "relate.pop3d"], env=variables, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)


def test_disabled_daemon_exits_0(tmp_path: Path) -> None:
    done = run_daemon(tmp_path, Pop3__Enabled="false")
    assert done.returncode == 0
    assert "POP3 is disabled (Pop3__Enabled=false)" in done.stderr


def test_bad_configuration_is_one_line(tmp_path: Path) -> None:
    done = run_daemon(tmp_path, Pop3__Port="pop")
    assert done.returncode == 1
    assert done.stderr.strip() == "relate-pop3: Pop3__Port=pop: not a whole number"


def test_port_in_use_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        done = run_daemon(tmp_path, Network__BindAddress="127.0.0.1", Pop3__Port=str(port),
                          Pop3__SecurePort=str(free_port()))
    assert done.returncode == 1
    assert f"Pop3__Port={port}: cannot listen on 127.0.0.1:{port}" in done.stderr


def test_daemon_serves_and_stops_gracefully(pg_store: Settings, tmp_path: Path,
                                             daemons: Callable[..., Daemon]) -> None:
    account = make_account()
    account.deliver(make_message("from the daemon"))
    daemon = daemons(pg_store.database_url, tmp_path / "daemon")
    client = poplib.POP3_SSL("127.0.0.1", daemon.tls_port, timeout=10, context=insecure_context())
    client.user(account.address)
    client.pass_(account.key)
    assert client.stat()[0] == 1
    client.dele(1)
    started = time.monotonic()
    assert daemon.stop() == 0  # SIGTERM: the session is ended after the grace period ...
    assert time.monotonic() - started < 15
    assert account.inbox_uids() != []  # ... without applying its deletions
    log = daemon.log()
    assert "SIGTERM: shutting down" in log and "logged in as alice@pop.test" in log
    assert account.key.split("_", 2)[2] not in log


def test_all_in_one_process_serves_pop3(tmp_path: Path) -> None:
    port, tls_port = free_port(), free_port()
    names = ["Api__Port", "Smtp__Port", "Smtp__SecurePort", "Smtp__MxPort", "Imap__Port", "Imap__SecurePort"]
    variables = {k: v for k, v in os.environ.items() if "__" not in k}
    variables.update({name: str(free_port()) for name in names})
    variables.update({
        "PYTHONPATH": str(REPO), "Data__Directory": str(tmp_path / "data"),
        "ConnectionStrings__DefaultConnection": f"sqlite:///{tmp_path / 'relate.db'}",
        "Pop3__Port": str(port), "Pop3__SecurePort": str(tls_port),
    })
    proc = subprocess.Popen([sys.executable, "-m", "relate"], env=variables, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines: list[str] = []
        assert proc.stdout is not None
        while not lines or not lines[-1].startswith("Press Ctrl-C"):
            line = proc.stdout.readline()
            assert line, f"no summary: {''.join(lines)}"
            lines.append(line)
        summary = "".join(lines)
        assert f"POP3            127.0.0.1: {port} (STLS), {tls_port} (TLS)" in summary
        key = next(line.split()[-1] for line in lines if line.strip().startswith("API key"))
        address = next(line.split()[-1] for line in lines if line.strip().startswith("user"))
        client = poplib.POP3("127.0.0.1", port, timeout=10)
        client.stls(insecure_context())
        client.user(address)
        client.pass_(key)
        assert client.stat() == (0, 0)
        assert client.quit().startswith(b"+OK")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
