"""Commands valid in several states: CAPABILITY, NOOP/CHECK, LOGOUT, ID, ENABLE, NAMESPACE."""

from __future__ import annotations

from typing import TYPE_CHECKING

from relate.imapd import commands as c
from relate.imapd.grammar import quote_string
from relate.imapd.responses import ENABLEABLE, Done, untagged
from relate.imapd.state import State

if TYPE_CHECKING:
    from relate.imapd.session import Session

SERVER_ID = (("name", "Relate Mail"), ("vendor", "Relate Mail"), ("support-url", ""))


def capability(session: Session, command: c.Capability) -> Done | None:
    session.send(untagged(f"CAPABILITY {session.capability_list()}"))
    return None


def noop(session: Session, command: c.Noop | c.Check) -> Done | None:
    """NOOP, and CHECK (RFC 9051 §6.4.1 folds it into NOOP): the dispatcher reports changes."""
    return None


def logout(session: Session, command: c.Logout) -> Done | None:
    session.send(untagged("BYE logging out"))
    session.state = State.LOGOUT
    return None


def id_command(session: Session, command: c.Id) -> Done | None:
    """RFC 2971: log what the client says about itself, say who we are."""
    if command.params:
        described = ", ".join(f"{k}={v}" for k, v in command.params[:8] if v)
        session.client_id = described[:300]
        session.log.info("client: %s", session.client_id)
    fields = b" ".join(quote_string(k) + b" " + quote_string(v) for k, v in SERVER_ID if v)
    session.send(untagged(b"ID (" + fields + b")"))
    return None


def enable(session: Session, command: c.Enable) -> Done | None:
    """RFC 5161: report what this command newly enabled; unknown names are ignored."""
    enabled = session.enabled
    newly: list[str] = []
    for requested in command.capabilities:
        name = ENABLEABLE.get(requested)
        if name == "CONDSTORE" and not enabled.condstore:
            session.enable_condstore()
        elif name == "QRESYNC" and not enabled.qresync:
            enabled.qresync = True
            session.enable_condstore()  # RFC 7162 §3.2.3: QRESYNC implies CONDSTORE
        elif name == "UTF8=ACCEPT" and not enabled.utf8:
            enabled.utf8 = True
        elif name == "IMAP4rev2" and not enabled.rev2:
            enabled.rev2 = True
            enabled.utf8 = True  # RFC 9051 §5.1: IMAP4rev2 mailbox names are UTF-8
        else:
            continue
        newly.append(name)
    session.send(untagged(" ".join(["ENABLED", *newly])))
    return None


def namespace(session: Session, command: c.Namespace) -> Done | None:
    """RFC 2342: one personal namespace, no prefix, "/" as the hierarchy delimiter."""
    session.send(untagged('NAMESPACE (("" "/")) NIL NIL'))
    return None
