"""API benchmark: a 100,000-message mailbox on PostgreSQL, 20 concurrent clients over real HTTP.

What it does, and stops by itself:
1. creates a dedicated PostgreSQL database (dropped at the end unless --keep), migrates it,
   creates one user with an api:read key;
2. fills the user's INBOX with --messages generated messages (varied senders, subjects and
   bodies drawn from a Zipf-distributed vocabulary) through relate.store.bulkload;
3. starts `gunicorn -k gevent webapp.wsgi:app` on 127.0.0.1 (rate limits off unless
   --rate-limit is given: then both limits are that many requests per minute, so the
   bookkeeping is paid on every request without refusing any);
4. runs --clients concurrent clients with keep-alive connections, listing a page of 50 (a
   random page among the first ten of INBOX), then searching (`q` = one word found in 0.2-2%
   of the messages, all mailboxes). By default each client sends its next request as soon as
   it has the answer (back to back: the server's saturation); with --interval each is also
   run paced (every client starts a request every --interval seconds; latency counts from
   when the request was due);
5. prints p50 / p99 / mean latency and throughput of each, with the CPU time per request of
   the gunicorn workers, of the PostgreSQL backends serving them and of this load generator
   (read from /proc, so it holds on a machine shared with other work where wall-clock figures
   do not), and how to reproduce them. The targets (p99 under 50 ms for the list, 150 ms for
   the search) are judged on the back-to-back runs; the exit status is 1 when one is missed.
   With --profile PATH every gunicorn worker is recorded with py-spy during each run
   (PATH-<test>-<busy or paced>-<worker>.txt, collapsed stacks: `-f raw`).

Run: .venv/bin/python bench/api_bench.py [--admin-dsn "host=127.0.0.1 port=5432 user=postgres dbname=postgres"]
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import datetime as dt  # noqa: E402
import http.client  # noqa: E402
import itertools  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import resource  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import TypeVar  # noqa: E402

import gevent  # noqa: E402
import psycopg2  # noqa: E402
from common import child_pids  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from relate import store  # noqa: E402
from relate.config import load_settings  # noqa: E402
from relate.store import accounts, bulkload, keys, mailboxes  # noqa: E402

DEFAULT_ADMIN_DSN = os.environ.get("RELATE_BENCH_ADMIN_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=postgres")
VOCABULARY = 6000  # distinct body words
SENDERS = 800
SEED = 20261128


def word(i: int) -> str:
    """A pronounceable, distinct word for rank i."""
    consonants, vowels = "bcdfghklmnprstvz", "aeiou"
    out = []
    n = i + 7
    while True:
        out.append(consonants[n % 16] + vowels[(n // 16) % 5])
        n //= 80
        if n == 0:
            break
    return "".join(out) + ("" if i % 3 else "x")


WORDS = [word(i) for i in range(VOCABULARY)]
# Zipf: rank r is drawn with probability proportional to 1/r (cumulative weights for choices()).
CUMULATIVE = list(itertools.accumulate(1.0 / (r + 1) for r in range(VOCABULARY)))
SUBJECT_WORDS = 2000


def message(i: int, rnd: random.Random, when: dt.datetime) -> bytes:
    sender = rnd.randrange(SENDERS)
    subject = " ".join(rnd.choices(WORDS[:SUBJECT_WORDS], cum_weights=CUMULATIVE[:SUBJECT_WORDS],
                                   k=rnd.randint(3, 8))).capitalize()
    lines = []
    for _ in range(rnd.randint(3, 12)):
        lines.append(" ".join(rnd.choices(WORDS, cum_weights=CUMULATIVE, k=rnd.randint(6, 14))).capitalize() + ".")
    body = "\r\n".join(lines)
    return (
        f"From: Sender {sender} <sender{sender}@example.com>\r\n"
        "To: Bench User <bench@relate.test>\r\n"
        f"Subject: {subject}\r\n"
        f"Date: {when.strftime('%a, %d %b %Y %H:%M:%S +0000')}\r\n"
        f"Message-ID: <bench.{i}.{SEED}@example.com>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "\r\n"
        f"{body}\r\n"
    ).encode()


def items(count: int) -> Iterator[bulkload.Item]:
    rnd = random.Random(SEED)
    start = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=count)
    for i in range(count):
        when = start + dt.timedelta(minutes=i)
        flags = ["\\Seen"] if rnd.random() < 0.9 else []
        yield bulkload.Item(message(i, rnd, when), flags, when, f"sender{i % SENDERS}@example.com")


def admin(dsn: str, sql: str) -> None:
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()


def url_for(dsn: str, name: str) -> str:
    parts = dict(p.split("=", 1) for p in dsn.split())
    auth = parts.get("user", "postgres") + (":" + parts["password"] if parts.get("password") else "")
    return f"postgresql+psycopg2://{auth}@{parts.get('host', '127.0.0.1')}:{parts.get('port', '5432')}/{name}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def load(url: str, count: int) -> str:
    """Migrate, create the user and fill INBOX; returns an api:read key."""
    settings = load_settings({"ConnectionStrings__DefaultConnection": url, "Database__AutoMigrate": "true"})
    store.open_store(settings, migrate=True, pool_size=2)
    user = accounts.create_user("bench@relate.test", "Bench User")
    inbox = mailboxes.get_mailbox(user.id, "INBOX")
    started = time.monotonic()
    done = 0
    batch = 1000
    source = items(count)
    while done < count:
        chunk = [next(source) for _ in range(min(batch, count - done))]
        done += bulkload.append_many(user.id, inbox.id, chunk, batch=batch)
        rate = done / (time.monotonic() - started)
        print(f"\r  loaded {done:,}/{count:,} messages ({rate:,.0f}/s)", end="", flush=True)
    print()
    _, key = keys.create_key(user.id, "bench", "api:read")
    store.close_store()
    return key


def new_key(url: str) -> str:
    settings = load_settings({"ConnectionStrings__DefaultConnection": url, "Database__AutoMigrate": "false"})
    store.open_store(settings, pool_size=2)
    user = accounts.find_user("bench@relate.test")
    if user is None:
        raise SystemExit("that database has no bench user")
    _, key = keys.create_key(user.id, "bench", "api:read")
    store.close_store()
    return key


def vacuum(dsn: str, name: str) -> None:
    parts = dict(p.split("=", 1) for p in dsn.split())
    parts["dbname"] = name
    admin(" ".join(f"{k}={v}" for k, v in parts.items()), "VACUUM ANALYZE")


def search_terms(url: str, wanted: int = 20) -> list[str]:
    """Words found in roughly 0.2% to 2% of the messages (a realistic, selective search)."""
    parts = url.split("//", 1)[1]
    auth, rest = parts.split("@", 1)
    hostport, name = rest.split("/", 1)
    host, port = hostport.split(":")
    conn = psycopg2.connect(host=host, port=port, user=auth.split(":")[0], dbname=name)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM entries")
            total = cur.fetchone()[0]
            cur.execute(
                "SELECT word FROM ts_stat($$SELECT to_tsvector('simple', search_text) FROM message_bodies$$) "
                "WHERE ndoc BETWEEN %s AND %s AND length(word) >= 5 ORDER BY word",
                (max(1, total // 500), max(2, total // 50)),
            )
            found = [r[0] for r in cur.fetchall()]
    finally:
        conn.close()
    random.Random(SEED).shuffle(found)
    return found[:wanted]


def start_server(url: str, port: int, workers: int, rate_limit: int, root: Path = ROOT) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "ConnectionStrings__DefaultConnection": url,
        "Database__AutoMigrate": "false",
        "Api__RateLimitPerIp": str(rate_limit),
        "Api__RateLimitPerUser": str(rate_limit),
        "Logging__Level": "WARNING",
        "PYTHONPATH": str(root),
    }
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    cmd = [gunicorn, "-k", "gevent", "--workers", str(workers), "--bind", f"127.0.0.1:{port}",
           "--worker-connections", "1000", "--log-level", "warning", "webapp.wsgi:app"]
    proc = subprocess.Popen(cmd, env=env, cwd=root)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200:
                conn.close()
                return proc
        except OSError:
            pass
        if proc.poll() is not None:
            raise SystemExit("gunicorn exited before it was ready")
        time.sleep(0.2)
    proc.terminate()
    raise SystemExit("gunicorn did not become ready")


def wait_for_workers(server_pid: int, port: int, workers: int) -> None:
    """Until every worker accepts connections: /readyz answers as soon as one has started, and
    a worker still importing the application when the clients connect gets none of them."""
    seen: set[int] = set()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        probe = socket.create_connection(("127.0.0.1", port), timeout=2)
        try:
            for _ in range(50):
                owner = connection_owners(port).get(probe.getsockname()[1])
                if owner:
                    seen.add(owner)
                    break
                time.sleep(0.01)
        finally:
            probe.close()
        if len(seen) >= workers:
            return
    raise SystemExit(f"only {len(seen)} of {workers} gunicorn workers accept connections")


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
T = TypeVar("T")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime (fields 14 and 15)


def children(pid: int) -> list[int]:
    """The gunicorn workers: child processes of the master."""
    return child_pids(pid)


def backends(url: str) -> list[int]:
    """Process ids of the PostgreSQL backends connected to the benchmark's database."""
    conn = psycopg2.connect(url.replace("postgresql+psycopg2://", "postgresql://"))
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                        "AND pid <> pg_backend_pid()")
            return [int(r[0]) for r in cur.fetchall()]
    finally:
        conn.close()


class CpuMeter:
    """CPU seconds spent by the workers, their database backends and this process over a run.

    The backends are sampled every SAMPLE_EVERY seconds during the run: one that appears
    counts from zero (connecting is part of the cost), one that goes away counts what it had
    at its last sample."""

    SAMPLE_EVERY = 0.2

    def __init__(self, server_pid: int, url: str):
        self.server_pid = server_pid
        self.url = url

    def _own(self) -> float:
        own = resource.getrusage(resource.RUSAGE_SELF)
        return own.ru_utime + own.ru_stime

    def measure(self, work: Callable[[], T]) -> tuple[T, dict[str, float]]:
        """Run `work`; its result and the CPU seconds spent meanwhile by each kind of process."""
        workers = {pid: cpu_seconds(pid) for pid in children(self.server_pid)}
        first = {pid: cpu_seconds(pid) for pid in backends(self.url)}
        last = dict(first)
        own = self._own()
        done = False

        def sample() -> None:
            while not done:
                gevent.sleep(self.SAMPLE_EVERY)
                for pid in backends(self.url):
                    seconds = cpu_seconds(pid)
                    if seconds:
                        first.setdefault(pid, 0.0)
                        last[pid] = seconds

        sampler = gevent.spawn(sample)
        try:
            result = work()
        finally:
            done = True
            sampler.join()
        for pid in backends(self.url):
            seconds = cpu_seconds(pid)
            if seconds:
                first.setdefault(pid, 0.0)
                last[pid] = seconds
        spent = {
            "worker": sum(cpu_seconds(pid) - then for pid, then in workers.items()),
            "postgres": sum(last[pid] - first[pid] for pid in last),
            "client": self._own() - own,
            "connections": float(len(last)),
        }
        return result, spent


class Client:
    """One keep-alive HTTP/1.1 connection, as lean as a client can be (a request is one send,
    an answer is read by its Content-Length), so that the load generator takes as little of
    the machine's CPU as it can from the server it measures. http.client spends about twice
    as much per request (its header parsing alone)."""

    def __init__(self, port: int, headers: dict[str, str], timeout: float = 30.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.head = "".join(f"{k}: {v}\r\n" for k, v in {"Host": f"127.0.0.1:{port}", **headers}.items())
        self.buffer = b""

    def get(self, path: str) -> tuple[int, bytes]:
        """(status, body) of GET path."""
        self.sock.sendall(f"GET {path} HTTP/1.1\r\n{self.head}\r\n".encode())
        while (end := self.buffer.find(b"\r\n\r\n")) < 0:
            self._fill()
        head, self.buffer = self.buffer[:end].decode("latin-1"), self.buffer[end + 4:]
        status = int(head.split(" ", 2)[1])
        length = next((int(line.split(":", 1)[1]) for line in head.split("\r\n")[1:]
                       if line.lower().startswith("content-length:")), None)
        if length is None:
            raise SystemExit(f"{path}: HTTP {status} without Content-Length")
        while len(self.buffer) < length:
            self._fill()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return status, body

    def _fill(self) -> None:
        data = self.sock.recv(262144)
        if not data:
            raise SystemExit("the server closed the connection")
        self.buffer += data

    def close(self) -> None:
        self.sock.close()


def run(port: int, key: str, paths: list[str], clients: int, per_client: int, warmup: int,
        interval: float | None) -> tuple[list[float], float]:
    """Latencies (ms) of `clients` x `per_client` requests, and the wall time they took.

    interval None: each client sends its next request as soon as it has the last answer
    (saturation). Otherwise each client starts one request every `interval` seconds, and a
    request's latency counts from when it was due, so a slow answer that delays the next
    request is charged to it too (no coordinated omission)."""
    latencies: list[float] = []
    by_port: dict[int, list[float]] = {}
    headers = {"Authorization": f"Bearer {key}"}

    def client(n: int) -> None:
        rnd = random.Random(n)
        conn = Client(port, headers)
        mine = by_port.setdefault(conn.sock.getsockname()[1], [])
        due = time.perf_counter() + (rnd.random() * interval if interval else 0.0)
        for i in range(warmup + per_client):
            path = rnd.choice(paths)
            if interval:
                gevent.sleep(max(0.0, due - time.perf_counter()))
            t0 = due if interval else time.perf_counter()
            status, body = conn.get(path)
            elapsed = (time.perf_counter() - t0) * 1000
            if status != 200:
                raise SystemExit(f"{path}: HTTP {status}: {body[:200]!r}")
            if i >= warmup:
                latencies.append(elapsed)
                mine.append(elapsed)
            if interval:
                due += interval
        conn.close()

    started = time.perf_counter()
    greenlets = [gevent.spawn(client, n) for n in range(clients)]
    owners: dict[int, int] = {}
    deadline = time.perf_counter() + 10
    while time.perf_counter() < deadline and not (len(by_port) == clients and set(by_port) <= set(owners)):
        gevent.sleep(0.2)
        owners = connection_owners(port)
    gevent.joinall(greenlets, raise_error=True)
    wall = time.perf_counter() - started
    per_worker: dict[int, list[float]] = {}
    for client_port, found in by_port.items():
        per_worker.setdefault(owners.get(client_port, 0), []).extend(found)
    print("connections and p50 / p99 per worker: " + ", ".join(
        f"{sum(1 for p in by_port if owners.get(p, 0) == pid)} ({_percentile(found, 0.5):.1f} / {_percentile(found, 0.99):.1f} ms)"
        for pid, found in sorted(per_worker.items())))
    return latencies, wall


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))] if ordered else 0.0


def connection_owners(port: int) -> dict[int, int]:
    """Client port -> process id of the gunicorn worker that accepted the connection (ss -tnp)."""
    out = subprocess.run(["ss", "-tnpH", "state", "established", f"( sport = :{port} )"],
                         capture_output=True, text=True).stdout
    owners = {}
    for line in out.splitlines():
        fields = line.split()
        found = re.search(r"pid=(\d+)", line)
        if len(fields) >= 4 and found:
            owners[int(fields[3].rsplit(":", 1)[1])] = int(found.group(1))
    return owners


def report(name: str, latencies: list[float], wall: float, target: float, cpu: dict[str, float], sent: int) -> bool:
    """Print one run's line; `cpu` is CPU seconds spent over the `sent` requests (warm-up included)."""
    ordered = sorted(latencies)
    p50 = ordered[len(ordered) // 2]
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    ok = p99 < target
    per = {kind: seconds * 1000 / sent for kind, seconds in cpu.items() if kind != "connections"}
    print(f"{name:<34} n={len(ordered):<5} p50={p50:7.1f} ms  p99={p99:7.1f} ms  mean={statistics.mean(ordered):6.1f} ms"
          f"  {len(ordered) / wall:5.0f} req/s  p99 < {target:.0f} ms: {'met' if ok else 'MISSED'}\n"
          f"{'':<34} CPU per request: workers {per['worker']:.2f} ms, PostgreSQL {per['postgres']:.2f} ms, "
          f"load generator {per['client']:.2f} ms ({cpu.get('connections', 0):.0f} database connections seen)")
    return ok


def profilers(server_pid: int, path: str) -> list[subprocess.Popen[bytes]]:
    """py-spy recording each gunicorn worker (non-blocking sampling) until it is interrupted."""
    spy = str(Path(sys.executable).with_name("py-spy"))
    return [
        subprocess.Popen([spy, "record", "-p", str(pid), "-r", "200", "--nonblocking", "-f", "raw",
                          "-o", f"{path}-{n}.txt"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for n, pid in enumerate(sorted(children(server_pid)), start=1)
    ]


def measure(name: str, meter: CpuMeter, port: int, key: str, paths: list[str], args: argparse.Namespace,
            interval: float | None, target: float, profile: str = "") -> bool:
    spies = profilers(meter.server_pid, profile) if profile else []
    try:
        (latencies, wall), cpu = meter.measure(
            lambda: run(port, key, paths, args.clients, args.requests, WARMUP, interval)
        )
    finally:
        for spy in spies:
            spy.send_signal(signal.SIGINT)  # py-spy writes its file when interrupted
        for spy in spies:
            spy.wait()
    if spies:
        print(f"profiles: {profile}-<worker>.txt")
    return report(name, latencies, wall, target, cpu, args.clients * (args.requests + WARMUP))


WARMUP = 5  # requests per client before measuring


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--admin-dsn", default=DEFAULT_ADMIN_DSN, help="libpq DSN of a PostgreSQL superuser")
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--requests", type=int, default=150, help="measured requests per client and test")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--interval", type=float, default=None,
                        help="also run paced: seconds between the starts of one client's requests (e.g. 0.2)")
    parser.add_argument("--rate-limit", type=int, default=0,
                        help="Api__RateLimitPerIp and Api__RateLimitPerUser (requests per minute; 0: off)")
    parser.add_argument("--only", choices=("list", "search"), help="run one of the two tests")
    parser.add_argument("--profile", metavar="PATH", default="",
                        help="record the workers with py-spy during each run: PATH-<test>-<mode>-<worker>.txt")
    parser.add_argument("--keep", action="store_true", help="keep the database (its name is printed)")
    parser.add_argument("--reuse", metavar="DATABASE", help="run against a database kept by an earlier --keep run")
    parser.add_argument("--root", metavar="CHECKOUT", type=Path, default=ROOT,
                        help="serve the API from another checkout (before/after comparisons; its schema must match)")
    args = parser.parse_args()

    name = args.reuse or f"relate_bench_{uuid.uuid4().hex[:8]}"
    url = url_for(args.admin_dsn, name)
    if not args.reuse:
        admin(args.admin_dsn, f"CREATE DATABASE {name}")
    server = None
    try:
        if args.reuse:
            key = new_key(url)
        else:
            print(f"database {name}: loading {args.messages:,} messages")
            key = load(url, args.messages)
            vacuum(args.admin_dsn, name)
        terms = search_terms(url)
        port = free_port()
        server = start_server(url, port, args.workers, args.rate_limit, args.root)
        wait_for_workers(server.pid, port, args.workers)
        meter = CpuMeter(server.pid, url)
        pages = [f"/api/emails?mailbox=INBOX&pageSize=50&page={p}" for p in range(1, 11)]
        searches = [f"/api/emails/search?q={t}&pageSize=50" for t in terms]
        print(f"{args.clients} clients x {args.requests} requests each, gunicorn -k gevent x {args.workers} workers, "
              f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; search words: {', '.join(terms[:5])}, ..."
              + (f"; rate limits {args.rate_limit}/min" if args.rate_limit else ""))
        ok = True
        tests = [("list (page of 50)", "list", pages, 50.0), ("full-text search (q)", "search", searches, 150.0)]
        for label, kind, paths, target in tests:
            if args.only not in (None, kind):
                continue
            profile = f"{args.profile}-{kind}" if args.profile else ""
            ok &= measure(f"{label}, back to back", meter, port, key, paths, args, None, target,
                          f"{profile}-busy" if profile else "")
            if args.interval:
                measure(f"{label}, paced {args.interval * 1000:.0f} ms", meter, port, key, paths, args,
                        args.interval, target, f"{profile}-paced" if profile else "")
        print(f"reproduce: .venv/bin/python bench/api_bench.py --messages {args.messages} --clients {args.clients} "
              f"--requests {args.requests} --workers {args.workers}"
              + (f" --interval {args.interval}" if args.interval else "")
              + (f" --rate-limit {args.rate_limit}" if args.rate_limit else "")
              + (f" --only {args.only}" if args.only else ""))
        print(f"load average at the end {os.getloadavg()[0]:.1f}")
        return 0 if ok else 1
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
        if args.keep or args.reuse:
            print(f"kept database {name}")
        else:
            admin(args.admin_dsn, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


if __name__ == "__main__":
    raise SystemExit(main())
