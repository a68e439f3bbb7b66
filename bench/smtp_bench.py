"""SMTP benchmark: Relate Mail's submission daemon on PostgreSQL against Postfix, same load, same run.

    .venv/bin/python bench/smtp_bench.py [--clients 20] [--messages 50] [--size 4096] [--idle 1000]

What it does, all on 127.0.0.1, and then stops by itself:

1. Starts a private PostgreSQL cluster (stock durability: fsync and synchronous_commit on; or
   uses --admin-dsn), creates a database, migrates it, adds the domain bench.test with one
   sender and --recipients recipient users, and an `smtp` API key for the sender.
2. Starts `python -m relate.smtpd` on free ports (Tls__AllowInsecureAuth=true: the load is
   plaintext for both servers, so TLS cost is not part of the comparison).
3. Runs the load: --clients concurrent sessions, each EHLO, AUTH PLAIN (when offered), then
   --messages messages of --size octets (MAIL, RCPT, DATA), then QUIT, after a short warm-up.
   It records the time from the final "." to the 250 of every message and checks that every
   message that got 250 is stored, exactly once, in its recipient's INBOX (and that the
   sender's Sent has one copy of each). Then it waits until the daemon's search indexer
   (relate.store.searchindex) has indexed every stored body, and reports how long after the
   last 250 that was, and the CPU per message of the daemon and PostgreSQL both during the
   load and until then.
4. Opens --idle connections (EHLO done) and reads the daemon's resident memory.
5. Runs Postfix's smtp-source against Relate's MX port (smtp-source cannot authenticate), all
   messages to one recipient, twice: first as smtp-source does by default, one session per
   message (connect, EHLO, MAIL, RCPT, DATA, QUIT, for every message), then with
   `smtp-source -d`: --clients sessions, each sending its share of the messages over one
   connection, which is the load's shape. Both send --clients x --messages messages, --clients
   at a time. It counts the connections the server accepted during each run (from the
   daemon's log, and from Postfix's maillog) and checks that every message is in the INBOX.
6. Starts a private Postfix (its own config and queue in the work directory, a free port,
   every transport `discard:`), runs the same load against it, then smtp-source both ways.
7. Prints one table: messages per second, p50/p99 time to 250, the CPU seconds of the
   server processes (and of PostgreSQL, for Relate). Postfix and smtp-source come from
   Debian's `postfix` package; nothing listens beyond loopback, and everything it started
   is stopped before it exits.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import base64  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402
import gevent.pool  # noqa: E402
import psycopg2  # noqa: E402
from common import child_pids  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DOMAIN = "bench.test"
SENDER = f"sender@{DOMAIN}"  # smtp-source's sender; the load's senders are sender0@, sender1@, ...
HOST = "127.0.0.1"
CLK_TCK = os.sysconf("SC_CLK_TCK")
INDEX_POLL = 0.05  # seconds between looks at the search indexer's backlog
NAME_WIDTH = 48  # the table's first column


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 30.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with status {proc.returncode}")
        try:
            with socket.create_connection((HOST, port), timeout=1) as s:
                s.recv(512)
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listening on {HOST}:{port}")


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of the processes (and their waited-for children)."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(v) for v in fields[11:15]) / CLK_TCK  # utime stime cutime cstime
    return total


def postgres_pids(admin_dsn: str) -> list[int]:
    """The PostgreSQL server's processes (postmaster and children), when this user can see them."""
    try:
        conn = psycopg2.connect(admin_dsn)
        cur = conn.cursor()
        cur.execute("SHOW data_directory")
        directory = cur.fetchone()[0]
        conn.close()
        postmaster = int((Path(directory) / "postmaster.pid").read_text().split()[0])
    except (OSError, psycopg2.Error, ValueError, IndexError, TypeError):
        return []
    return descendants(postmaster)


class PrivateCluster:
    """A PostgreSQL cluster of the benchmark's own (stock durability settings: fsync and
    synchronous_commit on), so its CPU time is the benchmark's alone."""

    def __init__(self, workdir: Path) -> None:
        candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[4]))
        initdb = str(candidates[-1]) if candidates else shutil.which("initdb")
        if initdb is None:
            raise RuntimeError("no PostgreSQL binaries (initdb) found; pass --admin-dsn")
        self.bindir = Path(initdb).parent
        self.dir = workdir / "pg"
        self.dir.mkdir()
        self.port = free_port()
        self.as_root = os.geteuid() == 0
        if self.as_root:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run("initdb", "-D", str(self.dir / "data"), "-U", "postgres", "-A", "trust", "-E", "UTF8")
        self._run("pg_ctl", "-D", str(self.dir / "data"), "-l", str(self.dir / "log"), "-w", "-o",
                  f"-p {self.port} -k {self.dir} -c listen_addresses={HOST} -c max_connections=200", "start")

    @property
    def dsn(self) -> str:
        return f"host={HOST} port={self.port} user=postgres dbname=postgres"

    def _run(self, tool: str, *args: str) -> None:
        cmd = [str(self.bindir / tool), *args]
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120)

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.dir / "data"), "-m", "fast", "-w", "stop")
        except (subprocess.SubprocessError, OSError) as exc:
            print(f"stopping the benchmark's PostgreSQL failed: {exc}", file=sys.stderr)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def descendants(pid: int) -> list[int]:
    """pid and every process below it (Postfix's master forks its services)."""
    return [pid, *(below for child in child_pids(pid) for below in descendants(child))]


# --- the load ----------------------------------------------------------------------------


def make_message(message_id: str, sender: str, recipient: str, size: int) -> bytes:
    head = (
        f"From: Bench Sender <{sender}>\r\nTo: <{recipient}>\r\nSubject: benchmark {message_id}\r\n"
        f"Message-ID: <{message_id}>\r\nDate: Sat, 28 Nov 2026 10:00:00 +0000\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
    ).encode()
    line = b"The quick brown fox jumps over the lazy dog and keeps running around. 0123\r\n"
    body = line * max(1, (size - len(head)) // len(line))
    return head + body


class Line:
    """A minimal SMTP client connection: send lines, read (multi-line) replies."""

    def __init__(self, port: int, source: str = HOST):
        self.sock = socket.create_connection((HOST, port), timeout=60, source_address=(source, 0))
        self.buffer = b""

    def reply(self) -> tuple[int, list[bytes]]:
        lines = []
        while True:
            while b"\r\n" not in self.buffer:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError("server closed the connection")
                self.buffer += chunk
            line, self.buffer = self.buffer.split(b"\r\n", 1)
            lines.append(line)
            if len(line) < 4 or line[3:4] != b"-":
                return int(line[:3]), lines

    def command(self, text: bytes, expect: int) -> list[bytes]:
        self.sock.sendall(text + b"\r\n")
        code, lines = self.reply()
        if code != expect:
            raise RuntimeError(f"{text[:40]!r} -> {b' '.join(lines)!r}")
        return lines

    def close(self) -> None:
        self.sock.close()


@dataclass
class LoadResult:
    sent: list[str] = field(default_factory=list)  # Message-IDs that got 250
    latencies: list[float] = field(default_factory=list)  # seconds from the final dot to 250
    errors: list[str] = field(default_factory=list)
    wall: float = 0.0
    client_cpu: float = 0.0  # this process's CPU seconds during the load
    last_ack: float = 0.0  # time.perf_counter() of the last 250


def client_session(port: int, client: int, count: int, size: int, recipients: list[str],
                   sender: tuple[str, str | None], run_id: str, result: LoadResult) -> None:
    address, key = sender
    try:
        conn = Line(port)
        code, _ = conn.reply()
        if code != 220:
            raise RuntimeError(f"greeting {code}")
        lines = conn.command(b"EHLO bench-client.test", 250)
        if key and any(line[4:].upper().startswith(b"AUTH") for line in lines):
            token = base64.b64encode(f"\0{address}\0{key}".encode()).decode()
            conn.command(f"AUTH PLAIN {token}".encode(), 235)
        for i in range(count):
            recipient = recipients[(client + i) % len(recipients)]
            message_id = f"{run_id}.{client}.{i}@{DOMAIN}"
            data = make_message(message_id, address, recipient, size)
            conn.command(f"MAIL FROM:<{address}>".encode(), 250)
            conn.command(f"RCPT TO:<{recipient}>".encode(), 250)
            conn.command(b"DATA", 354)
            conn.sock.sendall(data + b".\r\n")
            started = time.perf_counter()
            code, lines = conn.reply()
            if code != 250:
                raise RuntimeError(f"end of data -> {b' '.join(lines)!r}")
            acknowledged = time.perf_counter()
            result.latencies.append(acknowledged - started)
            result.last_ack = max(result.last_ack, acknowledged)
            result.sent.append(message_id)
        conn.command(b"QUIT", 221)
        conn.close()
    except Exception as exc:  # reported in the table, never hidden
        result.errors.append(f"client {client}: {exc}")


def run_load(port: int, clients: int, count: int, size: int, recipients: list[str],
             senders: list[tuple[str, str | None]]) -> LoadResult:
    """`clients` sessions at once; client c authenticates as senders[c % len(senders)]."""
    result = LoadResult()
    run_id = uuid.uuid4().hex[:8]
    cpu_before = cpu_seconds([os.getpid()])
    started = time.perf_counter()
    pool = gevent.pool.Pool(clients)
    for client in range(clients):
        pool.spawn(client_session, port, client, count, size, recipients, senders[client % len(senders)], run_id,
                   result)
    pool.join()
    result.wall = time.perf_counter() - started
    result.client_cpu = cpu_seconds([os.getpid()]) - cpu_before
    return result


# smtp-source's two ways of sending: (its -d flag, the label of its rows). Without -d it opens
# a session per message; with -d each of its -s sessions sends message after message.
SMTP_SOURCE_MODES = ((False, "smtp-source, session per message"), (True, "smtp-source -d, long sessions"))


def smtp_source(port: int, clients: int, total: int, size: int, recipient: str, *,
                reuse: bool) -> tuple[float, str]:
    """Postfix's smtp-source as the client, `clients` sessions at a time, `total` messages;
    `reuse`: -d, one connection per session. Returns (seconds, error text)."""
    tool = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
    cmd = [tool, *(["-d"] if reuse else []), "-s", str(clients), "-m", str(total), "-l", str(size),
           "-f", SENDER, "-t", recipient, "-M", "bench-client.test", f"{HOST}:{port}"]
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    return time.perf_counter() - started, (proc.stderr.strip() if proc.returncode else "")


def idle_connections(port: int, count: int) -> list[Line]:
    """`count` sessions that said EHLO and then wait; spread over 127.0.1.x so the per-IP
    connection limit (100 by default) is not what is measured."""
    opened: list[Line] = []

    def open_one(index: int) -> None:
        conn = Line(port, source=f"127.0.1.{1 + index // 50}")
        conn.reply()
        conn.command(b"EHLO idle.test", 250)
        opened.append(conn)

    pool = gevent.pool.Pool(100)
    for index in range(count):
        pool.spawn(open_one, index)
    pool.join(raise_error=True)
    return opened


# --- Relate Mail -------------------------------------------------------------------------


@dataclass
class Relate:
    admin_dsn: str
    recipients: int
    workdir: Path
    dbname: str = field(default_factory=lambda: f"relate_bench_{uuid.uuid4().hex[:8]}")
    proc: subprocess.Popen[bytes] | None = None
    port: int = 0
    mx_port: int = 0
    senders: int = 1
    keys: list[str] = field(default_factory=list)  # one smtp key per sender
    log_level: str = "INFO"
    workers: int = 1  # Network__Workers
    root: Path = ROOT  # the checkout whose daemon runs (--root: a before/after comparison)

    @property
    def url(self) -> str:
        parts = dict(p.split("=", 1) for p in self.admin_dsn.split())
        auth = parts.get("user", "postgres") + (":" + parts["password"] if parts.get("password") else "")
        return f"postgresql://{auth}@{parts.get('host', HOST)}:{parts.get('port', '5432')}/{self.dbname}"

    def addresses(self) -> list[str]:
        return [f"rcpt{i}@{DOMAIN}" for i in range(self.recipients)]

    def sender_addresses(self) -> list[str]:
        return [f"sender{i}@{DOMAIN}" for i in range(self.senders)]

    def setup(self) -> None:
        admin = psycopg2.connect(self.admin_dsn)
        admin.autocommit = True
        admin.cursor().execute(f"CREATE DATABASE {self.dbname}")
        admin.close()
        from relate import store
        from relate.config import load_settings
        from relate.store import accounts, keys

        settings = load_settings({"ConnectionStrings__DefaultConnection": self.url,
                                  "Data__Directory": str(self.workdir)})
        store.open_store(settings, migrate=True, pool_size=2)
        for address in self.sender_addresses():
            sender = accounts.create_user(address, "Bench Sender")
            self.keys.append(keys.create_key(sender.id, "bench", "smtp")[1])
        for address in self.addresses():
            accounts.create_user(address)
        store.close_store()

    def start(self) -> None:
        self.port, self.mx_port = free_port(), free_port()
        env = {
            **os.environ,
            "ConnectionStrings__DefaultConnection": self.url,
            "Database__AutoMigrate": "false",
            "Data__Directory": str(self.workdir),
            "Network__BindAddress": HOST,
            "Smtp__Port": str(self.port),
            "Smtp__SecurePort": "0",
            "Smtp__MxPort": str(self.mx_port),
            "Smtp__ServerName": "relate.bench.test",
            "Tls__AllowInsecureAuth": "true",
            "Pop3__Enabled": "false",
            "Imap__Enabled": "false",
            "Logging__Level": self.log_level,
            "Network__Workers": str(self.workers),
        }
        log = open(self.workdir / "relate-smtpd.log", "wb")  # noqa: SIM115
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(self.root), env.get("PYTHONPATH")]))
        self.proc = subprocess.Popen([sys.executable, "-m", "relate.smtpd"], cwd=self.root, env=env,
                                     stdout=log, stderr=subprocess.STDOUT)
        wait_for_port(self.port, proc=self.proc)
        wait_for_port(self.mx_port, proc=self.proc)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def drop(self) -> None:
        admin = psycopg2.connect(self.admin_dsn)
        admin.autocommit = True
        admin.cursor().execute(f"DROP DATABASE IF EXISTS {self.dbname} WITH (FORCE)")
        admin.close()

    def wait_indexed(self, timeout: float = 600.0) -> tuple[int, float]:
        """Wait until no stored body waits for the search indexer (relate.store.searchindex);
        returns how many waited when called and the time.perf_counter() when none did."""
        conn = psycopg2.connect(self.url)
        conn.autocommit = True
        cur = conn.cursor()
        waiting = None
        deadline = time.perf_counter() + timeout
        try:
            while time.perf_counter() < deadline:
                cur.execute("SELECT count(*) FROM message_bodies WHERE NOT indexed")
                count = cur.fetchone()[0]
                waiting = count if waiting is None else waiting
                if count == 0:
                    return waiting, time.perf_counter()
                time.sleep(INDEX_POLL)
        finally:
            conn.close()
        raise RuntimeError(f"bodies still waiting for the search indexer after {timeout:.0f} s")

    def connections(self) -> int | None:
        """Connections the daemon accepted on its MX port so far (its "connected to" log lines);
        None when its log level hides them."""
        if self.log_level.upper() not in ("DEBUG", "INFO"):
            return None
        log = self.workdir / "relate-smtpd.log"
        return log.read_text(errors="replace").count("connected to smtp-mx ")

    def inbox_count(self, address: str) -> int:
        """Messages in the INBOX of the user with this address."""
        conn = psycopg2.connect(self.url)
        cur = conn.cursor()
        cur.execute(
            "SELECT count(*) FROM entries e JOIN mailboxes m ON m.id = e.mailbox_id "
            "JOIN addresses a ON a.user_id = m.user_id WHERE a.address = %s AND m.name = 'INBOX'",
            (address,),
        )
        count = int(cur.fetchone()[0])
        conn.close()
        return count

    def stored_message_ids(self) -> tuple[dict[str, int], int]:
        """Message-ID -> how many INBOX copies hold it; and the number of Sent copies."""
        conn = psycopg2.connect(self.url.replace("postgresql://", "postgresql://", 1))
        cur = conn.cursor()
        cur.execute(
            "SELECT b.raw, m.name FROM entries e JOIN mailboxes m ON m.id = e.mailbox_id "
            "JOIN message_bodies b ON b.id = e.body_id"
        )
        inbox: dict[str, int] = {}
        sent = 0
        for raw, mailbox in cur:
            data = bytes(raw)
            start = data.find(b"Message-ID: <") + len(b"Message-ID: <")
            message_id = data[start : data.index(b">", start)].decode()
            if mailbox == "INBOX":
                inbox[message_id] = inbox.get(message_id, 0) + 1
            elif mailbox == "Sent":
                sent += 1
        conn.close()
        return inbox, sent


# --- Postfix -----------------------------------------------------------------------------

MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {dir}/queue
data_directory = {dir}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix.bench.test
mydomain = bench.test
myorigin = $myhostname
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relay_domains = {domain}
smtpd_relay_restrictions = permit_mynetworks, reject
smtpd_recipient_restrictions = permit_mynetworks, reject
smtpd_peername_lookup = no
smtp_dns_support_level = disabled
default_transport = discard:
relay_transport = discard:
local_transport = discard:
virtual_transport = discard:
default_process_limit = 200
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
smtpd_client_message_rate_limit = 0
maillog_file_prefixes = {dir}
maillog_file = {dir}/maillog
alternate_config_directories = {dir}
"""

MASTER_CF = """\
{port} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


@dataclass
class Postfix:
    workdir: Path
    port: int
    master_pid: int = 0

    @property
    def config(self) -> Path:
        return self.workdir / "postfix"

    def _postfix(self, *args: str) -> None:
        subprocess.run(["postfix", "-c", str(self.config), *args], check=True, capture_output=True, timeout=60)

    def start(self) -> None:
        (self.config / "queue").mkdir(parents=True)
        (self.config / "data").mkdir()
        shutil.chown(self.config / "data", "postfix")
        (self.config / "main.cf").write_text(MAIN_CF.format(dir=self.config, domain=DOMAIN))
        (self.config / "master.cf").write_text(MASTER_CF.format(port=f"{HOST}:{self.port}"))
        self._postfix("check")
        self._postfix("start")
        wait_for_port(self.port)
        pid_file = self.config / "queue" / "pid" / "master.pid"
        self.master_pid = int(pid_file.read_text().split()[0])

    def stop(self) -> None:
        try:
            self._postfix("stop")
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            print(f"postfix stop failed: {exc}", file=sys.stderr)

    def connections(self) -> int:
        """Connections Postfix's smtpd accepted so far (its "connect from" log lines)."""
        log = self.config / "maillog"
        return len(re.findall(r": connect from ", log.read_text(errors="replace"))) if log.exists() else 0

    def discarded(self) -> int:
        log = self.config / "maillog"
        return log.read_text(errors="replace").count("status=sent (") if log.exists() else 0


# --- the run -----------------------------------------------------------------------------


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def describe(name: str, result: LoadResult, cpu: float, db_cpu: float | None = None) -> str:
    sent = len(result.sent)
    rate = sent / result.wall if result.wall else 0.0
    p50 = statistics.median(result.latencies) * 1000 if result.latencies else float("nan")
    p99 = percentile(result.latencies, 0.99) * 1000
    db = f"{db_cpu:>8.1f}" if db_cpu is not None else f"{'-':>8}"
    return f"{name:<{NAME_WIDTH}} {sent:>7} {rate:>10.0f} {p50:>9.1f} {p99:>9.1f} {cpu:>12.1f} {db}"


def source_row(name: str, total: int, seconds: float, cpu: float) -> str:
    """A table row for an smtp-source run (smtp-source reports no per-message times)."""
    return (f"{name:<{NAME_WIDTH}} {total:>7} {total / seconds:>10.0f} {'-':>9} {'-':>9} {cpu:>12.1f} "
            f"{'-':>8}")


def source_note(server: str, flag: bool, clients: int, total: int, connections: int | None, cpu: float) -> str:
    expected = clients if flag else total
    if connections is None:
        counted = "connections not counted (log level above INFO)"
    else:
        verdict = "as expected" if connections == expected else f"EXPECTED {expected}"
        counted = f"{connections} connections accepted for {total} messages ({verdict})"
    return (f"smtp-source{' -d' if flag else ''} -> {server}: {counted}; server CPU {1000 * cpu / total:.2f} ms "
            "per message")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--messages", type=int, default=50, help="messages per client")
    parser.add_argument("--size", type=int, default=4096, help="octets per message")
    parser.add_argument("--recipients", type=int, default=20, help="recipient users in bench.test")
    parser.add_argument("--senders", type=int, default=1,
                        help="sender accounts (client c logs in as sender c %% SENDERS; each has its own Sent)")
    parser.add_argument("--idle", type=int, default=1000, help="idle connections to hold (0 to skip)")
    parser.add_argument("--admin-dsn", default=os.environ.get("RELATE_BENCH_ADMIN_DSN"),
                        help="use this PostgreSQL server (default: a private cluster started for the run)")
    parser.add_argument("--postfix-port", type=int, default=0, help="default: a free port")
    parser.add_argument("--skip-postfix", action="store_true")
    parser.add_argument("--warmup", type=int, default=5, help="messages per client before measuring")
    parser.add_argument("--profile", metavar="PATH", help="record the Relate daemon with py-spy (collapsed stacks)")
    parser.add_argument("--log-level", default="INFO", help="the Relate daemon's Logging__Level")
    parser.add_argument("--workers", type=int, default=1,
                        help="Network__Workers of the Relate daemon (its CPU figures add the workers up)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (daemon log, Postfix files)")
    parser.add_argument("--root", type=Path, default=ROOT,
                        help="the Relate Mail checkout whose daemon runs (a before/after comparison; the database "
                             "is set up by this checkout, so both must share its schema)")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="relate-bench-"))
    workdir.chmod(0o755)  # Postfix's unprivileged processes must reach their directories
    cluster = None if args.admin_dsn else PrivateCluster(workdir)
    admin_dsn = args.admin_dsn or (cluster.dsn if cluster else "")
    relate = Relate(admin_dsn, args.recipients, workdir, senders=args.senders, log_level=args.log_level,
                    root=args.root.resolve(), workers=args.workers)
    rows: list[str] = []
    notes: list[str] = []
    ok = True
    total = args.clients * args.messages
    try:
        relate.setup()
        relate.start()
        assert relate.proc is not None
        pid = relate.proc.pid
        recipients = relate.addresses()
        senders: list[tuple[str, str | None]] = list(zip(relate.sender_addresses(), relate.keys, strict=True))
        if args.warmup:
            run_load(relate.port, args.clients, args.warmup, args.size, recipients, senders)
            relate.wait_indexed()  # the warm-up's bodies are not the load's to index
        profiler = None
        if args.profile:
            spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
            profiler = subprocess.Popen([spy, "record", "--format", "raw", "--rate", "250", "--nonblocking",
                                         "--pid", str(pid), "--output", args.profile],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1)
        cpu_before = cpu_seconds(descendants(pid))
        pg_before = cpu_seconds(postgres_pids(admin_dsn))
        result = run_load(relate.port, args.clients, args.messages, args.size, recipients, senders)
        pg_cpu = cpu_seconds(postgres_pids(admin_dsn)) - pg_before
        relate_cpu = cpu_seconds(descendants(pid)) - cpu_before
        waited, indexed_at = relate.wait_indexed()
        pg_cpu_indexed = cpu_seconds(postgres_pids(admin_dsn)) - pg_before
        relate_cpu_indexed = cpu_seconds(descendants(pid)) - cpu_before
        if profiler is not None:
            profiler.send_signal(2)
            profiler.wait(60)
        rows.append(describe("Relate Mail submission (AUTH)", result, relate_cpu, pg_cpu))
        sent = max(1, len(result.sent))
        notes.append(
            f"Relate: search index: {waited} bodies waited after the last 250; every delivered message was "
            f"indexed {indexed_at - result.last_ack:.2f} s after the last 250 (looked at every {INDEX_POLL:.2f} s)"
        )
        notes.append(
            f"Relate: CPU ms per message, during the load: daemon {1000 * relate_cpu / sent:.2f}, PostgreSQL "
            f"{1000 * pg_cpu / sent:.2f}; until every message was indexed: daemon {1000 * relate_cpu_indexed / sent:.2f}, "
            f"PostgreSQL {1000 * pg_cpu_indexed / sent:.2f}"
        )
        inbox, sent_copies = relate.stored_message_ids()
        missing = [m for m in result.sent if inbox.get(m) != 1]
        expected_sent = len(result.sent) + args.clients * args.warmup
        if result.errors or missing or len(result.sent) != total or sent_copies != expected_sent:
            ok = False
        notes.append(f"Relate: load generator CPU {result.client_cpu:.1f} s")
        notes.append(
            f"Relate: {len(result.sent)}/{total} got 250; every one stored exactly once in INBOX: "
            f"{'yes' if not missing else f'NO ({len(missing)} missing or duplicated)'}; "
            f"Sent copies {sent_copies} (expected {expected_sent}); errors: {result.errors[:3] or 'none'}"
        )
        if args.idle:
            baseline = sum(rss_mb(p) for p in descendants(pid))
            conns = idle_connections(relate.port, args.idle)
            gevent.sleep(0.5)
            notes.append(f"Relate: {len(conns)} idle connections (EHLO done): RSS {sum(rss_mb(p) for p in descendants(pid)):.0f} MB "
                         f"(before {baseline:.0f} MB)")
            for conn in conns:
                conn.close()
        if shutil.which("smtp-source") or Path("/usr/sbin/smtp-source").exists():
            for flag, label in SMTP_SOURCE_MODES:
                stored_before = relate.inbox_count(recipients[0])
                connections_before = relate.connections()
                cpu_before = cpu_seconds(descendants(pid))
                seconds, error = smtp_source(relate.mx_port, args.clients, total, args.size, recipients[0],
                                             reuse=flag)
                cpu = cpu_seconds(descendants(pid)) - cpu_before
                gevent.sleep(0.2)  # the last sessions' log lines
                connections_after = relate.connections()
                connections = (None if connections_before is None or connections_after is None
                               else connections_after - connections_before)
                stored = relate.inbox_count(recipients[0]) - stored_before
                rows.append(source_row(f"Relate Mail MX, {label}", total, seconds, cpu))
                notes.append(source_note("Relate", flag, args.clients, total, connections, cpu)
                             + f"; {stored} stored in the INBOX")
                if error or stored != total or connections not in (None, args.clients if flag else total):
                    ok = False
                if error:
                    notes.append(f"smtp-source{' -d' if flag else ''} -> Relate: {error}")
    finally:
        relate.stop()
        relate.drop()
        if cluster is not None:
            cluster.stop()

    if not args.skip_postfix:
        postfix = Postfix(workdir, args.postfix_port or free_port())
        try:
            postfix.start()
            pids = descendants(postfix.master_pid)
            anonymous: list[tuple[str, str | None]] = [(address, None) for address in relate.sender_addresses()]
            if args.warmup:
                run_load(postfix.port, args.clients, args.warmup, args.size, relate.addresses(), anonymous)
            cpu_before = cpu_seconds(descendants(postfix.master_pid))
            result = run_load(postfix.port, args.clients, args.messages, args.size, relate.addresses(), anonymous)
            gevent.sleep(1)
            pids = descendants(postfix.master_pid)
            rows.append(describe("Postfix 3.7 (discard:)", result, cpu_seconds(pids) - cpu_before))
            notes.append(f"Postfix: load generator CPU {result.client_cpu:.1f} s")
            if result.errors:
                notes.append(f"Postfix errors: {result.errors[:3]}")
            for flag, label in SMTP_SOURCE_MODES:
                connections_before = postfix.connections()
                cpu_before = cpu_seconds(descendants(postfix.master_pid))
                seconds, error = smtp_source(postfix.port, args.clients, total, args.size, relate.addresses()[0],
                                             reuse=flag)
                gevent.sleep(1)  # postlogd's lines
                cpu = cpu_seconds(descendants(postfix.master_pid)) - cpu_before
                connections = postfix.connections() - connections_before
                rows.append(source_row(f"Postfix 3.7, {label}", total, seconds, cpu))
                notes.append(source_note("Postfix", flag, args.clients, total, connections, cpu))
                if error:
                    notes.append(f"smtp-source{' -d' if flag else ''} -> Postfix: {error}")
        except (OSError, subprocess.SubprocessError, RuntimeError) as exc:
            notes.append(f"Postfix run failed: {exc} (see {postfix.config}/maillog)")
            ok = False
        finally:
            postfix.stop()

    print(f"\n{args.clients} clients x {args.messages} messages of {args.size} octets, {args.senders} sender "
          f"account(s), {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end; "
          "client: this script (gevent) unless noted")
    print(f"smtp-source rows: {total} messages to one recipient, {args.clients} sessions at a time; \"session per "
          f"message\" is smtp-source's default (connect, EHLO, MAIL, RCPT, DATA, QUIT for every message), "
          f"\"-d\" is smtp-source -d ({args.clients} connections, each sending messages until all {total} are "
          "sent, the shape of the load above)")
    print(f"{'server':<{NAME_WIDTH}} {'250s':>7} {'msgs/s':>10} {'p50 ms':>9} {'p99 ms':>9} {'server CPU s':>12} "
          f"{'DB CPU s':>8}")
    for row in rows:
        print(row)
    for note in notes:
        print("  " + note)
    if args.keep:
        print(f"  work directory kept: {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
