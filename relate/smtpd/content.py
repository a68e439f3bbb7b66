"""DATA and BDAT: reading a message while it streams in, then committing it.

Invariants:
- Only <CRLF>.<CRLF> ends DATA, and a message with a bare CR or LF is refused after its real
  end (BARE_LINE_ENDING, 554 5.6.0), so one DATA is never read as two messages (data.py).
- Size is enforced while reading: past Smtp__MaxMessageSizeBytes nothing more is kept, the
  rest is read and thrown away, and only then MESSAGE_TOO_BIG (552 5.3.4) is answered, so the
  client stays in step. Memory per message is bounded by that limit.
- BDAT chunk octets are always read to the end of the chunk, even when the chunk is refused
  or comes in the wrong state: they are content, never commands (RFC 3030 §2). The one
  exception is a chunk so far over the limit that draining it is pointless: it is answered
  552 and the connection is closed.
- The message as stored is our Received header followed by the client's octets, byte for
  byte (dot-unstuffed for DATA). The header is built before the content arrives, so the
  content is written once into its final buffer.
- The transaction ends with the message, whatever the outcome (RFC 5321 §4.1.1.4).
"""

from __future__ import annotations

from relate.smtpd import delivery, replies
from relate.smtpd.command import parse_bdat
from relate.smtpd.data import BdatCollector, DataReader
from relate.smtpd.received import Trace, received_header
from relate.smtpd.replies import SmtpError
from relate.smtpd.state import Session, Transaction

# A BDAT chunk that would take the message past this many times the size limit is not worth
# reading to its end: the client is answered 552 and the connection closed.
DRAIN_FACTOR = 2


def data(session: Session, arg: str) -> None:
    """DATA (RFC 5321 §4.1.1.4): 354, the content up to <CRLF>.<CRLF>, then the verdict."""
    transaction = session.transaction
    assert transaction is not None  # the dispatcher checked
    refusal = None
    if transaction.bdat is not None:
        refusal = replies.DATA_AFTER_BDAT
    elif transaction.mail.body == "BINARYMIME":
        refusal = replies.BINARYMIME_NEEDS_BDAT
    elif not transaction.recipients:
        refusal = replies.NO_VALID_RECIPIENTS if transaction.rcpt_attempts else replies.NEED_RCPT
    if refusal is not None:
        # Octets already sent after a refused DATA are a message, never commands (RFC 2920 §3.1).
        raise SmtpError(refusal, close=session.conn.has_buffered_data())
    content = _start_content(session, transaction)
    reader = DataReader(session.listening.max_size, sink=content.extend)
    session.reply(replies.START_INPUT)
    session.flush()
    session.conn.read_stream(reader.feed, lambda: reader.done, session.listening.timeouts.data_block)
    session.transaction = None
    if reader.bare_line_ending:
        session.conn.log.info("message refused: bare CR or LF in DATA (%d octets)", reader.size)
        raise SmtpError(replies.BARE_LINE_ENDING)
    if reader.too_big:
        session.conn.log.info("message refused: %d octets is over the limit", reader.size)
        raise SmtpError(replies.MESSAGE_TOO_BIG)
    _accept(session, transaction, content)


def bdat(session: Session, arg: str) -> None:
    """BDAT size [LAST] (RFC 3030 §2): one chunk, answered once it has been read."""
    command = parse_bdat(arg)
    transaction = session.transaction
    assert transaction is not None  # the dispatcher checked
    max_size = session.listening.max_size
    if transaction.bdat is None:
        content = _start_content(session, transaction)
        binary = transaction.mail.body == "BINARYMIME"
        transaction.bdat = BdatCollector(max_size, binary=binary, sink=content.extend)
    collector = transaction.bdat
    if transaction.failed is None and not transaction.recipients:
        transaction.failed = replies.NO_VALID_RECIPIENTS if transaction.rcpt_attempts else replies.NEED_RCPT_BEFORE_BDAT
    if transaction.failed is not None:
        drain_bdat(session, command.size)
        if command.last:
            session.transaction = None
        raise SmtpError(transaction.failed)
    collector.begin_chunk(command.size, command.last)
    if collector.too_big and collector.size + command.size > DRAIN_FACTOR * max_size:
        session.conn.log.info("BDAT chunk of %d octets refused unread; closing", command.size)
        raise SmtpError(replies.MESSAGE_TOO_BIG, close=True)
    for part in session.conn.read_chunks(command.size, session.listening.timeouts.data_block):
        collector.feed(part)
    failure = None
    if collector.bare_line_ending:
        failure = replies.BARE_LINE_ENDING
    elif collector.too_big:
        failure = replies.MESSAGE_TOO_BIG
    if failure is not None:
        session.conn.log.info("message refused in BDAT: %s", failure.text)
        transaction.failed = failure
        if command.last:
            session.transaction = None
        raise SmtpError(failure)
    if not command.last:
        session.reply(replies.BDAT_CHUNK_OK, size=command.size)
        return
    session.transaction = None
    assert transaction.content is not None
    _accept(session, transaction, transaction.content)


def drain_bdat(session: Session, size: int) -> None:
    """Read and drop one BDAT chunk's octets: the chunk is refused but the stream stays in step."""
    for _ in session.conn.read_chunks(size, session.listening.timeouts.data_block):
        pass


def _start_content(session: Session, transaction: Transaction) -> bytearray:
    conn = session.conn
    trace = Trace(
        helo=session.helo or "",
        ip=session.ip,
        host=session.listening.hostname,
        esmtp=session.esmtp,
        tls=conn.tls,
        authenticated=session.auth is not None,
        smtputf8=transaction.mail.smtputf8,
        message_id=session.message_id,
        recipients=transaction.recipients,
        tls_version=conn.tls_version(),
        cipher=conn.cipher(),
        cipher_bits=conn.cipher_bits(),
    )
    transaction.content = bytearray(received_header(trace))
    return transaction.content


def _accept(session: Session, transaction: Transaction, content: bytearray) -> None:
    raw = bytes(content)
    content.clear()
    transaction.content = None
    delivery.commit(session, transaction, raw)
    session.messages += 1
    session.reply(replies.MESSAGE_ACCEPTED)
