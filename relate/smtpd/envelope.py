"""MAIL and RCPT: who may send, and who receives (DESIGN.md §6 steps 1-2).

Invariants:
- Submission with AUTH: the sender must be one of the user's confirmed addresses
  (SENDER_NOT_OWNED, 553 5.7.1). Without AUTH a submission port takes mail only when
  Smtp__RequireAuthentication=false, and then, like MX, only for local recipients.
- A recipient is accepted only when it resolves to a user in a hosted domain. Unknown
  addresses in a hosted domain get NO_SUCH_USER (550 5.1.1); every other destination is
  refused: REMOTE_DELIVERY_UNAVAILABLE (550 5.7.1) for an authenticated user until outbound
  delivery exists, RELAY_DENIED (554 5.7.1) for everyone else. Relay tricks (address
  literals, %, ! and @ in the local part, source routes, trailing dots) never get that far:
  the address module refuses them, with 554 5.7.1 on every port.
- Postmaster (RFC 5321 §4.5.1) is accepted for every hosted domain, case-insensitively,
  and as the bare <Postmaster>: postmaster@domain goes to the user owning that address if
  there is one, else to every administrator (their INBOX, through their filters like any
  delivery); the bare form goes to the first hosted domain's postmaster that exists
  (Mail__Domains in order, then the others by name), else to the administrators as
  postmaster@ the first of those domains. Only a server with no administrator refuses it
  (NO_POSTMASTER). postmaster@ a domain not hosted here is a destination like any other:
  refused.
- `Transaction.recipients` holds the forward-paths accepted (what Received names and
  Smtp__MaxRecipients counts); `Transaction.deliver_to` the store addresses they resolve to,
  which is what the message is delivered to: one postmaster may stand for several users.
- The envelope, not the headers, decides delivery, so Bcc works.
- Look-ups are remembered for the session only; the store checks the recipients again in the
  delivering transaction, so a stale answer can never deliver to a removed address.
"""

from __future__ import annotations

from relate import store
from relate.smtpd import replies
from relate.smtpd.address import Mailbox, classify_recipient, normalise
from relate.smtpd.command import RcptTo, parse_mail_from, parse_rcpt_to
from relate.smtpd.replies import SmtpError
from relate.smtpd.state import Session, Transaction, remember
from relate.store import accounts, lookups

POSTMASTER = "postmaster"  # RFC 5321 §4.5.1, compared case-insensitively


def mail(session: Session, arg: str) -> None:
    """MAIL FROM:<reverse-path> [parameters] (RFC 5321 §4.1.1.2)."""
    listening = session.listening
    if listening.mode == "submission" and session.auth is None and listening.settings.smtp.require_authentication:
        raise SmtpError(replies.AUTH_REQUIRED if session.auth_offered else replies.STARTTLS_REQUIRED)
    command = parse_mail_from(arg, smtputf8_allowed=True)
    if command.size is not None and command.size > listening.max_size:
        raise SmtpError(replies.MESSAGE_TOO_BIG)  # RFC 1870 §6
    if session.auth is not None and (command.mailbox is None or not _owns(session, command.mailbox)):
        session.conn.log.info("sender <%s> refused: not an address of the authenticated user", command.address)
        raise SmtpError(replies.SENDER_NOT_OWNED)
    session.transaction = Transaction(mail=command)
    session.reply(replies.SENDER_OK)


def rcpt(session: Session, arg: str) -> None:
    """RCPT TO:<forward-path> (RFC 5321 §4.1.1.3)."""
    transaction = session.transaction
    assert transaction is not None  # the dispatcher checked
    transaction.rcpt_attempts += 1
    command = parse_rcpt_to(arg, smtputf8=transaction.mail.smtputf8)
    if len(transaction.recipients) >= session.listening.settings.smtp.max_recipients:
        raise SmtpError(replies.TOO_MANY_RECIPIENTS)  # RFC 5321 §4.5.3.1.10
    recipient, addresses = _local_recipient(session, command)
    if recipient not in transaction.recipients:
        transaction.recipients.append(recipient)
    for address in addresses:
        if address not in transaction.deliver_to:
            transaction.deliver_to.append(address)
    session.reply(replies.RECIPIENT_OK)


def _local_recipient(session: Session, command: RcptTo) -> tuple[str, tuple[str, ...]]:
    """The recipient as Transaction.recipients records it and the store addresses that
    receive its mail, or SmtpError saying why nobody here does."""
    try:
        if command.mailbox is None:
            return _postmaster(session)
        mailbox = command.mailbox
        classify_recipient(mailbox, ())  # raises for relay tricks, whatever the domain
        found = _lookup(session, mailbox)
        if found is not None:
            return found, (found,)
        hosted = classify_recipient(mailbox, accounts.hosted_domains()) == "local"
        if hosted and mailbox.local.lower() == POSTMASTER:
            return normalise(mailbox), _administrators(session)
    except store.TemporaryFailure:
        raise SmtpError(replies.LOOKUP_FAILURE) from None
    if hosted:
        raise SmtpError(replies.NO_SUCH_USER)
    session.conn.log.info("recipient <%s> refused: not a local address", command.address)
    if session.auth is not None:
        raise SmtpError(replies.REMOTE_DELIVERY_UNAVAILABLE)
    raise SmtpError(replies.RELAY_DENIED)


def _candidates(mailbox: Mailbox) -> list[str]:
    """The store keys a mailbox may be filed under: U-label domain, then A-label domain."""
    keys: list[str] = []
    for text in (normalise(mailbox), f"{mailbox.local.lower()}@{mailbox.ascii_domain}"):
        try:
            key = accounts.normalise_address(text)
        except store.InvalidInput:
            continue  # e.g. a quoted local part: nobody's address here
        if key not in keys:
            keys.append(key)
    return keys


def _receives(session: Session, key: str) -> bool:
    """Whether a user receives mail at store address `key` (remembered for the session)."""
    if key not in session.recipients:
        remember(session.recipients, key, lookups.resolve_recipient(key))
    return session.recipients[key] is not None


def _lookup(session: Session, mailbox: Mailbox) -> str | None:
    for key in _candidates(mailbox):
        if _receives(session, key):
            return key
    return None


def _postmaster(session: Session) -> tuple[str, tuple[str, ...]]:
    """The bare <Postmaster> (RFC 5321 §4.1.1.3): postmaster@ the first hosted domain that has
    that address; else the administrators, as postmaster@ the first hosted domain."""
    settings = session.listening.settings
    domains = list(settings.mail_domains) + sorted(accounts.hosted_domains() - set(settings.mail_domains))
    for domain in domains:
        key = f"{POSTMASTER}@{domain}"
        if _receives(session, key):
            return key, (key,)
    # A hosted domain's name makes the Received "for" a mailbox (RFC 5321 §4.4).
    return (f"{POSTMASTER}@{domains[0]}" if domains else POSTMASTER), _administrators(session)


def _administrators(session: Session) -> tuple[str, ...]:
    """Where postmaster mail goes when no postmaster address exists (RFC 5321 §4.5.1)."""
    addresses = lookups.postmaster_addresses(session.listening.settings.admin_emails)
    if not addresses:
        session.conn.log.warning("postmaster mail refused: no postmaster address and no administrator")
        raise SmtpError(replies.NO_POSTMASTER)
    return tuple(addresses)


def _owns(session: Session, mailbox: Mailbox) -> bool:
    auth = session.auth
    assert auth is not None
    try:
        for key in _candidates(mailbox):
            if key not in session.senders:
                remember(session.senders, key, accounts.owns_address(auth.user_id, key))
            if session.senders[key]:
                return True
    except store.TemporaryFailure:
        raise SmtpError(replies.SENDER_LOOKUP_FAILURE) from None
    return False
