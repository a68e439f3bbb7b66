"""WSGI entry point: `gunicorn -k gevent 'webapp.wsgi:app'`.

Settings are read from the environment once; a bad configuration stops the worker with a
one-line message naming the variable. Each worker opens its own store and starts its own
metrics flusher at import, so do not run gunicorn with --preload.
"""

from gevent import monkey

monkey.patch_all()

import sys  # noqa: E402

from relate import metrics, store  # noqa: E402
from relate.config import ConfigError, load_settings  # noqa: E402
from relate.protocol.log import setup_logging  # noqa: E402
from webapp import create_app  # noqa: E402

try:
    settings = load_settings()
    setup_logging(settings.log_level)
    store.open_store(settings)
    app = create_app(settings)
except (ConfigError, store.StoreError) as exc:
    print(f"relate-api: {exc}", file=sys.stderr)
    raise SystemExit(1) from None

metrics.start_flusher()
