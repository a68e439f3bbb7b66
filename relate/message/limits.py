"""Named limits that keep parsing bounded in time and memory whatever bytes arrive.

Each limit says what happens past it; none of them makes parsing fail.
"""

# Nesting of multipart/* and message/rfc822 entities. RFC 2046 sets no limit; real mail nests
# four or five deep. A multipart deeper than this gets one opaque text/plain child spanning its
# body, and a message/rfc822 deeper than this is a leaf.
MAX_DEPTH = 64

# Part objects in one message tree. Once reached, further delimiters of the multipart being
# split are ignored (its last part runs to its end) and deeper multiparts become opaque.
MAX_PARTS = 10_000

# Boundary scanning reads each multipart's body once; nested multiparts re-read theirs. The total
# bytes scanned stay below this many times the message size, plus a floor for tiny messages.
SCAN_FACTOR = 16
SCAN_FLOOR = 1 << 20

# RFC 2046 §5.1.1 allows 70 characters; a few generators write longer ones. Longer than this
# and the entity is treated as a multipart without delimiters.
MAX_BOUNDARY = 200

# Bytes of one (folded) header field value that are interpreted. RFC 5322 §2.1.1 limits lines,
# not fields; a longer value is cut before unfolding and decoding.
MAX_HEADER_VALUE = 64 * 1024

# Addresses kept from one address header (for the envelope and the address lists).
MAX_ADDRESSES = 1000

# Message-ids kept from References: the first (the thread root) and the last ones.
MAX_REFERENCES = 100

# RFC 5322 §2.1.1: no line, hence no message-id, is longer than 998 octets.
MAX_ID_LENGTH = 998

# Characters of the preview.
PREVIEW_CHARS = 200

# UTF-8 octets of search text kept per message.
TEXT_BYTES = 256 * 1024

# Raw body octets read from text parts to make the preview and the search text. Enough for a
# long letter wrapped in a lot of HTML; attachments are never read.
TEXT_INPUT_BYTES = 2 * 1024 * 1024

# Characters of an attachment's file name (most file systems stop at 255 bytes).
MAX_FILENAME = 255
