"""Commands that change messages: STORE, COPY, MOVE, EXPUNGE (RFC 9051 §6.4) and APPEND (§6.3.12).

Invariants:
- Every change goes through relate.store with origin = our connection id, and is committed
  before the tagged OK. The selected view learns of our own changes directly (record,
  forget, or dirty for new messages), so the replies of this command already show them.
- \\Recent is never stored: it is dropped from STORE and APPEND flag lists (RFC 9051 §2.3.2).
- UIDPLUS (RFC 4315): APPEND answers [APPENDUID], COPY [COPYUID], MOVE an untagged
  OK [COPYUID] before its EXPUNGEs (RFC 6851 §4.3).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from relate import store
from relate.imapd import commands as c
from relate.imapd.responses import Bad, Done, No, untagged
from relate.imapd.selected import SYSTEM_FLAGS, SelectedMailbox
from relate.imapd.seqset import format_seqset
from relate.store import mailboxes as store_mailboxes
from relate.store import messages as store_messages
from relate.store.types import MailboxInfo

if TYPE_CHECKING:
    from relate.imapd.session import Session

_STORE_MODES = {c.StoreMode.REPLACE: "set", c.StoreMode.ADD: "add", c.StoreMode.REMOVE: "remove"}


def _storable(flags: tuple[str, ...]) -> list[str]:
    """Flags a client may set: the system flags but \\Recent, and keywords."""
    out = []
    for flag in flags:
        if flag == "\\Recent":
            continue
        if flag.startswith("\\") and flag not in SYSTEM_FLAGS:
            raise Bad(f"unknown system flag {flag[:40]}")
        out.append(flag)
    return out


def _writable(session: Session) -> SelectedMailbox:
    selected = session.require_selected()
    if selected.readonly:
        raise No("the mailbox is read-only (EXAMINE)", "CANNOT")
    return selected


def store_command(session: Session, command: c.Store) -> Done | None:
    """STORE / UID STORE, with UNCHANGEDSINCE (RFC 7162 §3.1.3)."""
    selected = _writable(session)
    if command.unchanged_since is not None:
        session.enable_condstore()
    flags = _storable(command.flags)
    indexes = selected.resolve(command.seqset, command.uid)
    uids = [selected.uids[i] for i in indexes if selected.uids[i] not in selected.expunged]
    try:
        result = store_messages.store_flags(
            session.user_id, selected.id, uids, _STORE_MODES[command.mode], flags,
            unchanged_since=command.unchanged_since, origin=session.conn.conn_id,
        )
    except store.InvalidInput as exc:
        raise No(str(exc), "CANNOT") from None
    selected.record(result.changed)
    selected.wrote(result.modseq)
    changed = {e.uid for e in result.changed}
    failed = set(result.failed)
    condstore = session.enabled.condstore
    if not command.silent:
        for response in selected.keyword_responses(selected.entries[i] for i in indexes):
            session.send(response)
    for i in indexes:
        uid = selected.uids[i]
        if uid in failed or uid in selected.expunged:
            continue
        if command.silent:
            # RFC 7162 §3.1.3: even .SILENT reports the new MODSEQ of what it changed.
            if condstore and uid in changed:
                session.send(selected.flags_response(i, uid=True, modseq=True, flags=False))
            continue
        session.send(selected.flags_response(i, uid=command.uid or condstore, modseq=condstore))
    if failed:
        numbers = failed if command.uid else {i + 1 for i in indexes if selected.uids[i] in failed}
        return Done("conditional STORE failed for some messages", f"MODIFIED {format_seqset(numbers)}")
    return None


def _destination(session: Session, name: str) -> MailboxInfo:
    """The mailbox named `name`; the selected one without a read (its events keep its name
    current). The write to it fails with NotFound if it has just been deleted (`_missing`)."""
    selected = session.selected
    try:
        if selected is not None and not selected.gone and store_mailboxes.normalise_name(name) == selected.mailbox.name:
            return selected.mailbox
        return store_mailboxes.get_mailbox(session.user_id, name)
    except (store.NotFound, store.InvalidInput):
        raise _missing(name) from None


def _missing(name: str) -> No:
    return No(f"no mailbox named {name}", "TRYCREATE")  # RFC 9051 §6.4.7


def _source_uids(selected: SelectedMailbox, command: c.Copy | c.Move) -> list[int]:
    indexes = selected.resolve(command.seqset, command.uid)
    return [selected.uids[i] for i in indexes if selected.uids[i] not in selected.expunged]


def copy(session: Session, command: c.Copy) -> Done | None:
    selected = session.require_selected()
    target = _destination(session, command.mailbox)
    uids = _source_uids(selected, command)
    if not uids:
        return None
    result = store_messages.copy(session.user_id, selected.id, uids, target.id, origin=session.conn.conn_id)
    if target.id == selected.id:
        selected.dirty = True
    if not result.pairs:
        return None
    return Done(f"{command.verb} completed", _copyuid(result))


def _copyuid(result: store_messages.CopyResult) -> str:
    sources = format_seqset(src for src, _ in result.pairs)
    targets = format_seqset(dst for _, dst in result.pairs)
    return f"COPYUID {result.uid_validity} {sources} {targets}"


def move(session: Session, command: c.Move) -> Done | None:
    """RFC 6851: atomic in the store; to the same mailbox it is copy, then expunge."""
    selected = _writable(session)
    target = _destination(session, command.mailbox)
    uids = _source_uids(selected, command)
    if not uids:
        return None
    origin = session.conn.conn_id
    if target.id == selected.id:
        result = store_messages.copy(session.user_id, selected.id, uids, target.id, origin=origin)
        store_messages.expunge(session.user_id, selected.id, uids, only_deleted=False, origin=origin)
        selected.dirty = True
    else:
        result = store_messages.move(session.user_id, selected.id, uids, target.id, origin=origin)
    if result.pairs:
        session.send(untagged(f"OK [{_copyuid(result)}] moved"))
    selected.forget(src for src, _ in result.pairs)
    return None


def expunge(session: Session, command: c.Expunge) -> Done | None:
    """EXPUNGE, and UID EXPUNGE (RFC 4315 §2.1) limited to a UID set."""
    selected = _writable(session)
    if command.uids is None:
        uids = [uid for uid in selected.uids if uid not in selected.expunged]
    else:
        uids = [selected.uids[i] for i in selected.resolve(command.uids, uid=True)]
    removed, modseq = store_messages.expunge_with_modseq(session.user_id, selected.id, uids,
                                                         origin=session.conn.conn_id)
    selected.forget(removed)
    selected.wrote(modseq)  # so the view's HIGHESTMODSEQ includes this expunge
    return Done(f"{command.verb} completed", modseq=True)


def append(session: Session, command: c.Append) -> Done | None:
    """RFC 9051 §6.3.12 with UIDPLUS; the message was spooled by the read loop."""
    target = _destination(session, command.mailbox)
    flags = _storable(command.flags)
    sink = session.literals[command.message.index]
    sink.seek(0)
    raw = sink.read()
    if not raw:
        raise No("empty message", "CANNOT")
    when = command.date_time or dt.datetime.now(dt.UTC)
    try:
        box, entry = store_messages.append(
            session.user_id, target.id, raw, flags, when, origin=session.conn.conn_id,
        )
    except store.InvalidInput as exc:
        raise No(str(exc), "CANNOT") from None
    except store.NotFound:
        raise _missing(command.mailbox) from None
    if session.selected is not None and session.selected.id == target.id:
        session.selected.wrote(entry.modseq, [entry])  # RFC 9051 §6.3.12: EXISTS before the tagged OK
    return Done("APPEND completed", f"APPENDUID {box.uid_validity} {entry.uid}")
