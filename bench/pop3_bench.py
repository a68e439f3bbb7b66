"""POP3 benchmark: many clients each download a whole maildrop from Relate Mail's POP3 daemon.

    .venv/bin/python bench/pop3_bench.py [--clients 20] [--messages 1000] [--size 4096] [--without-sizes]

What it does, all on 127.0.0.1, and then stops by itself:

1. Creates a fresh PostgreSQL database (the server at 127.0.0.1:5432 as user postgres, or
   --admin-dsn), migrates it, adds --clients users in the domain bench.test, each with a
   `pop3` API key, and delivers --messages distinct messages of --size octets to every
   one of them (one delivery per message, addressed to all users, through the store).
   --without-sizes then clears every body's stored POP3 size, as in a store whose mail
   arrived before alembic 0009: the daemon reads the bodies for STAT and writes the sizes back.
2. Starts `python -m relate.pop3d` on free ports (Tls__AllowInsecureAuth=true and plaintext
   by default, so TLS cost is not measured; --tls uses port 995 instead).
3. Runs the load: --clients concurrent sessions, one per user, each USER/PASS, STAT, UIDL,
   then RETR of every message one at a time (like fetchmail and getmail: the next RETR is
   sent when the previous message has arrived; --pipeline N keeps N in flight), then QUIT.
   Every message received is checked against the size LIST announced, and the first one
   of every session byte for byte against what was delivered.
4. Prints messages/s and octets/s over the whole load (first connection to last QUIT), the
   per-session figures (STAT's answer time among them), the CPU the daemon and the clients
   used and the machine's load average (other work on the machine takes CPU from the
   daemon), then drops the database.
   --rounds N downloads everything N times: round 1 also marks every message seen,
   later rounds find them seen already.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import ssl  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402
import psycopg2  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DOMAIN = "bench.test"
HOST = "127.0.0.1"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(v) for v in fields[11:13]) / CLK_TCK


def make_message(n: int, size: int) -> bytes:
    head = (
        f"From: Bench Sender <sender@elsewhere.test>\r\nTo: <everyone@{DOMAIN}>\r\n"
        f"Subject: benchmark message {n}\r\nMessage-ID: <pop3-bench-{n}-{uuid.uuid4().hex}@{DOMAIN}>\r\n"
        "Date: Sat, 28 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=us-ascii\r\n\r\n"
    ).encode()
    line = b"The quick brown fox jumps over the lazy dog and keeps running around. 0123\r\n"
    dot = b".a line the server must dot-stuff\r\n"
    return head + dot + line * max(1, (size - len(head) - len(dot)) // len(line))


# --- setup -------------------------------------------------------------------------------


@dataclass
class Database:
    admin_dsn: str
    name: str = field(default_factory=lambda: f"relate_pop3_bench_{uuid.uuid4().hex[:8]}")

    @property
    def url(self) -> str:
        parts = dict(p.split("=", 1) for p in self.admin_dsn.split())
        auth = parts.get("user", "postgres") + (f":{parts['password']}" if parts.get("password") else "")
        return f"postgresql://{auth}@{parts.get('host', HOST)}:{parts.get('port', '5432')}/{self.name}"

    def _admin(self, sql: str) -> None:
        conn = psycopg2.connect(self.admin_dsn)
        conn.autocommit = True
        try:
            conn.cursor().execute(sql)
        finally:
            conn.close()

    def create(self) -> None:
        self._admin(f"CREATE DATABASE {self.name}")

    def fast_commits(self, on: bool) -> None:
        """Filling the maildrops does not wait for the disk; the measured load does (as deployed)."""
        if on:
            self._admin(f"ALTER DATABASE {self.name} SET synchronous_commit = off")
        else:
            self._admin(f"ALTER DATABASE {self.name} RESET synchronous_commit")

    def drop(self) -> None:
        self._admin(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")

    def forget_sizes(self) -> None:
        """Every body as stored before alembic 0009: no POP3 size."""
        conn = psycopg2.connect(self.url)
        try:
            with conn, conn.cursor() as cursor:
                cursor.execute("UPDATE message_bodies SET wire_size = NULL")
        finally:
            conn.close()


def populate(db: Database, data_dir: Path, clients: int, messages: int, size: int) -> tuple[list[tuple[str, str]], bytes]:
    """Users with keys and full INBOXes; returns [(address, key)] and the first message."""
    from relate import store
    from relate.config import load_settings
    from relate.store import Envelope, accounts, keys
    from relate.store import messages as store_messages

    settings = load_settings({"ConnectionStrings__DefaultConnection": db.url, "Data__Directory": str(data_dir)})
    store.open_store(settings, migrate=True, pool_size=2)
    users: list[tuple[str, str]] = []
    for i in range(clients):
        user = accounts.create_user(f"user{i}@{DOMAIN}")
        _, key = keys.create_key(user.id, "bench", "pop3")
        users.append((user.primary_address, key))
    recipients = tuple(address for address, _ in users)
    first = b""
    started = time.monotonic()
    for n in range(messages):
        raw = make_message(n, size)
        first = first or raw
        store_messages.deliver(raw, Envelope("sender@elsewhere.test", recipients))
    print(f"  delivered {messages} messages to {clients} users in {time.monotonic() - started:.1f}s", flush=True)
    store.close_store()
    return users, first


def start_daemon(db: Database, data_dir: Path) -> tuple[subprocess.Popen[bytes], int, int, Path]:
    port, tls_port = free_port(), free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "ConnectionStrings__DefaultConnection": db.url,
        "Database__AutoMigrate": "true",  # already migrated; a no-op unless the code moved on
        "Data__Directory": str(data_dir),
        "Network__BindAddress": HOST,
        "Pop3__Port": str(port),
        "Pop3__SecurePort": str(tls_port),
        "Tls__AllowInsecureAuth": "true",
        "Logging__Level": "WARNING",
    }
    log_path = data_dir / "pop3d.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "relate.pop3d"], cwd=ROOT, env=env, stdout=log, stderr=log)
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection((HOST, port), timeout=1) as s:
                s.recv(512)
            return proc, port, tls_port, log_path
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"relate.pop3d did not start:\n{log_path.read_text()}") from None
            time.sleep(0.1)


# --- the load ----------------------------------------------------------------------------


class Pop3:
    """A lean POP3 client: whole responses, found with bytes.find on a growing buffer."""

    def __init__(self, port: int, tls: bool):
        sock = socket.create_connection((HOST, port), timeout=60)
        # Pipelined RETRs are small writes behind unacknowledged ones: no Nagle delay for them.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            sock = ctx.wrap_socket(sock)
        self.sock = sock
        self.buffer = bytearray()
        self.received = 0

    def _fill(self) -> None:
        chunk = self.sock.recv(1 << 18)
        if not chunk:
            raise ConnectionError("server closed the connection")
        self.received += len(chunk)
        self.buffer += chunk

    def line(self) -> bytes:
        while (end := self.buffer.find(b"\r\n")) < 0:
            self._fill()
        line = bytes(self.buffer[:end])
        del self.buffer[: end + 2]
        if not line.startswith(b"+OK"):
            raise RuntimeError(f"server said {line[:80]!r}")
        return line

    def body(self) -> bytes:
        """A multi-line body, still dot-stuffed, without the terminating line."""
        start = 0
        while True:
            if self.buffer.startswith(b".\r\n"):
                del self.buffer[:3]
                return b""
            end = self.buffer.find(b"\r\n.\r\n", start)
            if end >= 0:
                body = bytes(self.buffer[: end + 2])
                del self.buffer[: end + 5]
                return body
            start = max(0, len(self.buffer) - 4)
            self._fill()

    def command(self, text: str) -> bytes:
        self.sock.sendall(text.encode() + b"\r\n")
        return self.line()


@dataclass
class Session:
    messages: int = 0
    octets: int = 0  # message octets as LIST reported them
    wire: int = 0  # everything received, protocol lines included
    seconds: float = 0.0
    stat_seconds: float = 0.0  # from sending STAT to its answer
    error: str = ""


def unstuff(body: bytes) -> bytes:
    return b"\r\n".join(line[1:] if line.startswith(b".") else line for line in body.split(b"\r\n"))


def session(port: int, tls: bool, address: str, key: str, first: bytes, pipeline: int, out: Session) -> None:
    started = time.perf_counter()
    try:
        client = Pop3(port, tls)
        client.line()
        client.command(f"USER {address}")
        client.command(f"PASS {key}")
        asked = time.perf_counter()
        count = int(client.command("STAT").split()[1])
        out.stat_seconds = time.perf_counter() - asked
        client.command("UIDL")
        client.body()
        client.command("LIST")
        sizes = [int(line.split()[1]) for line in client.body().splitlines()]
        sent = 0
        for number in range(1, count + 1):
            while sent < min(count, number - 1 + pipeline):
                sent += 1
                client.sock.sendall(f"RETR {sent}\r\n".encode())
            status = client.line()
            body = client.body()
            size = sizes[number - 1]
            if int(status.split()[1]) != size:
                raise RuntimeError(f"RETR {number}: size {status!r}, LIST said {size}")
            if number == 1 and first and unstuff(body) != first:
                raise RuntimeError("message 1 differs from what was delivered")
            out.messages += 1
            out.octets += size
        client.command("QUIT")
        out.wire = client.received
    except Exception as exc:  # reported, never hidden
        out.error = f"{address}: {exc}"
    out.seconds = time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--messages", type=int, default=1000, help="messages in every maildrop")
    parser.add_argument("--size", type=int, default=4096, help="octets per message")
    parser.add_argument("--pipeline", type=int, default=1, help="RETR commands in flight per session")
    parser.add_argument("--tls", action="store_true", help="use port 995 (implicit TLS)")
    parser.add_argument("--rounds", type=int, default=1, help="download everything this many times")
    parser.add_argument("--without-sizes", action="store_true",
                        help="clear the stored POP3 sizes first (mail stored before alembic 0009)")
    parser.add_argument("--admin-dsn", default="host=127.0.0.1 port=5432 user=postgres dbname=postgres")
    args = parser.parse_args()

    db = Database(args.admin_dsn)
    data_dir = Path(tempfile.mkdtemp(prefix="relate-pop3-bench-"))
    print(f"POP3 benchmark: {args.clients} clients x {args.messages} messages of {args.size} octets, "
          f"{'TLS' if args.tls else 'plaintext'}, pipeline {args.pipeline}", flush=True)
    print(f"  {' '.join([Path(sys.executable).name, *sys.argv])}", flush=True)
    db.create()
    proc = None
    try:
        db.fast_commits(True)
        users, first = populate(db, data_dir, args.clients, args.messages, args.size)
        if args.without_sizes:
            db.forget_sizes()
        db.fast_commits(False)
        proc, port, tls_port, log_path = start_daemon(db, data_dir)
        for round_number in range(1, args.rounds + 1):
            cpu_before = cpu_seconds(proc.pid)
            own_before = time.process_time()
            results = [Session() for _ in users]
            load_before = os.getloadavg()[0]
            started = time.perf_counter()
            greenlets = [
                gevent.spawn(session, tls_port if args.tls else port, args.tls, address, key, first, args.pipeline, out)
                for (address, key), out in zip(users, results, strict=True)
            ]
            gevent.joinall(greenlets)
            wall = time.perf_counter() - started
            cpu = cpu_seconds(proc.pid) - cpu_before
            own = time.process_time() - own_before
            errors = [r.error for r in results if r.error]
            total = sum(r.messages for r in results)
            octets = sum(r.octets for r in results)
            wire = sum(r.wire for r in results)
            print(f"\nround {round_number}: {total} messages, {octets / 1e6:.1f} MB in {wall:.2f}s")
            print(f"  messages/s        {total / wall:10.0f}")
            print(f"  message octets/s  {octets / wall / 1e6:10.2f} MB/s")
            print(f"  wire octets/s     {wire / wall / 1e6:10.2f} MB/s (everything received)")
            print(f"  per session       {statistics.mean(r.seconds for r in results):10.2f}s mean, "
                  f"{max(r.seconds for r in results):.2f}s slowest")
            print(f"  STAT              {statistics.mean(r.stat_seconds for r in results) * 1e3:10.1f} ms mean, "
                  f"{max(r.stat_seconds for r in results) * 1e3:.1f} ms slowest")
            print(f"  daemon CPU        {cpu:10.2f}s ({cpu / wall * 100:.0f}% of one core, "
                  f"{cpu / max(total, 1) * 1e6:.0f} µs per message)")
            print(f"  client CPU        {own:10.2f}s ({own / wall * 100:.0f}% of one core, all {len(users)} clients)")
            print(f"  load average      {load_before:10.2f} before, {os.getloadavg()[0]:.2f} after")
            for error in errors:
                print(f"  ERROR {error}")
            if errors:
                print(log_path.read_text()[-3000:])
                return 1
        return 0
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(30)
        db.drop()
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
