"""fetchmail over IMAP: retrieve and delete, then retrieve only what is new while keeping mail.
Skipped when fetchmail is not installed (deploy/install-deps.sh test)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.imapd.conftest import Account, ImapServer, simple_message

pytestmark = pytest.mark.slow

FETCHMAIL = shutil.which("fetchmail")


def fetch(server: ImapServer, account: Account, tmp_path: Path, *, keep: bool) -> tuple[int, str]:
    out = tmp_path / "delivered"
    rc = tmp_path / "fetchmailrc"
    rc.write_text(
        "set no syslog\n"
        f'poll 127.0.0.1 service {server.tls_port} protocol IMAP timeout 30\n'
        f'  user "{account.address}" password "{account.key}" is "tester" here\n'
        f"  ssl no sslcertck folder INBOX {'keep' if keep else 'no keep'}\n"
        f"  mda \"/bin/sh -c 'cat >> {out}; echo ==END== >> {out}'\"\n"
    )
    rc.chmod(0o600)
    env = {**os.environ, "HOME": str(tmp_path), "FETCHMAILHOME": str(tmp_path)}
    done = subprocess.run([FETCHMAIL or "fetchmail", "-f", str(rc), "--nodetach", "-v"], capture_output=True,
                          text=True, timeout=120, env=env)
    delivered = out.read_text() if out.exists() else ""
    # fetchmail exits 0 when it got mail and 1 when there was none.
    assert done.returncode in (0, 1), done.stdout + done.stderr
    return done.returncode, delivered


@pytest.mark.skipif(FETCHMAIL is None, reason="fetchmail is not installed")
def test_fetchmail_retrieves_then_only_new_mail(server: ImapServer, account: Account, tmp_path: Path) -> None:
    account.deliver(simple_message("first"))
    account.deliver(simple_message("second"))
    status, delivered = fetch(server, account, tmp_path, keep=False)
    assert status == 0
    assert delivered.count("==END==") == 2 and "Subject: first" in delivered and "Subject: second" in delivered
    assert account.uids() == []  # retrieved and deleted

    (tmp_path / "delivered").unlink()
    account.deliver(simple_message("third"))
    status, delivered = fetch(server, account, tmp_path, keep=True)
    assert status == 0 and delivered.count("==END==") == 1 and "Subject: third" in delivered
    assert list(account.flags().values()) == [frozenset({"\\Seen"})]  # kept, and marked read

    (tmp_path / "delivered").unlink()
    status, delivered = fetch(server, account, tmp_path, keep=True)
    assert status == 1 and delivered == ""  # nothing new
