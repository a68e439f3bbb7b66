"""IMAP IDLE benchmark: thousands of IDLE sessions on one IMAP daemon process, and how long a
message takes from the SMTP daemon's 250 to `* n EXISTS` on every session of its recipient.

    .venv/bin/python bench/imap_idle_bench.py [--sessions 10000] [--users 1000] [--messages 300] [--rate 10]

What it does, all on 127.0.0.1, and then stops by itself:

1. Creates a fresh PostgreSQL database (the server at 127.0.0.1:5432 as user postgres, or
   --admin-dsn), migrates it, adds --users users in bench.test with an `imap` key each.
2. Raises the open-file limit (RLIMIT_NOFILE; as root, the hard limit too) of this process and
   of the daemons it starts: `python -m relate.imapd` (plaintext LOGIN, connection limits
   raised above --sessions) and `python -m relate.smtpd` with only its MX listener.
3. Opens --sessions IMAP sessions, spread evenly over the users, each LOGIN, SELECT INBOX and
   IDLE (waits for the continuation), --connect-concurrency at a time, one greenlet each.
   Reads the daemon's resident memory (VmRSS) with none open and with all of them idling.
4. Sends --messages messages over SMTP (MX) at a steady --rate per second, each to one user
   (users in a random order, so a user's k-th message makes its INBOX hold k), and for each
   the time from the 250 to `* k EXISTS` on every session of that user.
5. Prints the RSS, the delay at p50, p99 and max, and checks the targets: RSS under 1 GB and
   p99 under 1 second, with no session missing its EXISTS.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import random  # noqa: E402
import smtplib  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402
import gevent.pool  # noqa: E402
from common import HOST, free_port, rss_bytes  # noqa: E402
from imap_bench import (  # noqa: E402
    Bench,
    Imap,
    cpu_of,
    cpu_seconds,
    imapd_env,
    percentile,
    raise_nofile,
)

RSS_TARGET = 1024**3  # bytes
P99_TARGET = 1.0  # seconds


@dataclass
class Session:
    user: int
    imap: Imap
    exists: dict[int, float] = field(default_factory=dict)  # EXISTS count → arrival (monotonic)
    lost: bool = False

    def read_forever(self) -> None:
        try:
            while True:
                line = self.imap.read_response()
                now = time.monotonic()
                words = line.split(b" ", 3)
                if len(words) >= 3 and words[0] == b"*" and words[2] == b"EXISTS" and words[1].isdigit():
                    self.exists.setdefault(int(words[1]), now)
        except (OSError, ConnectionError):
            self.lost = True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--users", type=int, default=1_000)
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--rate", type=float, default=10.0, help="messages per second")
    parser.add_argument("--smtp-clients", type=int, default=2)
    parser.add_argument("--connect-concurrency", type=int, default=50)
    parser.add_argument("--profile", default="", help="record the imapd with py-spy while sending (collapsed stacks)")
    parser.add_argument("--admin-dsn", default="host=127.0.0.1 port=5432 user=postgres dbname=postgres")
    args = parser.parse_args()

    nofile = args.sessions + 5_000
    raise_nofile(nofile)
    bench = Bench(args.admin_dsn)
    try:
        bench.create_database()
        users = bench.add_users("idle", args.users)
        print(f"database {bench.name}: {args.users} users", flush=True)
        imap_port, mx_port = free_port(), free_port()
        imapd = bench.start("relate.imapd", imap_port, imapd_env(imap_port, args.sessions + 1_000), nofile=nofile)
        bench.start("relate.smtpd", mx_port, {"Smtp__MxPort": str(mx_port), "Smtp__Port": "0",
                                              "Smtp__SecurePort": "0"})
        gevent.sleep(1)
        rss_before = rss_bytes(imapd.pid)

        sessions: list[Session] = []
        failures: list[str] = []

        def connect(i: int) -> None:
            user = i % args.users
            try:
                imap = Imap(imap_port, timeout=120)
                imap.ok(f"LOGIN {users[user][0]} {users[user][1]}")
                imap.ok("SELECT INBOX")
                imap.counter += 1
                imap.sock.sendall(f"a{imap.counter} IDLE\r\n".encode())
                line = imap.read_response()
                if not line.startswith(b"+"):
                    raise ConnectionError(f"IDLE answered {line[:80]!r}")
                imap.sock.settimeout(None)
            except Exception as exc:  # any failure counts against the target
                failures.append(f"{type(exc).__name__}: {exc}")
                return
            sessions.append(Session(user, imap))

        started = time.monotonic()
        pool = gevent.pool.Pool(args.connect_concurrency)
        for i in range(args.sessions):
            pool.spawn(connect, i)
        pool.join()
        opened = time.monotonic() - started
        readers = [gevent.spawn(s.read_forever) for s in sessions]
        gevent.sleep(3)  # let the daemon settle
        rss_open = rss_bytes(imapd.pid)
        print(f"{len(sessions)} IDLE sessions in {opened:.1f}s ({len(failures)} failed "
              f"{failures[:3] if failures else ''}); imapd RSS {rss_before / 2**20:.0f} MiB before, "
              f"{rss_open / 2**20:.0f} MiB with the sessions", flush=True)

        order = list(range(args.users))
        random.Random(1).shuffle(order)
        expected: list[tuple[int, int, float]] = []  # (user, EXISTS count it makes, time of the 250)
        delivered: dict[int, int] = {}
        start = time.monotonic() + 0.5

        def send(batch: list[int]) -> None:
            with smtplib.SMTP(HOST, mx_port, timeout=60) as client:
                for n in batch:
                    gevent.sleep(max(0.0, start + n / args.rate - time.monotonic()))
                    user = order[n % len(order)]
                    message = (f"From: <load@elsewhere.test>\r\nTo: <{users[user][0]}>\r\nSubject: idle {n}\r\n"
                               f"Message-ID: <{n}.{uuid.uuid4().hex}@elsewhere.test>\r\n\r\nbody {n}\r\n")
                    client.sendmail("load@elsewhere.test", [users[user][0]], message)
                    at = time.monotonic()
                    delivered[user] = delivered.get(user, 0) + 1
                    expected.append((user, delivered[user], at))

        cpu_before = (cpu_seconds(imapd.pid), cpu_of("postgres"))
        profiler = None
        if args.profile:
            profiler = subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "-p", str(imapd.pid),
                                         "-r", "50", "-f", "raw", "-o", args.profile, "-d",
                                         str(int(args.messages / args.rate) + 5)], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        # one user's messages always go through the same SMTP session, so they arrive in order
        batches: list[list[int]] = [[] for _ in range(args.smtp_clients)]
        for n in range(args.messages):
            batches[order[n % len(order)] % args.smtp_clients].append(n)
        gevent.joinall([gevent.spawn(send, b) for b in batches], raise_error=True)
        by_user: dict[int, list[Session]] = {}
        for s in sessions:
            by_user.setdefault(s.user, []).append(s)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if all(count in s.exists for user, count, _ in expected for s in by_user.get(user, [])):
                break
            gevent.sleep(0.1)
        rss_after = rss_bytes(imapd.pid)
        if profiler is not None:
            profiler.wait()
        cpu = [a - b for a, b in zip((cpu_seconds(imapd.pid), cpu_of("postgres")), cpu_before, strict=True)]

        delays: list[float] = []
        missing = 0
        for user, count, at in expected:
            for s in by_user.get(user, []):
                if count in s.exists:
                    delays.append(s.exists[count] - at)
                else:
                    missing += 1
        lost = sum(s.lost for s in sessions)
        gevent.killall(readers, block=False)
        for s in sessions:
            try:
                s.imap.sock.close()
            except OSError:
                pass

        rss_peak = max(rss_open, rss_after)
        p50, p99 = percentile(delays, 50), percentile(delays, 99)
        print()
        print(f"IDLE: {len(sessions)} sessions ({args.users} users) on one imapd process, "
              f"{args.messages} SMTP messages at {args.rate:g}/s")
        print(f"  imapd RSS        {rss_open / 2**20:8.0f} MiB with the sessions idling, {rss_after / 2**20:.0f} MiB "
              f"after the messages ({rss_before / 2**20:.0f} MiB with none)")
        print(f"  per session      {(rss_open - rss_before) / max(1, len(sessions)) / 1024:8.1f} KiB")
        print(f"  250 -> EXISTS    p50 {p50 * 1000:.0f} ms   p99 {p99 * 1000:.0f} ms   "
              f"max {max(delays, default=0) * 1000:.0f} ms   ({len(delays)} EXISTS)")
        print(f"  missing EXISTS   {missing}; sessions closed by the server: {lost}; failed to open: {len(failures)}")
        print(f"  CPU while sending imapd {cpu[0]:.1f}s, PostgreSQL (all) {cpu[1]:.1f}s")
        ok = (rss_peak < RSS_TARGET and p99 < P99_TARGET and missing == 0 and not failures
              and len(sessions) == args.sessions)
        print(f"  targets (RSS < 1 GiB, p99 < 1 s, every session open and notified): {'met' if ok else 'NOT MET'}")
        print(f"  reproduce: .venv/bin/python bench/imap_idle_bench.py --sessions {args.sessions} --users {args.users} "
              f"--messages {args.messages} --rate {args.rate:g}", flush=True)
        return 0 if ok else 1
    finally:
        bench.stop()


if __name__ == "__main__":
    sys.exit(main())
