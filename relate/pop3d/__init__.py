"""The POP3 daemon: each user's INBOX over POP3 (RFC 1939, 2449, 2595, 5034) from the shared store.

- `service`: the listeners (110 with STLS, 995 with implicit TLS) for `python -m relate.pop3d`
  and the all-in-one process.
- `session`: the command loop, dispatch, and the one place failures become "-ERR".
- `commands`: the verb -> handler table with the states each verb is allowed in.
- `auth`: USER/PASS and AUTH PLAIN, the throttle, the maildrop lock.
- `maildrop`: the INBOX snapshot of one session (numbering, DELE marks, UPDATE, \\Seen).
- `wire`: the on-the-wire form of a message (CRLF, dot-stuffing, sizes, TOP, UIDL); pure.
- `parse`: command lines into verbs and arguments; pure.
- `state`, `errors`, `limits`: the session dataclass, the failure kinds, every limit.
"""
