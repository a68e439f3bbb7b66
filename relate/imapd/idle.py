"""IDLE (RFC 2177, RFC 9051 §6.3.13): push changes to the client as they happen.

While the connection's greenlet waits for the client's DONE, a notifier greenlet waits for
change events (relate.store.bus: LISTEN/NOTIFY on PostgreSQL, so mail delivered by any
process on any host arrives within moments), brings the selected view up to date and
writes EXISTS / EXPUNGE / FETCH responses at once (EXPUNGE is allowed during IDLE).

Invariants:
- The notifier only ever writes whole responses, under `busy`; the reader stops it while
  holding `busy`, so it is never killed half-way through a write or a view update.
- Every KEEPALIVE seconds an untagged OK goes out, so NAT routers and phones keep the
  connection; the session still ends after AUTH_TIMEOUT without a DONE.
- When the server starts shutting down, an idling client gets BYE at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import gevent
import gevent.lock

from relate import store
from relate.imapd import commands as c
from relate.imapd.parse import is_idle_done
from relate.imapd.responses import Bad, Done, untagged
from relate.imapd.selected import MailboxGone
from relate.protocol.connection import ProtocolIOError
from relate.store import events

if TYPE_CHECKING:
    from relate.imapd.selected import SelectedMailbox
    from relate.imapd.session import Session

KEEPALIVE = 120.0  # seconds between "* OK still here" while idling
MAX_DONE_LINE = 1024


def idle(session: Session, command: c.Idle) -> Done | None:
    selected = session.selected
    session.send(b"+ idling\r\n")
    if selected is not None:
        selected.poll()
        _push(session, selected)
    session.flush()
    busy = gevent.lock.Semaphore()
    notifier = gevent.spawn(_notify, session, selected, busy)
    try:
        line = session.conn.read_line(MAX_DONE_LINE, session.timeout)
    finally:
        with busy:
            notifier.kill(block=True)
    if not is_idle_done(line):
        raise Bad("expected DONE")
    return Done("IDLE terminated")


def _push(session: Session, selected: SelectedMailbox) -> None:
    """Apply what changed and queue the responses (EXPUNGE included)."""
    selected.take_events()
    selected.refresh()
    for response in selected.report(allow_expunge=True):
        session.send(response)


def _notify(session: Session, selected: SelectedMailbox | None, busy: gevent.lock.Semaphore) -> None:
    """Wait for changes (or the server's shutdown) and tell the client; see the module docstring."""
    conn = session.conn
    subscription = selected.subscription if selected is not None else None

    def wake_on_shutdown(_: object) -> None:  # a change wakes a waiting get(); so does this
        if subscription is not None:
            try:
                subscription.queue.put_nowait(events.Change(events.RESYNC, 0))
            except Exception:
                pass  # a full queue wakes the reader anyway

    conn.shutdown.rawlink(wake_on_shutdown)
    try:
        while True:
            if subscription is not None:
                change = subscription.get(timeout=KEEPALIVE)
            else:
                conn.shutdown.wait(timeout=KEEPALIVE)
                change = None
            with busy:
                if conn.shutdown.is_set():
                    session.send(untagged("BYE server shutting down"))
                    session.flush()
                    conn.close()
                    return
                if change is None:
                    session.send(untagged("OK still here"))
                elif selected is not None:
                    selected.note(change)
                    try:
                        _push(session, selected)
                    except store.TemporaryFailure:
                        session.log.warning("could not read mailbox changes while idling")
                    except MailboxGone:
                        session.send(untagged("BYE the selected mailbox was deleted"))
                        session.flush()
                        conn.close()
                        return
                session.flush()
    except ProtocolIOError:
        conn.close()
    finally:
        conn.shutdown.unlink(wake_on_shutdown)
