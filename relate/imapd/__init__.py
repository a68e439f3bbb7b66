"""The IMAP daemon (RFC 9051 IMAP4rev2 and RFC 3501 IMAP4rev1).

`parse` turns one command's bytes into the typed objects of `commands`, `fetchatt`,
`searchkeys` and `seqset`; `grammar` holds the shared tokens and their serialisation.
"""
