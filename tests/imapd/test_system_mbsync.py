"""mbsync (isync) synchronising a Maildir with Relate Mail both ways: flags, moves, deletions,
then again incrementally. Skipped when mbsync is not installed (deploy/install-deps.sh test)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from relate.store import mailboxes, messages
from tests.imapd.conftest import Account, ImapServer, simple_message

pytestmark = pytest.mark.slow

MBSYNC = shutil.which("mbsync")


def config(server: ImapServer, account: Account, cert: Path, maildir: Path) -> Path:
    rc = maildir.parent / "mbsyncrc"
    rc.write_text(
        f"""IMAPAccount relate
Host localhost
Port {server.tls_port}
User {account.address}
Pass {account.key}
SSLType IMAPS
CertificateFile {cert}

IMAPStore remote
Account relate

MaildirStore local
Path {maildir}/
Inbox {maildir}/INBOX
SubFolders Verbatim

Channel sync
Far :remote:
Near :local:
Patterns *
Create Both
Expunge Both
Sync All
SyncState *
"""
    )
    return rc


def run(rc: Path) -> str:
    done = subprocess.run([MBSYNC or "mbsync", "-c", str(rc), "-V", "sync"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def local(maildir: Path, folder: str) -> dict[str, str]:
    """Subject -> Maildir flags of the messages in one local folder."""
    out = {}
    for sub in ("cur", "new"):
        for path in (maildir / folder / sub).glob("*"):
            subject = next(
                line.split(":", 1)[1].strip()
                for line in path.read_bytes().decode().splitlines()
                if line.startswith("Subject:")
            )
            out[subject] = path.name.rsplit(":2,", 1)[1] if ":2," in path.name else ""
    return out


def remote(account: Account, folder: str) -> dict[str, frozenset[str]]:
    """Subject -> flags of the messages in one server mailbox."""
    box = mailboxes.get_mailbox(account.user_id, folder)
    out = {}
    for entry in messages.list_entries(account.user_id, box.id):
        raw = messages.raw_message(entry.body_id).decode()
        subject = next(line.split(":", 1)[1].strip() for line in raw.splitlines() if line.startswith("Subject:"))
        out[subject] = entry.flags
    return out


def remote_uid(account: Account, folder: str, subject: str) -> int:
    box = mailboxes.get_mailbox(account.user_id, folder)
    for entry in messages.list_entries(account.user_id, box.id):
        if f"Subject: {subject}\r\n" in messages.raw_message(entry.body_id).decode():
            return entry.uid
    raise AssertionError(f"no message {subject} in {folder}")


def set_local_flags(maildir: Path, folder: str, subject: str, flags: str) -> None:
    for sub in ("cur", "new"):
        for path in (maildir / folder / sub).glob("*"):
            if f"Subject: {subject}\n" in path.read_bytes().decode().replace("\r\n", "\n"):
                base = path.name.split(":2,", 1)[0]
                path.rename(maildir / folder / "cur" / f"{base}:2,{flags}")
                return
    raise AssertionError(f"no local message {subject}")


def local_path(maildir: Path, folder: str, subject: str) -> Path:
    for sub in ("cur", "new"):
        for path in (maildir / folder / sub).glob("*"):
            if f"Subject: {subject}\n" in path.read_bytes().decode().replace("\r\n", "\n"):
                return path
    raise AssertionError(f"no local message {subject}")


@pytest.mark.skipif(MBSYNC is None, reason="mbsync (isync) is not installed")
def test_mbsync_both_ways_then_incrementally(server: ImapServer, account: Account, imap_cert_dir: Path,
                                             tmp_path: Path) -> None:
    maildir = tmp_path / "mail"
    maildir.mkdir()
    rc = config(server, account, imap_cert_dir / "cert.pem", maildir)
    account.append(simple_message("read"), flags=("\\Seen",))
    account.append(simple_message("important"), flags=("\\Flagged",))
    account.append(simple_message("plain"))
    mailboxes.create_mailbox(account.user_id, "Projects/Relate")
    account.append(simple_message("project note"), mailbox="Projects/Relate")

    # 1. First run: everything arrives locally, flags included.
    run(rc)
    assert local(maildir, "INBOX") == {"read": "S", "important": "F", "plain": ""}
    assert local(maildir, "Projects/Relate") == {"project note": ""}
    assert (maildir / "Sent").is_dir() and (maildir / "Trash").is_dir()

    # 2. Changes on both sides.
    set_local_flags(maildir, "INBOX", "plain", "RS")  # replied and read
    local_path(maildir, "INBOX", "read").unlink()  # deleted locally
    moved = local_path(maildir, "INBOX", "important")  # moved locally to Projects/Relate
    fresh_name = moved.name.split(",U=")[0].split(":2,")[0] + ":2,F"  # no UID: new to that folder
    moved.rename(maildir / "Projects/Relate" / "cur" / fresh_name)
    (maildir / "INBOX" / "new" / "1700000000.local.host").write_bytes(simple_message("written offline"))
    account.deliver(simple_message("arrived meanwhile"))
    inbox = account.mailbox("INBOX")
    project = mailboxes.get_mailbox(account.user_id, "Projects/Relate").id
    uid_note = account.uids("Projects/Relate")[0]
    messages.move(account.user_id, project, [uid_note], account.mailbox("Archive"))  # moved on the server
    mailboxes.create_mailbox(account.user_id, "Receipts")

    run(rc)
    assert remote(account, "INBOX") == {
        "plain": frozenset({"\\Answered", "\\Seen"}),
        "written offline": frozenset(),
        "arrived meanwhile": frozenset(),
    }
    assert remote(account, "Projects/Relate") == {"important": frozenset({"\\Flagged"})}
    assert remote(account, "Archive") == {"project note": frozenset()}
    assert local(maildir, "INBOX") == {"plain": "RS", "written offline": "", "arrived meanwhile": ""}
    assert local(maildir, "Projects/Relate") == {"important": "F"}
    assert local(maildir, "Archive") == {"project note": ""}
    assert (maildir / "Receipts").is_dir()

    # 3. Incremental: flag a message on the server, trash one locally; nothing else moves.
    messages.store_flags(account.user_id, inbox, [remote_uid(account, "INBOX", "arrived meanwhile")], "add",
                         ["\\Flagged"])
    set_local_flags(maildir, "INBOX", "written offline", "ST")  # trashed: expunged on both sides
    before_uidvalidity = mailboxes.get_mailbox(account.user_id, "INBOX").uid_validity
    run(rc)
    assert local(maildir, "INBOX") == {"plain": "RS", "arrived meanwhile": "F"}
    assert remote(account, "INBOX") == {
        "plain": frozenset({"\\Answered", "\\Seen"}),
        "arrived meanwhile": frozenset({"\\Flagged"}),
    }
    assert mailboxes.get_mailbox(account.user_id, "INBOX").uid_validity == before_uidvalidity

    # 4. Nothing changed: a run changes nothing anywhere.
    snapshot = (local(maildir, "INBOX"), remote(account, "INBOX"))
    output = run(rc)
    assert (local(maildir, "INBOX"), remote(account, "INBOX")) == snapshot
    assert "UIDVALIDITY" not in output
