"""WSGI entry point: `gunicorn -k gevent 'webapp.wsgi:app'`.

Settings are read from the environment once; a bad configuration stops the worker with a
one-line message naming the variable.
"""

from gevent import monkey

monkey.patch_all()

import sys  # noqa: E402

from relate import store  # noqa: E402
from relate.config import ConfigError, load_settings  # noqa: E402
from relate.protocol.log import setup_logging  # noqa: E402
from webapp import create_app  # noqa: E402

try:
    settings = load_settings()
    setup_logging(settings.log_level)
    store.open_store(settings)
except (ConfigError, store.StoreError) as exc:
    print(f"relate-api: {exc}", file=sys.stderr)
    raise SystemExit(1) from None

app = create_app(settings)
