"""The SMTP daemon's CPU per session and per message, read from /proc.

    .venv/bin/python bench/smtp_session_cpu.py [--sessions 2000] [--rounds 3] [--root CHECKOUT]

Starts a private PostgreSQL cluster (as bench/smtp_bench.py does; or uses --admin-dsn) and
`python -m relate.smtpd`, then measures, --rounds times each and interleaved, the CPU seconds
the daemon process spends on:

- hello: --sessions sessions of connect, greeting, EHLO, QUIT, close (this script's client,
  --concurrency at a time);
- session: --sessions messages of --size octets with Postfix's smtp-source, one session per
  message (its default: greeting, EHLO, MAIL, RCPT, DATA, QUIT), to one recipient over MX;
- long: the same messages with `smtp-source -d`: --concurrency sessions, each sending its
  share of the messages over one connection.

It prints the median of each in milliseconds per session or message; "session" minus "long"
is what a session costs beyond its message. Only the daemon's own CPU is counted, so the
figures hold on a machine shared with other work better than wall-clock rates do.

--root runs the daemon of another checkout of Relate Mail (a before/after comparison); the
database is set up by this checkout, so the two must share the schema. Needs root (the
private cluster runs as postgres) unless --admin-dsn names a server on this host.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent.pool  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from smtp_bench import CLK_TCK, HOST, SENDER, Line, PrivateCluster, Relate  # noqa: E402


def user_system(pid: int) -> tuple[float, float]:
    """The process's user and system CPU seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def hello_sessions(port: int, count: int, concurrency: int) -> None:
    def one(_: int) -> None:
        conn = Line(port)
        conn.reply()
        conn.command(b"EHLO bench-client.test", 250)
        conn.command(b"QUIT", 221)
        conn.close()

    pool = gevent.pool.Pool(concurrency)
    for index in range(count):
        pool.spawn(one, index)
    pool.join(raise_error=True)


def smtp_source(port: int, sessions: int, count: int, size: int, recipient: str, *, reuse: bool) -> None:
    tool = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
    cmd = [tool, *(["-d"] if reuse else []), "-s", str(sessions), "-m", str(count), "-l", str(size),
           "-f", SENDER, "-t", recipient, "-M", "bench-client.test", f"{HOST}:{port}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if proc.returncode:
        raise RuntimeError(f"smtp-source: {proc.stderr.strip()}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=2000, help="sessions (and messages) per measurement")
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--root", help="the Relate Mail checkout whose daemon runs (default: this one)")
    parser.add_argument("--admin-dsn", default=os.environ.get("RELATE_BENCH_ADMIN_DSN"))
    parser.add_argument("--log-level", default="INFO", help="the daemon's Logging__Level")
    parser.add_argument("--profile", metavar="PATH", help="record the daemon with py-spy (collapsed stacks)")
    parser.add_argument("--only", choices=["hello", "session", "long"], action="append",
                        help="measure only this (repeatable); default: all three")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="relate-session-cpu-"))
    workdir.chmod(0o755)
    cluster = None if args.admin_dsn else PrivateCluster(workdir)
    admin_dsn = args.admin_dsn or (cluster.dsn if cluster else "")
    relate = Relate(admin_dsn, 1, workdir, log_level=args.log_level)
    if args.root:
        relate.root = Path(args.root).resolve()
    figures: dict[str, list[tuple[float, float]]] = {"hello": [], "session": [], "long": []}
    try:
        relate.setup()
        relate.start()
        assert relate.proc is not None
        pid = relate.proc.pid
        recipient = relate.addresses()[0]
        # Warm-up: imports, the database pool and the prepared statements of every path.
        hello_sessions(relate.mx_port, 100, args.concurrency)
        smtp_source(relate.mx_port, args.concurrency, 200, args.size, recipient, reuse=False)
        smtp_source(relate.mx_port, args.concurrency, 200, args.size, recipient, reuse=True)
        profiler = None
        if args.profile:
            spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
            profiler = subprocess.Popen([spy, "record", "--format", "raw", "--rate", "250", "--nonblocking",
                                         "--pid", str(pid), "--output", args.profile],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1)
        runs = {
            "hello": lambda: hello_sessions(relate.mx_port, args.sessions, args.concurrency),
            "session": lambda: smtp_source(relate.mx_port, args.concurrency, args.sessions, args.size, recipient,
                                           reuse=False),
            "long": lambda: smtp_source(relate.mx_port, args.concurrency, args.sessions, args.size, recipient,
                                        reuse=True),
        }
        if args.only:
            runs = {name: run for name, run in runs.items() if name in args.only}
        for _ in range(args.rounds):
            for name, run in runs.items():
                gevent.sleep(0.5)  # let the search indexer's work of the previous run settle
                user, system = user_system(pid)
                run()
                user_after, system_after = user_system(pid)
                figures[name].append((1000 * (user_after - user) / args.sessions,
                                      1000 * (system_after - system) / args.sessions))
        if profiler is not None:
            profiler.send_signal(2)
            profiler.wait(60)
    finally:
        relate.stop()
        relate.drop()
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    print(f"daemon from {relate.root}; {args.sessions} per measurement, {args.concurrency} at a time, "
          f"{args.rounds} rounds; load average {os.getloadavg()[0]:.1f} at the end")
    labels = {
        "hello": "ms per session: connect, EHLO, QUIT",
        "session": "ms per message, one session each (smtp-source)",
        "long": "ms per message, long sessions (smtp-source -d)",
    }
    print(f"  {'':<48} {'median':>7} {'user':>7} {'system':>7}   every round (user + system)")
    for name, values in figures.items():
        if not values:
            continue
        total = statistics.median(u + s for u, s in values)
        user = statistics.median(u for u, _ in values)
        system = statistics.median(s for _, s in values)
        shown = " ".join(f"{u:.2f}+{s:.2f}" for u, s in values)
        print(f"  {labels[name]:<48} {total:>7.3f} {user:>7.3f} {system:>7.3f}   {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
