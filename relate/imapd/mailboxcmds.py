"""Mailbox commands: CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE, LIST, LSUB, STATUS.

Invariants:
- The hierarchy is real: the store creates missing parents, so every listed name is a
  selectable mailbox (except subscribed names that name none, below) and \\HasChildren /
  \\HasNoChildren (RFC 3348, RFC 5258 §4) are exact.
- Special-use attributes (RFC 6154) are sent on every LIST response, asked for or not.
- Patterns are matched by `Pattern`, an automaton whose cost is bounded by the name length
  times the number of wildcards (MAX_WILDCARDS), never by backtracking.
- Subscriptions are names (RFC 9051 §6.3.7-8, relate.store.mailboxes): SUBSCRIBE may name a
  mailbox that does not exist, DELETE leaves the subscription, RENAME takes the subscriptions
  of the mailbox and the names below it along. LIST (SUBSCRIBED) and LSUB report subscribed
  names whether or not they exist; LIST marks those that do not \\NonExistent (RFC 5258 §3.4).
  SUBSCRIBE and UNSUBSCRIBE are idempotent. CREATE over IMAP subscribes nothing.
- A name that is not valid modified UTF-7 (grammar.UndecodableName) is never created:
  CREATE, RENAME to it and SUBSCRIBE to it are NO [CANNOT].
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from relate import store
from relate.imapd import commands as c
from relate.imapd.grammar import HIERARCHY_DELIMITER, UndecodableName, format_mailbox
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


def _order(name: str) -> tuple[bool, str]:
    """INBOX first, then by name."""
    inbox = name == "INBOX" or name.startswith("INBOX" + SEP)
    return (not inbox, name)


def _with_children(boxes: Iterable[MailboxInfo]) -> set[str]:
    parents: set[str] = set()
    for box in boxes:
        parents.update(_ancestors(box.name))
    return parents


def _attributes(name: str, box: MailboxInfo | None, parents: set[str], subscribed: bool) -> list[str]:
    """LIST attributes of `name`; `box` is its mailbox, None when it does not exist.

    A name with no mailbox is \\NonExistent (RFC 5258 §3.4, implies \\Noselect) and
    \\HasChildren only when a mailbox exists below it; \\HasNoChildren is left out, as a
    subscribed name below it may still be listed with CHILDINFO.
    """
    if box is None:
        attrs = ["\\NonExistent", "\\HasChildren"] if name in parents else ["\\NonExistent"]
    else:
        attrs = ["\\HasChildren" if name in parents else "\\HasNoChildren"]
    if subscribed:
        attrs.append("\\Subscribed")
    if box is not None and box.special_use:
        attrs.append(box.special_use)
    return attrs


def _line(kind: str, attrs: Iterable[str], name: str, utf8: bool, extra: str = "") -> bytes:
    head = f'{kind} ({" ".join(attrs)}) "{SEP}" '.encode()
    return untagged(head + format_mailbox(name, utf8=utf8) + extra.encode())


def list_response(session: Session, box: MailboxInfo) -> bytes:
    """The LIST response for one mailbox (SELECT under IMAP4rev2 sends it)."""
    parents = _with_children(store_mailboxes.list_mailboxes(session.user_id))
    return _line("LIST", _attributes(box.name, box, parents, False), box.name, session.enabled.utf8)


def _root_response(reference: str, utf8: bool) -> bytes:
    """`LIST "" ""`: the delimiter and the reference's root (RFC 9051 §6.3.9)."""
    root = reference.split(SEP, 1)[0] + SEP if SEP in reference else ""
    return _line("LIST", ["\\Noselect"], root, utf8)


def _selected_names(
    candidates: set[str], patterns: list[Pattern], meets: Callable[[str], bool], recursive: bool
) -> tuple[list[str], set[str]]:
    """The names LIST returns, in order, and those among them listed only for CHILDINFO.

    RFC 5258 §3.5 RECURSIVEMATCH: a matched parent that does not meet the selection criteria
    (or does not exist) is still listed, with CHILDINFO, when a descendant the patterns did
    not match meets them.
    """
    if recursive:
        candidates = candidates | {parent for name in candidates if meets(name) for parent in _ancestors(name)}
    matched = {name for name in candidates if any(p.match(name) for p in patterns)}
    childinfo: set[str] = set()
    if recursive:
        for name in candidates:
            if meets(name) and name not in matched:
                childinfo.update(a for a in _ancestors(name) if a in matched)
    childinfo = {name for name in childinfo if not meets(name)}
    listed = [name for name in sorted(matched, key=_order) if meets(name) or name in childinfo]
    return listed, childinfo


def list_command(session: Session, command: c.List) -> Done | None:
    utf8 = session.enabled.utf8
    if not command.extended and command.patterns == ("",):
        session.send(_root_response(command.reference, utf8))
        return None
    patterns = [Pattern(command.reference + p) for p in command.patterns]
    boxes = {box.name: box for box in store_mailboxes.list_mailboxes(session.user_id)}
    parents = _with_children(boxes.values())
    select = command.select_options
    returns = command.return_options
    by_subscription = "SUBSCRIBED" in select
    by_use = "SPECIAL-USE" in select
    show_subscribed = by_subscription or "SUBSCRIBED" in returns
    subscribed = set(store_mailboxes.list_subscriptions(session.user_id)) if show_subscribed else set()

    def meets(name: str) -> bool:
        box = boxes.get(name)
        return (name in subscribed or not by_subscription) and (
            (box is not None and bool(box.special_use)) or not by_use
        )

    # RFC 5258 §3: with SUBSCRIBED, subscribed names are listed whether or not they exist.
    candidates = set(boxes) | subscribed if by_subscription else set(boxes)
    recursive = (by_subscription or by_use) and "RECURSIVEMATCH" in select
    names, childinfo = _selected_names(candidates, patterns, meets, recursive)
    statuses: dict[int, MailboxStatus] = {}
    if "STATUS" in returns:
        if "HIGHESTMODSEQ" in command.status_items:
            session.enable_condstore()
        statuses = {s.mailbox.id: s for s in store_mailboxes.status_all(session.user_id)}
    criteria = ",".join(f'"{name}"' for name in sorted(select - {"RECURSIVEMATCH", "REMOTE"}))
    for name in names:
        box = boxes.get(name)
        extra = f" (\"CHILDINFO\" ({criteria}))" if name in childinfo else ""
        session.send(_line("LIST", _attributes(name, box, parents, name in subscribed), name, utf8, extra))
        if box is not None and box.id in statuses:
            session.send(_status_line(session, statuses[box.id], command.status_items))
    return None


def lsub(session: Session, command: c.Lsub) -> Done | None:
    """RFC 3501 §6.3.9: subscribed names; with %, unsubscribed parents as \\Noselect.

    A subscribed name with no mailbox is listed too, \\Noselect (it cannot be selected).
    """
    pattern = Pattern(command.reference + command.pattern)
    existing = {box.name for box in store_mailboxes.list_mailboxes(session.user_id)}
    subscribed = sorted(store_mailboxes.list_subscriptions(session.user_id), key=_order)
    wanted = set(subscribed)
    listed: set[str] = set()
    utf8 = session.enabled.utf8
    for name in subscribed:
        if "%" in command.pattern:
            for parent in _ancestors(name):
                if parent not in listed and parent not in wanted and pattern.match(parent):
                    listed.add(parent)
                    session.send(_line("LSUB", ["\\Noselect"], parent, utf8))
        if name not in listed and pattern.match(name):
            listed.add(name)
            session.send(_line("LSUB", [] if name in existing else ["\\Noselect"], name, utf8))
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
    try:
        found = store_mailboxes.status_named(session.user_id, command.mailbox)
    except (store.NotFound, store.InvalidInput):
        raise No(f"no mailbox named {command.mailbox}", "NONEXISTENT") from None
    if "HIGHESTMODSEQ" in command.items:
        session.enable_condstore()  # RFC 7162 §3.1: a CONDSTORE-enabling command
    session.send(_status_line(session, found, command.items))
    return None


def _existing(session: Session, name: str) -> MailboxInfo:
    try:
        return store_mailboxes.get_mailbox(session.user_id, name)
    except (store.NotFound, store.InvalidInput):
        raise No(f"no mailbox named {name}", "NONEXISTENT") from None


def _creatable(name: str) -> str:
    """A name the client may give a mailbox or subscription: not an UndecodableName."""
    if isinstance(name, UndecodableName):
        raise No(f"{name} is not valid modified UTF-7", "CANNOT")  # RFC 3501 §5.1.3
    return name


def _declared_name(name: str) -> str:
    """CREATE "a/b/" declares a parent: create "a/b" (RFC 9051 §6.3.4)."""
    stripped = _creatable(name).rstrip(SEP)
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
    try:
        # Over IMAP the client chooses its subscriptions (RFC 9051 §6.3.7): CREATE implies none.
        store_mailboxes.create_mailbox(session.user_id, name, use, subscribe=False)
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
    """RFC 9051 §6.3.6; renaming INBOX moves its messages and leaves it empty.

    The subscriptions of the mailbox and of the names below it move to the new names, so a
    client that then sends SUBSCRIBE new / UNSUBSCRIBE old (RFC 9051 §6.3.6) ends in the same
    state as one that does not.
    """
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
    except store.InvalidInput as exc:
        raise No(str(exc), "CANNOT") from None


def subscribe(session: Session, command: c.Subscribe) -> Done | None:
    """RFC 9051 §6.3.7: any name a mailbox could have, existing or not."""
    _subscription(session, _creatable(command.mailbox), True)
    return None


def unsubscribe(session: Session, command: c.Unsubscribe) -> Done | None:
    """RFC 9051 §6.3.8: OK also when the name was not subscribed."""
    _subscription(session, command.mailbox, False)
    return None
