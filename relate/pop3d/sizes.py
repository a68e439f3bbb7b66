"""Writing back the POP3 sizes sessions computed for bodies stored without one (before alembic
0009), in the background, so that a later session reads no body for STAT or LIST.

Why not in the session's command: on PostgreSQL the UPDATE that records a size seldom fits in
the row's page (a HOT update), so it writes a new version of the body row and, for a body in
the search indexes, computes and inserts its documents again, as relate.store.searchindex did
once. Measured on 2,000 bodies of plain-text lines: 4 KB each, 0.47 s to write against 0.08 s to read them;
50 KB of text each, 3.7 s against 0.7 s. Inside STAT that would make the first poll after an
upgrade several times slower than it was; here STAT answers as soon as it has the sizes, which
is no later than before, and the writes follow.

Invariants:
- One writer per process, one statement of at most BATCH sizes at a time: a POP3 process
  keeps at most one PostgreSQL backend busy with it, and a body row is locked for a fraction
  of a second.
- Best effort, never in a client's way. Sizes wait in memory, at most MAX_PENDING (more are
  dropped); a failed statement drops what is pending. Anything dropped or lost with the
  process costs only that a later session reads those bodies again and computes the same
  sizes. relate.store.pop3.store_wire_sizes fills NULLs only and skips rows another
  transaction holds, so the writers of any number of processes may run at once.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Mapping

import gevent

from relate.store import TemporaryFailure
from relate.store import pop3 as pop3_store

log = logging.getLogger("relate.pop3d.sizes")

BATCH = 64  # sizes per statement
MAX_PENDING = 100_000  # sizes waiting to be written (a few MB)


class SizeWriter:
    """The process's queue of sizes to write back and the greenlet that writes them."""

    def __init__(self, batch: int = BATCH, max_pending: int = MAX_PENDING) -> None:
        self.batch = batch
        self.max_pending = max_pending
        self.pending: dict[int, int] = {}  # body id -> wire size, in the order given
        self.written = 0  # rows written since the process started, for tests
        self._worker: gevent.Greenlet | None = None

    def add(self, sizes: Mapping[int, int]) -> None:
        """Queue `sizes` (body id -> wire size) to be written; never blocks and never raises."""
        room = max(0, self.max_pending - len(self.pending))
        self.pending.update(itertools.islice(sizes.items(), room))
        if self.pending and (self._worker is None or self._worker.dead):
            self._worker = gevent.spawn(self._run)

    @property
    def idle(self) -> bool:
        return not self.pending and (self._worker is None or self._worker.dead)

    def _run(self) -> None:
        while self.pending:
            batch = dict(itertools.islice(self.pending.items(), self.batch))
            for body_id in batch:
                del self.pending[body_id]
            try:
                self.written += pop3_store.store_wire_sizes(batch)
            except TemporaryFailure:
                log.warning("could not store POP3 sizes; %d dropped", len(batch) + len(self.pending))
                self.pending.clear()
            except Exception:
                log.exception("storing POP3 sizes failed; %d dropped", len(batch) + len(self.pending))
                self.pending.clear()


writer = SizeWriter()
