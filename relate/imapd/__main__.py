"""`python -m relate.imapd`: the IMAP daemon on its own."""

from gevent import monkey

monkey.patch_all()

import sys  # noqa: E402

from relate.daemon import run  # noqa: E402
from relate.imapd.selected import recent_claims  # noqa: E402
from relate.imapd.service import listeners  # noqa: E402

if __name__ == "__main__":
    sys.exit(run("imap", listeners, worker_init=recent_claims.share))
