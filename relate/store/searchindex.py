"""The search indexer: a body's search documents are computed after its delivery committed,
not inside that commit (PostgreSQL).

Computing the full-text document and the trigrams of a 4 KB body costs PostgreSQL about
1.3 ms, most of what storing a message costs it. alembic 0006 makes both GIN indexes partial
(`WHERE indexed`); a body is inserted with `indexed = false` (the column's default), so
delivery computes neither, and this module later sets the flag, which is when PostgreSQL
computes and inserts the documents.

Invariants:
- Search results never depend on the flag: every search matches indexed bodies through the
  indexes and waiting ones by evaluating the same expressions on the fly
  (relate.store.search), so a message is found the moment its delivery committed.
- The state lives in the database and nowhere else. A batch is one statement (one implicit
  transaction): it locks up to BATCH waiting bodies with FOR UPDATE SKIP LOCKED and sets the
  flag; it commits whole or not at all, so a killed process or a lost connection leaves
  nothing half-done, and a batch that did not commit is simply taken again. Any number of
  processes and replicas may run indexers at once: a batch runs only when it gets the
  transaction-level advisory lock INDEXER_LOCK_ID (otherwise it does nothing), so at any
  moment at most one PostgreSQL backend of the whole deployment is computing documents
  (several hundred 4 KB bodies a second) and the others stay free for deliveries and
  searches; FOR UPDATE SKIP LOCKED passes over a
  body row another writer holds, and a body flagged meanwhile no longer qualifies when it is
  re-checked under the row lock, so each body is indexed once.
- Indexing yields to deliveries. The indexer looks at the waiting bodies every POLL seconds
  (one query on the small partial index `ix_message_bodies_unindexed`) and works only when no
  body was written since its previous look, by any process of any replica (the newest waiting
  id did not change: the database's view, not this process's), or when MAX_BACKLOG bodies are
  waiting, so a sustained stream is still indexed, a batch at a time, and the bodies searches
  must evaluate on the fly stay few. Batches are small (a fraction of a second of one
  PostgreSQL backend), so a delivery never waits long for the CPU or for a body row lock.
- A body delivered again (same SHA-256) while its row is locked by a batch waits for that
  batch's commit, as it would for any other writer of the row.
- SQLite has no such indexes: every body there counts as indexed and nothing runs.

Who runs it: the SMTP daemon, every API worker (sends, imports) and the all-in-one process
start `start()`; `relate import` indexes what it appended before it exits; a bulk load
(relate.store.bulkload) inserts its bodies indexed. Bodies appended over IMAP are indexed by
whichever of those runs against the same database. /metrics reports the backlog
(`relate_search_index_backlog`).

What a waiting body costs a search (4 KB bodies, measured with 2,000 waiting): another
user's, one index probe (about 3 ms for the 2,000); the searching user's own, its document
computed on the fly (about 0.8 ms each for the REST search, 0.05 ms for IMAP's substring
match). MAX_BACKLOG bounds the worst case.

Why a flag on the body and not a separate search table: the documents are expressions over
the body's own columns, so the indexes stay where the queries (and the planner's proofs of a
partial index's predicate) already look; the deferred work is exactly the index insertion,
with no copy of the text. The price is that flagging a body writes a new version of its row
(the heap tuple and its B-tree entries, later vacuumed), which PostgreSQL does after the
delivery's commit instead of inside it.
"""

from __future__ import annotations

import logging

import gevent
import gevent.event

from relate.db import get_engine
from relate.store.errors import StoreError
from relate.store.session import pg_read, pg_write

log = logging.getLogger("relate.store.searchindex")

BATCH = 64  # bodies indexed per statement
MAX_BACKLOG = 1000  # index even while deliveries go on once this many bodies wait
POLL = 0.25  # seconds between looks at the waiting bodies
RETRY_AFTER = 5.0  # seconds to wait after the database failed
TURN_WAIT = 0.01  # seconds index_all() waits while another process's batch runs
COUNT_LIMIT = 1_000_000  # backlog() counts at most this many

INDEXER_LOCK_ID = 0x53524348  # "SRCH": pg_try_advisory_xact_lock key, one batch at a time

# A batch: nothing unless no other batch is running anywhere (the advisory lock, released at
# commit); then up to %(limit)s waiting bodies, skipping any row another writer has locked.
_INDEX_BATCH = (
    "WITH turn (ours) AS (SELECT pg_try_advisory_xact_lock(%(lock)s)), "
    "batch AS (SELECT id FROM message_bodies WHERE NOT indexed AND (SELECT ours FROM turn) "
    "ORDER BY id LIMIT %(limit)s FOR UPDATE SKIP LOCKED) "
    "UPDATE message_bodies b SET indexed = true FROM batch WHERE b.id = batch.id AND NOT b.indexed "
    "RETURNING b.id"
)
# How many bodies wait (at most %(limit)s of the newest are counted) and the newest one's id.
_WAITING = (
    "SELECT count(*), max(id) FROM (SELECT id FROM message_bodies WHERE NOT indexed "
    "ORDER BY id DESC LIMIT %(limit)s) AS waiting"
)


def enabled() -> bool:
    """Whether bodies are indexed after delivery here (PostgreSQL)."""
    return get_engine().dialect.name == "postgresql"


def index_batch(limit: int = BATCH) -> list[int]:
    """Index up to `limit` waiting bodies, oldest first, in one transaction; their ids (none
    while another batch runs, here or in any other process)."""
    if not enabled():
        return []
    return sorted(int(row[0]) for row in pg_write(_INDEX_BATCH, {"limit": limit, "lock": INDEXER_LOCK_ID}))


def index_all(limit: int = BATCH) -> int:
    """Index every waiting body, batch after batch, taking turns with other indexers (the
    CLI import, tests); how many this call indexed."""
    done = 0
    while True:
        batch = index_batch(limit)
        done += len(batch)
        if not batch and not waiting(1)[0]:
            return done
        gevent.sleep(0 if batch else TURN_WAIT)


def waiting(limit: int = COUNT_LIMIT) -> tuple[int, int | None]:
    """How many bodies wait to be indexed (counting at most `limit`), and the newest one's id."""
    if not enabled():
        return 0, None
    with pg_read() as cursor:
        cursor.execute(_WAITING, {"limit": limit})
        count, newest = cursor.fetchone()
    return int(count), (int(newest) if newest is not None else None)


def backlog() -> int:
    """Bodies not yet in the search indexes (for /metrics)."""
    return waiting()[0]


class Indexer:
    """The indexer loop (see the module's invariants) in a greenlet of its own."""

    def __init__(self, poll: float = POLL, max_backlog: int = MAX_BACKLOG, batch: int = BATCH) -> None:
        self.poll = poll  # seconds between looks
        self.max_backlog = max_backlog  # this many waiting bodies are indexed even without a pause
        self.batch = batch  # bodies per statement
        self._stopping = gevent.event.Event()  # set by stop(); the loop ends at its next look
        self._greenlet: gevent.Greenlet | None = None

    def run(self) -> None:
        seen: int | None = None  # the newest waiting body's id at the previous look (-1: none)
        while not self._stopping.is_set():
            try:
                count, newest = waiting(self.max_backlog)
                quiet = seen is not None and (newest if newest is not None else -1) == seen
                seen = newest if newest is not None else -1
                if count and (quiet or count >= self.max_backlog) and index_batch(self.batch):
                    gevent.sleep(0)  # let deliveries and replies run between batches
                    continue
                self._stopping.wait(self.poll)
            except StoreError as exc:
                log.warning("search indexer: %s; trying again in %.0f s", exc, RETRY_AFTER)
                seen = None
                self._stopping.wait(RETRY_AFTER)
            except Exception:
                log.exception("search indexer failed; trying again in %.0f s", RETRY_AFTER)
                seen = None
                self._stopping.wait(RETRY_AFTER)

    def start(self) -> gevent.Greenlet:
        if self._greenlet is None or self._greenlet.dead:
            self._stopping.clear()
            self._greenlet = gevent.spawn(self.run)
        return self._greenlet

    def stop(self, timeout: float = 10.0) -> None:
        """Stop at the next look; a batch under way is let finish (it commits whole or not at
        all either way), and only a loop stuck longer than `timeout` is killed."""
        self._stopping.set()
        if self._greenlet is not None:
            self._greenlet.join(timeout)
            if not self._greenlet.dead:
                self._greenlet.kill(block=False)
            self._greenlet = None


_indexer: Indexer | None = None  # this process's, when started


def start() -> Indexer | None:
    """Start this process's indexer (idempotent; nothing on SQLite). The store must be open."""
    global _indexer
    if not enabled():
        return None
    if _indexer is None:
        _indexer = Indexer()
    _indexer.start()
    return _indexer


def stop() -> None:
    """Stop this process's indexer (before closing the store)."""
    global _indexer
    if _indexer is not None:
        _indexer.stop()
        _indexer = None
