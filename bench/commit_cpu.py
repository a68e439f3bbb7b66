"""PostgreSQL CPU per delivered message, in the delivery's commit and in the search indexer.

    .venv/bin/python bench/commit_cpu.py [--messages 2000] [--root CHECKOUT] [--admin-dsn DSN]

Drives the store's group commit directly (no SMTP session, no client): batches of 10 messages
of 4 KB, each for one of 20 recipients and the sender's Sent, as the SMTP daemon stores them.
It reads the CPU time of every PostgreSQL backend of its own database from /proc before and
after the deliveries, then runs the search indexer (relate.store.searchindex) until nothing
waits and reads it again. So the figures are PostgreSQL's alone, and hold on a machine shared
with other work better than wall-clock rates do.

--root measures another checkout of Relate Mail with the same script (for a before/after
comparison; a checkout without the search indexer reports the commit only). The database is
created on --admin-dsn (default: 127.0.0.1:5432 as postgres) and dropped at the end; the
server must run on this host, since its processes' CPU is read from /proc.
"""

from __future__ import annotations

import argparse
import os
import sys
import uuid
from pathlib import Path

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--messages", type=int, default=2000)
parser.add_argument("--warmup", type=int, default=200)
parser.add_argument("--root", default=str(Path(__file__).resolve().parent.parent),
                    help="the Relate Mail checkout to measure (default: this one)")
parser.add_argument("--admin-dsn", default=os.environ.get("RELATE_BENCH_ADMIN_DSN",
                                                          "host=127.0.0.1 port=5432 user=postgres dbname=postgres"))
args = parser.parse_args()
sys.path.insert(0, args.root)

from gevent import monkey  # noqa: E402

monkey.patch_all()

import psycopg2  # noqa: E402

from relate import store  # noqa: E402
from relate.config import load_settings  # noqa: E402
from relate.message import parse_message  # noqa: E402
from relate.store import accounts, groupcommit  # noqa: E402
from relate.store.types import Envelope  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
BATCH = 10
RECIPIENTS = 20
LINE = b"The quick brown fox jumps over the lazy dog and keeps running around. 0123\r\n"


def message(i: int, recipient: str, run: str) -> bytes:
    head = (f"From: Bench <sender@bench.test>\r\nTo: <{recipient}>\r\nSubject: benchmark {i}\r\n"
            f"Message-ID: <{i}.{run}@bench.test>\r\nDate: Sat, 28 Nov 2026 10:00:00 +0000\r\n\r\n").encode()
    return head + LINE * ((4096 - len(head)) // len(LINE))


def backend_cpu(admin: object, dbname: str) -> float:
    cur = admin.cursor()  # type: ignore[attr-defined]
    cur.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", (dbname,))
    total = 0.0
    for (pid,) in cur.fetchall():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime stime
    return total


def main() -> int:
    dbname = f"relate_commitcpu_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(args.admin_dsn)
    admin.autocommit = True
    admin.cursor().execute(f"CREATE DATABASE {dbname}")
    parts = dict(p.split("=", 1) for p in args.admin_dsn.split())
    auth = parts.get("user", "postgres") + (":" + parts["password"] if parts.get("password") else "")
    url = f"postgresql://{auth}@{parts.get('host', '127.0.0.1')}:{parts.get('port', '5432')}/{dbname}"
    try:
        settings = load_settings({"ConnectionStrings__DefaultConnection": url, "Data__Directory": "/tmp"})
        store.open_store(settings, migrate=True, pool_size=4)
        try:
            from relate.store import searchindex
        except ImportError:
            searchindex = None  # a checkout from before the search indexer
        sender = accounts.create_user("sender@bench.test")
        recipients = [accounts.create_user(f"rcpt{i}@bench.test").primary_address for i in range(RECIPIENTS)]

        def deliver(first: int, count: int) -> None:
            for start in range(first, first + count, BATCH):
                items = []
                for i in range(start, start + BATCH):
                    raw = message(i, recipients[i % RECIPIENTS], dbname)
                    envelope = Envelope("sender@bench.test", (recipients[i % RECIPIENTS],), sender.id)
                    items.append((raw, envelope, parse_message(raw)))
                groupcommit.deliver_many(items)

        deliver(0, args.warmup)
        if searchindex is not None:
            searchindex.index_all()
        before = backend_cpu(admin, dbname)
        deliver(args.warmup, args.messages)
        delivered = backend_cpu(admin, dbname)
        line = f"{args.root}: PostgreSQL CPU ms per message: in the commit {1000 * (delivered - before) / args.messages:.2f}"
        if searchindex is not None:
            searchindex.index_all()
            indexed = backend_cpu(admin, dbname)
            line += (f", in the search indexer afterwards {1000 * (indexed - delivered) / args.messages:.2f}"
                     f", in all {1000 * (indexed - before) / args.messages:.2f}")
        print(f"{line} ({args.messages} messages of 4 KB in batches of {BATCH}; "
              f"load average {os.getloadavg()[0]:.1f} at the end)")
        store.close_store()
    finally:
        admin.cursor().execute(f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)")
        admin.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
