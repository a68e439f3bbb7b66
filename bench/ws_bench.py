"""Real-time benchmark: thousands of open WebSockets on one API worker, and how long a message
takes from the SMTP daemon's 250 to the NewEmail frame on every socket of its recipient.

    .venv/bin/python bench/ws_bench.py [--sockets 5000] [--users 500] [--messages 200]

What it does, all on 127.0.0.1, and then stops by itself:

1. Creates a fresh PostgreSQL database (the server at 127.0.0.1:5432 as user postgres, or
   --admin-dsn), migrates it, adds --users users in bench.test, each with an API key.
2. Starts one API process, `gunicorn -k gevent --workers 1 --worker-connections N
   webapp.wsgi:app` (N comfortably above --sockets), and `python -m relate.smtpd` with its MX
   listener on a free port; the daemon notifies the API (Internal__ApiKey) as in production.
3. Opens --sockets WebSockets to /api/ws (API-key bearer), spread evenly over the users, and
   waits for each one's Hello. Reads the worker's resident memory (VmRSS) before and after.
4. Sends --messages messages over SMTP (MX, --smtp-clients sessions at once) at a steady
   --rate per second, each to one user chosen in turn; for each, the time from the 250 to the NewEmail frame on every one of
   that user's sockets. Every socket must get its frame (and no other user's).
5. Prints the worker's RSS and the delay at p50, p99 and max, and checks the targets: RSS
   under 1 GB, p99 under 1 second.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import smtplib  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402
import uuid  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402
import gevent.pool  # noqa: E402
import psycopg2  # noqa: E402
import simple_websocket  # noqa: E402
from common import HOST, free_port, rss_bytes, wait_for_port  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DOMAIN = "bench.test"
RSS_TARGET = 1024**3  # bytes
P99_TARGET = 1.0  # seconds




def wait_for_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: server exited with status {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer")






def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_cpu() -> float:
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    total += cpu_seconds(int(entry.name))
            except OSError:
                pass
    return total


def worker_pid(master: int) -> int:
    """The gunicorn worker (the master's only child)."""
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    if len(children) != 1:
        raise RuntimeError(f"expected one gunicorn worker, found {children}")
    return int(children[0])


class Client(simple_websocket.Client):
    """Parses frames that arrive with the handshake response at once (simple_websocket leaves
    them until the next read)."""

    def handshake(self) -> None:
        super().handshake()
        self.connected = self._handle_events()


@dataclass
class Socket:
    user: int  # index into the users
    ws: Client
    got: dict[str, float] = field(default_factory=dict)  # subject → arrival (monotonic)
    strangers: int = 0  # NewEmail frames for a subject sent to someone else

    def read_forever(self, expected: dict[str, int]) -> None:
        while True:
            try:
                raw = self.ws.receive()
            except simple_websocket.ConnectionClosed:
                return
            now = time.monotonic()
            if raw is None:
                continue
            frame = json.loads(raw)
            if frame["type"] == "NewEmail":
                subject = frame["data"]["subject"]
                self.got[subject] = now
                if expected.get(subject) != self.user:
                    self.strangers += 1


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered)) - 1))
    return ordered[k]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sockets", type=int, default=5000)
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--rate", type=float, default=20.0, help="messages per second, spread over the sessions")
    parser.add_argument("--smtp-clients", type=int, default=2)
    parser.add_argument("--connect-concurrency", type=int, default=20)
    parser.add_argument("--admin-dsn", default="host=127.0.0.1 port=5432 user=postgres dbname=postgres")
    args = parser.parse_args()

    from relate import db, store
    from relate.config import load_settings
    from relate.db import migrate
    from relate.store import accounts, keys

    name = f"relate_wsbench_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(args.admin_dsn)
    admin.autocommit = True
    admin.cursor().execute(f"CREATE DATABASE {name}")
    parts = dict(p.split("=", 1) for p in args.admin_dsn.split())
    url = f"postgresql://{parts.get('user', 'postgres')}@{parts.get('host', HOST)}:{parts.get('port', '5432')}/{name}"
    workdir = Path(tempfile.mkdtemp(prefix="relate-wsbench-"))
    processes: list[subprocess.Popen[bytes]] = []
    try:
        engine = db.engine.create(load_settings({"ConnectionStrings__DefaultConnection": url}).database_url, pool_size=2)
        migrate.upgrade(engine)
        engine.dispose()
        settings = load_settings({"ConnectionStrings__DefaultConnection": url, "Data__Directory": str(workdir),
                                  "Database__AutoMigrate": "false"})
        store.open_store(settings, migrate=False, pool_size=4)
        accounts.ensure_domains([DOMAIN])
        users: list[tuple[str, str]] = []
        for i in range(args.users):
            info = accounts.create_user(f"user{i}@{DOMAIN}")
            users.append((info.primary_address, keys.create_key(info.id, "bench", "api:read")[1]))
        print(f"database {name}: {args.users} users", flush=True)

        internal_key = uuid.uuid4().hex
        api_port, mx_port = free_port(), free_port()
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "ConnectionStrings__DefaultConnection": url,
            "Database__AutoMigrate": "false",
            "Data__Directory": str(workdir),
            "Internal__ApiKey": internal_key,
            "Api__BaseUrl": f"http://{HOST}:{api_port}",
            "Api__RateLimitPerIp": "0",
            "Api__RateLimitPerUser": "0",
            "Mail__Domains": DOMAIN,
            "Logging__Level": "WARNING",
            "Network__ShutdownGraceSeconds": "1",
        }
        with open(workdir / "api.log", "wb") as log:
            api = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "-k", "gevent", "--workers", "1",
                 "--worker-connections", str(args.sockets + 1000), "--graceful-timeout", "2",
                 "-b", f"{HOST}:{api_port}", "webapp.wsgi:app"],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        processes.append(api)
        with open(workdir / "smtp.log", "wb") as log:
            smtp = subprocess.Popen([sys.executable, "-m", "relate.smtpd"], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                    env={**env, "Smtp__MxPort": str(mx_port), "Smtp__Port": "0", "Smtp__SecurePort": "0"})
        processes.append(smtp)
        wait_for_http(f"http://{HOST}:{api_port}/healthz", api)
        wait_for_port(mx_port, smtp)
        worker = worker_pid(api.pid)
        rss_before = rss_bytes(worker)

        sockets: list[Socket] = []
        url_ws = f"ws://{HOST}:{api_port}/api/ws"

        def connect(i: int) -> None:
            user = i % args.users
            ws = Client(url_ws, headers={"Authorization": f"Bearer {users[user][1]}"})
            while True:  # Hello
                raw = ws.receive(timeout=30)
                if raw is None or json.loads(raw)["type"] == "Hello":
                    break
            sockets.append(Socket(user, ws))

        started = time.monotonic()
        pool = gevent.pool.Pool(args.connect_concurrency)
        for i in range(args.sockets):
            pool.spawn(connect, i)
        pool.join(raise_error=True)
        opened = time.monotonic() - started
        gevent.sleep(2)  # let the worker settle
        rss_open = rss_bytes(worker)
        print(f"{len(sockets)} WebSockets open in {opened:.1f}s; worker RSS {rss_before / 2**20:.0f} MiB before, "
              f"{rss_open / 2**20:.0f} MiB with the sockets", flush=True)

        expected: dict[str, int] = {}  # subject → user index
        readers = [gevent.spawn(s.read_forever, expected) for s in sockets]
        sent_at: dict[str, float] = {}

        start = time.monotonic() + 0.5

        def send(batch: list[int]) -> None:
            with smtplib.SMTP(HOST, mx_port, timeout=30) as client:
                for n in batch:
                    gevent.sleep(max(0.0, start + n / args.rate - time.monotonic()))  # a steady --rate
                    user = n % args.users
                    subject = f"bench {n}"
                    expected[subject] = user
                    message = (f"From: <load@elsewhere.test>\r\nTo: <{users[user][0]}>\r\nSubject: {subject}\r\n"
                               f"Message-ID: <{n}.{uuid.uuid4().hex}@elsewhere.test>\r\n\r\nbody {n}\r\n")
                    client.sendmail("load@elsewhere.test", [users[user][0]], message)
                    sent_at[subject] = time.monotonic()

        cpu_before = (cpu_seconds(worker), cpu_seconds(smtp.pid), postgres_cpu(), time.process_time())
        batches = [list(range(k, args.messages, args.smtp_clients)) for k in range(args.smtp_clients)]
        gevent.joinall([gevent.spawn(send, b) for b in batches], raise_error=True)
        deadline = time.monotonic() + 15
        by_user: dict[int, list[Socket]] = {}
        for s in sockets:
            by_user.setdefault(s.user, []).append(s)
        while time.monotonic() < deadline:
            if all(subject in s.got for subject, user in expected.items() for s in by_user.get(user, [])):
                break
            gevent.sleep(0.1)
        rss_after = rss_bytes(worker)
        cpu_after = (cpu_seconds(worker), cpu_seconds(smtp.pid), postgres_cpu(), time.process_time())
        cpu = [after - before for before, after in zip(cpu_before, cpu_after, strict=True)]

        delays: list[float] = []
        missing = 0
        for subject, user in expected.items():
            for s in by_user.get(user, []):
                if subject in s.got:
                    delays.append(s.got[subject] - sent_at[subject])
                else:
                    missing += 1
        strangers = sum(s.strangers for s in sockets)
        for s in sockets:
            try:
                s.ws.close()
            except Exception:
                pass
        gevent.killall(readers, block=False)

        p50, p99 = percentile(delays, 50), percentile(delays, 99)
        rss_peak = max(rss_open, rss_after)
        print()
        print(f"Real-time: {len(sockets)} WebSockets ({args.users} users) on one gunicorn gevent worker, "
              f"{args.messages} SMTP messages at {args.rate:g}/s")
        print(f"  worker RSS          {rss_open / 2**20:8.0f} MiB with the sockets open, {rss_after / 2**20:.0f} MiB after "
              f"the messages ({rss_before / 2**20:.0f} MiB with none)")
        print(f"  per socket          {(rss_open - rss_before) / len(sockets) / 1024:8.1f} KiB")
        print(f"  250 -> NewEmail     p50 {p50 * 1000:.0f} ms   p99 {p99 * 1000:.0f} ms   max {max(delays) * 1000:.0f} ms"
              f"   ({len(delays)} frames)")
        print(f"  missing frames      {missing}; frames for another user: {strangers}")
        print(f"  CPU while sending   API worker {cpu[0]:.1f}s, SMTP daemon {cpu[1]:.1f}s, PostgreSQL {cpu[2]:.1f}s, "
              f"this client {cpu[3]:.1f}s")
        ok = rss_peak < RSS_TARGET and p99 < P99_TARGET and missing == 0 and strangers == 0
        print(f"  targets (RSS < 1 GiB, p99 < 1 s, nothing missing or misdelivered): {'met' if ok else 'NOT MET'}")
        print(f"  reproduce: .venv/bin/python bench/ws_bench.py --sockets {args.sockets} --users {args.users} "
              f"--messages {args.messages} --rate {args.rate:g}")
        return 0 if ok else 1
    finally:
        for proc in processes:
            proc.terminate()
        for proc in processes:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        store.close_store()
        admin.cursor().execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


if __name__ == "__main__":
    sys.exit(main())
