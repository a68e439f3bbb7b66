"""The IMAP daemon (RFC 9051 IMAP4rev2 and RFC 3501 IMAP4rev1).

`parse` turns one command's bytes into the typed objects of `commands`, `fetchatt`,
`searchkeys` and `seqset`; `grammar` holds the shared tokens and their serialisation.

`service` builds the listeners; `session` runs one connection (read loop, command table,
state checks) and hands each command to its module: `authcmds` (STARTTLS, LOGIN,
AUTHENTICATE), `generalcmds` (CAPABILITY, NOOP, ID, ENABLE, ...), `mailboxcmds` (LIST,
CREATE, STATUS, ...), `selectcmds` (SELECT, CLOSE, ...), `querycmds` (FETCH, SEARCH),
`messagecmds` (APPEND, STORE, COPY, MOVE, EXPUNGE) and `idle`. `selected` is the selected
mailbox as one session sees it; `fetch` and `search` render and evaluate against it;
`responses` holds the error kinds and capability lists.
"""
