"""Postmaster (RFC 5321 §4.5.1): accepted for every hosted domain and as the bare
<Postmaster>, in any case; delivered to the domain's postmaster address when there is one,
else to every administrator's INBOX once; refused only when nobody administers the server.
postmaster@ a domain not hosted here is still a relay attempt."""

from __future__ import annotations

import smtplib
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from sqlalchemy import insert

from relate import db
from relate.db.models import Filter
from relate.store import accounts, mailboxes, messages
from tests.smtpd.conftest import Server, World, message, stored

NO_POSTMASTER = "550 5.1.1 Mailbox unavailable: no postmaster is configured here"
RELAY = "554 5.7.1 Relay access denied"


@dataclass(frozen=True)
class Installation:
    """The world without its postmaster@example.test user, and one administrator."""

    world: World
    admin: int  # admin@example.test, flagged administrator in the store


@pytest.fixture
def default_installation(world: World) -> Installation:
    accounts.remove_user("postmaster@example.test")
    admin = accounts.create_user("admin@example.test", "Admin", is_admin=True)
    return Installation(world, admin.id)


def send_mx(server: Server, recipients: list[str], subject: str = "Abuse report") -> dict[str, tuple[int, bytes]]:
    client = server.smtp(server.mx, starttls=False)
    try:
        return client.sendmail("reporter@remote.test", recipients, message(subject=subject, to=recipients[0]))
    finally:
        client.quit()


POSTMASTER_FORMS = [
    "postmaster",
    "Postmaster",
    "POSTMASTER",
    "postmaster@example.test",
    "Postmaster@Example.Test",
    "POSTMASTER@EXAMPLE.TEST",
    "postmaster@other.test",  # the second hosted domain has no postmaster either
]


@pytest.mark.parametrize("recipient", POSTMASTER_FORMS)
def test_postmaster_reaches_the_administrator_on_mx(
    server: Server, default_installation: Installation, recipient: str
) -> None:
    smtp = server.mx_transaction("reporter@remote.test")
    assert smtp.cmd(f"RCPT TO:<{recipient}>") == "250 2.1.5 Recipient OK"
    assert smtp.data(b"Subject: abuse\r\n\r\nSpam from your network.\r\n.\r\n") == "250 2.6.0 Message accepted"
    assert smtp.cmd("QUIT") == "221 2.0.0 Bye"
    [raw] = stored(default_installation.admin)
    assert raw.endswith(b"Spam from your network.\r\n")
    named = recipient.lower() if "@" in recipient else "postmaster@example.test"  # the first hosted domain
    assert f"\tfor <{named}>; ".encode() in raw  # the postmaster's address, not the administrator's


def test_every_form_at_once_is_one_copy(server: Server, default_installation: Installation) -> None:
    assert send_mx(server, [*POSTMASTER_FORMS, "admin@example.test"]) == {}
    assert len(stored(default_installation.admin)) == 1


def test_every_administrator_gets_one_copy(
    smtp_server: Callable[..., Server], default_installation: Installation
) -> None:
    world = default_installation.world
    server = smtp_server(admin_emails=("carol@other.test", "nobody@example.test"))  # carol by Admin__Emails
    assert send_mx(server, ["postmaster", "postmaster@example.test"]) == {}
    assert len(stored(default_installation.admin)) == 1
    assert len(stored(world.carol)) == 1
    assert stored(world.bob) == [] and stored(world.alice) == []


def test_administrator_filters_apply(server: Server, default_installation: Installation) -> None:
    admin = default_installation.admin
    mailboxes.create_mailbox(admin, "Abuse")
    with db.get_engine().begin() as conn:
        conn.execute(insert(Filter).values(
            user_id=admin, name="abuse", position=0, conditions={"subject": "abuse"},
            actions={"moveTo": "Abuse", "markRead": True},
        ))
    assert send_mx(server, ["postmaster"], subject="Abuse report") == {}
    assert stored(admin) == []
    [entry] = messages.list_entries(admin, mailboxes.get_mailbox(admin, "Abuse").id)
    assert entry.seen


def test_administrator_receives_at_another_address(server: Server, world: World) -> None:
    accounts.remove_user("postmaster@example.test")
    admin = accounts.create_user("root@admin.test", "Admin", is_admin=True)
    accounts.add_address(admin.id, "root@example.test", confirmed=True)
    accounts.remove_domain("admin.test")  # the primary address receives nothing any more
    assert send_mx(server, ["postmaster@example.test"]) == {}
    assert len(stored(admin.id)) == 1
    accounts.remove_address("root@example.test")  # now nowhere: as if there were no administrator
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        send_mx(server, ["postmaster@example.test"])
    assert refused.value.recipients == {"postmaster@example.test": (550, NO_POSTMASTER[4:].encode())}


def test_explicit_postmaster_address_wins(server: Server, world: World) -> None:
    admin = accounts.create_user("admin@example.test", "Admin", is_admin=True)
    assert send_mx(server, ["Postmaster@example.test"]) == {}
    assert send_mx(server, ["postmaster"]) == {}
    assert len(stored(world.postmaster)) == 2
    assert stored(admin.id) == []
    # other.test has no postmaster of its own: its administrators get it.
    assert send_mx(server, ["postmaster@other.test"]) == {}
    assert len(stored(admin.id)) == 1 and len(stored(world.postmaster)) == 2


def test_no_administrator_is_a_clear_refusal(server: Server, world: World) -> None:
    accounts.remove_user("postmaster@example.test")
    smtp = server.mx_transaction("reporter@remote.test")
    assert smtp.cmd("RCPT TO:<Postmaster>") == NO_POSTMASTER
    assert smtp.cmd("RCPT TO:<postmaster@example.test>") == NO_POSTMASTER
    assert smtp.cmd("RCPT TO:<postmaster@remote.test>") == RELAY
    assert smtp.cmd("DATA") == "554 5.5.1 No valid recipients"


def test_postmaster_of_a_domain_not_hosted_is_still_relaying(
    server: Server, default_installation: Installation
) -> None:
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        send_mx(server, ["postmaster@other.example"])
    assert refused.value.recipients == {"postmaster@other.example": (554, b"5.7.1 Relay access denied")}
    smtp = server.mx_transaction("reporter@remote.test")
    assert smtp.cmd("RCPT TO:<postmaster@example.test.other.example>") == RELAY
    assert smtp.cmd("RCPT TO:<postmaster@sub.example.test>") == RELAY
    assert stored(default_installation.admin) == []


def test_postmaster_on_submission(server: Server, default_installation: Installation) -> None:
    world = default_installation.world
    client = server.smtp()
    client.login("alice@example.test", world.alice_key)
    assert client.sendmail("alice@example.test", ["postmaster", "Postmaster@other.test"], message()) == {}
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        client.sendmail("alice@example.test", ["postmaster@other.example"], message())
    client.quit()
    assert refused.value.recipients == {
        "postmaster@other.example": (550, b"5.7.1 Delivery to remote domains is not available on this server")
    }
    assert len(stored(default_installation.admin)) == 1
    assert len(stored(world.alice, "Sent")) == 1

