"""FETCH responses (RFC 9051 §6.4.5 and §7.5.2, RFC 3501, RFC 3516 BINARY, RFC 7162 MODSEQ):
one message's `* <seq> FETCH (...)` as the wire chunks the session writes.

Invariants:
- FLAGS, UID, INTERNALDATE, RFC822.SIZE and MODSEQ come from the EntryInfo alone; ENVELOPE,
  BODY and BODYSTRUCTURE from the parsed metadata stored at delivery; only sections
  (BODY[...], BINARY[...], RFC822*) and a BINARY.SIZE that needs decoding read the raw
  message, once per message through the MessageCache.
- Items are rendered in the order given, each once. Section data goes out as a literal
  (`{n}`; `~{n}` literal8 for BINARY data containing NUL, RFC 3516 §4.3), or `""` when empty.
  Large data is its own chunk, never copied into a bigger buffer.
- Nothing here changes flags: the session sets \\Seen (see `sets_seen`) and passes the new
  flags in; rendering never touches the store except to load a message.
- An unknown Content-Transfer-Encoding under BINARY raises sections.UnknownCte before any
  chunk of that response is returned.
- A parsed message never changes once loaded (the caches share one object between FETCHes
  and sessions), so its ENVELOPE and BODYSTRUCTURE text is rendered once per form (BODY or
  BODYSTRUCTURE, UTF-8 or not) and kept as long as the parsed message itself.
"""

from __future__ import annotations

import functools
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from relate.imapd import bodystructure, fetchatt, sections
from relate.imapd.fetchatt import FetchAtt
from relate.imapd.grammar import SYSTEM_FLAGS, imap_datetime
from relate.message import ParsedMessage, Part
from relate.store.types import EntryInfo

# The session's name for a FETCH item; the parser's classes are the items.
FetchAttribute = FetchAtt

__all__ = ["FetchAttribute", "MessageCache", "UnknownCte", "format_flag_list", "needs_metadata", "render_fetch",
           "sets_seen"]

UnknownCte = sections.UnknownCte

DEFAULT_CACHE_BYTES = 32 * 1024 * 1024
# A parsed message's rough footprint in memory: a base plus one Part per MIME entity.
PARSED_BASE_COST = 2048
PARSED_PART_COST = 512
PRELOAD_CHUNK = 500  # at most this many body ids per metadata query when reading ahead


class _Lru:
    """Raw messages and parsed metadata by (kind, body id), least recently used dropped first,
    bounded by `max_bytes` of estimated cost; a value over a quarter of it is not kept."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        # (kind, body_id) -> (value, cost); kind "r" raw, "p" parsed. Oldest first.
        self.items: OrderedDict[tuple[str, int], tuple[bytes | ParsedMessage, int]] = OrderedDict()
        self.bytes = 0

    def get(self, key: tuple[str, int]) -> bytes | ParsedMessage | None:
        item = self.items.get(key)
        if item is None:
            return None
        self.items.move_to_end(key)
        return item[0]

    def put(self, key: tuple[str, int], value: bytes | ParsedMessage, cost: int) -> None:
        if cost > self.max_bytes // 4:
            return
        old = self.items.pop(key, None)
        if old is not None:
            self.bytes -= old[1]
        self.items[key] = (value, cost)
        self.bytes += cost
        while self.bytes > self.max_bytes and self.items:
            _, (_, dropped) = self.items.popitem(last=False)
            self.bytes -= dropped


# What every session of the process has read, on PostgreSQL: a stored body never changes and
# its id (a sequence's) is never reused, so a message one session (or an earlier connection
# of the same client) read serves the others without a round trip. The values are shared, not
# copied. Kept for one database at a time (the engine it was filled from). Not on SQLite,
# where the id of a deleted last row can be given again.
SHARED_CACHE_BYTES = 64 * 1024 * 1024
_shared: list[Any] = [None, _Lru(SHARED_CACHE_BYTES)]  # [engine, cache]


def _shared_cache() -> _Lru | None:
    from relate.db import get_engine

    engine = get_engine()
    if engine.dialect.name != "postgresql":
        return None
    if _shared[0] is not engine:
        _shared[:] = [engine, _Lru(SHARED_CACHE_BYTES)]
    cache: _Lru = _shared[1]
    return cache


def _parsed_cost(parsed: ParsedMessage) -> int:
    return PARSED_BASE_COST + PARSED_PART_COST * _part_count(parsed.body)


def _default_raw(body_id: int) -> bytes:
    from relate.store import messages

    shared = _shared_cache()
    value = shared.get(("r", body_id)) if shared is not None else None
    if isinstance(value, bytes):
        return value
    raw = messages.raw_message(body_id)
    if shared is not None:
        shared.put(("r", body_id), raw, len(raw))
    return raw


def _default_parsed(body_id: int) -> ParsedMessage:
    from relate.store import messages

    found = _default_parsed_many([body_id]).get(body_id)
    return messages.parsed_message(body_id) if found is None else found  # NotFound when it is gone


def _default_parsed_many(body_ids: Sequence[int]) -> dict[int, ParsedMessage]:
    from relate.store import search

    shared = _shared_cache()
    if shared is None:
        return search.parsed_messages(body_ids)
    out: dict[int, ParsedMessage] = {}
    missing: list[int] = []
    for body_id in body_ids:
        value = shared.get(("p", body_id))
        if isinstance(value, ParsedMessage):
            out[body_id] = value
        else:
            missing.append(body_id)
    if missing:
        for body_id, parsed in search.parsed_messages(missing).items():
            shared.put(("p", body_id), parsed, _parsed_cost(parsed))
            out[body_id] = parsed
    return out


def _part_count(part: Part) -> int:
    count, stack = 0, [part]
    while stack:
        p = stack.pop()
        count += 1
        stack.extend(p.parts)
        if p.message is not None:
            stack.append(p.message)
    return count


class MessageCache:
    """A session's small LRU of raw messages and parsed metadata, keyed by body id.

    Bounded by `max_bytes` (raw sizes plus an estimate for parsed metadata); a raw message
    bigger than a quarter of the budget is handed out but not kept. Loaders default to the
    store (relate.store.messages); tests pass their own.
    """

    def __init__(
        self,
        max_bytes: int = DEFAULT_CACHE_BYTES,
        *,
        load_raw: Callable[[int], bytes] = _default_raw,
        load_parsed: Callable[[int], ParsedMessage] = _default_parsed,
        load_parsed_many: Callable[[Sequence[int]], dict[int, ParsedMessage]] = _default_parsed_many,
    ) -> None:
        self.max_bytes = max_bytes
        self._load_raw = load_raw
        self._load_parsed = load_parsed
        self._load_parsed_many = load_parsed_many
        self._lru = _Lru(max_bytes)
        self._get = self._lru.get
        self._put = self._lru.put
        self.loads = 0  # store round trips, for tests and metrics
        # The read-ahead plan of the last preload: body ids in FETCH order, and each one's place.
        self._plan: list[int] = []
        self._place: dict[int, int] = {}
        self._parsed_cost = PARSED_BASE_COST + PARSED_PART_COST  # estimate, from the last window

    def __len__(self) -> int:
        return len(self._lru.items)

    def raw(self, body_id: int) -> bytes:
        value = self._get(("r", body_id))
        if isinstance(value, bytes):
            return value
        raw = self._load_raw(body_id)
        self.loads += 1
        self._put(("r", body_id), raw, len(raw))
        return raw

    def parsed(self, body_id: int) -> ParsedMessage:
        value = self._get(("p", body_id))
        if isinstance(value, ParsedMessage):
            return value
        place = self._place.get(body_id)
        if place is not None:  # planned: read this window of the plan in one query
            self._read_ahead(place)
            value = self._get(("p", body_id))
            if isinstance(value, ParsedMessage):
                return value
        parsed = self._load_parsed(body_id)
        self.loads += 1
        self._put_parsed(body_id, parsed)
        return parsed

    def _put_parsed(self, body_id: int, parsed: ParsedMessage) -> int:
        cost = _parsed_cost(parsed)
        self._put(("p", body_id), parsed, cost)
        return cost

    def peek_raw(self, body_id: int) -> bytes | None:
        """The raw message if it is cached; never loads."""
        value = self._get(("r", body_id))
        return value if isinstance(value, bytes) else None

    def peek_parsed(self, body_id: int) -> ParsedMessage | None:
        """The parsed metadata if cached; never loads."""
        value = self._get(("p", body_id))
        return value if isinstance(value, ParsedMessage) else None

    def preload(self, body_ids: Iterable[int]) -> None:
        """Plan to read the parsed metadata of many messages (a FETCH of ENVELOPE or
        BODYSTRUCTURE over a range, in FETCH order): the first PRELOAD_CHUNK are loaded in one
        query now, and each later window in one query when `parsed` first reaches it, so
        memory stays within the budget however long the range."""
        self._plan = list(dict.fromkeys(body_ids))
        self._place = {body_id: i for i, body_id in enumerate(self._plan)}
        self._read_ahead(0)

    def _read_ahead(self, start: int) -> None:
        # A window takes at most half the budget, so it is still cached when FETCH reaches it.
        size = max(1, min(PRELOAD_CHUNK, self.max_bytes // 2 // max(1, self._parsed_cost)))
        end = start + size
        window = [b for b in self._plan[start:end] if ("p", b) not in self._lru.items]
        if end >= len(self._plan):  # the plan is used up
            self._plan, self._place = [], {}
        if not window:
            return
        loaded = self._load_parsed_many(window)
        self.loads += 1
        costs = [self._put_parsed(b, loaded[b]) for b in window if b in loaded]
        if costs:
            self._parsed_cost = sum(costs) // len(costs)


def sets_seen(attributes: Sequence[FetchAttribute]) -> bool:
    """Whether fetching these items sets \\Seen (BODY[...], BINARY[...], RFC822, RFC822.TEXT)."""
    return any(a.sets_seen for a in attributes)


def needs_metadata(attributes: Sequence[FetchAttribute]) -> bool:
    """Whether rendering these items reads the parsed metadata (worth a MessageCache.preload)."""
    return any(_reads_metadata(a) for a in attributes)


def _reads_metadata(att: FetchAttribute) -> bool:
    if isinstance(att, (*_ENTRY_ONLY, fetchatt.Rfc822)):
        return False
    return not (isinstance(att, fetchatt.BodySection) and att.section == _WHOLE)


_SYSTEM_ORDER = {flag: i for i, flag in enumerate(SYSTEM_FLAGS)}


def format_flag_list(flags: Iterable[str]) -> bytes:
    """`(\\Seen $Work)`: system flags in RFC order, then keywords case-insensitively sorted."""
    system = sorted((f for f in flags if f.startswith("\\")), key=lambda f: (_SYSTEM_ORDER.get(f, 99), f.lower()))
    keywords = sorted((f for f in flags if not f.startswith("\\")), key=lambda f: (f.lower(), f))
    return ("(" + " ".join(system + keywords) + ")").encode("utf-8")


# id(parsed message) -> (a weak reference to it, its rendered forms by (item, extensible, utf8)).
# An entry goes when its parsed message does (the reference's callback), before the id can be
# given to another object.
_rendered: dict[int, tuple[weakref.ref[ParsedMessage], dict[tuple[str, bool, bool], bytes]]] = {}


def _render_once(parsed: ParsedMessage, item: str, extensible: bool, utf8: bool) -> bytes:
    """ENVELOPE ("e") or BODY/BODYSTRUCTURE ("b") text of `parsed`, rendered on first use."""
    key = id(parsed)
    found = _rendered.get(key)
    if found is None or found[0]() is not parsed:

        def gone(_: weakref.ref[ParsedMessage]) -> None:
            _rendered.pop(key, None)

        found = (weakref.ref(parsed, gone), {})
        _rendered[key] = found
    forms = found[1]
    value = forms.get((item, extensible, utf8))
    if value is None:
        if item == "e":
            value = bodystructure.envelope(parsed.envelope, utf8=utf8)
        else:
            value = bodystructure.body_structure(parsed.body, extensible=extensible, utf8=utf8)
        forms[(item, extensible, utf8)] = value
    return value


@functools.lru_cache(maxsize=512)
def _item_prefix(att: FetchAttribute) -> bytes:
    """`NAME ` as the response names the item (the items are immutable, and few per client)."""
    return att.response_name.encode("ascii") + b" "


class _Response:
    """Collects one response: small pieces join into text chunks, literal data stays apart."""

    LARGE = 4096  # literal data at least this big is a chunk of its own

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.buf = bytearray()

    def add(self, data: bytes) -> None:
        self.buf += data

    def literal(self, data: bytes, *, binary: bool = False) -> None:
        if not data:
            self.buf += b'""'
            return
        prefix = b"~" if binary and b"\x00" in data else b""
        self.buf += prefix + b"{%d}\r\n" % len(data)
        if len(data) < self.LARGE:
            self.buf += data
            return
        self.chunks.append(bytes(self.buf))
        self.buf = bytearray()
        self.chunks.append(data)

    def finish(self) -> list[bytes]:
        if self.buf:
            self.chunks.append(bytes(self.buf))
        return self.chunks


class _Message:
    """One message being rendered: loads raw and parsed metadata at most once each."""

    def __init__(self, entry: EntryInfo, cache: MessageCache) -> None:
        self.entry = entry
        self.cache = cache
        self._raw: bytes | None = None
        self._parsed: ParsedMessage | None = None

    @property
    def raw(self) -> bytes:
        if self._raw is None:
            self._raw = self.cache.raw(self.entry.body_id)
        return self._raw

    @property
    def parsed(self) -> ParsedMessage:
        if self._parsed is None:
            self._parsed = self.cache.parsed(self.entry.body_id)
        return self._parsed


_ENTRY_ONLY = (fetchatt.Flags, fetchatt.Uid, fetchatt.InternalDate, fetchatt.Rfc822Size, fetchatt.ModSeq)


def render_fetch(
    entry: EntryInfo,
    seq: int,
    attributes: Sequence[FetchAttribute],
    cache: MessageCache,
    *,
    flags: frozenset[str] | None = None,
    modseq: int | None = None,
    utf8: bool = False,
) -> list[bytes]:
    """The wire chunks of one complete `* <seq> FETCH (...)\\r\\n` response, literals included.

    `flags` and `modseq` override the entry's (the session passes them after setting \\Seen or
    to add \\Recent). `utf8`: the client enabled UTF8=ACCEPT or IMAP4rev2, so ENVELOPE and
    BODYSTRUCTURE strings may be quoted UTF-8. Raises sections.UnknownCte for BINARY of a
    part whose transfer encoding cannot be undone.
    """
    msg = _Message(entry, cache)
    out = _Response()
    out.add(b"* %d FETCH (" % seq)
    first = True
    for att in dict.fromkeys(attributes):
        if not first:
            out.add(b" ")
        first = False
        out.add(_item_prefix(att))
        if isinstance(att, fetchatt.Flags):
            out.add(format_flag_list(entry.flags if flags is None else flags))
        elif isinstance(att, fetchatt.Uid):
            out.add(b"%d" % entry.uid)
        elif isinstance(att, fetchatt.InternalDate):
            out.add(imap_datetime(entry.internal_date).encode("ascii"))
        elif isinstance(att, fetchatt.Rfc822Size):
            out.add(b"%d" % entry.size)
        elif isinstance(att, fetchatt.ModSeq):
            out.add(b"(%d)" % (entry.modseq if modseq is None else modseq))
        elif isinstance(att, fetchatt.Envelope):
            out.add(_render_once(msg.parsed, "e", False, utf8))
        elif isinstance(att, fetchatt.BodyStructure):
            out.add(_render_once(msg.parsed, "b", att.extensible, utf8))
        elif isinstance(att, fetchatt.Rfc822):
            out.literal(msg.raw)
        elif isinstance(att, fetchatt.Rfc822Header):
            top = msg.parsed.body
            out.literal(msg.raw[top.header_start : top.header_end])
        elif isinstance(att, fetchatt.Rfc822Text):
            top = msg.parsed.body
            out.literal(msg.raw[top.body_start : top.body_end])
        elif isinstance(att, fetchatt.BodySection):
            data = msg.raw if att.section == _WHOLE else sections.body_section(msg.raw, msg.parsed.body, att.section)
            out.literal(sections.partial(data, att.partial))
        elif isinstance(att, fetchatt.Binary):
            data = sections.binary_section(msg.raw, msg.parsed.body, att.part)
            out.literal(sections.partial(data, att.partial), binary=True)
        elif isinstance(att, fetchatt.BinarySize):
            size = sections.identity_size(msg.parsed.body, att.part, entry.size)
            if size is None:
                size = len(sections.binary_section(msg.raw, msg.parsed.body, att.part))
            out.add(b"%d" % size)
        else:  # a new item class without a renderer is a programming error
            raise TypeError(f"cannot render FETCH item {att!r}")
    out.add(b")\r\n")
    return out.finish()


_WHOLE = fetchatt.Section()
