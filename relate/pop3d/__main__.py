"""`python -m relate.pop3d`: the POP3 daemon on its own."""

from gevent import monkey

monkey.patch_all()

import sys  # noqa: E402

from relate.daemon import run  # noqa: E402
from relate.pop3d.service import listeners  # noqa: E402

if __name__ == "__main__":
    sys.exit(run("pop3", listeners))
