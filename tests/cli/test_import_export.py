"""Round trips through `relate import` and `relate export` (mbox and Maildir)."""

import datetime as dt
import random

import pytest


def build_mbox(count: int) -> bytes:
    """An mboxrd file with tricky bodies: From lines, quoted From lines, 8-bit bytes, no final newline."""
    rng = random.Random(7)
    out = []
    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    for i in range(count):
        when = start + dt.timedelta(minutes=37 * i)
        stamp = when.strftime("%a %b ") + f"{when.day:2d}" + when.strftime(" %H:%M:%S %Y")
        out.append(f"From sender{i % 7}@example.org {stamp}\n".encode())
        body = [
            f"From: Sender {i} <sender{i % 7}@example.org>\n",
            "To: alice@example.com\n",
            f"Subject: message {i}\n",
            f"Message-ID: <m{i}@example.org>\n",
            "\n",
            f"Line one of {i}.\n",
        ]
        if i % 3 == 0:
            body.append(">From the top, quoted in the original\n")  # stored as "From the top..."
        if i % 5 == 0:
            body.append(">>From twice quoted\n")
        body.append("caf\u00e9 " * rng.randint(1, 30) + "\n")
        out.append("".join(body).encode("utf-8"))
        if i % 11 == 0:
            out.append(b"\xff\xfe raw 8-bit\n")
        out.append(b"\n")
    return b"".join(out)


def test_mbox_round_trip_1000_messages_byte_identical(cli, tmp_path):
    source = tmp_path / "in.mbox"
    source.write_bytes(build_mbox(1000))
    cli("users", "add", "alice@example.com")
    key = cli("keys", "create", "alice@example.com", "--name", "k", "--scopes", "imap").stdout.splitlines()[-1]
    assert key.startswith("rm_")
    out = cli("import", "alice@example.com", str(source)).stdout
    assert "imported 1000 messages" in out
    exported = tmp_path / "out.mbox"
    assert "exported 1000 messages" in cli("export", "alice@example.com", str(exported)).stdout
    assert exported.read_bytes() == source.read_bytes()


def test_import_into_named_mailbox_and_maildir_round_trip(cli, tmp_path):
    source = tmp_path / "in.mbox"
    source.write_bytes(build_mbox(25))
    cli("users", "add", "alice@example.com")
    cli("import", "alice@example.com", str(source), "--mailbox", "Archive/2024")
    maildir = tmp_path / "md"
    cli("export", "alice@example.com", str(maildir), "--mailbox", "Archive/2024", "--format", "maildir")
    files = sorted((maildir / "cur").iterdir())
    assert len(files) == 25
    cli("users", "add", "bob@example.com")
    assert "imported 25 messages" in cli("import", "bob@example.com", str(maildir)).stdout
    again = tmp_path / "again.mbox"
    cli("export", "bob@example.com", str(again))
    # The Maildir has no From_ lines: senders become MAILER-DAEMON, everything else is the same.
    original = [m.split(b"\n", 1)[1] for m in source.read_bytes().split(b"\n\nFrom ")]
    copied = [m.split(b"\n", 1)[1] for m in again.read_bytes().split(b"\n\nFrom ")]
    assert original == copied


def test_maildir_flags_survive(cli, tmp_path):
    md = tmp_path / "md"
    for sub in ("cur", "new", "tmp"):
        (md / sub).mkdir(parents=True)
    (md / "cur" / "1.a.host:2,FS").write_bytes(b"Subject: one\n\nx\n")
    (md / "new" / "2.b.host").write_bytes(b"Subject: two\n\ny\n")
    cli("users", "add", "alice@example.com")
    cli("import", "alice@example.com", str(md))
    out = tmp_path / "out"
    cli("export", "alice@example.com", str(out), "--format", "maildir")
    names = sorted(p.name.rsplit(":2,", 1)[1] for p in (out / "cur").iterdir())
    assert names == ["", "FS"]


def test_not_an_mbox(cli, tmp_path):
    bad = tmp_path / "bad"
    bad.write_bytes(b"hello\nworld\n")
    cli("users", "add", "alice@example.com")
    result = cli("import", "alice@example.com", str(bad), check=False)
    assert result.returncode == 1 and "not an mbox" in result.stderr


@pytest.mark.postgres
def test_import_on_postgres(pg_cli, tmp_path):
    source = tmp_path / "in.mbox"
    source.write_bytes(build_mbox(50))
    pg_cli("users", "add", "alice@example.com")
    pg_cli("import", "alice@example.com", str(source))
    exported = tmp_path / "out.mbox"
    pg_cli("export", "alice@example.com", str(exported))
    assert exported.read_bytes() == source.read_bytes()
