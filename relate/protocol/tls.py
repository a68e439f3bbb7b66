"""TLS contexts for the daemons' listeners.

Invariants:
- Every context is a gevent `SSLContext`, so sockets it wraps cooperate with the hub.
- TLS 1.2 is the floor; TLS 1.2 suites are ECDHE/DHE with AEAD ciphers only (RFC 8314 §4.1
  defers to BCP 195, RFC 9325).
- Certificates and keys are parsed with `cryptography` first, so a bad file is a ConfigError
  naming the variable, never an OpenSSL traceback. What reaches OpenSSL is always an
  unencrypted PEM key + chain, handed over in an anonymous in-memory file (memfd) where the
  platform has one, otherwise in a 0600 file inside a 0700 temporary directory removed at once.
- With no certificate configured, one self-signed certificate is generated under
  `{data_dir}/tls/` and reused on later starts, so every TLS port works out of the box.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import logging
import os
import re
import shutil
import ssl
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import gevent.ssl
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from relate.config import ConfigError, Settings, TlsFiles

fcntl: ModuleType | None
try:
    import fcntl
except ImportError:  # not POSIX: generation is not serialised between processes
    fcntl = None

log = logging.getLogger("relate.protocol.tls")

PROTOCOLS = ("smtp", "pop3", "imap")
# Mozilla "intermediate" TLS 1.2 suites (BCP 195); TLS 1.3 suites are OpenSSL's defaults.
TLS12_CIPHERS = ":".join(
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
        "DHE-RSA-AES128-GCM-SHA256",
        "DHE-RSA-AES256-GCM-SHA384",
        "DHE-RSA-CHACHA20-POLY1305",
    )
)
SELF_SIGNED_DIR = "tls"
SELF_SIGNED_CERT = "selfsigned.crt"
SELF_SIGNED_KEY = "selfsigned.key"
SELF_SIGNED_VALIDITY = datetime.timedelta(days=3650)
SELF_SIGNED_RENEW_BEFORE = datetime.timedelta(days=30)
EXPIRY_WARNING = datetime.timedelta(days=14)
MAX_FILE_SIZE = 1 << 20  # a certificate chain or PKCS#12 bundle is a few KiB

_HOST_NAME = re.compile(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*")  # what a certificate's DNS name may hold
_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n.*?-----END \1-----", re.DOTALL)
_PEM_KEY_LABELS = (b"PRIVATE KEY", b"RSA PRIVATE KEY", b"EC PRIVATE KEY", b"ENCRYPTED PRIVATE KEY")
# The key types OpenSSL can serve a certificate with (DSA is left out on purpose).
_PrivateKey = (
    rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey
)
_KEY_TYPES = (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)


def server_context(settings: Settings, protocol: str) -> ssl.SSLContext:
    """The server-side context for one protocol ("smtp", "pop3" or "imap").

    Uses `{Protocol}__CertificatePath` etc. when set, else `Tls__*`, else the self-signed
    certificate under `{data_dir}/tls/`. Raises ConfigError naming the variable at fault.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}")
    files = settings.tls_for(protocol)
    if files.configured:
        prefix = protocol.capitalize() if getattr(settings, protocol).tls.configured else "Tls"
        key, chain = load_certificate_files(files, prefix)
    else:
        key, chain = ensure_self_signed(settings.data_dir, server_names(settings))
    ctx = _new_server_context()
    _load_into(ctx, key, chain)
    return ctx


def client_context_insecure() -> ssl.SSLContext:
    """A client context that verifies nothing: for tests against self-signed servers only."""
    ctx = gevent.ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def server_names(settings: Settings) -> list[str]:
    """The names a self-signed certificate must cover: every ServerName plus loopback."""
    names = [settings.smtp.server_name, settings.pop3.server_name, settings.imap.server_name]
    names += ["localhost", "127.0.0.1", "::1"]
    seen: list[str] = []
    for name in names:
        name = name.strip().rstrip(".").lower()
        if name and name not in seen and (_is_ip(name) or _HOST_NAME.fullmatch(name)):
            seen.append(name)
    return seen


def _new_server_context() -> ssl.SSLContext:
    ctx = gevent.ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(TLS12_CIPHERS)
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION | ssl.OP_SINGLE_ECDH_USE
    ctx.verify_mode = ssl.CERT_NONE  # no client certificates
    return ctx


# -- configured certificates -------------------------------------------------------------


def load_certificate_files(
    files: TlsFiles, prefix: str = "Tls"
) -> tuple[_PrivateKey, list[x509.Certificate]]:
    """Parse and check the configured files: (private key, chain with the leaf first).

    `prefix` is the variable section ("Tls", "Smtp", ...) used in error messages.
    """
    cert_var = f"{prefix}__CertificatePath={files.certificate_path}"
    password = files.certificate_password.encode("utf-8") if files.certificate_password else None
    data = _read(files.certificate_path, cert_var)
    if _looks_like_pkcs12(files.certificate_path, data):
        key, chain = _load_pkcs12(data, password, cert_var, prefix)
    else:
        chain = _load_pem_chain(data, cert_var)
        if files.key_path:
            key_var = f"{prefix}__KeyPath={files.key_path}"
            key = _load_pem_key(_read(files.key_path, key_var), password, key_var, prefix)
        else:
            key = _load_pem_key(data, password, cert_var, prefix, hint=f"; set {prefix}__KeyPath")
    _check_pair(key, chain, cert_var)
    return key, chain


def _read(path: str, variable: str) -> bytes:
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE_SIZE + 1)
    except OSError as exc:
        raise ConfigError(f"{variable}: cannot read ({exc.strerror or exc})") from None
    if len(data) > MAX_FILE_SIZE:
        raise ConfigError(f"{variable}: file too large for a certificate or key")
    if not data.strip():
        raise ConfigError(f"{variable}: file is empty")
    return data


def _looks_like_pkcs12(path: str, data: bytes) -> bool:
    if path.lower().endswith((".p12", ".pfx")):
        return True
    # DER PKCS#12 is an ASN.1 SEQUENCE; PEM text never starts with 0x30 and has BEGIN lines.
    return data[:1] == b"\x30" and b"-----BEGIN" not in data


def _load_pkcs12(
    data: bytes, password: bytes | None, cert_var: str, prefix: str
) -> tuple[_PrivateKey, list[x509.Certificate]]:
    # A bundle exported "without a password" may be protected by the empty one instead.
    attempts = [password] if password is not None else [None, b""]
    bundle = None
    for attempt in attempts:
        try:
            bundle = pkcs12.load_pkcs12(data, attempt)
            break
        except (ValueError, TypeError):
            continue
    if bundle is None:
        if password is None:
            raise ConfigError(
                f"{cert_var}: not a readable PKCS#12 file (password protected? set "
                f"{prefix}__CertificatePassword; PEM and PKCS#12 are supported)"
            )
        raise ConfigError(
            f"{prefix}__CertificatePassword: wrong password for {cert_var} (or not a PKCS#12 file)"
        )
    if bundle.key is None or bundle.cert is None:
        raise ConfigError(f"{cert_var}: the PKCS#12 file must hold a private key and its certificate")
    if not isinstance(bundle.key, _KEY_TYPES):
        raise ConfigError(f"{cert_var}: unsupported private key type (use RSA or ECDSA)")
    chain = [bundle.cert.certificate] + [extra.certificate for extra in bundle.additional_certs]
    return bundle.key, chain


def _load_pem_chain(data: bytes, cert_var: str) -> list[x509.Certificate]:
    blocks = [m.group(0) for m in _PEM_BLOCK.finditer(data) if m.group(1) == b"CERTIFICATE"]
    if not blocks:
        raise ConfigError(
            f"{cert_var}: no PEM certificate found (expected a PEM chain or a PKCS#12 .p12/.pfx file)"
        )
    chain = []
    for block in blocks:
        try:
            chain.append(x509.load_pem_x509_certificate(block))
        except ValueError:
            raise ConfigError(f"{cert_var}: a certificate in the file is malformed") from None
    return chain


def _load_pem_key(
    data: bytes, password: bytes | None, variable: str, prefix: str, hint: str = ""
) -> _PrivateKey:
    blocks = [m for m in _PEM_BLOCK.finditer(data) if m.group(1) in _PEM_KEY_LABELS]
    if not blocks:
        raise ConfigError(f"{variable}: no PEM private key found{hint}")
    block = blocks[0].group(0)
    encrypted = blocks[0].group(1) == b"ENCRYPTED PRIVATE KEY" or b"Proc-Type: 4,ENCRYPTED" in block
    try:
        key = serialization.load_pem_private_key(block, password if encrypted else None)
    except TypeError:
        raise ConfigError(
            f"{variable}: the private key is encrypted; set {prefix}__CertificatePassword"
        ) from None
    except ValueError:
        if encrypted:
            raise ConfigError(f"{prefix}__CertificatePassword: wrong password for {variable}") from None
        raise ConfigError(f"{variable}: the private key is malformed") from None
    except Exception as exc:  # an unsupported key type
        raise ConfigError(f"{variable}: unusable private key ({exc})") from None
    if not isinstance(key, _KEY_TYPES):
        raise ConfigError(f"{variable}: unsupported private key type (use RSA or ECDSA)")
    return key


def _check_pair(key: _PrivateKey, chain: list[x509.Certificate], cert_var: str) -> None:
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    if key.public_key().public_bytes(der, spki) != chain[0].public_key().public_bytes(der, spki):
        raise ConfigError(f"{cert_var}: the private key does not belong to the first certificate in the file")
    now = datetime.datetime.now(datetime.UTC)
    not_after = chain[0].not_valid_after_utc
    if not_after < now:
        log.warning("%s: the certificate expired on %s", cert_var, not_after.date())
    elif not_after - now < EXPIRY_WARNING:
        log.warning("%s: the certificate expires on %s", cert_var, not_after.date())


# -- handing PEM to OpenSSL ----------------------------------------------------------------


def _load_into(ctx: ssl.SSLContext, key: _PrivateKey, chain: list[x509.Certificate]) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    pem += b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in chain)
    with _private_file(pem) as path:
        ctx.load_cert_chain(path)


@contextlib.contextmanager
def _private_file(data: bytes) -> Iterator[str]:
    """A path readable only by this process holding `data`, gone when the block ends."""
    memfd_create = getattr(os, "memfd_create", None)
    if memfd_create is not None and os.path.isdir("/proc/self/fd"):
        fd = memfd_create("relate-tls", getattr(os, "MFD_CLOEXEC", 0))
        try:
            os.write(fd, data)
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    directory = tempfile.mkdtemp(prefix="relate-tls-")  # created 0700
    try:
        path = os.path.join(directory, "chain.pem")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        yield path
    finally:
        shutil.rmtree(directory, ignore_errors=True)


# -- self-signed fallback ------------------------------------------------------------------


def ensure_self_signed(data_dir: Path, names: list[str]) -> tuple[_PrivateKey, list[x509.Certificate]]:
    """Reuse `{data_dir}/tls/selfsigned.{crt,key}` or create them (EC P-256, 10 years).

    A stored pair is replaced when unreadable, near expiry, or missing one of `names`.
    """
    directory = data_dir / SELF_SIGNED_DIR
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with _exclusive_lock(directory / ".lock"):
            return _reuse_or_create(directory, names)
    except OSError as exc:
        raise ConfigError(
            f"Data__Directory={data_dir}: cannot store the self-signed certificate ({exc.strerror or exc})"
        ) from None


@contextlib.contextmanager
def _exclusive_lock(path: Path) -> Iterator[None]:
    """Serialise generation between daemons started together on one data directory."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)  # only at start-up, before any listener runs
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _reuse_or_create(directory: Path, names: list[str]) -> tuple[_PrivateKey, list[x509.Certificate]]:
    cert_path, key_path = directory / SELF_SIGNED_CERT, directory / SELF_SIGNED_KEY
    stored = _load_self_signed(cert_path, key_path, names)
    if stored is not None:
        return stored
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _make_self_signed(key, names)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    _write_atomic(key_path, key_pem, 0o600)
    _write_atomic(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    log.warning(
        "no TLS certificate configured (Tls__CertificatePath): generated a self-signed one for %s in %s",
        ", ".join(names),
        cert_path,
    )
    return key, [cert]


def _load_self_signed(
    cert_path: Path, key_path: Path, names: list[str]
) -> tuple[_PrivateKey, list[x509.Certificate]] | None:
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), None)
    except (OSError, ValueError, TypeError):
        return None
    if not isinstance(key, _KEY_TYPES):
        return None
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    if key.public_key().public_bytes(der, spki) != cert.public_key().public_bytes(der, spki):
        return None
    if cert.not_valid_after_utc - datetime.datetime.now(datetime.UTC) < SELF_SIGNED_RENEW_BEFORE:
        return None
    if not set(names) <= _san_names(cert):
        return None
    return key, [cert]


def _san_names(cert: x509.Certificate) -> set[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    found = {name.lower() for name in san.get_values_for_type(x509.DNSName)}
    found |= {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    return found


def _make_self_signed(key: ec.EllipticCurvePrivateKey, names: list[str]) -> x509.Certificate:
    alt_names: list[x509.GeneralName] = []
    for name in names:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt_names.append(x509.DNSName(name))
    common_name = next((n for n in names if not _is_ip(n)), "localhost")
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64]),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Relate Mail self-signed"),
        ]
    )
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + SELF_SIGNED_VALIDITY)
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Write beside `path` and rename over it, so a concurrent reader sees old or new, whole."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
