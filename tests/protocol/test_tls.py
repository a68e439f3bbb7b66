"""Server TLS contexts: PEM, PKCS#12, the self-signed fallback, and clear configuration errors."""

from __future__ import annotations

import os
import ssl
import stat
from pathlib import Path

import gevent
import gevent.socket
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import BestAvailableEncryption, NoEncryption, pkcs12

from relate.config import ConfigError
from relate.protocol import tls
from tests.protocol.conftest import CertPair, make_cert, make_settings


def served_certificate(ctx: ssl.SSLContext, server_hostname: str = "mail.example.test") -> x509.Certificate:
    """Handshake against `ctx` over loopback and return the certificate the server presented."""
    listener = gevent.socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def serve() -> None:
        sock, _ = listener.accept()
        with ctx.wrap_socket(sock, server_side=True) as server:
            server.recv(1)

    server = gevent.spawn(serve)
    client = gevent.socket.create_connection(listener.getsockname(), timeout=3)
    with tls.client_context_insecure().wrap_socket(client, server_hostname=server_hostname) as secure:
        der = secure.getpeercert(binary_form=True)
        assert der is not None
        version = secure.version()
        secure.sendall(b"x")
    server.get(timeout=3)
    listener.close()
    assert version in ("TLSv1.2", "TLSv1.3")
    return x509.load_der_x509_certificate(der)


def write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def assert_clean(error: pytest.ExceptionInfo[ConfigError]) -> None:
    """An operator-facing message: one line, no chained traceback."""
    assert "\n" not in str(error.value)
    assert error.value.__cause__ is None
    assert error.value.__context__ is None or error.value.__suppress_context__


# -- PEM -------------------------------------------------------------------------------------


def test_pem_chain_and_separate_key(tmp_path: Path, test_cert: CertPair) -> None:
    settings = make_settings(
        tmp_path,
        Tls__CertificatePath=write(tmp_path / "chain.pem", test_cert.cert_pem),
        Tls__KeyPath=write(tmp_path / "key.pem", test_cert.key_pem()),
    )
    ctx = tls.server_context(settings, "imap")
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert served_certificate(ctx) == test_cert.cert
    assert not (tmp_path / "data" / "tls").exists()  # no self-signed when configured


def test_key_inside_the_chain_file(tmp_path: Path, test_cert: CertPair) -> None:
    intermediate = make_cert("intermediate.example.test")
    chain = test_cert.cert_pem + intermediate.cert_pem + test_cert.key_pem()
    settings = make_settings(tmp_path, Tls__CertificatePath=write(tmp_path / "all.pem", chain))
    assert served_certificate(tls.server_context(settings, "smtp")) == test_cert.cert


def test_encrypted_pem_key_with_password(tmp_path: Path, test_cert: CertPair) -> None:
    settings = make_settings(
        tmp_path,
        Tls__CertificatePath=write(tmp_path / "c.pem", test_cert.cert_pem),
        Tls__KeyPath=write(tmp_path / "k.pem", test_cert.key_pem(b"s3cret")),
        Tls__CertificatePassword="s3cret",
    )
    assert served_certificate(tls.server_context(settings, "pop3")) == test_cert.cert


@pytest.mark.parametrize(
    ("password", "message"),
    [
        pytest.param("wrong", "Tls__CertificatePassword: wrong password for Tls__KeyPath=", id="wrong"),
        pytest.param("", "Tls__KeyPath=.*encrypted; set Tls__CertificatePassword", id="missing"),
    ],
)
def test_encrypted_pem_key_bad_password(
    tmp_path: Path, test_cert: CertPair, password: str, message: str
) -> None:
    settings = make_settings(
        tmp_path,
        Tls__CertificatePath=write(tmp_path / "c.pem", test_cert.cert_pem),
        Tls__KeyPath=write(tmp_path / "k.pem", test_cert.key_pem(b"s3cret")),
        Tls__CertificatePassword=password,
    )
    with pytest.raises(ConfigError, match=message) as error:
        tls.server_context(settings, "smtp")
    assert_clean(error)


# -- PKCS#12 -----------------------------------------------------------------------------------


def p12(cert: CertPair, password: bytes | None) -> bytes:
    encryption = BestAvailableEncryption(password) if password else NoEncryption()
    return pkcs12.serialize_key_and_certificates(b"relate", cert.key, cert.cert, None, encryption)


@pytest.mark.parametrize(
    "filename", ["bundle.p12", "bundle.pfx", "bundle.bin"], ids=["p12", "pfx", "by-content"]
)
def test_pkcs12_with_password(tmp_path: Path, test_cert: CertPair, filename: str) -> None:
    settings = make_settings(
        tmp_path,
        Tls__CertificatePath=write(tmp_path / filename, p12(test_cert, b"p12-pass")),
        Tls__CertificatePassword="p12-pass",
    )
    assert served_certificate(tls.server_context(settings, "smtp")) == test_cert.cert


def test_pkcs12_without_password(tmp_path: Path, test_cert: CertPair) -> None:
    settings = make_settings(
        tmp_path, Tls__CertificatePath=write(tmp_path / "open.p12", p12(test_cert, None))
    )
    assert served_certificate(tls.server_context(settings, "smtp")) == test_cert.cert


def test_pkcs12_wrong_password(tmp_path: Path, test_cert: CertPair) -> None:
    settings = make_settings(
        tmp_path,
        Tls__CertificatePath=write(tmp_path / "b.pfx", p12(test_cert, b"right")),
        Tls__CertificatePassword="Xyzzy-42",
    )
    with pytest.raises(
        ConfigError, match=r"^Tls__CertificatePassword: wrong password for Tls__CertificatePath="
    ) as e:
        tls.server_context(settings, "imap")
    assert_clean(e)
    assert "Xyzzy-42" not in str(e.value)  # the password is not echoed


def test_pkcs12_needs_a_password(tmp_path: Path, test_cert: CertPair) -> None:
    settings = make_settings(
        tmp_path, Tls__CertificatePath=write(tmp_path / "b.p12", p12(test_cert, b"right"))
    )
    with pytest.raises(ConfigError, match="set Tls__CertificatePassword"):
        tls.server_context(settings, "imap")


# -- errors name the variable ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("files", "message"),
    [
        pytest.param(
            {"cert": b"garbage, not a certificate"}, "Tls__CertificatePath=.*no PEM certificate", id="garbage"
        ),
        pytest.param(
            {"cert": b"\x30\x82\x01\x00junk"}, "Tls__CertificatePassword|Tls__CertificatePath", id="bad-der"
        ),
        pytest.param(
            {"cert": b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"},
            "Tls__CertificatePath=.*malformed",
            id="malformed-pem",
        ),
        pytest.param({"cert": "CERT"}, "no PEM private key found; set Tls__KeyPath", id="no-key"),
        pytest.param(
            {"cert": "CERT", "key": b"not a key"}, "Tls__KeyPath=.*no PEM private key", id="bad-key"
        ),
        pytest.param(
            {"cert": "CERT", "key": "OTHER"}, "does not belong to the first certificate", id="mismatch"
        ),
        pytest.param({"cert": b"   \n"}, "Tls__CertificatePath=.*empty", id="empty"),
    ],
)
def test_bad_files(tmp_path: Path, test_cert: CertPair, files: dict[str, object], message: str) -> None:
    def content(value: object) -> bytes:
        if value == "CERT":
            return test_cert.cert_pem
        if value == "OTHER":
            return make_cert("other.example.test").key_pem()
        assert isinstance(value, bytes)
        return value

    env = {"Tls__CertificatePath": write(tmp_path / "cert.pem", content(files["cert"]))}
    if "key" in files:
        env["Tls__KeyPath"] = write(tmp_path / "key.pem", content(files["key"]))
    with pytest.raises(ConfigError, match=message) as error:
        tls.server_context(make_settings(tmp_path, **env), "smtp")
    assert_clean(error)


def test_per_protocol_variable_is_named(tmp_path: Path, test_cert: CertPair) -> None:
    settings = make_settings(
        tmp_path,
        Tls__CertificatePath=write(tmp_path / "good.pem", test_cert.cert_pem + test_cert.key_pem()),
        Smtp__CertificatePath=write(tmp_path / "bad.pem", b"nonsense"),
    )
    with pytest.raises(ConfigError, match=r"^Smtp__CertificatePath="):
        tls.server_context(settings, "smtp")
    assert served_certificate(tls.server_context(settings, "imap")) == test_cert.cert  # falls back to Tls__


def test_file_gone_after_start(tmp_path: Path, test_cert: CertPair) -> None:
    path = write(tmp_path / "chain.pem", test_cert.cert_pem + test_cert.key_pem())
    settings = make_settings(tmp_path, Tls__CertificatePath=path)
    os.unlink(path)
    with pytest.raises(ConfigError, match=r"Tls__CertificatePath=.*cannot read") as error:
        tls.server_context(settings, "smtp")
    assert_clean(error)


# -- self-signed fallback ----------------------------------------------------------------------


def test_self_signed_generated_then_reused(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path, Smtp__ServerName="mx.example.test", Imap__ServerName="imap.example.test"
    )
    ctx = tls.server_context(settings, "smtp")
    crt = tmp_path / "data" / "tls" / "selfsigned.crt"
    key = tmp_path / "data" / "tls" / "selfsigned.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    cert = x509.load_pem_x509_certificate(crt.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"mx.example.test", "imap.example.test", "localhost"} <= set(san.get_values_for_type(x509.DNSName))
    assert "127.0.0.1" in {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).days >= 3649
    assert served_certificate(ctx, "mx.example.test") == cert

    before = (crt.read_bytes(), key.read_bytes())
    tls.server_context(settings, "imap")  # another protocol, same process or a later start
    assert (crt.read_bytes(), key.read_bytes()) == before


def test_self_signed_replaced_when_a_name_is_added_or_files_are_broken(tmp_path: Path) -> None:
    tls.server_context(make_settings(tmp_path, Smtp__ServerName="a.example.test"), "smtp")
    crt = tmp_path / "data" / "tls" / "selfsigned.crt"
    first = crt.read_bytes()
    tls.server_context(make_settings(tmp_path, Smtp__ServerName="b.example.test"), "smtp")
    second = crt.read_bytes()
    assert second != first
    crt.write_bytes(b"broken")
    tls.server_context(make_settings(tmp_path, Smtp__ServerName="b.example.test"), "smtp")
    assert crt.read_bytes() not in (b"broken", second)


def test_self_signed_unwritable_data_dir(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    settings = make_settings(tmp_path, Data__Directory=str(blocker))
    with pytest.raises(ConfigError, match=r"^Data__Directory=") as error:
        tls.server_context(settings, "smtp")
    assert_clean(error)


def test_unknown_protocol(settings: object) -> None:
    with pytest.raises(ValueError):
        tls.server_context(settings, "ftp")  # type: ignore[arg-type]


def test_names_a_certificate_cannot_hold_are_left_out(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path,
        Smtp__ServerName="Mail.Example.TEST.",
        Pop3__ServerName="pop",
        Imap__ServerName="bücher example",
    )
    assert tls.server_names(settings) == ["mail.example.test", "pop", "localhost", "127.0.0.1", "::1"]
    tls.server_context(settings, "smtp")
