"""WSGI entry point: `gunicorn -k gevent 'webapp.wsgi:app'`.

Settings are read from the environment once; a bad configuration stops the worker with a
one-line message naming the variable. Each worker opens its own store and starts its own
metrics flusher and search indexer (relate.store.searchindex) at import, so do not run
gunicorn with --preload.

Each worker keeps up to POOL_SIZE database connections open: it serves many requests at once,
and a pool smaller than the statements in flight closes connections only to open new ones
(a PostgreSQL backend start each) a moment later.

Every worker accepts one connection at a time (gevent's servers take up to 100 per wake-up
by default), and leaves a new connection to the other workers while it holds more than the
least loaded of them (relate.protocol.balance): otherwise the first worker to wake takes a whole burst
of new keep-alive connections and serves them alone while the other workers idle.
Before that, each worker removes the tables in shared memory of masters (and daemons) that
were killed outright and could not remove their own (relate.protocol.shm.sweep).
"""

from gevent import monkey

monkey.patch_all()

import sys  # noqa: E402

from gevent.baseserver import BaseServer  # noqa: E402

from relate import metrics, store  # noqa: E402
from relate.config import ConfigError, load_settings  # noqa: E402
from relate.protocol import balance, shm  # noqa: E402
from relate.protocol.log import setup_logging  # noqa: E402
from relate.store import searchindex  # noqa: E402
from webapp import create_app  # noqa: E402

ACCEPT_PER_WAKEUP = 1
POOL_SIZE = 20

try:
    settings = load_settings()
    setup_logging(settings.log_level)
    store.open_store(settings, pool_size=POOL_SIZE)
    app = create_app(settings)
except (ConfigError, store.StoreError) as exc:
    print(f"relate-api: {exc}", file=sys.stderr)
    raise SystemExit(1) from None

BaseServer.max_accept = ACCEPT_PER_WAKEUP
shm.sweep()  # the tables of gunicorn masters (or daemons) killed outright
balance.install()
metrics.start_flusher()
searchindex.start()  # messages sent through the API are indexed after their commit
