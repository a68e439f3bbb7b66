"""mbox (mboxrd) and Maildir, for `relate import` and `relate export`.

Invariants:
- Reading and writing stream: one message in memory at a time.
- mboxrd quoting (a line of the form ">*From " gains one ">" on write and loses one on read)
  makes export(import(file)) byte-identical for files that use it and asctime From_ dates;
  the From_ line's sender and date become the entry's envelope sender and internal date.
- Maildir flags (the ":2,DFRST" suffix) map to IMAP flags and back.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import socket
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

_FROM_LINE = re.compile(rb"^From (\S*) +(.*?)\r?\n$", re.S)
_QUOTED_FROM = re.compile(rb"^>+From ")
_ASCTIME = "%a %b %d %H:%M:%S %Y"

MAILDIR_FLAGS = {"D": "\\Draft", "F": "\\Flagged", "R": "\\Answered", "S": "\\Seen", "T": "\\Deleted"}
FLAG_LETTERS = {flag: letter for letter, flag in MAILDIR_FLAGS.items()}


@dataclass
class MailItem:
    raw: bytes
    sender: str | None = None  # mbox From_ sender ('' for MAILER-DAEMON style null senders kept as given)
    date: dt.datetime | None = None
    flags: list[str] = field(default_factory=list)


def format_from_line(sender: str | None, when: dt.datetime) -> bytes:
    stamp = when.astimezone(dt.UTC).strftime(_ASCTIME)
    # asctime pads the day of month with a space, not a zero.
    parts = stamp.split(" ")
    parts[2] = f"{int(parts[2]):2d}"
    return f"From {sender or 'MAILER-DAEMON'} {' '.join(parts)}\n".encode()


def _parse_from_date(text: bytes) -> dt.datetime | None:
    value = b" ".join(text.split()).decode("ascii", "replace")
    for fmt in (_ASCTIME, _ASCTIME + " %z", "%a %b %d %H:%M:%S %z %Y"):
        try:
            parsed = dt.datetime.strptime(value, fmt)
        except ValueError:
            continue
        return parsed.replace(tzinfo=dt.UTC) if parsed.tzinfo is None else parsed.astimezone(dt.UTC)
    return None


def read_mbox(stream: BinaryIO) -> Iterator[MailItem]:
    """Messages of an mboxrd/mboxo file, in order."""
    current: list[bytes] | None = None
    sender: str | None = None
    date: dt.datetime | None = None
    previous_blank = True
    for line in stream:
        match = _FROM_LINE.match(line) if line.startswith(b"From ") and previous_blank else None
        if match:
            if current is not None:
                yield _finish(current, sender, date)
            current = []
            sender = match.group(1).decode("utf-8", "replace")
            date = _parse_from_date(match.group(2))
            previous_blank = False
            continue
        if current is None:
            if line.strip():
                raise ValueError("not an mbox file: it does not start with a 'From ' line")
            continue
        current.append(line[1:] if _QUOTED_FROM.match(line) else line)
        previous_blank = line in (b"\n", b"\r\n")
    if current is not None:
        yield _finish(current, sender, date)


def _finish(lines: list[bytes], sender: str | None, date: dt.datetime | None) -> MailItem:
    # The blank line before the next From_ line (or the end of the file) separates messages.
    if lines and lines[-1] in (b"\n", b"\r\n"):
        lines = lines[:-1]
    return MailItem(b"".join(lines), sender, date)


def write_mbox_message(out: BinaryIO, item: MailItem) -> None:
    out.write(format_from_line(item.sender, item.date or dt.datetime.now(dt.UTC)))
    for line in item.raw.splitlines(keepends=True):
        out.write(b">" + line if line.startswith(b"From ") or _QUOTED_FROM.match(line) else line)
    if item.raw and not item.raw.endswith(b"\n"):
        out.write(b"\n")
    out.write(b"\n")


def write_mbox(out: BinaryIO, items: Iterable[MailItem]) -> int:
    count = 0
    for item in items:
        write_mbox_message(out, item)
        count += 1
    return count


# -- Maildir -------------------------------------------------------------------------------


def is_maildir(path: Path) -> bool:
    return path.is_dir() and (path / "cur").is_dir() and (path / "new").is_dir()


def maildir_files(path: Path) -> list[Path]:
    """The message files of a Maildir, oldest first (by the time in their unique names, then mtime)."""
    files = [p for sub in ("new", "cur") for p in (path / sub).iterdir() if p.is_file() and not p.name.startswith(".")]
    return sorted(files, key=lambda p: (p.stat().st_mtime, p.name))


def read_maildir_item(path: Path) -> MailItem:
    flags: list[str] = []
    if ":2," in path.name:
        letters = path.name.rsplit(":2,", 1)[1]
        flags = [MAILDIR_FLAGS[c] for c in letters if c in MAILDIR_FLAGS]
    when = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC)
    return MailItem(path.read_bytes(), None, when, flags)


def read_maildir(path: Path) -> Iterator[MailItem]:
    for file in maildir_files(path):
        yield read_maildir_item(file)


class MaildirWriter:
    def __init__(self, path: Path):
        self.path = path
        for sub in ("tmp", "new", "cur"):
            (path / sub).mkdir(parents=True, exist_ok=True)
        self.host = socket.gethostname().replace("/", "\\057").replace(":", "\\072")
        self.count = 0

    def add(self, item: MailItem) -> Path:
        self.count += 1
        when = item.date or dt.datetime.now(dt.UTC)
        unique = f"{int(when.timestamp())}.R{os.getpid()}Q{self.count}.{self.host}"
        letters = "".join(sorted(FLAG_LETTERS[f] for f in item.flags if f in FLAG_LETTERS))
        tmp = self.path / "tmp" / unique
        with open(tmp, "wb") as fh:
            fh.write(item.raw)
            fh.flush()
            os.fsync(fh.fileno())
        final = self.path / "cur" / f"{unique}:2,{letters}"
        os.rename(tmp, final)
        stamp = when.timestamp()
        os.utime(final, (stamp, stamp))
        return final


def now_asctime() -> str:
    return time.strftime(_ASCTIME, time.gmtime())
