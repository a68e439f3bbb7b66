"""Mailbox commands: CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE, LIST, LSUB, STATUS.

Invariants:
- The hierarchy is real: the store creates missing parents, so every listed name is a
  selectable mailbox and \\HasChildren / \\HasNoChildren (RFC 3348, RFC 5258 §4) are exact.
- Special-use attributes (RFC 6154) are sent on every LIST response, asked for or not.
- Patterns are matched by `Pattern`, an automaton whose cost is bounded by the name length
  times the number of wildcards (MAX_WILDCARDS), never by backtracking.
- Subscriptions belong to existing mailboxes: SUBSCRIBE to a name that does not exist is
  refused with [NONEXISTENT] (RFC 9051 §6.3.7 lets the server check), and deleting a
  mailbox drops its subscription. CREATE over IMAP leaves what it creates unsubscribed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from relate import store
from relate.imapd import commands as c
from relate.imapd.grammar import HIERARCHY_DELIMITER, format_mailbox
from relate.imapd.responses import Bad, Done, No, untagged
from relate.imapd.selected import recent_claims
from relate.store import mailboxes as store_mailboxes
from relate.store.types import SPECIAL_USES, MailboxInfo, MailboxStatus

if TYPE_CHECKING:
    from relate.imapd.session import Session

MAX_WILDCARDS = 16  # per LIST/LSUB pattern; real clients use one or two
SEP = HIERARCHY_DELIMITER


class Pattern:
    """A LIST pattern (RFC 9051 §6.3.9): `*` matches anything, `%` anything but the delimiter.

    The INBOX part of a name matches case-insensitively (RFC 9051 §5.1).
    """

    def __init__(self, text: str) -> None:
        collapsed: list[str] = []
        for ch in text:
            if ch in "*%" and collapsed and collapsed[-1] in "*%":
                collapsed[-1] = "*" if "*" in (ch, collapsed[-1]) else "%"
            else:
                collapsed.append(ch)
        self.chars = collapsed
        self.literal_count = sum(1 for ch in collapsed if ch not in "*%")
        if len(collapsed) - self.literal_count > MAX_WILDCARDS:
            raise Bad("mailbox pattern has too many wildcards")

    def _closure(self, states: set[int]) -> set[int]:
        out = set(states)
        for s in sorted(states):
            while s < len(self.chars) and self.chars[s] in "*%":
                s += 1
                out.add(s)
        return out

    def match(self, name: str) -> bool:
        if self.literal_count > len(name):
            return False
        fold = 5 if name == "INBOX" or name.startswith("INBOX" + SEP) else 0
        end = len(self.chars)
        states = self._closure({0})
        for k, ch in enumerate(name):
            step: set[int] = set()
            for s in states:
                if s == end:
                    continue
                pc = self.chars[s]
                if pc == "*" or (pc == "%" and ch != SEP):
                    step.add(s)
                elif pc == ch or (k < fold and pc.upper() == ch):
                    step.add(s + 1)
            if not step:
                return False
            states = self._closure(step)
        return end in states


def _ancestors(name: str) -> list[str]:
    parts = name.split(SEP)
    return [SEP.join(parts[:i]) for i in range(1, len(parts))]


def _order(box: MailboxInfo) -> tuple[bool, str]:
    """INBOX first, then by name."""
    inbox = box.name == "INBOX" or box.name.startswith("INBOX" + SEP)
    return (not inbox, box.name)


def _with_children(boxes: Iterable[MailboxInfo]) -> set[str]:
    parents: set[str] = set()
    for box in boxes:
        parents.update(_ancestors(box.name))
    return parents


def _attributes(box: MailboxInfo, parents: set[str], subscribed: bool) -> list[str]:
    attrs = ["\\HasChildren" if box.name in parents else "\\HasNoChildren"]
    if subscribed and box.subscribed:
        attrs.append("\\Subscribed")
    if box.special_use:
        attrs.append(box.special_use)
    return attrs


def _line(kind: str, attrs: Iterable[str], name: str, utf8: bool, extra: str = "") -> bytes:
    head = f'{kind} ({" ".join(attrs)}) "{SEP}" '.encode()
    return untagged(head + format_mailbox(name, utf8=utf8) + extra.encode())


def list_response(session: Session, box: MailboxInfo) -> bytes:
    """The LIST response for one mailbox (SELECT under IMAP4rev2 sends it)."""
    parents = _with_children(store_mailboxes.list_mailboxes(session.user_id))
    return _line("LIST", _attributes(box, parents, False), box.name, session.enabled.utf8)


def _root_response(reference: str, utf8: bool) -> bytes:
    """`LIST "" ""`: the delimiter and the reference's root (RFC 9051 §6.3.9)."""
    root = reference.split(SEP, 1)[0] + SEP if SEP in reference else ""
    return _line("LIST", ["\\Noselect"], root, utf8)


def list_command(session: Session, command: c.List) -> Done | None:
    utf8 = session.enabled.utf8
    if not command.extended and command.patterns == ("",):
        session.send(_root_response(command.reference, utf8))
        return None
    patterns = [Pattern(command.reference + p) for p in command.patterns]
    boxes = sorted(store_mailboxes.list_mailboxes(session.user_id), key=_order)
    parents = _with_children(boxes)
    select = command.select_options
    returns = command.return_options
    by_subscription = "SUBSCRIBED" in select
    by_use = "SPECIAL-USE" in select
    filtered = by_subscription or by_use
    show_subscribed = by_subscription or "SUBSCRIBED" in returns

    def meets(box: MailboxInfo) -> bool:
        return (box.subscribed or not by_subscription) and (bool(box.special_use) or not by_use)

    matched = {box.name for box in boxes if any(p.match(box.name) for p in patterns)}
    # RFC 5258 §3.5 RECURSIVEMATCH: a matched parent that does not meet the selection
    # criteria is still listed, with CHILDINFO, when a descendant the patterns did not
    # match meets them.
    childinfo: set[str] = set()
    if filtered and "RECURSIVEMATCH" in select:
        for box in boxes:
            if meets(box) and box.name not in matched:
                childinfo.update(a for a in _ancestors(box.name) if a in matched)
    statuses: dict[int, MailboxStatus] = {}
    if "STATUS" in returns:
        if "HIGHESTMODSEQ" in command.status_items:
            session.enable_condstore()
        statuses = {s.mailbox.id: s for s in store_mailboxes.status_all(session.user_id)}
    criteria = ",".join(f'"{name}"' for name in sorted(select - {"RECURSIVEMATCH", "REMOTE"}))
    for box in boxes:
        if box.name not in matched:
            continue
        listed = meets(box)
        if not listed and box.name not in childinfo:
            continue
        attrs = _attributes(box, parents, show_subscribed)
        extra = f" (\"CHILDINFO\" ({criteria}))" if box.name in childinfo and not listed else ""
        session.send(_line("LIST", attrs, box.name, utf8, extra))
        if box.id in statuses:
            session.send(_status_line(session, statuses[box.id], command.status_items))
    return None


def lsub(session: Session, command: c.Lsub) -> Done | None:
    """RFC 3501 §6.3.9: subscribed names; with %, unsubscribed parents as \\Noselect."""
    pattern = Pattern(command.reference + command.pattern)
    boxes = sorted(store_mailboxes.list_mailboxes(session.user_id), key=_order)
    subscribed = [box.name for box in boxes if box.subscribed]
    listed: set[str] = set()
    utf8 = session.enabled.utf8
    for name in subscribed:
        if "%" in command.pattern:
            for parent in _ancestors(name):
                if parent not in listed and parent not in subscribed and pattern.match(parent):
                    listed.add(parent)
                    session.send(_line("LSUB", ["\\Noselect"], parent, utf8))
        if name not in listed and pattern.match(name):
            listed.add(name)
            session.send(_line("LSUB", [], name, utf8))
    return None


def _status_line(session: Session, status: MailboxStatus, items: Iterable[str]) -> bytes:
    box = status.mailbox
    values = {
        "MESSAGES": status.messages,
        "UIDNEXT": box.uid_next,
        "UIDVALIDITY": box.uid_validity,
        "UNSEEN": status.unseen,
        "DELETED": status.deleted,
        "SIZE": status.size,
        "HIGHESTMODSEQ": box.highest_modseq,
        "APPENDLIMIT": session.append_limit,
    }
    pairs = []
    for item in items:
        value = recent_claims.count(session.user_id, box, status.messages) if item == "RECENT" else values[item]
        pairs.append(f"{item} {value}")
    name = format_mailbox(box.name, utf8=session.enabled.utf8)
    return untagged(b"STATUS " + name + f" ({' '.join(pairs)})".encode())


def status(session: Session, command: c.Status) -> Done | None:
    """RFC 9051 §6.3.11 with DELETED, SIZE (RFC 8438), HIGHESTMODSEQ, APPENDLIMIT (RFC 7889)."""
    box = _existing(session, command.mailbox)
    if "HIGHESTMODSEQ" in command.items:
        session.enable_condstore()  # RFC 7162 §3.1: a CONDSTORE-enabling command
    session.send(_status_line(session, store_mailboxes.status(session.user_id, box.id), command.items))
    return None


def _existing(session: Session, name: str) -> MailboxInfo:
    try:
        return store_mailboxes.get_mailbox(session.user_id, name)
    except (store.NotFound, store.InvalidInput):
        raise No(f"no mailbox named {name}", "NONEXISTENT") from None


def _declared_name(name: str) -> str:
    """CREATE "a/b/" declares a parent: create "a/b" (RFC 9051 §6.3.4)."""
    stripped = name.rstrip(SEP)
    if not stripped:
        raise No("invalid mailbox name", "CANNOT")
    return stripped


def create(session: Session, command: c.Create) -> Done | None:
    name = _declared_name(command.mailbox)
    if name == "INBOX":
        raise No("INBOX always exists", "ALREADYEXISTS")
    use = None
    if command.special_use:
        if len(command.special_use) > 1 or command.special_use[0] not in SPECIAL_USES:
            raise No("unsupported special use", "USEATTR")  # RFC 6154 §3
        use = command.special_use[0]
    existing = {box.name for box in store_mailboxes.list_mailboxes(session.user_id)}
    try:
        store_mailboxes.create_mailbox(session.user_id, name, use)
        # The store subscribes what it creates (for mailboxes made in the web UI); over IMAP
        # the client chooses its subscriptions (RFC 9051 §6.3.7), CREATE implies none.
        for created in [*_ancestors(name), name]:
            if created not in existing:
                store_mailboxes.set_subscribed(session.user_id, created, False)
    except store.Conflict as exc:
        try:
            store_mailboxes.get_mailbox(session.user_id, name)
        except store.NotFound:
            raise No(str(exc), "USEATTR") from None  # another mailbox has that special use
        raise No(f"mailbox {name} already exists", "ALREADYEXISTS") from None
    except store.InvalidInput as exc:
        raise No(str(exc), "CANNOT") from None
    return None


def delete(session: Session, command: c.Delete) -> Done | None:
    name = command.mailbox
    if name == "INBOX":
        raise No("INBOX cannot be deleted", "CANNOT")
    box = _existing(session, name)
    try:
        store_mailboxes.delete_mailbox(session.user_id, box.name)
    except store.NotFound:
        raise No(f"no mailbox named {name}", "NONEXISTENT") from None
    except store.Conflict:
        raise No(f"{name} has child mailboxes; delete them first", "HASCHILDREN") from None
    if session.selected is not None and session.selected.id == box.id:
        session.deselect()
    return None


def rename(session: Session, command: c.Rename) -> Done | None:
    """RFC 9051 §6.3.6; renaming INBOX moves its messages and leaves it empty."""
    new_name = _declared_name(command.new_name)
    try:
        store_mailboxes.rename_mailbox(session.user_id, command.mailbox, new_name)
    except store.NotFound:
        raise No(f"no mailbox named {command.mailbox}", "NONEXISTENT") from None
    except store.Conflict:
        raise No(f"mailbox {new_name} already exists", "ALREADYEXISTS") from None
    except (store.Forbidden, store.InvalidInput) as exc:
        raise No(str(exc), "CANNOT") from None
    return None


def _subscription(session: Session, name: str, subscribed: bool) -> None:
    try:
        store_mailboxes.set_subscribed(session.user_id, name, subscribed)
    except (store.NotFound, store.InvalidInput):
        raise No(f"no mailbox named {name}", "NONEXISTENT") from None


def subscribe(session: Session, command: c.Subscribe) -> Done | None:
    _subscription(session, command.mailbox, True)
    return None


def unsubscribe(session: Session, command: c.Unsubscribe) -> Done | None:
    _subscription(session, command.mailbox, False)
    return None
