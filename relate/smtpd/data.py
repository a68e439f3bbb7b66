"""Message content: the DATA decoder (RFC 5321 §4.1.1.4, §4.5.2) and the BDAT collector (RFC 3030).

Both are fed whatever bytes the socket delivered and say how many they took, so bytes
pipelined after the message stay with the session for the next command.

Invariants (DATA):
- The ONLY end of DATA is <CRLF>.<CRLF>, at its first occurrence. The CRLF that ended the
  DATA command line counts as the first CRLF, so ".\\r\\n" straight after 354 is an empty
  message.
- A bare CR or bare LF anywhere makes the message invalid (`bare_line_ending`): nothing of
  it is kept any more and the reader only looks for the terminator. A bare line ending never
  ends the message nor starts a line: "\\n.\\n", "\\n.\\r\\n", "\\r\\n.\\n", "\\r.\\r",
  "\\r.\\r\\n", "\\r\\n.\\r" are content. The session answers BARE_LINE_ENDING (554 5.6.0) after
  the real terminator, so one message can never be read as two (SMTP smuggling).
- Dot-unstuffing is exact: a line that starts with "." loses that one dot (RFC 5321 §4.5.2);
  a line that is only "." ends the data and is not part of the message. The message keeps
  the CRLF before the final dot, so a non-empty message always ends with CRLF.
- At most `max_size` octets are kept (in memory, or handed to the sink). Past it, `too_big`
  is set, what was kept is dropped, and the reader drains to the terminator without keeping
  anything; the session then answers MESSAGE_TOO_BIG (552 5.3.4). `size` keeps counting
  (the message's octets; raw octets once a bare line ending was seen).
- Lines over 1000 octets (RFC 5321 §4.5.3.1.6) are accepted unchanged: deployed servers
  accept them and refusing them loses real mail; nothing here depends on line length.
- Eight-bit octets and NUL are kept as they are; whether the body type allowed them is not
  this module's question.
- If the sink raises, the exception is kept in `sink_error`, nothing more is handed to the
  sink, and reading goes on to the end, so the session stays in step and can answer
  STORE_FAILURE (451 4.3.0).
- Cost is linear and mostly at C speed: a chunk without bare line endings is settled by
  find/count/replace; a hostile stream of bare line endings or dot lines costs no more.

Invariants (BDAT):
- Chunk octets are taken verbatim: no dot processing, no terminator, binary-clean. The
  message ends only after the LAST chunk's declared octets.
- RFC 3030 has no terminator to smuggle through, but a 7BIT or 8BITMIME message sent with
  BDAT is still an RFC 5322 message whose lines end with CRLF (RFC 5322 §2.3); only
  BODY=BINARYMIME (RFC 3030 §3) frees the content from that. So for a non-binary message
  bare line endings are tracked across chunk boundaries and make the message invalid just
  as with DATA: the store never holds bare line endings that a later DATA hop could
  misread. For BINARYMIME (`binary=True`) nothing is checked.
"""

from __future__ import annotations

import re
from collections.abc import Callable

Sink = Callable[[bytes], object]

TERMINATOR = b"\r\n.\r\n"  # its first CRLF ends the last line of the message

_CR, _LF, _DOT = 0x0D, 0x0A, 0x2E

# Reader states. _LINE_START: just after CRLF (also the initial state); _IN_LINE: inside a
# line; _AFTER_CR: after a CR (already kept) that may yet be a CRLF; _AFTER_DOT: after a "."
# at the start of a line (held back); _AFTER_DOT_CR: after ".<CR>" there (both held back).
_LINE_START, _IN_LINE, _AFTER_CR, _AFTER_DOT, _AFTER_DOT_CR, _DONE = range(6)
# Each state as the longest end of the input so far that could begin TERMINATOR.
_TAIL = {
    _LINE_START: b"\r\n",
    _IN_LINE: b"",
    _AFTER_CR: b"\r",
    _AFTER_DOT: b"\r\n.",
    _AFTER_DOT_CR: b"\r\n.\r",
}
_STATE_OF_TAIL = sorted(
    ((tail, state) for state, tail in _TAIL.items() if tail), key=lambda item: -len(item[0])
)

# Where a stretch with a bare line ending must go octet by octet: a dot at the start of a
# line, a CR not followed (in this chunk) by LF, an LF not preceded by CR.
_SPECIAL = re.compile(rb"\r\n\.|\r(?!\n)|(?<!\r)\n")
_BARE = re.compile(rb"\r(?!\n)|(?<!\r)\n")


def _unfinished(chunk: bytes) -> int:
    """How many octets at the end of `chunk` may begin the terminator and must wait."""
    for tail, keep in ((b"\r\n.\r", 2), (b"\r\n.", 1), (b"\r", 1)):
        if chunk.endswith(tail):
            return keep
    return 0


def _has_bare_line_ending(data: bytes, start: int, stop: int) -> bool:
    crlf = data.count(b"\r\n", start, stop)
    if data.count(b"\r", start, stop) == crlf == data.count(b"\n", start, stop):
        return False  # the usual case, settled by counting
    return _BARE.search(data, start, stop) is not None


class _Collector:
    """What DATA and BDAT share: size accounting, the size limit, and where the octets go."""

    def __init__(self, max_size: int, sink: Sink | None) -> None:
        if max_size <= 0:
            raise ValueError("max_size must be positive")
        self.max_size = max_size
        self.size = 0  # message octets seen so far, counted past max_size too
        self.too_big = False  # size went over max_size: nothing is kept any more
        self.bare_line_ending = False  # a CR or LF not part of a CRLF: nothing is kept any more
        self.sink_error: Exception | None = None  # what the sink raised, if it did
        self._sink = sink
        self._buffer = bytearray()

    @property
    def done(self) -> bool:
        raise NotImplementedError

    def message(self) -> bytes:
        """The whole message: only without a sink, once done, and when it was kept."""
        if not self.done:
            raise RuntimeError("the message is not complete")
        if self._sink is not None or self.too_big or self.bare_line_ending:
            raise RuntimeError("the message was not kept here")
        return bytes(self._buffer)

    def _keep(self, data: bytes) -> None:
        if not data:
            return
        self.size += len(data)
        if self.too_big or self.bare_line_ending:
            return
        if self.size > self.max_size:
            self.too_big = True
            self._buffer = bytearray()
            return
        if self._sink is None:
            self._buffer += data
        elif self.sink_error is None:
            try:
                self._sink(data)
            except Exception as error:  # kept for the session; reading must stay in step
                self.sink_error = error

    def _count(self, octets: int) -> None:
        self.size += octets
        if self.size > self.max_size and not self.too_big:
            self.too_big = True
            self._buffer = bytearray()

    def _invalidate(self) -> None:
        self.bare_line_ending = True
        self._buffer = bytearray()


class DataReader(_Collector):
    """Decodes what follows DATA's 354 reply, up to and including <CRLF>.<CRLF>.

    Usage: `consumed = reader.feed(buffer)` for each read, keeping `buffer[consumed:]`,
    until `reader.done`; then check `bare_line_ending`, `too_big` and `sink_error` before
    accepting the message. Feeding whole lines from a line reader works too (the terminator
    always ends a line). With `sink`, message octets are handed over as they are decoded
    (never more than `max_size` in total) instead of being kept for `message()`; if the
    message turns out invalid or too big, the sink's partial message must be discarded.
    """

    def __init__(self, max_size: int, sink: Sink | None = None) -> None:
        super().__init__(max_size, sink)
        self._state = _LINE_START

    @property
    def done(self) -> bool:
        return self._state == _DONE

    def feed(self, chunk: bytes) -> int:
        """Consume `chunk` up to the end of the data; return how many octets were taken."""
        if self._state == _DONE:
            return 0
        if self.bare_line_ending:
            return self._skip(chunk, 0)
        out = bytearray()
        view = memoryview(chunk)
        state = self._state
        end = len(chunk)
        index = 0
        clean: bool | None = None  # no bare CR or LF between the first fast-path position and `limit`
        limit = end  # where the fast path stops: before the final "." CRLF or an unfinished end
        bare = False
        while index < end:
            if state == _IN_LINE or (state == _LINE_START and chunk[index] != _DOT):
                # Fast path: copy everything up to the next place that needs a decision.
                if clean is None:
                    term = chunk.find(TERMINATOR, index)
                    limit = term + 2 if term >= 0 else max(index, end - _unfinished(chunk))
                    clean = not _has_bare_line_ending(chunk, index, limit)
                if clean:
                    if index < limit:
                        # Settled at C speed: in a clean stretch every CRLF "." starts a stuffed
                        # line ("..", ".x") and RFC 5321 §4.5.2 drops that first dot.
                        out += chunk[index:limit].replace(b"\r\n.", b"\r\n")
                        state = _LINE_START if chunk.endswith(b"\r\n", index, limit) else _IN_LINE
                        index = limit
                        if index == end:
                            break
                    # what is left (the final "." CRLF, or an unfinished end) goes octet by octet
                else:
                    # A bare line ending lies ahead: go octet by octet from the first suspect.
                    match = _SPECIAL.search(chunk, index)
                    start = match.start() if match else end
                    if chunk.startswith(b"\r\n.", start):
                        out += view[index : start + 2]
                        index, state = start + 2, _LINE_START
                        continue
                    out += view[index:start]
                    index, state = start, _IN_LINE
                    if index == end:
                        break
            byte = chunk[index]
            index += 1
            if state in (_LINE_START, _IN_LINE):
                if byte == _CR:
                    out.append(_CR)
                    state = _AFTER_CR
                elif byte == _LF:
                    bare, state = True, _IN_LINE
                elif byte == _DOT and state == _LINE_START:
                    state = _AFTER_DOT
                else:
                    out.append(byte)
                    state = _IN_LINE
            elif state == _AFTER_CR:
                if byte == _LF:
                    out.append(_LF)
                    state = _LINE_START
                elif byte == _CR:
                    bare = True  # the first CR was bare; this one may still start a CRLF
                else:
                    bare, state = True, _IN_LINE  # a bare CR starts no line: no dot rule after it
            elif state == _AFTER_DOT:
                if byte == _CR:
                    state = _AFTER_DOT_CR
                elif byte == _LF:
                    bare, state = True, _IN_LINE
                else:
                    out.append(byte)  # ".." -> ".", ".x" -> "x" (RFC 5321 §4.5.2)
                    state = _IN_LINE
            elif byte == _LF:  # _AFTER_DOT_CR: the terminator
                state = _DONE
                break
            else:
                bare, state = True, (_AFTER_CR if byte == _CR else _IN_LINE)  # ".<CR>x"
            if bare:
                break
        self._state = state
        if bare:
            self._invalidate()
            self._count(len(out))
            return self._skip(chunk, index)
        self._keep(bytes(out))
        return index

    def _skip(self, chunk: bytes, index: int) -> int:
        """After a bare line ending: only find the terminator, keeping nothing."""
        tail = _TAIL[self._state]
        data = tail + chunk[index:]
        found = data.find(TERMINATOR)
        if found >= 0:
            taken = found + len(TERMINATOR) - len(tail)
            self._count(max(found - len(tail) + 2, 0))
            self._state = _DONE
            return index + taken
        self._count(len(chunk) - index)
        self._state = next((state for end, state in _STATE_OF_TAIL if data.endswith(end)), _IN_LINE)
        return len(chunk)


class BdatCollector(_Collector):
    """Collects the chunks of one BDAT transaction (RFC 3030 §2), verbatim.

    Usage, for each BDAT line: `collector.begin_chunk(bdat.size, bdat.last)`, then
    `consumed = collector.feed(buffer)` until `chunk_done`, keeping `buffer[consumed:]`.
    Answer each chunk (BDAT_CHUNK_OK, or the refusal once `too_big` or `bare_line_ending`);
    after the LAST chunk `done` is true. A chunk is always read to its end, even when the
    message is already refused, because its octets are not commands. `binary` is
    BODY=BINARYMIME. `begin_chunk` sets `too_big` at once when the declared size would pass
    `max_size`, so the session may answer early, or hang up rather than drain.
    """

    def __init__(self, max_size: int, *, binary: bool = False, sink: Sink | None = None) -> None:
        super().__init__(max_size, sink)
        self.binary = binary
        self._remaining = 0  # octets of the current chunk still to come
        self._last = False  # the current chunk is the LAST one
        self._pending_cr = False  # the last octet was a CR whose LF may open the next chunk

    @property
    def chunk_done(self) -> bool:
        return self._remaining == 0

    @property
    def done(self) -> bool:
        return self._last and self._remaining == 0

    def begin_chunk(self, size: int, last: bool) -> None:
        if size < 0:
            raise ValueError("chunk size must not be negative")
        if self._remaining or self._last:
            raise RuntimeError("the previous chunk is not finished, or LAST was already given")
        self._remaining = size
        self._last = last
        if self.size + size > self.max_size:
            self.too_big = True
            self._buffer = bytearray()
        self._finish_if_done()

    def feed(self, data: bytes) -> int:
        """Take up to the rest of the current chunk from `data`; return how many octets."""
        take = min(len(data), self._remaining)
        if take == 0:
            return 0
        part = data[:take]
        self._remaining -= take
        if not self.binary and not self.bare_line_ending and self._has_bare_line_ending(part):
            self._invalidate()
        self._keep(part)
        self._finish_if_done()
        return take

    def _has_bare_line_ending(self, part: bytes) -> bool:
        start, stop = 0, len(part)
        if self._pending_cr:
            self._pending_cr = False
            if part[0] != _LF:
                return True
            start = 1
        if part[-1] == _CR and stop > start:
            self._pending_cr = True
            stop -= 1
        return _has_bare_line_ending(part, start, stop)

    def _finish_if_done(self) -> None:
        if self.done and self._pending_cr and not self.binary:
            self._pending_cr = False
            self._invalidate()
