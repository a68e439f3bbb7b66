"""Dovecot's imaptest (https://github.com/dovecot/imaptest): its scripted compliance tests and
a short multi-client stress run against Relate Mail.

Opt-in: set RELATE_IMAPTEST_DIR to a built imaptest source tree (src/imaptest and its
scripted tests in src/tests). It builds against Dovecot's library (Debian: dovecot-dev, which
installs libdovecot in /usr/lib/dovecot, added to the binary's library path here). Both tests
run once on SQLite and once on PostgreSQL (the `store` fixture's backends); every scripted
test group must pass on both.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.imapd.conftest import ImapServer

pytestmark = pytest.mark.slow

IMAPTEST_DIR = os.environ.get("RELATE_IMAPTEST_DIR", "")

DOVECOT_LIBRARIES = Path("/usr/lib/dovecot")
# Scripted test groups whose expectations Relate Mail knowingly does not meet, and why: none.
KNOWN_DEVIATIONS: dict[str, str] = {}
# Further deviations on PostgreSQL only: none.
POSTGRES_DEVIATIONS: dict[str, str] = {}


def imaptest(server: ImapServer, *args: str) -> str:
    binary = Path(IMAPTEST_DIR) / "src" / "imaptest"
    account = server.account
    env = dict(os.environ)
    if DOVECOT_LIBRARIES.is_dir():
        env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [env.get("LD_LIBRARY_PATH"), str(DOVECOT_LIBRARIES)]))
    done = subprocess.run(
        [str(binary), "host=127.0.0.1", f"port={server.port}", f"user={account.address}", f"pass={account.key}",
         *args],
        cwd=Path(IMAPTEST_DIR) / "src", capture_output=True, text=True, timeout=600, env=env,
    )
    return done.stdout + done.stderr


@pytest.fixture
def plain_server(server_factory) -> ImapServer:  # imaptest logs in without TLS
    return server_factory(Tls__AllowInsecureAuth="true", Imap__MaxConnectionsPerUser="100")


@pytest.mark.skipif(not IMAPTEST_DIR, reason="RELATE_IMAPTEST_DIR is not set")
def test_imaptest_scripted_suite(plain_server: ImapServer) -> None:
    output = imaptest(plain_server, "test=tests")
    summary = re.search(r"(\d+) test groups: (\d+) failed", output)
    assert summary, output
    failed = set(re.findall(r"\*\*\* Test (\S+) (?:command|initialization)", output))
    allowed = set(KNOWN_DEVIATIONS)
    if plain_server.settings.database_url.startswith("postgresql"):
        allowed |= set(POSTGRES_DEVIATIONS)
    assert failed <= allowed, output
    assert int(summary.group(2)) <= len(allowed), output  # also failures the pattern above misses


@pytest.mark.skipif(not IMAPTEST_DIR, reason="RELATE_IMAPTEST_DIR is not set")
def test_imaptest_stress_finds_no_inconsistency(plain_server: ImapServer) -> None:
    output = imaptest(plain_server, "mbox=tests/default.mbox", "clients=5", "secs=15")
    errors = [line for line in output.splitlines() if line.startswith(("Error:", "Panic:", "Fatal:"))]
    assert errors == [], output
