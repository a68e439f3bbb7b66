"""`python -m relate.smtpd`: the SMTP daemon (submission 587 and 465, MX 25)."""

from gevent import monkey

monkey.patch_all()

import sys  # noqa: E402

from relate.daemon import run  # noqa: E402
from relate.smtpd.service import listeners  # noqa: E402

if __name__ == "__main__":
    sys.exit(run("smtp", listeners, search_indexer=True))
