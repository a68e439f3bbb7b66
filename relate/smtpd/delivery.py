"""Committing an accepted message: the store, then the API (DESIGN.md §6 steps 3-4).

Invariants:
- `commit` returns only after the store committed the message (on PostgreSQL together with
  the other messages arriving at the same moment: relate.store.groupcommit); the caller
  sends 250 after it returns and never before (RFC 5321 §4.1.1.4: the reply means "we have it").
- The change events go out on the bus as part of that commit (relate.store does it); the
  notification to the API is queued afterwards and never delays the reply.
- A store failure is a temporary failure for the client (STORE_FAILURE, 451 4.3.0): the
  sender keeps the message and retries.
- Large messages are parsed in the hub's thread pool, so one big MIME parse does not stall
  every other session of the process.
"""

from __future__ import annotations

import time

import gevent

from relate import notify, store
from relate.message import ParsedMessage, parse_message
from relate.smtpd import replies
from relate.smtpd.replies import SmtpError
from relate.smtpd.state import Session, Transaction
from relate.store import groupcommit

ORIGIN = "smtp"
THREADPOOL_PARSE_SIZE = 256 * 1024  # messages at least this big are parsed off the hub's thread


def _parse(raw: bytes) -> ParsedMessage:
    if len(raw) < THREADPOOL_PARSE_SIZE:
        return parse_message(raw)
    result: ParsedMessage = gevent.get_hub().threadpool.apply(parse_message, (raw,))
    return result


def commit(session: Session, transaction: Transaction, raw: bytes) -> store.Delivered:
    """Store `raw` for the transaction's recipients (and the sender's Sent); notify the API."""
    envelope = store.Envelope(
        mail_from=transaction.mail.address,
        recipients=tuple(transaction.deliver_to),
        sender_user_id=session.auth.user_id if session.auth is not None else None,
        origin=ORIGIN,
    )
    started = time.monotonic()
    try:
        delivered = groupcommit.deliver(raw, envelope, parsed=_parse(raw))
    except store.TemporaryFailure as error:
        session.conn.log.warning("message %s not stored: %s", session.message_id, error)
        raise SmtpError(replies.STORE_FAILURE) from None
    except Exception:
        session.conn.log.exception("message %s not stored", session.message_id)
        raise SmtpError(replies.STORE_FAILURE) from None
    session.conn.log.info(
        "message %s stored: from=<%s> recipients=%d size=%d body=%d users=%s%s in %.0f ms",
        session.message_id,
        transaction.mail.address,
        len(transaction.recipients),
        len(raw),
        delivered.body_id,
        ",".join(str(user_id) for user_id in delivered.user_ids) or "-",
        " +Sent" if delivered.sent_entry else "",
        (time.monotonic() - started) * 1000,
    )
    notifier = notify.notifier(session.listening.settings)
    for user_id, summary in delivered.summaries:
        notifier.submit(notify.new_email_payload([user_id], summary))
    return delivered
