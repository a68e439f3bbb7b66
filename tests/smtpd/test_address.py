"""Envelope address syntax and the anti-relay decision, one row per trick."""

from __future__ import annotations

import pytest

from relate.smtpd import replies
from relate.smtpd.address import (
    AddressError,
    Mailbox,
    Refusal,
    classify_recipient,
    is_address_literal,
    normalise,
    parse_forward_path,
    parse_reverse_path,
)

HOSTED = {"hosted.com", "bücher.example"}


def case(id_: str, *values: object) -> object:
    return pytest.param(*values, id=id_)


# (path, smtputf8, local, domain)
VALID = [
    case("plain", "user@hosted.com", False, "user", "hosted.com"),
    case("brackets-stripped", "<user@hosted.com>", False, "user", "hosted.com"),
    case("domain-lowercased-local-kept", "User.Name@HOSTED.Com", False, "User.Name", "hosted.com"),
    case("atext-specials", "a!#$&'*+-/=?^_`{|}~b@hosted.com", False, "a!#$&'*+-/=?^_`{|}~b", "hosted.com"),
    case("plus-tag", "user+tag@hosted.com", False, "user+tag", "hosted.com"),
    case("quoted-dot-string", '"user.name"@hosted.com', False, "user.name", "hosted.com"),
    case("quoted-with-space", '"john smith"@hosted.com', False, "john smith", "hosted.com"),
    case("quoted-pair", '"a\\"b\\\\c"@hosted.com', False, 'a"b\\c', "hosted.com"),
    case("quoted-with-gt", '"a>b"@hosted.com', False, "a>b", "hosted.com"),
    case("single-label-domain", "root@localhost", False, "root", "localhost"),
    case("digits-in-labels", "u@123.example.com", False, "u", "123.example.com"),
    case("hyphen-in-label", "u@my-host.example", False, "u", "my-host.example"),
    case("ipv4-literal", "u@[192.0.2.1]", False, "u", "[192.0.2.1]"),
    case("ipv6-literal", "u@[IPv6:2001:DB8::1]", False, "u", "[ipv6:2001:db8::1]"),
    case("ipv6-v4-literal", "u@[IPv6:::ffff:192.0.2.1]", False, "u", "[ipv6:::ffff:192.0.2.1]"),
    case("general-literal", "u@[x400:c=us]", False, "u", "[x400:c=us]"),
    case("utf8-local", "jörg@hosted.com", True, "jörg", "hosted.com"),
    case("utf8-domain", "user@BÜCHER.example", True, "user", "bücher.example"),
    case("a-label-domain", "user@xn--bcher-kva.example", False, "user", "xn--bcher-kva.example"),
    case("local-64", "a" * 64 + "@hosted.com", False, "a" * 64, "hosted.com"),
]


@pytest.mark.parametrize(("path", "smtputf8", "local", "domain"), VALID)
def test_valid_forward_path(path: str, smtputf8: bool, local: str, domain: str) -> None:
    mailbox = parse_forward_path(path, smtputf8=smtputf8)
    assert mailbox == Mailbox(local=local, domain=domain)


LONG_DOMAIN = ".".join(["d" * 60] * 4) + ".example"  # 251 octets: fine alone, too long in a path

# (path, smtputf8, reason)
INVALID = [
    case("empty", "", False, Refusal.MISSING_DOMAIN),
    case("empty-local", "@hosted.com", False, Refusal.EMPTY_LOCAL_PART),
    case("empty-quoted-local", '""@hosted.com', False, Refusal.EMPTY_LOCAL_PART),
    case("missing-domain", "user", False, Refusal.MISSING_DOMAIN),
    case("percent-hack-without-domain", "user%other.com", False, Refusal.ROUTING_CHARACTER),
    case("bang-path-without-domain", "other.com!user", False, Refusal.ROUTING_CHARACTER),
    case("missing-domain-after-at", "user@", False, Refusal.MISSING_DOMAIN),
    case("multiple-at", "user@other.com@hosted.com", False, Refusal.MULTIPLE_AT),
    case("double-at", "user@@hosted.com", False, Refusal.MULTIPLE_AT),
    case("quoted-then-two-at", '"a"@b.com@hosted.com', False, Refusal.MULTIPLE_AT),
    case("source-route", "@hosted.com:user@other.com", False, Refusal.SOURCE_ROUTE),
    case("source-route-two-hops", "@a.com,@hosted.com:user@other.com", False, Refusal.SOURCE_ROUTE),
    case("source-route-bracketed", "<@hosted.com:user@other.com>", False, Refusal.SOURCE_ROUTE),
    case("trailing-dot", "user@hosted.com.", False, Refusal.TRAILING_DOT),
    case("leading-dot-domain", "user@.hosted.com", False, Refusal.BAD_DOMAIN),
    case("empty-label", "user@hosted..com", False, Refusal.BAD_DOMAIN),
    case("hyphen-start-label", "user@-hosted.com", False, Refusal.BAD_DOMAIN),
    case("hyphen-end-label", "user@hosted-.com", False, Refusal.BAD_DOMAIN),
    case("underscore-domain", "user@ho_sted.com", False, Refusal.BAD_DOMAIN),
    case("bare-ipv4-as-domain", "user@127.0.0.1", False, Refusal.ADDRESS_LITERAL),
    case("bad-ipv4-literal", "user@[256.0.0.1]", False, Refusal.BAD_DOMAIN),
    case("short-ipv4-literal", "user@[1.2.3]", False, Refusal.BAD_DOMAIN),
    case("bad-ipv6-literal", "user@[IPv6:1::2::3]", False, Refusal.BAD_DOMAIN),
    case("ipv6-zone-literal", "user@[IPv6:fe80::1%eth0]", False, Refusal.BAD_DOMAIN),
    case("unclosed-literal", "user@[192.0.2.1", False, Refusal.BAD_DOMAIN),
    case("bracketed-hostname", "user@[hosted.com]", False, Refusal.BAD_DOMAIN),
    case("quoted-domain", '"user"@"hosted.com"', False, Refusal.BAD_DOMAIN),
    case("port-in-domain", "user@hosted.com:25", False, Refusal.BAD_DOMAIN),
    case("uppercase-trailing-dot", "USER@HOSTED.COM.", False, Refusal.TRAILING_DOT),
    case("space-in-local", "us er@hosted.com", False, Refusal.WHITESPACE),
    case("space-before-at", "user @hosted.com", False, Refusal.WHITESPACE),
    case("space-in-domain", "user@hosted.com ", False, Refusal.WHITESPACE),
    case("leading-space", " user@hosted.com", False, Refusal.WHITESPACE),
    case("tab", "user\t@hosted.com", False, Refusal.CONTROL_CHARACTER),
    case("cr", "user@hosted.com\r", False, Refusal.CONTROL_CHARACTER),
    case("lf", "user\n@hosted.com", False, Refusal.CONTROL_CHARACTER),
    case("nul", "us\x00er@hosted.com", False, Refusal.CONTROL_CHARACTER),
    case("del", "user\x7f@hosted.com", False, Refusal.CONTROL_CHARACTER),
    case("control-in-quotes", '"us\x01er"@hosted.com', False, Refusal.CONTROL_CHARACTER),
    case("zero-width-space", "us\u200ber@hosted.com", True, Refusal.CONTROL_CHARACTER),
    case("unicode-space", "us\u3000er@hosted.com", True, Refusal.WHITESPACE),
    case("nbsp", "user@hosted\u00a0.com", True, Refusal.WHITESPACE),
    case("leading-dot-local", ".user@hosted.com", False, Refusal.SYNTAX),
    case("trailing-dot-local", "user.@hosted.com", False, Refusal.SYNTAX),
    case("double-dot-local", "us..er@hosted.com", False, Refusal.SYNTAX),
    case("backslash-unquoted", "user\\@other.com@hosted.com", False, Refusal.SYNTAX),
    case("quote-mid-local", 'us"er"@hosted.com', False, Refusal.SYNTAX),
    case("unterminated-quote", '"user@hosted.com', False, Refusal.SYNTAX),
    case("text-after-quote", '"user"x@hosted.com', False, Refusal.SYNTAX),
    case("angle-in-local", "<user@hosted.com", False, Refusal.SYNTAX),
    case("comma-in-local", "a,b@hosted.com", False, Refusal.SYNTAX),
    case("local-65", "a" * 65 + "@hosted.com", False, Refusal.LOCAL_PART_TOO_LONG),
    case("label-64", "u@" + "d" * 64 + ".com", False, Refusal.DOMAIN_TOO_LONG),
    case("domain-256", "u@" + ".".join(["d" * 63] * 4) + ".co", False, Refusal.DOMAIN_TOO_LONG),
    case("path-over-256", "user@" + LONG_DOMAIN, False, Refusal.PATH_TOO_LONG),
    case("utf8-local-without-smtputf8", "jörg@hosted.com", False, Refusal.NON_ASCII),
    case("utf8-domain-without-smtputf8", "user@bücher.example", False, Refusal.NON_ASCII),
    case("fullwidth-dot", "user@hosted\uff0ecom", True, Refusal.BAD_DOMAIN),
    case("ideographic-dot", "user@hosted\u3002com", True, Refusal.BAD_DOMAIN),
    case("symbol-in-u-label", "user@host\u2605.com", True, Refusal.BAD_DOMAIN),
    case("kelvin-sign-not-nfc", "user@\u212aosted.com", True, Refusal.SYNTAX),
    case("decomposed-not-nfc", "user@bu\u0308cher.example", True, Refusal.SYNTAX),
]


@pytest.mark.parametrize(("path", "smtputf8", "reason"), INVALID)
def test_invalid_forward_path(path: str, smtputf8: bool, reason: Refusal) -> None:
    with pytest.raises(AddressError) as raised:
        parse_forward_path(path, smtputf8=smtputf8)
    assert raised.value.reason is reason


@pytest.mark.parametrize(
    ("path", "smtputf8", "rcpt_reply", "mail_reply"),
    [
        case("syntax", "us er@hosted.com", False, replies.BAD_RECIPIENT_SYNTAX, replies.BAD_SENDER_SYNTAX),
        case("missing-domain", "u", False, replies.BAD_RECIPIENT_SYNTAX, replies.BAD_SENDER_SYNTAX),
        case("non-ascii", "jörg@hosted.com", False, replies.NON_ASCII_RECIPIENT, replies.NON_ASCII_SENDER),
        case("source-route", "@a.com:u@b.com", False, replies.RELAY_SOURCE_ROUTE, replies.SENDER_SOURCE_ROUTE),
        case("trailing-dot", "u@b.com.", False, replies.RELAY_TRAILING_DOT, replies.BAD_SENDER_SYNTAX),
        case("second-at", "u@a.com@b.com", False, replies.RELAY_ROUTING_CHARACTERS, replies.BAD_SENDER_SYNTAX),
        case("percent-hack", "u%a.com", False, replies.RELAY_ROUTING_CHARACTERS, replies.BAD_SENDER_SYNTAX),
        case("bare-ip", "u@192.0.2.1", False, replies.RELAY_ADDRESS_LITERAL, replies.BAD_SENDER_SYNTAX),
    ],
)
def test_refusal_reply_depends_on_role(
    path: str, smtputf8: bool, rcpt_reply: replies.Reply, mail_reply: replies.Reply
) -> None:
    for parse, reply in ((parse_forward_path, rcpt_reply), (parse_reverse_path, mail_reply)):
        with pytest.raises(AddressError) as raised:
            parse(path, smtputf8=smtputf8)
        assert raised.value.reply is reply


@pytest.mark.parametrize("path", ["", "<>"], ids=["empty", "brackets"])
def test_null_reverse_path(path: str) -> None:
    assert parse_reverse_path(path) is None


# (address, smtputf8, expected "local"/"remote" or the Refusal raised)
CLASSIFY = [
    case("hosted", "user@hosted.com", False, "local"),
    case("hosted-uppercase", "USER@HOSTED.COM", False, "local"),
    case("quoted-plain-local", '"user"@hosted.com', False, "local"),
    case("remote", "user@other.com", False, "remote"),
    case("subdomain-of-hosted", "user@sub.hosted.com", False, "remote"),
    case("hosted-as-subdomain", "user@hosted.com.evil.com", False, "remote"),
    case("suffix-lookalike", "user@evilhosted.com", False, "remote"),
    case("prefix-lookalike", "user@hosted.co", False, "remote"),
    case("localhost", "user@localhost", False, "remote"),
    case("idn-u-label", "user@bücher.example", True, "local"),
    case("idn-a-label", "user@xn--bcher-kva.example", False, "local"),
    case("idn-a-label-uppercase", "user@XN--BCHER-KVA.example", False, "local"),
    case("fullwidth-lookalike", "user@\uff48\uff4f\uff53\uff54\uff45\uff44.com", True, "remote"),
    case("cyrillic-o-lookalike", "user@h\u043ested.com", True, "remote"),
    case("percent-hack", "user%other.com@hosted.com", False, Refusal.ROUTING_CHARACTER),
    case("percent-hack-remote", "user%hosted.com@other.com", False, Refusal.ROUTING_CHARACTER),
    case("bang-path", "other.com!user@hosted.com", False, Refusal.ROUTING_CHARACTER),
    case("quoted-at", '"user@other.com"@hosted.com', False, Refusal.ROUTING_CHARACTER),
    case("quoted-percent", '"user%other.com"@hosted.com', False, Refusal.ROUTING_CHARACTER),
    case("quoted-bang", '"other.com!user"@hosted.com', False, Refusal.ROUTING_CHARACTER),
    case("quoted-escaped-at", '"user\\@other.com"@hosted.com', False, Refusal.ROUTING_CHARACTER),
    case("quoted-source-route", '"@other.com:user"@hosted.com', False, Refusal.ROUTING_CHARACTER),
    case("ipv4-literal", "user@[192.0.2.1]", False, Refusal.ADDRESS_LITERAL),
    case("loopback-literal", "user@[127.0.0.1]", False, Refusal.ADDRESS_LITERAL),
    case("ipv6-literal", "user@[IPv6:::1]", False, Refusal.ADDRESS_LITERAL),
    case("general-literal", "user@[x400:hosted.com]", False, Refusal.ADDRESS_LITERAL),
]


@pytest.mark.parametrize(("address", "smtputf8", "expected"), CLASSIFY)
def test_classify_recipient(address: str, smtputf8: bool, expected: str | Refusal) -> None:
    mailbox = parse_forward_path(address, smtputf8=smtputf8)
    if isinstance(expected, Refusal):
        with pytest.raises(AddressError) as raised:
            classify_recipient(mailbox, HOSTED)
        assert raised.value.reason is expected
        assert (raised.value.reply.code, raised.value.reply.enhanced) == (554, "5.7.1")
    else:
        assert classify_recipient(mailbox, HOSTED) == expected


def test_classify_with_a_label_hosted() -> None:
    mailbox = parse_forward_path("user@bücher.example", smtputf8=True)
    assert classify_recipient(mailbox, {"xn--bcher-kva.example"}) == "local"


@pytest.mark.parametrize(
    ("address", "smtputf8", "expected"),
    [
        case("lowercased", "User.Name@Hosted.COM", False, "user.name@hosted.com"),
        case("same-key-any-case", "USER@HOSTED.COM", False, "user@hosted.com"),
        case("quoted-dot-string-unquoted", '"User"@hosted.com', False, "user@hosted.com"),
        case("quoted-space-stays-quoted", '"John Smith"@hosted.com', False, '"john smith"@hosted.com'),
        case("quote-escaped", '"a\\"b"@hosted.com', False, '"a\\"b"@hosted.com'),
        case("utf8", "JÖRG@BÜCHER.example", True, "jörg@bücher.example"),
        case("a-label-to-u-label", "jorg@xn--bcher-kva.example", False, "jorg@bücher.example"),
        case("bogus-a-label-kept", "u@xn--zz.example", False, "u@xn--zz.example"),
        case("symbol-a-label-kept", "u@xn--ls8h.example", False, "u@xn--ls8h.example"),
        case("sharp-s-not-folded", "straße@hosted.com", True, "straße@hosted.com"),
    ],
)
def test_normalise(address: str, smtputf8: bool, expected: str) -> None:
    assert normalise(parse_forward_path(address, smtputf8=smtputf8)) == expected


@pytest.mark.parametrize(
    ("address", "smtputf8", "text", "ascii_domain"),
    [
        case("plain", "User@Hosted.com", False, "User@hosted.com", "hosted.com"),
        case("quoted-needed", '"a b"@x.com', False, '"a b"@x.com', "x.com"),
        case("quoted-not-needed", '"a.b"@x.com', False, "a.b@x.com", "x.com"),
        case("idn", "u@bücher.example", True, "u@bücher.example", "xn--bcher-kva.example"),
        case("literal", "u@[192.0.2.1]", False, "u@[192.0.2.1]", "[192.0.2.1]"),
    ],
)
def test_mailbox_text(address: str, smtputf8: bool, text: str, ascii_domain: str) -> None:
    mailbox = parse_forward_path(address, smtputf8=smtputf8)
    assert str(mailbox) == text
    assert mailbox.ascii_domain == ascii_domain
    assert parse_forward_path(text, smtputf8=smtputf8) == mailbox


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        case("ipv4", "[192.0.2.1]", True),
        case("ipv6", "[IPv6:2001:db8::1]", True),
        case("ipv6-lowercase-tag", "[ipv6:::1]", True),
        case("general", "[x400:c=us]", True),
        case("no-brackets", "192.0.2.1", False),
        case("empty", "[]", False),
        case("ipv4-out-of-range", "[1.2.3.256]", False),
        case("ipv6-without-tag", "[::1]", False),
        case("ipv6-zone", "[IPv6:fe80::1%25eth0]", False),
        case("general-empty", "[x400:]", False),
        case("general-bad-tag", "[-x:a]", False),
    ],
)
def test_is_address_literal(text: str, expected: bool) -> None:
    assert is_address_literal(text) is expected
