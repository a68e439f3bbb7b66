"""The selected mailbox as one session sees it: sequence numbers, UIDs, flags the client knows.

Invariants:
- `entries[i]` is message sequence number i+1 as the client knows it; UIDs ascend strictly.
  An entry's `flags` and `modseq` are what this session last told (or is about to tell)
  the client, never silently newer.
- The view changes only in `take_events` (a complete change that follows `modseq` is
  applied as it is: no read), `refresh` (reading the store after other change events, a
  poll, or a gap), our own writes (`record`, `forget`, `wrote`) and `report`, which also
  produces the responses that tell the client. All of them run between commands, or in a
  command for its own writes. A message removed from the store stays in `entries` (its number still valid for
  the client) until `report(allow_expunge=True)`: RFC 9051 §7.5.1 forbids EXPUNGE during
  FETCH, STORE and SEARCH, so their non-UID forms call report(False).
- `modseq` is the mailbox HIGHESTMODSEQ up to which store changes are applied. It is read in
  the same statement as the changes themselves (one snapshot: nothing committed in between),
  or, on a full resync, BEFORE them, so a change committed in between is seen twice
  (harmless: applying it again changes nothing), never missed. It moves by itself only by
  one: each write to a mailbox spends the next MODSEQ under the mailbox lock and commits in
  that order, and PostgreSQL delivers its NOTIFYs in commit order, so the complete change
  with `modseq + 1` is exactly the next write, and anything else is a gap filled by a read.
- \\Recent (IMAP4rev1 only) is decided by `RecentClaims`: the first read-write session of
  this daemon to see a message claims it. The workers of one daemon (Network__Workers)
  share their claims (`SharedFloors`, a table in shared memory, under a lock); other
  daemons, or this one after a restart, cannot know them. RFC 3501 §2.3.2 asks for the
  first session overall; where that cannot be known the message "SHOULD be considered
  recent", which is what those do.
"""

from __future__ import annotations

import bisect
import dataclasses
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

from relate import store
from relate.imapd.fetch import format_flag_list
from relate.imapd.responses import Bad, untagged
from relate.imapd.seqset import SequenceSet, format_seqset
from relate.imapd.state import Enabled
from relate.protocol import shm
from relate.store import events
from relate.store import mailboxes as store_mailboxes
from relate.store import messages as store_messages
from relate.store.types import EntryInfo, MailboxInfo

log = logging.getLogger("relate.imapd")

SYSTEM_FLAGS = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")


def flag_list(flags: Iterable[str], recent: bool = False) -> str:
    """`(\\Seen \\Recent $Label)` for FETCH and FLAGS responses, ordered as FETCH orders them."""
    shown = set(flags) | {"\\Recent"} if recent else flags
    return format_flag_list(shown).decode("utf-8")


def keywords_of(flags: Iterable[str]) -> set[str]:
    return {f for f in flags if not f.startswith("\\")}


class SharedFloors:
    """(mailbox id, UIDVALIDITY) -> highest UID claimed, in a file mapped by every worker of
    one daemon (relate.protocol.shm, named after the daemon's pid), read and raised under its
    exclusive lock.

    An open-addressing table of SLOTS entries (mailbox id, UIDVALIDITY, floor), probed
    linearly from a hash of the key; mailbox id 0 marks a free entry. A key that finds no
    entry within PROBES is not shared (None): the caller keeps it in its process."""

    SLOTS = 1 << 16
    PROBES = 32

    def __init__(self, path: Path):
        self.path = path
        self._shared = shm.SharedInts(path, self.SLOTS * 3)
        self._table = self._shared.ints

    def _slot(self, key: tuple[int, int], create: bool) -> int | None:
        table = self._table
        start = (key[0] * 2654435761 ^ key[1]) % self.SLOTS
        for i in range(self.PROBES):
            at = 3 * ((start + i) % self.SLOTS)
            if table[at] == key[0] and table[at + 1] == key[1]:
                return at
            if table[at] == 0:
                if not create:
                    return None
                table[at + 1] = key[1]
                table[at + 2] = 0
                table[at] = key[0]
                return at
        return None

    def get(self, key: tuple[int, int]) -> int | None:
        """The floor; None when the key is not in the table (nobody claimed, or no room)."""
        with self._shared.locked():
            at = self._slot(key, create=False)
            return int(self._table[at + 2]) if at is not None else None

    def raise_to(self, key: tuple[int, int], floor: int) -> int | None:
        """Raise the floor to at least `floor`; the floor before (None: the table is full there)."""
        with self._shared.locked():
            at = self._slot(key, create=True)
            if at is None:
                return None
            before = int(self._table[at + 2])
            if floor > before:
                self._table[at + 2] = floor
            return before

    def clear(self) -> None:
        self._shared.zero()


def shared_path(daemon_pid: int) -> Path:
    return shm.shared_file("recent", daemon_pid)


class RecentClaims:
    """Which UIDs of a mailbox some read-write session of this daemon has shown as \\Recent."""

    def __init__(self) -> None:
        self._claimed: dict[tuple[int, int], int] = {}  # (mailbox id, UIDVALIDITY) -> highest UID claimed
        self._shared: SharedFloors | None = None

    def share(self, daemon_pid: int) -> None:
        """Share claims with the other workers of daemon `daemon_pid` (relate.daemon)."""
        self._shared = SharedFloors(shared_path(daemon_pid))

    def _floor(self, key: tuple[int, int]) -> int | None:
        shared = self._shared.get(key) if self._shared is not None else None
        return shared if shared is not None else self._claimed.get(key)

    def recent(self, mailbox: MailboxInfo, uids: Iterable[int], claim: bool) -> set[int]:
        """The UIDs among `uids` nobody claimed yet; with `claim`, they are now claimed."""
        key = (mailbox.id, mailbox.uid_validity)
        fresh = {uid for uid in uids if uid > (self._floor(key) or 0)}
        if claim and fresh:
            before = self._shared.raise_to(key, max(fresh)) if self._shared is not None else None
            if before is None:  # not shared: this process decides
                self._claimed[key] = max(fresh)
            else:  # another worker may have claimed some since they were read
                fresh = {uid for uid in fresh if uid > before}
        return fresh

    def clear(self) -> None:
        self._claimed.clear()
        if self._shared is not None:
            self._shared.clear()

    def count(self, user_id: int, mailbox: MailboxInfo, messages: int) -> int:
        """STATUS RECENT: how many messages a new session would see as \\Recent."""
        floor = self._floor((mailbox.id, mailbox.uid_validity))
        if floor is None:
            return messages
        if floor >= mailbox.uid_next - 1:
            return 0
        return store_messages.count_above(user_id, mailbox.id, floor)


recent_claims = RecentClaims()


class MailboxGone(Exception):
    """The selected mailbox was deleted (by this or another session)."""


class SelectedMailbox:
    """One session's view of its selected mailbox; replaced on every SELECT/EXAMINE."""

    def __init__(
        self,
        user_id: int,
        mailbox: MailboxInfo,
        entries: list[EntryInfo],
        *,
        readonly: bool,
        enabled: Enabled,
        subscription: events.Subscription,
    ) -> None:
        self.user_id = user_id
        self.mailbox = mailbox  # as read at SELECT (name may change by RENAME; the id never does)
        self.readonly = readonly  # EXAMINE, or SELECT of a mailbox we may not change
        self.enabled = enabled  # the session's extensions (shared object, may grow while selected)
        self.subscription = subscription  # change events for this user, from before the first read
        self.entries = entries  # sequence order; see the module invariants
        self.uids = [e.uid for e in entries]  # parallel to entries, for bisect
        self.modseq = mailbox.highest_modseq  # store changes applied up to here
        self.expunged: set[int] = set()  # gone from the store, not yet reported to the client
        self.pending_flags: set[int] = set()  # flags (or modseq) changed, not yet reported
        self.announced = len(entries)  # the message count the client was last told (EXISTS)
        self.keywords: set[str] = set()  # keywords announced in the last FLAGS response
        for e in entries:
            self.keywords |= keywords_of(e.flags)
        self.recent: set[int] = set()  # UIDs shown as \Recent to this session
        if enabled.recent:
            self.recent = recent_claims.recent(mailbox, self.uids, claim=not readonly)
        self.saved: list[int] = []  # RFC 5182 search result ($), as UIDs
        self.dirty = False  # events say the store changed since `modseq`
        self.ahead: set[int] = set()  # MODSEQs above `modseq + 1` of our own writes, in the view already
        self.resync = False  # the next refresh must re-read the whole mailbox
        self.gone = False  # the mailbox was deleted

    @classmethod
    def open(cls, user_id: int, name: str, *, readonly: bool, enabled: Enabled) -> SelectedMailbox:
        """Subscribe to changes, then read the mailbox (so no change falls in between)."""
        subscription = store.bus.subscribe(user_id)
        try:
            mailbox, entries = store_messages.open_view(user_id, name)
        except BaseException:
            subscription.close()
            raise
        return cls(user_id, mailbox, entries, readonly=readonly, enabled=enabled, subscription=subscription)

    def close(self) -> None:
        self.subscription.close()

    # -- lookups -------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def id(self) -> int:
        return self.mailbox.id

    @property
    def last_uid(self) -> int:
        return self.uids[-1] if self.uids else 0

    def index_of(self, uid: int) -> int | None:
        i = bisect.bisect_left(self.uids, uid)
        return i if i < len(self.uids) and self.uids[i] == uid else None

    def flags(self, entry: EntryInfo) -> frozenset[str]:
        """The flags to show for `entry`, \\Recent included where it applies."""
        if entry.uid in self.recent:
            return entry.flags | {"\\Recent"}
        return entry.flags

    def resolve(self, seqset: SequenceSet, uid: bool) -> list[int]:
        """Indexes into `entries` named by a sequence set, ascending and distinct.

        Message numbers outside 1..len are a BAD (RFC 9051 §9 seq-number; "*" too when the
        mailbox is empty); UIDs that name no message are skipped (RFC 9051 §6.4.9). `$` is
        the saved search result (RFC 5182 §2.1), of which expunged messages drop out.
        """
        if seqset.saved:
            return sorted(i for i in (self.index_of(u) for u in self.saved) if i is not None)
        if uid:
            out: list[int] = []
            for low, high in seqset.resolve(self.last_uid):
                start = bisect.bisect_left(self.uids, low)
                stop = bisect.bisect_right(self.uids, high)
                out.extend(range(start, stop))
            return out
        count = len(self.entries)
        ranges = seqset.resolve(count)
        if not count or (ranges and ranges[-1][1] > count):
            raise Bad("invalid message sequence number")
        return [i for low, high in ranges for i in range(low - 1, high)]

    # -- learning about changes ----------------------------------------------------------

    def take_events(self) -> None:
        """Drain the change queue; note whether the store changed for this mailbox."""
        for change in self.subscription.drain():
            self.note(change)

    def note(self, change: events.Change) -> None:
        if change.kind == events.RESYNC:
            self.dirty = self.resync = True
        elif change.mailbox_id != self.mailbox.id:
            return
        elif change.kind == events.MAILBOX_DELETED:
            self.gone = True
        elif change.kind == events.MAILBOX_RENAMED:
            self.mailbox = dataclasses.replace(self.mailbox, name=change.mailbox)
        elif change.kind in (events.NEW, events.FLAGS, events.EXPUNGE) and not (change.complete and self._apply(change)):
            self.dirty = True

    def _apply(self, change: events.Change) -> bool:
        """Take a complete change (events.Change.complete) into the view without reading the
        store: True when the view now includes it, False when the store must be read.

        A complete change is the whole of the write that spent its MODSEQ. One at or below
        `modseq` is in the view already (read in a snapshot that included it, or our own
        write); the one right after `modseq` is applied; after a gap (a change not seen, or
        not complete) only a read brings the view up to date.
        """
        if self.resync:
            return False
        if change.modseq <= self.modseq or change.modseq in self.ahead:
            return True
        if change.modseq != self.modseq + 1:
            return False
        try:
            if change.kind == events.NEW:
                self._absorb(store_messages.event_new_entries(change), ())
            elif change.kind == events.FLAGS:
                updates = store_messages.event_flags(change)
                for uid, flags in updates:
                    index = self.index_of(uid)
                    if index is not None and self.entries[index].modseq < change.modseq:  # else ours is newer
                        known = self.entries[index]
                        self._update(index, dataclasses.replace(known, flags=flags, modseq=change.modseq))
            else:
                self._absorb((), change.uids)
        except ValueError:
            log.warning("change event %s of mailbox %s is malformed; re-reading", change.kind, change.mailbox_id)
            return False
        self._advance(change.modseq)
        return True

    def _advance(self, modseq: int) -> None:
        """The view includes every change up to `modseq`, and our own writes just above it."""
        self.modseq = max(self.modseq, modseq)
        while self.modseq + 1 in self.ahead:
            self.modseq += 1
        self.ahead = {m for m in self.ahead if m > self.modseq}

    def wrote(self, modseq: int, arrived: Sequence[EntryInfo] = ()) -> None:
        """Our own write, which spent `modseq` (0: it changed nothing), is in the view (`record`,
        `forget`, or the entries it `arrived` with).

        Changes queued before it are taken first. When nothing is missing below it, the view's
        MODSEQ moves past it. Otherwise a flag change or removal waits in `ahead` for the
        changes below it (each entry keeps the newest flags by MODSEQ), while new messages
        make the next refresh read the store: a message below ours must not be numbered
        after it.
        """
        if not modseq or modseq <= self.modseq:
            return
        self.take_events()
        if self.resync or modseq <= self.modseq:
            return
        if modseq == self.modseq + 1:
            self._absorb(arrived, ())
            self._advance(modseq)
        elif arrived:
            self.dirty = True
        else:
            self.ahead.add(modseq)

    def poll(self) -> None:
        """Ask the store directly whether anything changed (NOOP, CHECK, IDLE start): the next
        refresh reads the changes, which is one statement whether or not there are any."""
        self.dirty = True

    def refresh(self) -> None:
        """Bring the view up to date with the store (if events or a poll said so)."""
        if self.gone:
            raise MailboxGone()
        if not self.dirty:
            return
        if self.resync:
            try:
                box = store_mailboxes.get_mailbox_by_id(self.user_id, self.mailbox.id)
            except store.NotFound:
                self.gone = True
                raise MailboxGone() from None
            current = store_messages.list_entries(self.user_id, self.mailbox.id)
            present = {e.uid for e in current}
            vanished = [uid for uid in self.uids if uid not in present]
            changed = current
            highest = box.highest_modseq
        else:
            found = store_messages.mailbox_changes(self.user_id, self.mailbox.id, self.modseq)
            if found is None:
                self.gone = True
                raise MailboxGone()
            changed, vanished, highest = found.changed, found.vanished, found.highest_modseq
        self.dirty = self.resync = False
        self._advance(max(highest, *(e.modseq for e in changed)) if changed else highest)
        self._absorb(changed, vanished)

    def _absorb(self, changed: Iterable[EntryInfo], vanished: Iterable[int]) -> None:
        """Entries read or announced as changed or new, and UIDs gone from the store."""
        for uid in vanished:
            if self.index_of(uid) is not None:
                self.expunged.add(uid)
        arrived: list[EntryInfo] = []
        for entry in changed:
            index = self.index_of(entry.uid)
            if index is None:
                if entry.uid > self.last_uid:
                    arrived.append(entry)
                continue
            self._update(index, entry)
        if arrived:
            arrived.sort(key=lambda e: e.uid)
            self.entries.extend(arrived)
            self.uids.extend(e.uid for e in arrived)
            if self.enabled.recent:
                self.recent |= recent_claims.recent(self.mailbox, (e.uid for e in arrived),
                                                    claim=not self.readonly)

    def _update(self, index: int, entry: EntryInfo) -> None:
        known = self.entries[index]
        if entry.flags == known.flags and entry.modseq == known.modseq:
            return
        if entry.flags != known.flags or self.enabled.condstore:
            self.pending_flags.add(entry.uid)
        self.entries[index] = entry

    def record(self, changed: Sequence[EntryInfo]) -> None:
        """Our own flag change, already told to the client by the command itself."""
        for entry in changed:
            index = self.index_of(entry.uid)
            if index is not None:
                self.entries[index] = entry
                self.pending_flags.discard(entry.uid)

    def forget(self, uids: Iterable[int]) -> None:
        """Messages our own command removed (EXPUNGE, MOVE): reported with the others."""
        for uid in uids:
            if self.index_of(uid) is not None:
                self.expunged.add(uid)

    # -- telling the client --------------------------------------------------------------

    def report(self, allow_expunge: bool) -> list[bytes]:
        """Untagged responses for everything the client has not been told yet.

        Expunges first (when allowed), then new keywords (FLAGS), EXISTS and RECENT, then
        flag changes, so every number is valid at the point it is sent.
        """
        out: list[bytes] = []
        if allow_expunge and self.expunged:
            out.extend(self._expunge_responses())
        if len(self.entries) != self.announced:
            out.extend(self.keyword_responses(self.entries[self.announced :]))
            out.append(untagged(f"{len(self.entries)} EXISTS"))
            if self.enabled.recent and len(self.entries) > self.announced:
                out.append(untagged(f"{len(self.recent)} RECENT"))
            self.announced = len(self.entries)
        if self.pending_flags:
            pending = sorted(self.pending_flags - self.expunged)
            self.pending_flags.clear()
            indexes = [i for i in (self.index_of(uid) for uid in pending) if i is not None]
            out.extend(self.keyword_responses(self.entries[i] for i in indexes))
            for i in indexes:
                # RFC 7162 §3.1: once CONDSTORE is on, unsolicited FETCH carries UID and MODSEQ.
                condstore = self.enabled.condstore
                out.append(self.flags_response(i, uid=condstore, modseq=condstore))
        return out

    def _expunge_responses(self) -> list[bytes]:
        gone = sorted(self.expunged)
        self.expunged.clear()
        indexes = [i for i in (self.index_of(uid) for uid in gone) if i is not None]
        told = [i for i in indexes if i < self.announced]  # never announced: nothing to take back
        if not told:
            out = []
        elif self.enabled.qresync:
            out = [untagged(f"VANISHED {format_seqset(self.uids[i] for i in told)}")]  # RFC 7162 §3.2.10
        else:
            out = [untagged(f"{i + 1} EXPUNGE") for i in reversed(told)]
        drop = set(indexes)
        self.entries = [e for i, e in enumerate(self.entries) if i not in drop]
        self.uids = [e.uid for e in self.entries]
        self.recent -= set(gone)
        self.pending_flags -= set(gone)
        self.announced -= len(told)
        return out

    def keyword_responses(self, entries: Iterable[EntryInfo]) -> list[bytes]:
        """A new FLAGS (and PERMANENTFLAGS) response when a keyword appears (RFC 9051 §7.3.5).

        Called before any response that shows these entries' flags.
        """
        fresh: set[str] = set()
        for entry in entries:
            fresh |= keywords_of(entry.flags) - self.keywords
        if not fresh:
            return []
        self.keywords |= fresh
        return self.flag_definitions()

    def flag_definitions(self) -> list[bytes]:
        """The FLAGS and PERMANENTFLAGS responses of SELECT (RFC 9051 §6.3.2)."""
        defined = flag_list([*SYSTEM_FLAGS, *self.keywords])
        permanent = "()" if self.readonly else flag_list([*SYSTEM_FLAGS, *self.keywords])[:-1] + " \\*)"
        return [
            untagged(f"FLAGS {defined}"),
            untagged(f"OK [PERMANENTFLAGS {permanent}] flags the client may change permanently"),
        ]

    def flags_response(self, index: int, *, uid: bool, modseq: bool, flags: bool = True) -> bytes:
        """`* n FETCH (FLAGS (...) UID u MODSEQ (m))` for the message at `index`."""
        entry = self.entries[index]
        items = []
        if flags:
            items.append(f"FLAGS {flag_list(entry.flags, entry.uid in self.recent)}")
        if uid:
            items.append(f"UID {entry.uid}")
        if modseq:
            items.append(f"MODSEQ ({entry.modseq})")
        return untagged(f"{index + 1} FETCH ({' '.join(items)})")
