"""IMAP benchmark: a mixed client workload against Relate Mail's IMAP daemon, and Dovecot's
imaptest stress mode against Relate Mail and against Dovecot 2.3 in the same run.

    .venv/bin/python bench/imap_bench.py [--clients 50] [--users 10] [--secs 30] [--imaptest-secs 30]

What it does, all on 127.0.0.1, and then stops by itself:

1. Creates a fresh PostgreSQL database (the server at 127.0.0.1:5432 as user postgres, or
   --admin-dsn), migrates it, adds --users users in bench.test with an `imap` key each (the
   key is the IMAP password), and starts `python -m relate.imapd` on a free port (plaintext
   LOGIN allowed, no TLS listener: TLS cost is not part of the comparison).
2. Fills each user's INBOX with --messages messages over APPEND.
3. Mixed load: --clients sessions (spread over the users, so several sessions share an INBOX
   and see each other's changes), each LOGIN, SELECT INBOX, then for --secs seconds one
   command after another, chosen by weight: SELECT, FETCH FLAGS of the whole mailbox, FETCH
   ENVELOPE of 20 messages, FETCH BODY.PEEK[] of one message, STORE flags, SEARCH, APPEND,
   and STORE \\Deleted + EXPUNGE. Prints commands per second and the latency per command
   (p50, p99), and any NO/BAD answers.
4. With --imaptest (default /tmp/imaptest/src/imaptest): imaptest's stress mode, --imaptest-secs
   each, with its default (reconnecting) profile and with logout=0, against Relate Mail (a
   fresh user per run) and against a private Dovecot (`dovecot -F -c <own config>`, static
   passdb and userdb, Maildir in the work directory, a free loopback port; Debian package
   dovecot-imapd). Prints commands per second, the errors imaptest reported, the imapd's CPU
   per command and imaptest's own average latency per command for both servers; imaptest's
   whole output is left in /tmp/imaptest-{relate,dovecot}-{1,2}.txt. With --profile PATH the
   imapd is recorded with py-spy during each Relate run (PATH-1.txt, PATH-2.txt, collapsed
   stacks).

BENCH_KEEP=1 keeps the work directory (the daemons' logs) instead of removing it.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402
import gevent.pool  # noqa: E402
import psycopg2  # noqa: E402
from common import HOST, child_pids, free_port, wait_for_port  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DOMAIN = "bench.test"
IMAPTEST = "/tmp/imaptest/src/imaptest"
DOVECOT_LIBS = "/usr/lib/dovecot"  # where Debian keeps libdovecot.so
LITERAL = re.compile(rb"\{(\d+)\+?\}$")


# --- processes and the database -----------------------------------------------------------








def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")  # utime stime cutime cstime


def tree_cpu(pid: int) -> float:
    """CPU seconds of a daemon and of its worker processes (Network__Workers)."""
    return cpu_seconds(pid) + sum(cpu_seconds(child) for child in child_pids(pid))


def cpu_of(name: str) -> float:
    """CPU seconds of every process whose command name is `name` (PostgreSQL's backends)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == name:
                    total += cpu_seconds(int(entry.name))
            except OSError:
                pass
    return total


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered)) - 1))
    return ordered[k]


def raise_nofile(limit: int) -> None:
    """Raise this process's open-file limit (root may raise the hard limit too)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(soft, limit)
    if hard != resource.RLIM_INFINITY and want > hard:
        if os.geteuid() == 0:
            hard = want
        else:
            want = hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


@dataclass
class Bench:
    """A fresh database with users and one running IMAP daemon; `stop()` removes both."""

    admin_dsn: str
    name: str = field(default_factory=lambda: f"relate_imapbench_{uuid.uuid4().hex[:8]}")
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="relate-imapbench-")))
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    url: str = ""
    env: dict[str, str] = field(default_factory=dict)

    def create_database(self) -> None:
        from relate import db, store
        from relate.config import load_settings
        from relate.db import migrate

        admin = psycopg2.connect(self.admin_dsn)
        admin.autocommit = True
        admin.cursor().execute(f"CREATE DATABASE {self.name}")
        admin.close()
        parts = dict(p.split("=", 1) for p in self.admin_dsn.split())
        self.url = (f"postgresql://{parts.get('user', 'postgres')}@{parts.get('host', HOST)}:"
                    f"{parts.get('port', '5432')}/{self.name}")
        engine = db.engine.create(load_settings({"ConnectionStrings__DefaultConnection": self.url}).database_url,
                                  pool_size=2)
        migrate.upgrade(engine)
        engine.dispose()
        settings = load_settings({"ConnectionStrings__DefaultConnection": self.url,
                                  "Data__Directory": str(self.workdir), "Database__AutoMigrate": "false"})
        store.open_store(settings, migrate=False, pool_size=4)
        from relate.store import accounts

        accounts.ensure_domains([DOMAIN])
        self.env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "ConnectionStrings__DefaultConnection": self.url,
            "Database__AutoMigrate": "false",
            "Data__Directory": str(self.workdir),
            "Mail__Domains": DOMAIN,
            "Logging__Level": "WARNING",
            "Network__ShutdownGraceSeconds": "1",
        }

    def add_users(self, prefix: str, count: int) -> list[tuple[str, str]]:
        """`count` users with an `imap` key each: [(address, key)]."""
        from relate.store import accounts, keys

        users = []
        for i in range(count):
            info = accounts.create_user(f"{prefix}{i}@{DOMAIN}")
            users.append((info.primary_address, keys.create_key(info.id, "bench", "imap")[1]))
        return users

    def start(self, module: str, port: int, extra: dict[str, str], nofile: int = 0) -> subprocess.Popen[bytes]:
        preexec = (lambda: raise_nofile(nofile)) if nofile else None
        with open(self.workdir / f"{module}.log", "ab") as log:
            proc = subprocess.Popen([sys.executable, "-m", module], cwd=ROOT, env={**self.env, **extra},
                                    stdout=log, stderr=subprocess.STDOUT, preexec_fn=preexec)
        self.processes.append(proc)
        wait_for_port(port, proc)
        return proc

    def stop(self) -> None:
        from relate import store

        for proc in self.processes:
            proc.terminate()
        for proc in self.processes:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        store.close_store()
        if self.url:
            admin = psycopg2.connect(self.admin_dsn)
            admin.autocommit = True
            admin.cursor().execute(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")
            admin.close()
        if os.environ.get("BENCH_KEEP"):
            print(f"work directory kept: {self.workdir}")
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)


def imapd_env(port: int, max_connections: int, workers: int = 1) -> dict[str, str]:
    return {
        "Network__Workers": str(workers),
        "Imap__Port": str(port),
        "Imap__SecurePort": "0",
        "Tls__AllowInsecureAuth": "true",
        "Network__MaxConnections": str(max_connections),
        "Network__MaxConnectionsPerIp": str(max_connections),
        "Imap__MaxConnectionsPerUser": str(max_connections),
    }


# --- a minimal IMAP client ------------------------------------------------------------------


class ImapError(Exception):
    pass


class Imap:
    """One IMAP connection: tagged commands, untagged responses (literals read whole), and the
    mailbox size as the server reports it."""

    def __init__(self, port: int, timeout: float = 60.0) -> None:
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.buffer = b""
        self.counter = 0
        self.exists = 0
        self.greeting = self.read_response()

    def _fill(self) -> None:
        chunk = self.sock.recv(262144)
        if not chunk:
            raise ConnectionError("server closed the connection")
        self.buffer += chunk

    def read_response(self) -> bytes:
        """One response line, with any literals it carries inlined."""
        parts = []
        while True:
            while b"\r\n" not in self.buffer:
                self._fill()
            line, self.buffer = self.buffer.split(b"\r\n", 1)
            parts.append(line)
            match = LITERAL.search(line)
            if not match:
                return b"\r\n".join(parts)
            size = int(match.group(1))
            while len(self.buffer) < size:
                self._fill()
            parts.append(self.buffer[:size])
            self.buffer = self.buffer[size:]

    def _untagged(self, line: bytes) -> None:
        words = line.split(b" ", 3)
        if len(words) >= 3 and words[1].isdigit():
            if words[2] == b"EXISTS":
                self.exists = int(words[1])
            elif words[2] == b"EXPUNGE":
                self.exists -= 1

    def command(self, text: str, literal: bytes | None = None) -> tuple[bytes, list[bytes]]:
        """Send a command; returns the tagged status ("OK"/"NO"/"BAD") and the untagged lines."""
        self.counter += 1
        tag = f"a{self.counter}".encode()
        if literal is None:
            self.sock.sendall(tag + b" " + text.encode() + b"\r\n")
        else:
            self.sock.sendall(tag + b" " + text.encode() + f" {{{len(literal)}}}\r\n".encode())
            line = self.read_response()
            if not line.startswith(b"+"):
                return line.split(b" ", 2)[1], []
            self.sock.sendall(literal + b"\r\n")
        untagged = []
        while True:
            line = self.read_response()
            if line.startswith(tag + b" "):
                return line.split(b" ", 2)[1], untagged
            if line.startswith(b"* "):
                self._untagged(line)
                untagged.append(line)

    def ok(self, text: str, literal: bytes | None = None) -> list[bytes]:
        status, untagged = self.command(text, literal)
        if status != b"OK":
            raise ImapError(f"{text.split()[0]}: {status.decode()}")
        return untagged

    def close(self) -> None:
        try:
            self.command("LOGOUT")
        except (OSError, ConnectionError):
            pass
        self.sock.close()


WORDS = ("invoice", "meeting", "report", "holiday", "budget", "release", "lunch", "review", "travel", "contract")


def make_message(n: int, rng: random.Random) -> bytes:
    subject = f"{rng.choice(WORDS)} {rng.choice(WORDS)} {n}"
    head = (f"From: Sender {n % 7} <sender{n % 7}@elsewhere.test>\r\nTo: <someone@{DOMAIN}>\r\n"
            f"Subject: {subject}\r\nMessage-ID: <{n}.{uuid.uuid4().hex}@elsewhere.test>\r\n"
            "Date: Sat, 28 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=us-ascii\r\n\r\n")
    line = f"The {rng.choice(WORDS)} quick brown fox jumps over the lazy dog, again and again. {n}\r\n"
    return head.encode() + line.encode() * rng.randint(5, 200)  # about 0.5 to 17 KB


# --- the mixed load -------------------------------------------------------------------------

# command kind → weight; "expunge" is STORE \Deleted followed by EXPUNGE (two commands)
WEIGHTS = {"select": 5, "fetch flags": 15, "fetch envelope": 15, "fetch body": 15, "store": 15,
           "search": 10, "append": 10, "expunge": 10}


@dataclass
class Load:
    latencies: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in WEIGHTS})
    failures: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    commands: int = 0


def run_client(port: int, user: tuple[str, str], load: Load, until: float, rng: random.Random,
               counter: Iterator[int]) -> None:
    kinds, weights = list(WEIGHTS), list(WEIGHTS.values())
    try:
        imap = Imap(port)
        imap.ok(f"LOGIN {user[0]} {user[1]}")
        imap.ok("SELECT INBOX")
    except (OSError, ConnectionError, ImapError) as exc:
        load.errors.append(f"{user[0]}: {exc}")
        return

    def timed(kind: str, text: str, literal: bytes | None = None) -> None:
        started = time.monotonic()
        status, _ = imap.command(text, literal)
        load.latencies[kind].append(time.monotonic() - started)
        load.commands += 1
        if status != b"OK":
            key = f"{text.split()[0]} {status.decode()}"
            load.failures[key] = load.failures.get(key, 0) + 1

    try:
        while time.monotonic() < until:
            kind = rng.choices(kinds, weights)[0]
            n = max(imap.exists, 1)
            seq = rng.randint(1, n)
            if kind == "select":
                timed(kind, "SELECT INBOX")
            elif kind == "fetch flags":
                timed(kind, "FETCH 1:* (UID FLAGS)")
            elif kind == "fetch envelope":
                first = rng.randint(1, max(1, n - 19))
                timed(kind, f"FETCH {first}:{min(n, first + 19)} (UID ENVELOPE RFC822.SIZE INTERNALDATE)")
            elif kind == "fetch body":
                timed(kind, f"FETCH {seq} (BODY.PEEK[] BODYSTRUCTURE)")
            elif kind == "store":
                timed(kind, f"STORE {seq} {rng.choice('+-')}FLAGS.SILENT (\\Flagged \\Seen)")
            elif kind == "search":
                timed(kind, rng.choice(["SEARCH UNSEEN", f"SEARCH FROM sender{rng.randint(0, 6)}",
                                        f"SEARCH SUBJECT {rng.choice(WORDS)}", "SEARCH FLAGGED SINCE 1-Jan-2026"]))
            elif kind == "append":
                timed(kind, "APPEND INBOX (\\Seen)", make_message(next(counter), rng))
            else:
                timed(kind, f"STORE {seq} +FLAGS.SILENT (\\Deleted)")
                timed(kind, "EXPUNGE")
        imap.close()
    except (OSError, ConnectionError) as exc:
        load.errors.append(f"{user[0]}: {type(exc).__name__}: {exc}")


def seed(port: int, users: list[tuple[str, str]], messages: int) -> None:
    def fill(index: int, user: tuple[str, str]) -> None:
        rng = random.Random(index)
        imap = Imap(port)
        imap.ok(f"LOGIN {user[0]} {user[1]}")
        for n in range(messages):
            imap.ok("APPEND INBOX", make_message(index * 100_000 + n, rng))
        imap.close()

    gevent.joinall([gevent.spawn(fill, i, u) for i, u in enumerate(users)], raise_error=True)


def mixed_load(bench: Bench, port: int, imapd: subprocess.Popen[bytes], args: argparse.Namespace) -> dict[str, Any]:
    users = bench.add_users("mixed", args.users)
    started = time.monotonic()
    seed(port, users, args.messages)
    print(f"{args.users} INBOXes of {args.messages} messages appended in {time.monotonic() - started:.1f}s",
          flush=True)
    load = Load()
    counter = iter(range(10**9, 2 * 10**9))
    cpu_before = (tree_cpu(imapd.pid), cpu_of("postgres"), time.process_time())
    start = time.monotonic()
    until = start + args.secs
    greenlets = [gevent.spawn(run_client, port, users[i % len(users)], load, until, random.Random(i), counter)
                 for i in range(args.clients)]
    gevent.joinall(greenlets, raise_error=True)
    elapsed = time.monotonic() - start
    cpu = [a - b for a, b in zip((tree_cpu(imapd.pid), cpu_of("postgres"), time.process_time()),
                                 cpu_before, strict=True)]
    every = [x for values in load.latencies.values() for x in values]
    print()
    print(f"Mixed load: {args.clients} clients over {args.users} shared INBOXes, {elapsed:.1f}s")
    print(f"  commands/s   {load.commands / elapsed:8.0f}   ({load.commands} commands)")
    print(f"  latency      p50 {percentile(every, 50) * 1000:.1f} ms   p99 {percentile(every, 99) * 1000:.1f} ms"
          f"   max {max(every, default=0) * 1000:.0f} ms")
    for kind, values in load.latencies.items():
        print(f"    {kind:15} {len(values):7}  p50 {percentile(values, 50) * 1000:7.1f} ms  "
              f"p99 {percentile(values, 99) * 1000:7.1f} ms")
    print(f"  NO/BAD       {load.failures or 'none'}")
    print(f"  sessions lost {len(load.errors)} {load.errors[:5] if load.errors else ''}")
    print(f"  CPU          imapd {cpu[0]:.1f}s ({cpu[0] / max(load.commands, 1) * 1000:.2f} ms/command), "
          f"PostgreSQL {cpu[1]:.1f}s, this client {cpu[2]:.1f}s")
    print(f"  reproduce: .venv/bin/python bench/imap_bench.py --clients {args.clients} --users {args.users} "
          f"--messages {args.messages} --secs {args.secs:g}", flush=True)
    return {"cps": load.commands / elapsed, "p99": percentile(every, 99)}


# --- imaptest, against Relate Mail and Dovecot ----------------------------------------------


@dataclass
class ImaptestResult:
    commands: int
    secs: float
    errors: list[str]
    output: str
    imapd_cpu: float = 0.0  # CPU seconds the Relate imapd used during the run (0 for Dovecot)
    database_cpu: float = 0.0  # CPU seconds of PostgreSQL during the run (0 for Dovecot)

    @property
    def per_second(self) -> float:
        return self.commands / self.secs

    @property
    def cpu_per_command(self) -> float:
        return self.imapd_cpu / self.commands if self.commands else 0.0


def imaptest(binary: str, port: int, user: str, password: str, secs: int, mbox: str, *extra: str) -> ImaptestResult:
    started = time.monotonic()
    env = dict(os.environ)
    if Path(DOVECOT_LIBS).is_dir():  # an imaptest built against Debian's dovecot-dev needs libdovecot.so
        env["LD_LIBRARY_PATH"] = ":".join(p for p in (env.get("LD_LIBRARY_PATH", ""), DOVECOT_LIBS) if p)
    done = subprocess.run([binary, f"host={HOST}", f"port={port}", f"user={user}", f"pass={password}",
                           f"mbox={mbox}", f"secs={secs}", *extra],
                          capture_output=True, text=True, timeout=secs + 120, env=env)
    elapsed = time.monotonic() - started
    output = done.stdout + done.stderr
    errors = [line for line in output.splitlines() if line.startswith(("Error:", "Panic:", "Fatal:"))]
    # After "Totals:" imaptest repeats its header (command names, then the share of clients
    # that run each) and prints one line of counts per command: sum that line.
    commands = 0
    lines = output.splitlines()
    if "Totals:" in lines:
        for line in lines[lines.index("Totals:") + 1:]:
            if line.split() and all(v.isdigit() for v in line.split()):
                commands = sum(int(v) for v in line.split())
                break
    if not commands and not errors:  # it did not run at all (a missing library, a bad argument)
        errors = [f"imaptest ran no command (status {done.returncode}): {output.strip()[:300]}"]
    return ImaptestResult(commands, min(elapsed, float(secs)) if commands else elapsed, errors, output)


def average_latencies(output: str) -> str:
    """The last "ms/cmd avg" line imaptest printed (its own average latency per command), as
    "Logi 43 List 119 ...", or "" when it printed none."""
    lines = output.splitlines()
    header = None
    last = ""
    for line in lines:
        if line.startswith("Logi"):
            header = line.split()
        elif line.endswith("ms/cmd avg") and header:
            values = line.split()[: len(header)]
            last = " ".join(f"{name} {value}" for name, value in zip(header, values, strict=False))
    return last


DOVECOT_CONF = """\
base_dir = {work}/run
state_dir = {work}/state
instance_name = relate-bench-dovecot
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
log_path = {work}/dovecot.log
first_valid_uid = 1
passdb {{
  driver = static
  args = password=bench
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={work}/home/%u
}}
mail_location = maildir:~/Maildir
protocol imap {{
  mail_max_userip_connections = 10000
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
"""


@contextmanager
def dovecot(workdir: Path) -> Iterator[int]:
    binary = shutil.which("dovecot") or "/usr/sbin/dovecot"
    if not Path(binary).exists():
        raise RuntimeError("dovecot is not installed (apt-get install -y dovecot-imapd)")
    import pwd

    owner = pwd.getpwnam("nobody") if os.geteuid() == 0 else pwd.getpwuid(os.geteuid())
    work = workdir / "dovecot"
    (work / "home").mkdir(parents=True)
    os.chmod(workdir, 0o711)  # mkdtemp's 0700 would keep the mail user out of its home
    os.chown(work / "home", owner.pw_uid, owner.pw_gid)
    port = free_port()
    conf = work / "dovecot.conf"
    conf.write_text(DOVECOT_CONF.format(work=work, port=port, uid=owner.pw_uid, gid=owner.pw_gid))
    proc = subprocess.Popen([binary, "-F", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, proc)  # type: ignore[arg-type]
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def imaptest_runs(bench: Bench, port: int, imapd: subprocess.Popen[bytes], args: argparse.Namespace) -> None:
    mbox = str(Path(args.imaptest).parent / "tests" / "default.mbox")
    profiles = [("default (reconnecting)", ()), ("logout=0", ("logout=0",))]
    relate_users = bench.add_users("imaptest", len(profiles))
    rows = []
    with dovecot(bench.workdir) as dovecot_port:
        for (profile, extra), (user, key) in zip(profiles, relate_users, strict=True):
            cpu_before = tree_cpu(imapd.pid)
            database_before = cpu_of("postgres")
            profiler = None
            if args.profile:
                profiler = subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "--subprocesses", "-p",
                                             str(imapd.pid), "-r", "100", "-f", "raw", "-o",
                                             f"{args.profile}-{len(rows) + 1}.txt", "-d", str(args.imaptest_secs)],
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            r = imaptest(args.imaptest, port, user, key, args.imaptest_secs, mbox, *extra)
            r.imapd_cpu = tree_cpu(imapd.pid) - cpu_before
            r.database_cpu = cpu_of("postgres") - database_before
            if profiler is not None:
                profiler.wait()
            d = imaptest(args.imaptest, dovecot_port, f"bench{len(rows)}", "bench", args.imaptest_secs, mbox, *extra)
            rows.append((profile, r, d))
            print(f"imaptest {profile}: Relate {r.per_second:.0f}/s ({len(r.errors)} errors, imapd CPU "
                  f"{r.imapd_cpu:.1f}s, {r.cpu_per_command * 1000:.2f} ms/command; PostgreSQL {r.database_cpu:.1f}s, "
                  f"{r.database_cpu / max(r.commands, 1) * 1000:.2f} ms/command), "
                  f"Dovecot {d.per_second:.0f}/s ({len(d.errors)} errors)", flush=True)
            print(f"  ms/command, Relate:  {average_latencies(r.output)}")
            print(f"  ms/command, Dovecot: {average_latencies(d.output)}", flush=True)
            for name, result in (("relate", r), ("dovecot", d)):
                (bench.workdir.parent / f"imaptest-{name}-{len(rows)}.txt").write_text(result.output)
    print()
    print(f"imaptest stress, {args.imaptest_secs}s each, default clients (10), one user, {mbox}")
    print(f"  {'profile':24} {'Relate cmds/s':>14} {'errors':>7} {'Dovecot cmds/s':>15} {'errors':>7} {'ratio':>6}")
    for profile, r, d in rows:
        ratio = r.per_second / d.per_second if d.per_second else float("nan")
        print(f"  {profile:24} {r.per_second:14.0f} {len(r.errors):7} {d.per_second:15.0f} {len(d.errors):7} "
              f"{ratio:6.2f}")
        for line in r.errors[:10]:
            print(f"    relate: {line}")
    met = (all(not r.errors and r.commands for _, r, _ in rows) and rows[0][1].per_second >= rows[0][2].per_second
           and rows[1][1].per_second >= rows[1][2].per_second / 2)
    print(f"  targets (no errors, >= Dovecot reconnecting, >= half of Dovecot with logout=0): "
          f"{'met' if met else 'NOT MET'}")
    print(f"  reproduce: .venv/bin/python bench/imap_bench.py --secs 0 --imaptest-secs {args.imaptest_secs}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--messages", type=int, default=200, help="messages in each INBOX before the load")
    parser.add_argument("--secs", type=float, default=30.0, help="mixed load duration; 0 skips it")
    parser.add_argument("--imaptest", default=IMAPTEST, help="imaptest binary; empty skips the imaptest runs")
    parser.add_argument("--imaptest-secs", type=int, default=30)
    parser.add_argument("--profile", default="",
                        help="record the imapd with py-spy during each Relate imaptest run (collapsed stacks, "
                             "PROFILE-1.txt for the reconnecting profile, PROFILE-2.txt for logout=0)")
    parser.add_argument("--admin-dsn", default="host=127.0.0.1 port=5432 user=postgres dbname=postgres")
    parser.add_argument("--workers", type=int, default=1,
                        help="Network__Workers: imapd processes serving the port (CPU figures add them up)")
    args = parser.parse_args()

    bench = Bench(args.admin_dsn)
    try:
        bench.create_database()
        port = free_port()
        imapd = bench.start("relate.imapd", port, imapd_env(port, 1000, args.workers))
        if args.secs > 0:
            mixed_load(bench, port, imapd, args)
        if args.imaptest and Path(args.imaptest).exists():
            imaptest_runs(bench, port, imapd, args)
        elif args.imaptest:
            print(f"imaptest not found at {args.imaptest}: imaptest runs skipped")
        return 0
    finally:
        bench.stop()


if __name__ == "__main__":
    sys.exit(main())
