"""`python -m relate [COMMAND]`: the all-in-one process by default, else an admin command."""

from gevent import monkey

monkey.patch_all()

import sys  # noqa: E402

from relate.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
