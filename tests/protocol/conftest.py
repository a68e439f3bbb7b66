"""Fixtures for the protocol plumbing: settings, test certificates, loopback socket helpers.

Everything runs in the test's own greenlet: the clients here are gevent sockets, so blocking
on them lets the server greenlets run.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import gevent
import gevent.socket
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from relate.config import Settings, load_settings
from relate.protocol.connection import Connection


def make_settings(tmp_path: Path, **env: str) -> Settings:
    """Settings for a test: loopback bind, data under tmp_path, `env` as variables."""
    base = {"Data__Directory": str(tmp_path / "data"), "Network__BindAddress": "127.0.0.1"}
    return load_settings({**base, **env})


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@dataclass(frozen=True)
class CertPair:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def key_pem(self, password: bytes | None = None) -> bytes:
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
        )
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )


def make_cert(name: str = "mail.example.test") -> CertPair:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(name), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return CertPair(key, cert)


@pytest.fixture(scope="session")
def test_cert() -> CertPair:
    return make_cert()


@pytest.fixture(scope="session")
def server_ctx(test_cert: CertPair, tmp_path_factory: pytest.TempPathFactory):
    from relate.protocol import tls

    directory = tmp_path_factory.mktemp("ctx")
    (directory / "chain.pem").write_bytes(test_cert.key_pem() + test_cert.cert_pem)
    return tls.server_context(
        load_settings(
            {"Data__Directory": str(directory), "Tls__CertificatePath": str(directory / "chain.pem")}
        ),
        "smtp",
    )


def insecure_context() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def wait_until(predicate: Callable[[], bool], timeout: float = 3.0) -> None:
    """Let other greenlets run until `predicate()` holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        gevent.sleep(0.001)


class Client:
    """A tiny line client over a gevent socket (optionally TLS)."""

    def __init__(self, sock: gevent.socket.socket):
        self.sock = sock
        self.buffer = b""

    @classmethod
    def connect(cls, port: int, source: str = "127.0.0.1", timeout: float = 5.0) -> Client:
        sock = gevent.socket.create_connection(
            ("127.0.0.1", port), timeout=timeout, source_address=(source, 0)
        )
        return cls(sock)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def line(self) -> bytes:
        while b"\n" not in self.buffer:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise EOFError(f"EOF after {self.buffer!r}")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line + b"\n"

    def at_eof(self) -> bool:
        """Drain until EOF; True if the server closed without sending more."""
        rest = self.buffer
        while True:
            try:
                chunk = self.sock.recv(4096)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                return rest == b""
            rest += chunk

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def tcp_pair() -> Iterator[Callable[..., tuple[Connection, gevent.socket.socket]]]:
    """Factory: (server-side Connection, client socket) over real loopback TCP."""
    made: list[tuple[Connection, gevent.socket.socket]] = []
    listener = gevent.socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)

    def make(**kwargs: object) -> tuple[Connection, gevent.socket.socket]:
        client = gevent.socket.create_connection(listener.getsockname(), timeout=5)
        accepted, address = listener.accept()
        conn = Connection(accepted, address, **kwargs)  # type: ignore[arg-type]
        made.append((conn, client))
        return conn, client

    yield make
    for conn, client in made:
        conn.close()
        client.close()
    listener.close()
