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
  the address module refuses them.
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
    address = _local_recipient(session, command)
    if address not in transaction.recipients:
        transaction.recipients.append(address)
    session.reply(replies.RECIPIENT_OK)


def _local_recipient(session: Session, command: RcptTo) -> str:
    """The store address that receives this RCPT, or SmtpError saying why there is none."""
    try:
        if command.mailbox is None:
            return _postmaster(session)
        mailbox = command.mailbox
        classify_recipient(mailbox, ())  # raises for relay tricks, whatever the domain
        found = _lookup(session, mailbox)
        if found is not None:
            return found
        hosted = classify_recipient(mailbox, accounts.hosted_domains()) == "local"
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


def _lookup(session: Session, mailbox: Mailbox) -> str | None:
    for key in _candidates(mailbox):
        if key not in session.recipients:
            remember(session.recipients, key, lookups.resolve_recipient(key))
        if session.recipients[key] is not None:
            return key
    return None


def _postmaster(session: Session) -> str:
    """The bare <Postmaster> (RFC 5321 §4.1.1.3): postmaster@ the first hosted domain that has one."""
    settings = session.listening.settings
    domains = list(settings.mail_domains) + sorted(accounts.hosted_domains() - set(settings.mail_domains))
    for domain in domains:
        key = f"postmaster@{domain}"
        if accounts.resolve_recipient(key) is not None:
            return key
    raise SmtpError(replies.NO_SUCH_USER)


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
