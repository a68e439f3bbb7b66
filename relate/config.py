"""Settings: read once from `Section__Key` environment variables into one typed object.

Invariants:
- Configuration comes only from the environment (DESIGN.md §2); nothing else is consulted.
- A bad value raises ConfigError whose message names the variable; callers print it on one
  line and exit 1. No traceback reaches the operator.
- The all-in-one process (`python -m relate`) changes a few defaults (unprivileged ports,
  loopback bind, SQLite under ./data); an explicit variable always wins.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit

from environs import Env, EnvError


class ConfigError(Exception):
    """A configuration variable is missing or malformed. str() is the operator's message."""


DEFAULT_MAX_MESSAGE_SIZE = 52_428_800  # Smtp__MaxMessageSizeBytes, also IMAP APPENDLIMIT
LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")
API_SCOPES = ("smtp", "pop3", "imap", "api:read", "api:write", "app")
MIN_METRICS_TOKEN = 16  # characters of Metrics__Token at least: it is a shared secret


@dataclass(frozen=True)
class TlsFiles:
    certificate_path: str = ""
    key_path: str = ""
    certificate_password: str = ""

    @property
    def configured(self) -> bool:
        return bool(self.certificate_path)


@dataclass(frozen=True)
class SmtpSettings:
    enabled: bool = True
    server_name: str = ""
    port: int = 587  # submission, STARTTLS (RFC 6409)
    secure_port: int = 465  # submissions, implicit TLS (RFC 8314)
    mx_port: int = 25
    mx_enabled: bool = True
    require_authentication: bool = True
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE  # RFC 1870 SIZE
    max_recipients: int = 100  # RFC 5321 §4.5.3.1.8 requires at least 100
    tls: TlsFiles = field(default_factory=TlsFiles)


@dataclass(frozen=True)
class Pop3Settings:
    enabled: bool = True
    server_name: str = ""
    port: int = 110
    secure_port: int = 995
    tls: TlsFiles = field(default_factory=TlsFiles)


@dataclass(frozen=True)
class ImapSettings:
    enabled: bool = True
    server_name: str = ""
    port: int = 143
    secure_port: int = 993
    max_connections_per_user: int = 20
    tls: TlsFiles = field(default_factory=TlsFiles)


@dataclass(frozen=True)
class OidcSettings:
    authority: str = ""
    audience: str = ""
    client_id: str = ""
    client_secret: str = ""
    scope: str = "openid profile email"


@dataclass(frozen=True)
class PushSettings:
    vapid_subject: str = ""
    vapid_public_key: str = ""
    vapid_private_key: str = ""

    @property
    def enabled(self) -> bool:
        return bool(self.vapid_public_key and self.vapid_private_key)


@dataclass(frozen=True)
class Settings:
    database_url: str  # SQLAlchemy URL, always normalised
    auto_migrate: bool
    data_dir: Path
    bind_address: str
    api_port: int
    api_base_url: str
    internal_api_key: str
    cors_allowed_origins: tuple[str, ...]
    mail_domains: tuple[str, ...]
    admin_emails: tuple[str, ...]
    allow_insecure_auth: bool
    tls: TlsFiles
    smtp: SmtpSettings
    pop3: Pop3Settings
    imap: ImapSettings
    oidc: OidcSettings
    push: PushSettings
    log_level: str
    max_connections: int  # per daemon (all its workers) or all-in-one process, all its listeners together
    max_connections_per_ip: int
    shutdown_grace_seconds: float
    all_in_one: bool = False
    # The API behind reverse proxies: how many X-Forwarded-* hops to believe (0: none).
    api_trusted_proxies: int = 0
    # REST API requests per minute, per client address and per user; 0 turns a limit off.
    api_rate_limit_per_ip: int = 600
    api_rate_limit_per_user: int = 1200
    # Processes each protocol daemon (python -m relate.smtpd, .pop3d, .imapd) serves with,
    # sharing its listening sockets (relate.daemon); the all-in-one process is always one.
    workers: int = 1
    # The bearer token GET /metrics asks for; empty: /metrics is open to anyone who reaches it.
    metrics_token: str = ""

    @property
    def development(self) -> bool:
        """Development mode: no OIDC issuer configured (DESIGN.md §4)."""
        return not self.oidc.authority

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def tls_for(self, protocol: str) -> TlsFiles:
        own: TlsFiles = getattr(self, protocol).tls
        return own if own.configured else self.tls


def _split_list(value: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in value.split(",") if item.strip())


KEY_VALUE_NAMES = {
    "host": "host",
    "server": "host",
    "port": "port",
    "database": "database",
    "db": "database",
    "username": "username",
    "user id": "username",
    "userid": "username",
    "user": "username",
    "password": "password",
    "pwd": "password",
    "sslmode": "sslmode",
    "ssl mode": "sslmode",
}


def normalise_database_url(value: str, data_dir: Path) -> str:
    """Turn either connection-string form into an SQLAlchemy URL.

    Accepts `postgresql://u:p@h:5432/db` (also `postgres://`), an SQLAlchemy URL, a plain
    `sqlite:///path`, or the key=value form `Host=..;Port=..;Database=..;Username=..;Password=..`.
    """
    value = value.strip()
    if not value:
        return f"sqlite:///{(data_dir / 'relate.db').resolve()}"
    if "://" in value:
        scheme = urlsplit(value).scheme.lower()
        if scheme in ("postgresql", "postgres", "postgresql+psycopg2"):
            return "postgresql+psycopg2://" + value.split("://", 1)[1]
        if scheme == "sqlite":
            return value
        raise ValueError(f"unsupported database scheme {scheme!r}")
    parts: dict[str, str] = {}
    for item in value.split(";"):
        if not item.strip():
            continue
        if "=" not in item:
            raise ValueError(f"expected Key=Value, got {item.strip()!r}")
        key, _, val = item.partition("=")
        name = KEY_VALUE_NAMES.get(key.strip().lower())
        if name is None:
            continue  # pooling and timeout knobs of other drivers are ignored
        parts[name] = val.strip()
    if "host" not in parts or "database" not in parts:
        raise ValueError("key=value form needs at least Host and Database")
    user = quote(parts.get("username", ""), safe="")
    password = quote(parts.get("password", ""), safe="")
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    port = parts.get("port", "5432")
    if not port.isdigit():
        raise ValueError(f"Port must be a number, got {port!r}")
    url = f"postgresql+psycopg2://{auth}{parts['host']}:{port}/{quote(parts['database'], safe='')}"
    if "sslmode" in parts:
        url += f"?sslmode={parts['sslmode'].lower()}"
    return url


class _MappingEnv(Env):
    """environs.Env reading from a given mapping instead of os.environ (tests pass one)."""

    def __init__(self, environ: Mapping[str, str]):
        super().__init__(eager=True, expand_vars=False)
        self._source = environ

    def _get_value(self, env_key: str, default: object) -> object:
        return self._source.get(env_key, default)


class _Reader:
    """Typed access through environs; every failure becomes a ConfigError naming the variable."""

    def __init__(self, environ: Mapping[str, str]):
        self.environ = environ
        self.env = _MappingEnv(environ)

    def _blank(self, name: str) -> bool:
        raw = self.environ.get(name)
        return raw is None or raw.strip() == ""

    def get_str(self, name: str, default: str) -> str:
        return str(self.env.str(name, default)).strip()

    def get_int(self, name: str, default: int, minimum: int = 0, maximum: int | None = None) -> int:
        if self._blank(name):
            return default
        raw = self.environ[name]
        try:
            value = self.env.int(name, default)
        except EnvError:
            raise ConfigError(f"{name}={raw}: not a whole number") from None
        if value < minimum or (maximum is not None and value > maximum):
            bound = f"{minimum}..{maximum}" if maximum is not None else f">= {minimum}"
            raise ConfigError(f"{name}={raw}: out of range ({bound})")
        return int(value)

    def get_port(self, name: str, default: int) -> int:
        return self.get_int(name, default, 0, 65535)

    def get_bool(self, name: str, default: bool) -> bool:
        if self._blank(name):
            return default
        try:
            return bool(self.env.bool(name, default))
        except EnvError:
            raise ConfigError(f"{name}={self.environ[name]}: expected true or false") from None

    def get_float(self, name: str, default: float) -> float:
        if self._blank(name):
            return default
        raw = self.environ[name]
        try:
            value = float(self.env.float(name, default))
        except EnvError:
            raise ConfigError(f"{name}={raw}: not a number") from None
        if value < 0:
            raise ConfigError(f"{name}={raw}: must not be negative")
        return value

    def get_list(self, name: str) -> tuple[str, ...]:
        return _split_list(self.get_str(name, ""))

    def get_tls(self, prefix: str) -> TlsFiles:
        files = TlsFiles(
            certificate_path=self.get_str(f"{prefix}__CertificatePath", ""),
            key_path=self.get_str(f"{prefix}__KeyPath", ""),
            certificate_password=self.get_str(f"{prefix}__CertificatePassword", ""),
        )
        if files.key_path and not files.certificate_path:
            raise ConfigError(f"{prefix}__KeyPath is set but {prefix}__CertificatePath is not")
        for name, path in (("CertificatePath", files.certificate_path), ("KeyPath", files.key_path)):
            if path and not os.path.isfile(path):
                raise ConfigError(f"{prefix}__{name}={path}: file not found")
        return files


def load_settings(environ: Mapping[str, str] | None = None, *, all_in_one: bool = False) -> Settings:
    """Read every variable once. Raises ConfigError with a one-line message."""
    r = _Reader(os.environ if environ is None else environ)
    host = socket.getfqdn() or "localhost"

    data_dir = Path(r.get_str("Data__Directory", "./data"))
    try:
        database_url = normalise_database_url(r.get_str("ConnectionStrings__DefaultConnection", ""), data_dir)
    except ValueError as exc:
        raise ConfigError(f"ConnectionStrings__DefaultConnection: {exc}") from None

    oidc = OidcSettings(
        authority=r.get_str("Oidc__Authority", "").rstrip("/"),
        audience=r.get_str("Oidc__Audience", ""),
        client_id=r.get_str("Oidc__ClientId", ""),
        client_secret=r.get_str("Oidc__ClientSecret", ""),
        scope=r.get_str("Oidc__Scope", "openid profile email"),
    )
    if oidc.authority and not oidc.authority.startswith(("https://", "http://")):
        raise ConfigError(f"Oidc__Authority={oidc.authority}: must be an http(s) URL")
    development = not oidc.authority
    sqlite = database_url.startswith("sqlite")

    def ports(aio: int, normal: int) -> int:
        return aio if all_in_one else normal

    smtp = SmtpSettings(
        enabled=r.get_bool("Smtp__Enabled", True),
        server_name=r.get_str("Smtp__ServerName", host),
        port=r.get_port("Smtp__Port", ports(2587, 587)),
        secure_port=r.get_port("Smtp__SecurePort", ports(2465, 465)),
        mx_port=r.get_port("Smtp__MxPort", ports(2525, 25)),
        mx_enabled=r.get_bool("Smtp__MxEnabled", True),
        require_authentication=r.get_bool("Smtp__RequireAuthentication", True),
        max_message_size=r.get_int("Smtp__MaxMessageSizeBytes", DEFAULT_MAX_MESSAGE_SIZE, 1024),
        max_recipients=r.get_int("Smtp__MaxRecipients", 100, 1, 100_000),
        tls=r.get_tls("Smtp"),
    )
    pop3 = Pop3Settings(
        enabled=r.get_bool("Pop3__Enabled", True),
        server_name=r.get_str("Pop3__ServerName", host),
        port=r.get_port("Pop3__Port", ports(1110, 110)),
        secure_port=r.get_port("Pop3__SecurePort", ports(1995, 995)),
        tls=r.get_tls("Pop3"),
    )
    imap = ImapSettings(
        enabled=r.get_bool("Imap__Enabled", True),
        server_name=r.get_str("Imap__ServerName", host),
        port=r.get_port("Imap__Port", ports(1143, 143)),
        secure_port=r.get_port("Imap__SecurePort", ports(1993, 993)),
        max_connections_per_user=r.get_int("Imap__MaxConnectionsPerUser", 20, 1),
        tls=r.get_tls("Imap"),
    )
    push = PushSettings(
        vapid_subject=r.get_str("Push__VapidSubject", ""),
        vapid_public_key=r.get_str("Push__VapidPublicKey", ""),
        vapid_private_key=r.get_str("Push__VapidPrivateKey", ""),
    )
    if bool(push.vapid_public_key) != bool(push.vapid_private_key):
        raise ConfigError("Push__VapidPublicKey and Push__VapidPrivateKey must be set together")

    log_level = r.get_str("Logging__Level", "INFO").upper()
    if log_level == "WARN":
        log_level = "WARNING"
    if log_level not in LOG_LEVELS:
        raise ConfigError(f"Logging__Level={log_level}: expected one of {', '.join(LOG_LEVELS)}")

    api_base_url = r.get_str("Api__BaseUrl", "http://localhost:8080").rstrip("/")
    if not api_base_url.startswith(("http://", "https://")):
        raise ConfigError(f"Api__BaseUrl={api_base_url}: must be an http(s) URL")

    domains = tuple(d.lower().rstrip(".") for d in r.get_list("Mail__Domains"))
    for domain in domains:
        if "." not in domain or "@" in domain or " " in domain:
            raise ConfigError(f"Mail__Domains: {domain!r} is not a domain name")

    workers = r.get_int("Network__Workers", 1, 1, 64)
    metrics_token = r.get_str("Metrics__Token", "")
    if metrics_token and (len(metrics_token) < MIN_METRICS_TOKEN or any(c.isspace() for c in metrics_token)):
        raise ConfigError(f"Metrics__Token: use at least {MIN_METRICS_TOKEN} characters and no spaces "
                          "(a random secret, e.g. `openssl rand -hex 24`)")
    if workers > 1 and sqlite:
        # SQLite's locks (the POP3 maildrop lock, the writer lock) live in one process.
        raise ConfigError(f"Network__Workers={workers}: several workers need PostgreSQL "
                          "(ConnectionStrings__DefaultConnection)")
    return Settings(
        database_url=database_url,
        auto_migrate=r.get_bool("Database__AutoMigrate", development or sqlite),
        data_dir=data_dir,
        bind_address=r.get_str("Network__BindAddress", "127.0.0.1" if all_in_one else "0.0.0.0"),
        api_port=r.get_port("Api__Port", 8080),
        api_base_url=api_base_url,
        internal_api_key=r.get_str("Internal__ApiKey", ""),
        cors_allowed_origins=r.get_list("Cors__AllowedOrigins"),
        mail_domains=domains,
        admin_emails=tuple(e.lower() for e in r.get_list("Admin__Emails")),
        allow_insecure_auth=r.get_bool("Tls__AllowInsecureAuth", False),
        tls=r.get_tls("Tls"),
        smtp=smtp,
        pop3=pop3,
        imap=imap,
        oidc=oidc,
        push=push,
        log_level=log_level,
        max_connections=r.get_int("Network__MaxConnections", 10_000, 1),
        max_connections_per_ip=r.get_int("Network__MaxConnectionsPerIp", 100, 1),
        shutdown_grace_seconds=r.get_float("Network__ShutdownGraceSeconds", 10.0),
        all_in_one=all_in_one,
        api_trusted_proxies=r.get_int("Api__TrustedProxies", 0, 0, 10),
        api_rate_limit_per_ip=r.get_int("Api__RateLimitPerIp", 600, 0),
        api_rate_limit_per_user=r.get_int("Api__RateLimitPerUser", 1200, 0),
        workers=workers,
        metrics_token=metrics_token,
    )
