"""Users, their addresses and the hosted domains (DESIGN.md §4).

Invariants:
- Addresses are stored lowercased and belong to at most one user; only confirmed addresses
  in hosted domains receive mail or may be sent from.
- Creating a user creates its primary address (confirmed, its domain becomes hosted) and the
  special mailboxes in the same transaction.
- A user may ask for an address (pending until an administrator confirms it) only in a
  hosted domain and only MAX_PENDING_ADDRESSES at a time; confirming one never hosts a
  domain. An administrator's creation of a user or an address takes precedence over a
  pending request for it (the request is dropped); a confirmed address is never taken.
"""

from __future__ import annotations

import datetime as dt
import logging
import re

from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.exc import IntegrityError

from relate.db.models import Address, Domain, User
from relate.store import mailboxes, rawread
from relate.store.errors import Conflict, InvalidInput, NotFound
from relate.store.session import Tx, read, transaction
from relate.store.sql import insert_ignore, rowcount
from relate.store.types import AddressInfo, UserInfo

log = logging.getLogger("relate.store.accounts")

DEVELOPMENT_USER = "dev@relate.test"  # who the web UI and API act as in development mode
# Addresses one user may have waiting for an administrator at once: room for real requests,
# too few to squat on the names of people an administrator has yet to add.
MAX_PENDING_ADDRESSES = 5

# RFC 5321 §4.5.3.1: local part 64 octets, domain 255, path 256.
MAX_LOCAL = 64
MAX_DOMAIN = 255
_DOMAIN_RE = re.compile(r"^(?=.{1,255}$)([a-z0-9\u0080-\uffff]([a-z0-9\u0080-\uffff-]{0,61}[a-z0-9\u0080-\uffff])?\.)+"
                        r"[a-z\u0080-\uffff][a-z0-9\u0080-\uffff-]{0,62}$")
_LOCAL_RE = re.compile(r"^[A-Za-z0-9\u0080-\uffff!#$&'*+/=?^_`{|}~.-]+$")


def normalise_domain(name: str) -> str:
    domain = name.strip().lower().rstrip(".") if name else ""
    if not _DOMAIN_RE.match(domain):
        raise InvalidInput(f"not a valid domain name: {name!r}")
    return domain


def normalise_address(address: str) -> str:
    """Lowercase `local@domain`, refusing anything that is not a plain mailbox address."""
    addr = (address or "").strip()
    if addr.startswith("<") and addr.endswith(">"):
        addr = addr[1:-1]
    local, sep, domain = addr.rpartition("@")
    if not sep or not local or len(local) > MAX_LOCAL or not _LOCAL_RE.match(local):
        raise InvalidInput(f"not a valid address: {address!r}")
    if local.startswith(".") or local.endswith(".") or ".." in local:
        raise InvalidInput(f"not a valid address: {address!r}")
    return f"{local.lower()}@{normalise_domain(domain)}"


def _user_info(u: User) -> UserInfo:
    return UserInfo(
        id=u.id,
        primary_address=u.primary_address,
        display_name=u.display_name,
        is_admin=u.is_admin,
        oidc_issuer=u.oidc_issuer,
        oidc_subject=u.oidc_subject,
        created_at=u.created_at,
    )


# -- domains -------------------------------------------------------------------------------


def _ensure_domain(t: Tx, name: str) -> None:
    insert_ignore(t, Domain, {"name": name, "created_at": dt.datetime.now(dt.UTC)}, ["name"])


def _hosted(t: Tx, name: str) -> bool:
    return t.s.scalar(select(Domain.id).where(Domain.name == name)) is not None


def add_domain(name: str) -> str:
    domain = normalise_domain(name)
    try:
        with transaction() as t:
            if t.s.scalar(select(Domain.id).where(Domain.name == domain)) is not None:
                raise Conflict(f"domain {domain} is already hosted")
            t.s.add(Domain(name=domain))
    except IntegrityError:
        raise Conflict(f"domain {domain} is already hosted") from None
    return domain


def ensure_domains(names: tuple[str, ...] | list[str]) -> None:
    """Make every configured domain (Mail__Domains) hosted; existing ones are left alone."""
    for name in names:
        try:
            add_domain(name)
        except Conflict:
            pass


def list_domains() -> list[str]:
    with read() as s:
        return list(s.scalars(select(Domain.name).order_by(Domain.name)))


def remove_domain(name: str) -> None:
    domain = normalise_domain(name)
    with transaction() as t:
        if rowcount(t.s.execute(delete(Domain).where(Domain.name == domain))) == 0:
            raise NotFound(f"domain {domain} is not hosted")


def is_hosted_domain(name: str) -> bool:
    with read() as s:
        return s.scalar(select(Domain.id).where(Domain.name == name.lower().rstrip("."))) is not None


def hosted_domains() -> set[str]:
    return set(list_domains())


# -- users ---------------------------------------------------------------------------------


def create_user(
    email: str,
    display_name: str = "",
    *,
    is_admin: bool = False,
    oidc_issuer: str | None = None,
    oidc_subject: str | None = None,
    over_pending: bool = True,
) -> UserInfo:
    """Create a user with its primary address (confirmed) and its special mailboxes.

    over_pending: another user's pending request for the address is dropped (an administrator
    creating the user); False keeps it, and the address is in use (Conflict)."""
    address = normalise_address(email)
    domain = address.split("@", 1)[1]
    try:
        with transaction() as t:
            _make_room(t, address, over_pending=over_pending)
            _ensure_domain(t, domain)
            user = User(
                primary_address=address,
                display_name=display_name.strip(),
                is_admin=is_admin,
                oidc_issuer=oidc_issuer,
                oidc_subject=oidc_subject,
            )
            t.s.add(user)
            t.s.flush()
            t.s.add(Address(address=address, domain=domain, user_id=user.id, confirmed=True))
            mailboxes.create_special(t, user.id)
            info = _user_info(user)
    except IntegrityError:
        raise Conflict(f"address {address} is already in use") from None
    return info


_USER = rawread.Statement(
    select(
        User.id,
        User.primary_address,
        User.display_name,
        User.is_admin,
        User.oidc_issuer,
        User.oidc_subject,
        User.created_at,
    ).where(User.id == bindparam("user_id"))
)


def get_user(user_id: int) -> UserInfo:
    """One statement, outside any transaction (the API asks on many requests)."""
    found = rawread.rows(_USER, {"user_id": user_id})
    if not found:
        raise NotFound("no such user")
    uid, address, name, is_admin, issuer, subject, created_at = found[0]
    return UserInfo(int(uid), address, name, bool(is_admin), issuer, subject, rawread.utc(created_at))


def find_user(address: str) -> UserInfo | None:
    """The user owning `address` (confirmed or not), or None."""
    try:
        addr = normalise_address(address)
    except InvalidInput:
        return None
    with read() as s:
        user = s.scalar(select(User).join(Address, Address.user_id == User.id).where(Address.address == addr))
        return _user_info(user) if user else None


def find_oidc_user(issuer: str, subject: str) -> UserInfo | None:
    with read() as s:
        user = s.scalar(select(User).where(User.oidc_issuer == issuer, User.oidc_subject == subject))
        return _user_info(user) if user else None


def link_oidc(user_id: int, issuer: str, subject: str) -> None:
    with transaction() as t:
        t.s.execute(update(User).where(User.id == user_id).values(oidc_issuer=issuer, oidc_subject=subject))


def list_users() -> list[UserInfo]:
    with read() as s:
        return [_user_info(u) for u in s.scalars(select(User).order_by(User.primary_address))]


def remove_user(email: str) -> None:
    """Delete a user, its addresses, keys, mailboxes and entries. Shared bodies stay for others."""
    user = find_user(email)
    if user is None:
        raise NotFound(f"no user with address {email}")
    with transaction() as t:
        t.s.execute(delete(User).where(User.id == user.id))


def set_admin(user_id: int, is_admin: bool) -> None:
    with transaction() as t:
        if rowcount(t.s.execute(update(User).where(User.id == user_id).values(is_admin=is_admin))) == 0:
            raise NotFound("no such user")


def set_display_name(user_id: int, name: str) -> None:
    with transaction() as t:
        t.s.execute(update(User).where(User.id == user_id).values(display_name=name.strip()))


def touch_login(user_id: int) -> None:
    with transaction() as t:
        t.s.execute(update(User).where(User.id == user_id).values(last_login_at=dt.datetime.now(dt.UTC)))


def count_users() -> int:
    with read() as s:
        return int(s.scalar(select(func.count(User.id))) or 0)


# -- addresses -----------------------------------------------------------------------------


def _make_room(t: Tx, address: str, *, over_pending: bool) -> None:
    """Conflict when `address` is taken; with `over_pending`, a pending request for it (by
    anyone, the new owner too) is not a claim and is dropped."""
    row = t.s.scalar(select(Address).where(Address.address == address))
    if row is None:
        return
    if row.confirmed or not over_pending:
        raise Conflict(f"address {address} is already in use")
    log.warning("dropped the pending request of user %s for %s: the address was given to its owner",
                row.user_id, address)
    t.s.delete(row)
    t.s.flush()


def add_address(user_id: int, address: str, *, confirmed: bool) -> AddressInfo:
    """Give `user_id` another address. Admin-assigned addresses are confirmed (their domain
    becomes hosted) and take precedence over a pending request; user-requested ones must be
    in a hosted domain (InvalidInput), stay pending until an administrator confirms them (no
    claiming other people's mail), and a user has at most MAX_PENDING_ADDRESSES (Conflict)."""
    addr = normalise_address(address)
    domain = addr.split("@", 1)[1]
    try:
        with transaction() as t:
            if t.s.get(User, user_id, with_for_update=not confirmed) is None:  # one request at a time
                raise NotFound("no such user")
            _make_room(t, addr, over_pending=confirmed)
            if confirmed:
                _ensure_domain(t, domain)
            else:
                if not _hosted(t, domain):
                    raise InvalidInput(f"{domain} is not a domain hosted here")
                waiting = t.s.scalar(select(func.count(Address.id)).where(Address.user_id == user_id,
                                                                         Address.confirmed.is_(False)))
                if (waiting or 0) >= MAX_PENDING_ADDRESSES:
                    raise Conflict(f"{MAX_PENDING_ADDRESSES} addresses already wait for an administrator's "
                                   "confirmation; remove one to ask for another")
            t.s.add(Address(address=addr, domain=domain, user_id=user_id, confirmed=confirmed))
    except IntegrityError:
        raise Conflict(f"address {addr} is already in use") from None
    return AddressInfo(addr, user_id, confirmed)


def confirm_address(address: str) -> AddressInfo:
    """Confirm a pending address. Its domain must be hosted (Conflict otherwise): hosting a
    domain is an administrator's explicit act, never a side effect of a user's request."""
    addr = normalise_address(address)
    with transaction() as t:
        row = t.s.scalar(select(Address).where(Address.address == addr))
        if row is None:
            raise NotFound(f"no such address {addr}")
        if not _hosted(t, row.domain):
            raise Conflict(f"{row.domain} is not a domain hosted here; host it first to confirm {addr}")
        row.confirmed = True
        return AddressInfo(addr, row.user_id, True)


def remove_address(address: str, *, user_id: int | None = None) -> None:
    """Remove an extra address (never a user's primary one). With user_id, only its own."""
    addr = normalise_address(address)
    with transaction() as t:
        row = t.s.scalar(select(Address).where(Address.address == addr))
        if row is None or (user_id is not None and row.user_id != user_id):
            raise NotFound(f"no such address {addr}")
        primary = t.s.scalar(select(User.primary_address).where(User.id == row.user_id))
        if primary == addr:
            raise Conflict("the primary address cannot be removed")
        t.s.delete(row)


def list_addresses(user_id: int) -> list[AddressInfo]:
    with read() as s:
        primary = s.scalar(select(User.primary_address).where(User.id == user_id))
        rows = s.scalars(select(Address).where(Address.user_id == user_id).order_by(Address.address))
        return [AddressInfo(a.address, a.user_id, a.confirmed, a.address == primary) for a in rows]


def pending_addresses() -> list[AddressInfo]:
    with read() as s:
        rows = s.scalars(select(Address).where(Address.confirmed.is_(False)).order_by(Address.created_at))
        return [AddressInfo(a.address, a.user_id, False) for a in rows]


def resolve_recipient(address: str) -> int | None:
    """The user that receives mail for `address`: a confirmed address in a hosted domain."""
    try:
        addr = normalise_address(address)
    except InvalidInput:
        return None
    with read() as s:
        return s.scalar(
            select(Address.user_id)
            .join(Domain, Domain.name == Address.domain)
            .where(Address.address == addr, Address.confirmed.is_(True))
        )


def owns_address(user_id: int, address: str) -> bool:
    """True when `address` is one of the user's confirmed addresses (may be sent from)."""
    try:
        addr = normalise_address(address)
    except InvalidInput:
        return False
    with read() as s:
        return (
            s.scalar(
                select(Address.id).where(
                    Address.address == addr, Address.user_id == user_id, Address.confirmed.is_(True)
                )
            )
            is not None
        )


def ensure_development_user() -> UserInfo:
    """The development user (an administrator), created on first use."""
    existing = find_user(DEVELOPMENT_USER)
    if existing is not None:
        return existing
    try:
        return create_user(DEVELOPMENT_USER, "Developer", is_admin=True)
    except Conflict:  # created concurrently by another worker
        user = find_user(DEVELOPMENT_USER)
        assert user is not None
        return user
