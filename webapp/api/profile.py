"""/api/profile: the caller's account and addresses.

Invariants (DESIGN.md §4):
- An address the caller adds stays pending (isVerified false): it receives nothing and cannot
  be sent from until an administrator confirms it. There is no claiming other people's mail:
  an address in use by anyone is a 409, one outside the hosted domains a 400, and a caller
  with accounts.MAX_PENDING_ADDRESSES requests waiting gets a 409. An administrator who
  creates the address for someone drops a pending request for it.
- The primary address cannot be removed; another user's address id is a 404.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g

from relate.store import InvalidInput, accounts, profiles
from relate.store.profiles import AddressRow
from webapp.api import shapes
from webapp.apidoc import endpoint
from webapp.auth import principal, require
from webapp.errors import ApiError

bp = Blueprint("profile", __name__)
TAGS = ["profile"]

ADDRESS = shapes.out({
    "id": shapes.ID,
    "address": shapes.STR,
    "isVerified": shapes.BOOL,
    "isPrimary": shapes.BOOL,
    "addedAt": shapes.TIME,
})
PROFILE = shapes.out({
    "id": shapes.ID,
    "email": shapes.STR,
    "displayName": shapes.nullable(shapes.STR),
    "isAdmin": shapes.BOOL,
    "createdAt": shapes.TIME,
    "lastLoginAt": shapes.nullable(shapes.TIME),
    "additionalAddresses": {"type": "array", "items": ADDRESS},
})
UPDATE = shapes.obj({"displayName": shapes.line(255)})
ADD_ADDRESS = shapes.obj({"address": shapes.ADDRESS}, required=("address",))


def address_json(a: AddressRow) -> dict[str, Any]:
    return {"id": a.id, "address": a.address, "isVerified": a.confirmed, "isPrimary": a.primary,
            "addedAt": shapes.iso(a.created_at)}


def profile_json(user_id: int) -> dict[str, Any]:
    p = profiles.get_profile(user_id)
    return {
        "id": p.user_id,
        "email": p.primary_address,
        "displayName": p.display_name or None,
        "isAdmin": p.is_admin,
        "createdAt": shapes.iso(p.created_at),
        "lastLoginAt": shapes.iso(p.last_login_at),
        "additionalAddresses": [address_json(a) for a in p.addresses if not a.primary],
    }


@bp.get("/api/profile")
@require("api:read")
@endpoint(summary="The caller's profile and addresses", response=PROFILE, tags=TAGS)
def get_profile() -> Any:
    return profile_json(principal().user_id)


@bp.route("/api/profile", methods=["PUT", "PATCH"])
@require("api:write")
@endpoint(summary="Change the display name", body=UPDATE, response=PROFILE, tags=TAGS)
def update_profile() -> Any:
    user_id = principal().user_id
    if "displayName" in g.body:
        accounts.set_display_name(user_id, g.body["displayName"])
    return profile_json(user_id)


@bp.post("/api/profile/addresses")
@require("api:write")
@endpoint(summary="Ask for an address in a hosted domain; it stays pending until an administrator confirms it "
          "(a few at a time)", body=ADD_ADDRESS,
          response=ADDRESS, status=201, tags=TAGS, errors=(409,))
def add_address() -> Any:
    user_id = principal().user_id
    try:
        added = accounts.add_address(user_id, g.body["address"], confirmed=False)
    except InvalidInput as exc:
        raise ApiError(400, f"address: {exc}", field="address") from None
    row = next(a for a in profiles.get_profile(user_id).addresses if a.address == added.address)
    return address_json(row), 201


@bp.delete("/api/profile/addresses/<int:address_id>")
@require("api:write")
@endpoint(summary="Remove one of the caller's additional addresses", status=204, tags=TAGS, errors=(409,))
def remove_address(address_id: int) -> Any:
    user_id = principal().user_id
    row = profiles.get_address(user_id, address_id)
    accounts.remove_address(row.address, user_id=user_id)
    return "", 204
