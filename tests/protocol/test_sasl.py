"""SASL PLAIN and LOGIN decoding (RFC 4616, RFC 4954 §4): pure tables."""

from __future__ import annotations

import base64

import pytest

from relate.protocol import sasl
from relate.protocol.sasl import Credentials, SaslCancelled, SaslError


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        pytest.param(
            b64(b"\0alice@example.com\0secret"), ("", "alice@example.com", "secret"), id="no-authzid"
        ),
        pytest.param(b64(b"admin\0alice\0pw"), ("admin", "alice", "pw"), id="with-authzid"),
        pytest.param(b64(b"\0alice\0pw").encode() + b"\r\n", ("", "alice", "pw"), id="bytes-with-crlf"),
        pytest.param("  " + b64(b"\0alice\0pw") + " ", ("", "alice", "pw"), id="surrounding-blanks"),
        pytest.param(b64(b"\0al\0pw").rstrip("="), ("", "al", "pw"), id="missing-padding-tolerated"),
        pytest.param(
            b64("\0jörg@example.com\0pässwörd".encode()), ("", "jörg@example.com", "pässwörd"), id="utf8"
        ),
        pytest.param(
            b64(b"\0alice\0pass word with spaces"), ("", "alice", "pass word with spaces"), id="spaces"
        ),
    ],
)
def test_decode_plain_accepts(response: str | bytes, expected: tuple[str, str, str]) -> None:
    assert sasl.decode_plain(response) == expected


@pytest.mark.parametrize(
    ("response", "message"),
    [
        pytest.param("", "empty PLAIN response", id="empty"),
        pytest.param("=", "empty PLAIN response", id="explicit-empty"),
        pytest.param("not base64!", "not base64", id="bad-alphabet"),
        pytest.param("YWJj*GVm", "not base64", id="star-inside"),
        pytest.param("A", "not base64", id="impossible-length"),
        pytest.param("AGFsaWNl\u00e9", "not base64", id="non-ascii-str"),
        pytest.param(b"AGFsaWNl\xff", "not base64", id="non-ascii-bytes"),
        pytest.param(b64(b"alice\0pw"), "separated by NUL", id="two-fields"),
        pytest.param(b64(b"alicepw"), "separated by NUL", id="one-field"),
        pytest.param(b64(b"\0alice\0pw\0extra"), "separated by NUL", id="four-fields"),
        pytest.param(b64(b"\0\0pw"), "empty username", id="empty-username"),
        pytest.param(b64(b"\0alice\0"), "empty password", id="empty-password"),
        pytest.param(b64(b"\0al\xffice\0pw"), "username is not valid UTF-8", id="bad-utf8-username"),
        pytest.param(b64(b"\0alice\0\xc3\x28"), "password is not valid UTF-8", id="bad-utf8-password"),
        pytest.param(b64(b"\xed\xa0\x80\0alice\0pw"), "authzid is not valid UTF-8", id="surrogate-authzid"),
        pytest.param("A" * (sasl.MAX_RESPONSE_LENGTH + 4), "too long", id="too-long"),
    ],
)
def test_decode_plain_rejects(response: str | bytes, message: str) -> None:
    with pytest.raises(SaslError, match=message):
        sasl.decode_plain(response)


def test_errors_never_quote_the_input() -> None:
    secret = "hunter2-very-secret"
    for response in (b64(f"\0{secret}".encode()), secret, b64(f"\0a\0{secret}\0".encode())):
        with pytest.raises(SaslError) as info:
            sasl.decode_plain(response)
        assert secret not in str(info.value)
        assert b64(secret.encode()) not in str(info.value)


@pytest.mark.parametrize(
    ("prompt", "text"),
    [
        pytest.param(sasl.LOGIN_USERNAME_PROMPT, b"Username:", id="username"),
        pytest.param(sasl.LOGIN_PASSWORD_PROMPT, b"Password:", id="password"),
    ],
)
def test_login_prompts(prompt: str, text: bytes) -> None:
    assert base64.b64decode(prompt) == text


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        pytest.param(b64(b"alice@example.com"), "alice@example.com", id="ascii"),
        pytest.param(b64("zoë".encode()).encode() + b"\r\n", "zoë", id="utf8-bytes"),
    ],
)
def test_decode_login_response_accepts(response: str | bytes, expected: str) -> None:
    assert sasl.decode_login_response(response) == expected


@pytest.mark.parametrize(
    ("response", "message"),
    [
        pytest.param("", "empty username", id="empty"),
        pytest.param("%%%", "not base64", id="garbage"),
        pytest.param(b64(b"ali\0ce"), "contains NUL", id="nul"),
        pytest.param(b64(b"\xff\xfe"), "not valid UTF-8", id="bad-utf8"),
    ],
)
def test_decode_login_response_rejects(response: str, message: str) -> None:
    with pytest.raises(SaslError, match=message):
        sasl.decode_login_response(response)


@pytest.mark.parametrize(
    ("line", "cancel"),
    [
        pytest.param("*", True, id="star"),
        pytest.param(b"*\r\n", True, id="star-crlf"),
        pytest.param(" * ", True, id="star-blanks"),
        pytest.param("**", False, id="two-stars"),
        pytest.param("", False, id="empty"),
        pytest.param(b64(b"*"), False, id="base64-of-star"),
    ],
)
def test_is_cancel(line: str | bytes, cancel: bool) -> None:
    assert sasl.is_cancel(line) is cancel


class Script:
    """Plays the client side: answers challenges in order, records what was asked."""

    def __init__(self, *answers: str):
        self.answers = list(answers)
        self.challenges: list[str] = []

    def __call__(self, challenge: str) -> str:
        self.challenges.append(challenge)
        return self.answers.pop(0)


@pytest.mark.parametrize(
    ("mechanism", "initial", "answers", "challenges", "expected"),
    [
        pytest.param(
            "PLAIN", b64(b"\0alice\0pw"), [], [], Credentials("alice", "pw"), id="plain-initial-response"
        ),
        pytest.param(
            "plain",
            None,
            [b64(b"\0alice\0pw")],
            [""],
            Credentials("alice", "pw"),
            id="plain-challenge-lowercase",
        ),
        pytest.param(
            "PLAIN",
            "",
            [b64(b"x\0alice\0pw")],
            [""],
            Credentials("alice", "pw", "x"),
            id="plain-blank-initial",
        ),
        pytest.param(
            "LOGIN",
            None,
            [b64(b"alice"), b64(b"pw")],
            [sasl.LOGIN_USERNAME_PROMPT, sasl.LOGIN_PASSWORD_PROMPT],
            Credentials("alice", "pw"),
            id="login-two-steps",
        ),
        pytest.param(
            "LOGIN",
            b64(b"alice"),
            [b64(b"pw")],
            [sasl.LOGIN_PASSWORD_PROMPT],
            Credentials("alice", "pw"),
            id="login-initial-username",
        ),
    ],
)
def test_authenticate(
    mechanism: str, initial: str | None, answers: list[str], challenges: list[str], expected: Credentials
) -> None:
    script = Script(*answers)
    assert sasl.authenticate(mechanism, initial, script) == expected
    assert script.challenges == challenges


@pytest.mark.parametrize(
    ("mechanism", "initial", "answers", "error"),
    [
        pytest.param("PLAIN", None, ["*"], SaslCancelled, id="plain-cancel"),
        pytest.param("LOGIN", None, ["*"], SaslCancelled, id="login-cancel-username"),
        pytest.param("LOGIN", None, [b64(b"alice"), "*"], SaslCancelled, id="login-cancel-password"),
        pytest.param("PLAIN", "=", [], SaslError, id="plain-explicit-empty-initial"),
        pytest.param("PLAIN", "*", [], SaslError, id="star-as-initial-is-not-cancel"),
        pytest.param("LOGIN", None, [b64(b"alice"), ""], SaslError, id="login-empty-password"),
        pytest.param("CRAM-MD5", None, [], SaslError, id="unsupported"),
    ],
)
def test_authenticate_fails(
    mechanism: str, initial: str | None, answers: list[str], error: type[Exception]
) -> None:
    with pytest.raises(error):
        sasl.authenticate(mechanism, initial, Script(*answers))


def test_credentials_repr_hides_password() -> None:
    assert "s3cret" not in repr(Credentials("alice", "s3cret"))
