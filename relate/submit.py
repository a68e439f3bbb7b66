"""Submitting a message for an authenticated user outside SMTP (the API's send, reply and
forward): the checks SMTP submission makes, then the same delivery (DESIGN.md §6 step 1).

Invariants:
- The sender must be one of the user's confirmed addresses (SMTP: 553 5.7.1).
- Every recipient must be local: an address of a user in a hosted domain. An unknown address
  in a hosted domain is refused like SMTP's 550 5.1.1, any other like 550 5.7.1 "remote
  delivery is not available"; nothing is stored unless every recipient is accepted.
- Smtp__MaxRecipients and Smtp__MaxMessageSizeBytes bound a submission as they bound SMTP.
- Delivery is SMTP's own (relate.store.groupcommit.deliver, which means messages.deliver):
  recipients' filters run, the sender gets a \\Seen copy in Sent, the change events go out at
  commit; the API is then notified per stored copy (relate.notify), never delaying the caller.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from relate import notify, store
from relate.config import Settings
from relate.store import accounts, groupcommit

ORIGIN = "api"


class SubmissionRefused(Exception):
    """The submission was refused; nothing was stored. str() is the client's message."""

    def __init__(self, reason: str, message: str, address: str | None = None):
        super().__init__(message)
        # "sender", "invalid", "no-such-user", "remote", "too-many", "too-big", "no-recipients"
        self.reason = reason
        self.address = address


@dataclass(frozen=True)
class Submitted:
    delivered: store.Delivered
    recipients: tuple[str, ...]  # normalised envelope recipients


def check_sender(user_id: int, address: str) -> str:
    """The normalised sender address, if the user may send from it."""
    try:
        sender = accounts.normalise_address(address)
    except store.InvalidInput:
        raise SubmissionRefused("sender", f"{address} is not a valid address", address) from None
    if not accounts.owns_address(user_id, sender):
        raise SubmissionRefused("sender", f"{sender} is not one of your confirmed addresses", sender)
    return sender


def check_recipients(settings: Settings, recipients: Sequence[str]) -> tuple[str, ...]:
    """The normalised, deduplicated recipients, each a local user's address."""
    if not recipients:
        raise SubmissionRefused("no-recipients", "at least one recipient is required")
    out: list[str] = []
    for rcpt in recipients:
        try:
            address = accounts.normalise_address(rcpt)
        except store.InvalidInput:
            raise SubmissionRefused("invalid", f"{rcpt} is not a valid address", rcpt) from None
        if address not in out:
            out.append(address)
    if len(out) > settings.smtp.max_recipients:
        raise SubmissionRefused("too-many", f"at most {settings.smtp.max_recipients} recipients")
    hosted: set[str] | None = None
    for address in out:
        if accounts.resolve_recipient(address) is not None:
            continue
        hosted = hosted if hosted is not None else accounts.hosted_domains()
        if address.split("@", 1)[1] in hosted:
            raise SubmissionRefused("no-such-user", f"{address}: no such user here", address)
        raise SubmissionRefused("remote", f"{address}: remote delivery is not available on this server", address)
    return tuple(out)


def submit(settings: Settings, user_id: int, raw: bytes, sender: str, recipients: Sequence[str]) -> Submitted:
    """Check and deliver `raw` from `sender` (an address of `user_id`) to `recipients` (the
    envelope, Bcc included). Raises SubmissionRefused before storing anything."""
    mail_from = check_sender(user_id, sender)
    rcpts = check_recipients(settings, recipients)
    if len(raw) > settings.smtp.max_message_size:
        raise SubmissionRefused("too-big", f"the message exceeds {settings.smtp.max_message_size} bytes")
    envelope = store.Envelope(mail_from=mail_from, recipients=rcpts, sender_user_id=user_id, origin=ORIGIN)
    delivered = groupcommit.deliver(raw, envelope)
    notifier = notify.notifier(settings)
    for uid, summary in delivered.summaries:
        notifier.submit(notify.new_email_payload([uid], summary))
    return Submitted(delivered, rcpts)
