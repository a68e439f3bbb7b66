"""Worker process for the concurrent-delivery test: delivers N messages to one address.

Usage: python -m tests.store.deliver_worker DATABASE_URL ADDRESS COUNT TAG
Prints the UIDs it was given, one line, space-separated.
"""

from gevent import monkey

monkey.patch_all()

import sys  # noqa: E402

from relate import store  # noqa: E402
from relate.config import load_settings  # noqa: E402
from relate.store import Envelope, messages  # noqa: E402


def main() -> None:
    url, address, count, tag = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    settings = load_settings({"ConnectionStrings__DefaultConnection": url, "Database__AutoMigrate": "false"})
    store.open_store(settings, migrate=False, pool_size=2)
    uids = []
    for i in range(count):
        raw = f"From: w@x.test\r\nSubject: {tag} {i}\r\nMessage-ID: <{tag}.{i}@x.test>\r\n\r\nbody {tag} {i}\r\n".encode()
        result = messages.deliver(raw, Envelope("w@x.test", (address,)))
        uids.append(result.entries[0][2])
    print(" ".join(map(str, uids)))


if __name__ == "__main__":
    main()
