"""A user's profile as the API shows it: the account and every address with its id and state.

relate.store.accounts owns the rules (adding, confirming, removing addresses); this module
reads what the profile page needs in one session and finds an address by its id for its owner.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select

from relate.db.models import Address, User
from relate.store.errors import NotFound
from relate.store.session import read


@dataclass(frozen=True)
class AddressRow:
    id: int
    address: str
    confirmed: bool
    primary: bool
    created_at: dt.datetime


@dataclass(frozen=True)
class Profile:
    user_id: int
    primary_address: str
    display_name: str
    is_admin: bool
    created_at: dt.datetime
    last_login_at: dt.datetime | None
    addresses: list[AddressRow]  # every address, the primary one included


def get_profile(user_id: int) -> Profile:
    with read() as s:
        user = s.get(User, user_id)
        if user is None:
            raise NotFound("no such user")
        rows = s.scalars(select(Address).where(Address.user_id == user_id).order_by(Address.created_at, Address.id))
        addresses = [
            AddressRow(a.id, a.address, a.confirmed, a.address == user.primary_address, a.created_at) for a in rows
        ]
        return Profile(user.id, user.primary_address, user.display_name, user.is_admin, user.created_at,
                       user.last_login_at, addresses)


def get_address(user_id: int, address_id: int) -> AddressRow:
    with read() as s:
        a = s.get(Address, address_id)
        if a is None or a.user_id != user_id:
            raise NotFound("no such address")
        primary = s.scalar(select(User.primary_address).where(User.id == user_id))
        return AddressRow(a.id, a.address, a.confirmed, a.address == primary, a.created_at)
