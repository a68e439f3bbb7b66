"""FETCH and SEARCH in the session: message sets, \\Seen, CONDSTORE/QRESYNC, ESEARCH and `$`.

What a FETCH item or a SEARCH key means is relate.imapd.fetch and relate.imapd.search;
this module decides which messages, in which form, and what else must be said:
- FETCH sets \\Seen exactly when an item that sets it (fetchatt.FetchAtt.sets_seen) is
  fetched from a read-write mailbox (RFC 9051 §6.4.5), before the data goes out, and then
  includes FLAGS (and MODSEQ under CONDSTORE) for the messages it changed.
- UID FETCH always answers with UID (RFC 9051 §6.4.9); CHANGEDSINCE adds MODSEQ and keeps
  only messages changed since (RFC 7162 §3.1.4); VANISHED first reports what was expunged
  since (RFC 7162 §3.2.6).
- SEARCH answers `* SEARCH` to an IMAP4rev1 client without RETURN, else `* ESEARCH`
  (RFC 4731, RFC 9051 §7.3.4); SAVE keeps the result as `$` (RFC 5182), as UIDs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from relate import store
from relate.imapd import commands as c
from relate.imapd import fetch as fetch_module
from relate.imapd import fetchatt
from relate.imapd import search as search_module
from relate.imapd.grammar import quote_string
from relate.imapd.responses import Bad, Done, No, untagged
from relate.imapd.searchkeys import SEARCH_CHARSETS, And, ModSeqKey, Not, Or, SearchKey
from relate.imapd.selectcmds import within
from relate.imapd.seqset import format_seqset
from relate.store import messages as store_messages
from relate.store.types import EntryInfo

if TYPE_CHECKING:
    from relate.imapd.selected import SelectedMailbox
    from relate.imapd.session import Session

PRELOAD_WINDOW = 200  # messages whose metadata one FETCH loads ahead (MessageCache.preload)


def fetch(session: Session, command: c.Fetch) -> Done | None:
    selected = session.require_selected()
    attributes = list(command.attributes)
    if command.changed_since is not None or fetchatt.ModSeq() in attributes:
        session.enable_condstore()
    if command.vanished and not session.enabled.qresync:
        raise Bad("VANISHED needs QRESYNC enabled")  # RFC 7162 §3.2.6
    indexes = selected.resolve(command.seqset, command.uid)
    if command.uid:
        indexes = [i for i in indexes if selected.uids[i] not in selected.expunged]
        if fetchatt.Uid() not in attributes:
            attributes.insert(0, fetchatt.Uid())
    if command.changed_since is not None:
        if fetchatt.ModSeq() not in attributes:
            attributes.append(fetchatt.ModSeq())
        if command.vanished:
            _vanished_earlier(session, selected, command)
        indexes = [i for i in indexes if selected.entries[i].modseq > command.changed_since]
    seen_now = _mark_seen(session, selected, indexes, attributes)
    with_flags = list(attributes)
    if fetchatt.Flags() not in with_flags:
        with_flags.append(fetchatt.Flags())
    if session.enabled.condstore and fetchatt.ModSeq() not in with_flags:
        with_flags.append(fetchatt.ModSeq())
    missing = False
    utf8 = session.enabled.utf8
    if seen_now or fetchatt.Flags() in attributes:
        for response in selected.keyword_responses(selected.entries[i] for i in indexes):
            session.send(response)
    preload = len(indexes) > 1 and fetch_module.needs_metadata(attributes)
    for position, i in enumerate(indexes):
        if preload and position % PRELOAD_WINDOW == 0:  # metadata in a few queries, window by window
            window = indexes[position : position + PRELOAD_WINDOW]
            session.cache.preload(selected.entries[j].body_id for j in window)
        entry = selected.entries[i]
        items = with_flags if entry.uid in seen_now else attributes
        try:
            chunks = fetch_module.render_fetch(
                entry, i + 1, items, session.cache, flags=selected.flags(entry), modseq=entry.modseq, utf8=utf8,
            )
        except store.NotFound:
            missing = True  # expunged elsewhere and its body already gone
            continue
        except fetch_module.UnknownCte as exc:
            raise No(str(exc), exc.code) from None  # RFC 3516 §4.3
        for chunk in chunks:
            session.send(chunk)
    if missing:
        raise No("some messages were expunged meanwhile", "EXPUNGEISSUED")
    return None


def _mark_seen(session: Session, selected: SelectedMailbox, indexes: list[int],
               attributes: Sequence[fetchatt.FetchAtt]) -> set[int]:
    """Set \\Seen where the fetch implies it; the UIDs whose flags changed."""
    if selected.readonly or not fetch_module.sets_seen(attributes):
        return set()
    unseen = [
        selected.uids[i] for i in indexes
        if "\\Seen" not in selected.entries[i].flags and selected.uids[i] not in selected.expunged
    ]
    if not unseen:
        return set()
    result = store_messages.store_flags(
        session.user_id, selected.id, unseen, "add", ["\\Seen"], origin=session.conn.conn_id,
    )
    selected.record(result.changed)
    selected.wrote(result.modseq)
    return {e.uid for e in result.changed}


def _vanished_earlier(session: Session, selected: SelectedMailbox, command: c.Fetch) -> None:
    """`* VANISHED (EARLIER)` for UIDs in the set expunged since CHANGEDSINCE (RFC 7162 §3.2.6)."""
    assert command.changed_since is not None
    _, vanished = store_messages.changes_since(session.user_id, selected.id, command.changed_since)
    vanished = [uid for uid in vanished if selected.index_of(uid) is None]
    if not vanished:
        return
    if command.seqset.saved:
        wanted = [(uid, uid) for uid in sorted(selected.saved)]
    else:
        wanted = command.seqset.resolve(max(selected.last_uid, vanished[-1]))
    reported = within(wanted, vanished)
    if reported:
        session.send(untagged(f"VANISHED (EARLIER) {format_seqset(reported)}"))


def _uses_modseq(key: SearchKey, depth: int = 0) -> bool:
    if isinstance(key, ModSeqKey):
        return True
    if depth > 100:
        return False
    if isinstance(key, And):
        return any(_uses_modseq(k, depth + 1) for k in key.keys)
    if isinstance(key, Or):
        return _uses_modseq(key.left, depth + 1) or _uses_modseq(key.right, depth + 1)
    if isinstance(key, Not):
        return _uses_modseq(key.key, depth + 1)
    return False


def search(session: Session, command: c.Search) -> Done | None:
    selected = session.require_selected()
    options = command.return_options
    try:
        matches, modseq = _evaluate(session, selected, command)
    except BaseException:
        if options is not None and "SAVE" in options:
            selected.saved = []  # RFC 5182 §2.1: a failed SEARCH with SAVE empties $
        raise
    if options is None and not session.enabled.rev2:
        session.send(untagged(_search_response(matches, command.uid, modseq)))
        return None
    options = options or frozenset({"ALL"})
    if "SAVE" in options:
        selected.saved = [e.uid for e in _saved_part(matches, options)]
        options = options - {"SAVE"}
        if not options:
            return None  # RFC 5182 §2.4: SAVE alone answers no ESEARCH
    session.send(untagged(_esearch_response(session.tag, matches, options, command.uid, modseq)))
    return None


def _evaluate(session: Session, selected: SelectedMailbox, command: c.Search
              ) -> tuple[list[tuple[int, EntryInfo]], bool]:
    """The matches, and whether the criteria used MODSEQ (then the reply names one)."""
    if not command.charset_supported:
        raise No("unsupported charset", f"BADCHARSET ({' '.join(SEARCH_CHARSETS)})")
    modseq = _uses_modseq(command.key)
    if modseq:
        session.enable_condstore()  # RFC 7162 §3.1.5
    view = list(enumerate(selected.entries, 1))
    matches = search_module.search(
        command.key, view, user_id=session.user_id, mailbox_id=selected.id, cache=session.cache,
        saved=selected.saved, highest_seq=len(view), highest_uid=selected.last_uid, recent=selected.recent,
    )
    return matches, modseq


def _number(match: tuple[int, EntryInfo], uid: bool) -> int:
    return match[1].uid if uid else match[0]


def _search_response(matches: list[tuple[int, EntryInfo]], uid: bool, modseq: bool) -> str:
    text = " ".join(["SEARCH", *(str(_number(m, uid)) for m in matches)])
    if modseq and matches:  # RFC 7162 §3.1.5
        text += f" (MODSEQ {max(e.modseq for _, e in matches)})"
    return text


def _saved_part(matches: list[tuple[int, EntryInfo]], options: frozenset[str]) -> list[EntryInfo]:
    """RFC 5182 §2.4: with only MIN and/or MAX, SAVE keeps just those messages."""
    if not matches or options & {"ALL", "COUNT"} or not options & {"MIN", "MAX"}:
        return [e for _, e in matches]
    picked = []
    if "MIN" in options:
        picked.append(matches[0][1])
    if "MAX" in options and (not picked or matches[-1][1] is not picked[0]):
        picked.append(matches[-1][1])
    return picked


def _esearch_response(tag: str, matches: list[tuple[int, EntryInfo]], options: frozenset[str],
                      uid: bool, modseq: bool) -> bytes:
    parts = [b"ESEARCH (TAG " + quote_string(tag) + b")"]
    if uid:
        parts.append(b"UID")
    numbers = [_number(m, uid) for m in matches]
    if numbers:
        if "MIN" in options:
            parts.append(b"MIN %d" % min(numbers))
        if "MAX" in options:
            parts.append(b"MAX %d" % max(numbers))
    if "COUNT" in options:
        parts.append(b"COUNT %d" % len(numbers))
    if numbers and "ALL" in options:
        parts.append(b"ALL " + format_seqset(numbers).encode())
    if modseq and numbers:
        reported = [e for _, e in matches] if options & {"ALL", "COUNT"} else _saved_part(matches, options)
        parts.append(b"MODSEQ %d" % max(e.modseq for e in reported))
    return b" ".join(parts)
