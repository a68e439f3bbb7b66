"""SELECT / EXAMINE (with CONDSTORE and QRESYNC), CLOSE and UNSELECT (RFC 9051 §6.3.2, §6.4.2)."""

from __future__ import annotations

import bisect
from typing import TYPE_CHECKING

from relate import store
from relate.imapd import commands as c
from relate.imapd.grammar import MAX_NUMBER
from relate.imapd.mailboxcmds import list_response
from relate.imapd.responses import Bad, Done, No, untagged
from relate.imapd.selected import SelectedMailbox, flag_list
from relate.imapd.seqset import format_seqset
from relate.store import messages as store_messages

if TYPE_CHECKING:
    from relate.imapd.session import Session


def select(session: Session, command: c.Select) -> Done | None:
    enabled = session.enabled
    was_selected = session.selected is not None
    session.deselect()  # RFC 9051 §6.3.2: even when this SELECT fails
    if was_selected and (enabled.qresync or enabled.rev2):
        session.send(untagged("OK [CLOSED] previous mailbox closed"))  # RFC 7162 §3.2.11
    if command.qresync is not None and not enabled.qresync:
        raise Bad("QRESYNC must be enabled first")  # RFC 7162 §3.2.5
    if command.condstore:
        session.enable_condstore()
    try:
        selected = SelectedMailbox.open(session.user_id, command.mailbox, readonly=command.readonly, enabled=enabled)
    except store.NotFound:
        raise No(f"no mailbox named {command.mailbox}", "NONEXISTENT") from None
    except store.InvalidInput as exc:
        raise No(str(exc), "NONEXISTENT") from None
    session.select(selected)
    box = selected.mailbox
    defined, permanent = selected.flag_definitions()
    session.send(defined)
    session.send(untagged(f"{len(selected)} EXISTS"))
    if enabled.recent:
        session.send(untagged(f"{len(selected.recent)} RECENT"))
        first_unseen = next((i for i, e in enumerate(selected.entries) if "\\Seen" not in e.flags), None)
        if first_unseen is not None:
            session.send(untagged(f"OK [UNSEEN {first_unseen + 1}] first unseen message"))
    session.send(permanent)
    uid_next = max(box.uid_next, selected.last_uid + 1)
    highest = max([box.highest_modseq, *(e.modseq for e in selected.entries)])
    session.send(untagged(f"OK [UIDVALIDITY {box.uid_validity}] UIDs valid"))
    session.send(untagged(f"OK [UIDNEXT {uid_next}] predicted next UID"))
    session.send(untagged(f"OK [HIGHESTMODSEQ {highest}] highest mod-sequence"))  # RFC 7162 §3.1.2.1
    if enabled.rev2:
        session.send(list_response(session, box))  # RFC 9051 §6.3.2
    if command.qresync is not None and command.qresync.uidvalidity == box.uid_validity:
        _resynchronise(session, selected, command.qresync)
    return Done(f"{command.verb} completed", "READ-ONLY" if selected.readonly else "READ-WRITE")


def _resynchronise(session: Session, selected: SelectedMailbox, qresync: c.QResync) -> None:
    """RFC 7162 §3.2.5.1: what changed since the client's mod-sequence, without a full fetch."""
    changed, vanished = store_messages.changes_since(session.user_id, selected.id, qresync.modseq)
    if qresync.known_uids is not None:
        vanished = within(qresync.known_uids.resolve(MAX_NUMBER), vanished)
    vanished = [uid for uid in vanished if selected.index_of(uid) is None]
    if vanished:
        session.send(untagged(f"VANISHED (EARLIER) {format_seqset(vanished)}"))
    for entry in changed:
        index = selected.index_of(entry.uid)
        if index is None:
            continue  # arrived after the mailbox was read: the next EXISTS tells
        known_entry = selected.entries[index]
        flags = flag_list(known_entry.flags, entry.uid in selected.recent)
        session.send(untagged(f"{index + 1} FETCH (UID {entry.uid} FLAGS {flags} MODSEQ ({known_entry.modseq}))"))


def close(session: Session, command: c.Close) -> Done | None:
    """Expunge silently (read-write only), then leave the selected state (RFC 9051 §6.4.2)."""
    selected = session.require_selected()
    try:
        if not selected.readonly:
            uids = [uid for uid in selected.uids if uid not in selected.expunged]
            store_messages.expunge(session.user_id, selected.id, uids, origin=session.conn.conn_id)
    finally:
        session.deselect()
    return None


def unselect(session: Session, command: c.Unselect) -> Done | None:
    """RFC 3691: leave the selected state without expunging."""
    session.deselect()
    return None



def within(ranges: list[tuple[int, int]], numbers: list[int]) -> list[int]:
    """The `numbers` inside resolved, ascending, merged `ranges`."""
    starts = [low for low, _ in ranges]
    out = []
    for n in numbers:
        i = bisect.bisect_right(starts, n) - 1
        if i >= 0 and n <= ranges[i][1]:
            out.append(n)
    return out
