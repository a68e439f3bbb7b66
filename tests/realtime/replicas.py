"""A deployment in processes on this machine: API replicas under gunicorn's gevent worker and the
protocol daemons, all on one PostgreSQL database of their own, on loopback ports."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listening on {port} after {timeout}s:\n{log.read_text()[-3000:]}")


@dataclass
class Process:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


@dataclass
class Deployment:
    database_url: str
    workdir: Path
    internal_key: str = field(default_factory=lambda: uuid.uuid4().hex)
    processes: dict[str, Process] = field(default_factory=dict)

    def env(self, name: str, **more: str) -> dict[str, str]:
        data_dir = self.workdir / name
        data_dir.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("Smtp__", "Imap__", "Pop3__", "Api__"))}
        env.update({
            "PYTHONPATH": str(REPO),
            "ConnectionStrings__DefaultConnection": self.database_url,
            "Database__AutoMigrate": "false",
            "Data__Directory": str(data_dir),
            "Internal__ApiKey": self.internal_key,
            "Mail__Domains": "example.test",
            "Tls__AllowInsecureAuth": "true",
            "Network__BindAddress": "127.0.0.1",
            "Api__RateLimitPerIp": "0",
            "Api__RateLimitPerUser": "0",
            "Logging__Level": "INFO",
            "Network__ShutdownGraceSeconds": "1",
            **more,
        })
        return env

    def _start(self, name: str, port: int, argv: list[str], env: dict[str, str]) -> Process:
        log = self.workdir / f"{name}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
        process = Process(name, port, proc, log)
        self.processes[name] = process
        wait_for_port(port, proc, log)
        return process

    def start_api(self, name: str, *extra: str) -> Process:
        port = free_port()
        argv = [sys.executable, "-m", "gunicorn", "-k", "gevent", "-b", f"127.0.0.1:{port}", "--workers", "1",
                "--worker-connections", "10000", "--graceful-timeout", "3", *extra, "webapp.wsgi:app"]
        process = self._start(name, port, argv, self.env(name))
        deadline = time.monotonic() + 30
        while True:  # the port answers before the worker has imported the app
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                    return process
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def start_imap(self, name: str, api: Process) -> Process:
        port = free_port()
        env = self.env(name, Imap__Port=str(port), Imap__SecurePort="0", Api__BaseUrl=f"http://127.0.0.1:{api.port}")
        return self._start(name, port, [sys.executable, "-m", "relate.imapd"], env)

    def start_pop3(self, name: str, api: Process) -> Process:
        port = free_port()
        env = self.env(name, Pop3__Port=str(port), Pop3__SecurePort="0", Api__BaseUrl=f"http://127.0.0.1:{api.port}")
        return self._start(name, port, [sys.executable, "-m", "relate.pop3d"], env)

    def start_smtp(self, name: str, api: Process) -> Process:
        port = free_port()
        env = self.env(name, Smtp__MxPort=str(port), Smtp__Port="0", Smtp__SecurePort="0",
                       Api__BaseUrl=f"http://127.0.0.1:{api.port}")
        return self._start(name, port, [sys.executable, "-m", "relate.smtpd"], env)

    def stop(self) -> None:
        for process in reversed(list(self.processes.values())):
            process.stop()
