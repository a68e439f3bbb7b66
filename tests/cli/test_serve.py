"""The all-in-one process as a user starts it: summary, working endpoints, clean Ctrl-C."""

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.fixture
def aio(cli):
    """A running `python -m relate serve` on free ports; yields (process, summary text, api port)."""
    names = ["Api__Port", "Smtp__Port", "Smtp__SecurePort", "Smtp__MxPort", "Pop3__Port", "Pop3__SecurePort",
             "Imap__Port", "Imap__SecurePort"]
    env = dict(cli.env)
    env.update({name: str(port) for name, port in zip(names, free_ports(len(names)), strict=True)})
    proc = subprocess.Popen([sys.executable, "-m", "relate"], env=env, cwd=cli.cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith("Press Ctrl-C"):
            break
    summary = "".join(lines)
    if "Press Ctrl-C" not in summary:
        proc.kill()
        raise AssertionError(f"no summary: {summary}\n{proc.stderr.read()}")
    yield proc, summary, int(env["Api__Port"])
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_summary_endpoints_and_clean_stop(aio):
    proc, summary, api_port = aio
    assert f"http://127.0.0.1:{api_port}/" in summary
    assert "dev@relate.test" in summary
    key = next(line.split()[-1] for line in summary.splitlines() if line.strip().startswith("API key"))
    assert key.startswith("rm_")
    with urllib.request.urlopen(f"http://127.0.0.1:{api_port}/readyz", timeout=10) as response:
        assert json.load(response) == {"status": "ready"}
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{api_port}/api/no-such-route", timeout=10)
    except urllib.error.HTTPError as exc:
        assert exc.code == 404 and json.load(exc) == {"error": "not found"}
    else:
        raise AssertionError("unknown /api path did not 404")
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 0


def test_sigterm_stops_cleanly_and_the_key_stays_usable(aio, cli):
    proc, summary, _ = aio
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    key = next(line.split()[-1] for line in summary.splitlines() if line.strip().startswith("API key"))
    prefix = "_".join(key.split("_")[:2])
    active = [row for row in cli("keys", "list", "dev@relate.test").stdout.splitlines() if "\tactive" in row]
    assert [row.split("\t")[1] for row in active] == [prefix]
