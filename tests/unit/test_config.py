import pytest

from relate.config import ConfigError, load_settings, normalise_database_url


def test_defaults():
    s = load_settings({})
    assert (s.smtp.port, s.smtp.secure_port, s.smtp.mx_port) == (587, 465, 25)
    assert (s.pop3.port, s.pop3.secure_port, s.imap.port, s.imap.secure_port) == (110, 995, 143, 993)
    assert s.bind_address == "0.0.0.0"
    assert s.is_sqlite and s.development and s.auto_migrate
    assert s.smtp.max_message_size == 52_428_800 and s.smtp.max_recipients == 100
    assert not s.allow_insecure_auth
    assert s.oidc.scope == "openid profile email"
    assert s.api_base_url == "http://localhost:8080"


def test_all_in_one_defaults_and_override():
    s = load_settings({"Imap__Port": "10143"}, all_in_one=True)
    assert (s.smtp.mx_port, s.smtp.port, s.smtp.secure_port) == (2525, 2587, 2465)
    assert (s.pop3.port, s.pop3.secure_port, s.imap.secure_port) == (1110, 1995, 1993)
    assert s.imap.port == 10143
    assert s.bind_address == "127.0.0.1"


@pytest.mark.parametrize(
    "value,expected",
    [
        ("postgresql://u:p@db:5432/relate", "postgresql+psycopg2://u:p@db:5432/relate"),
        ("postgres://u@db/relate", "postgresql+psycopg2://u@db/relate"),
        ("Host=db;Port=5433;Database=relate;Username=u;Password=p@ss;Pooling=true",
         "postgresql+psycopg2://u:p%40ss@db:5433/relate"),
        ("host=db; database=relate; user id=u", "postgresql+psycopg2://u@db:5432/relate"),
        ("Host=db;Database=relate;Username=u;Password=x;SSL Mode=Require",
         "postgresql+psycopg2://u:x@db:5432/relate?sslmode=require"),
        ("sqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
    ],
    ids=["url", "postgres-scheme", "key-value", "key-value-spaces", "key-value-sslmode", "sqlite"],
)
def test_connection_string_forms(value, expected, tmp_path):
    assert normalise_database_url(value, tmp_path) == expected


def test_production_database_disables_auto_migrate():
    s = load_settings({"ConnectionStrings__DefaultConnection": "postgresql://u@db/x", "Oidc__Authority": "https://id.example.com"})
    assert not s.auto_migrate and not s.development
    s = load_settings({"ConnectionStrings__DefaultConnection": "postgresql://u@db/x", "Oidc__Authority": "https://id.example.com",
                       "Database__AutoMigrate": "true"})
    assert s.auto_migrate


@pytest.mark.parametrize(
    "env,message",
    [
        ({"Smtp__Port": "abc"}, "Smtp__Port=abc"),
        ({"Imap__SecurePort": "99999"}, "Imap__SecurePort=99999"),
        ({"Pop3__Enabled": "perhaps"}, "Pop3__Enabled=perhaps"),
        ({"Smtp__MaxMessageSizeBytes": "-1"}, "Smtp__MaxMessageSizeBytes"),
        ({"Smtp__MaxRecipients": "0"}, "Smtp__MaxRecipients"),
        ({"ConnectionStrings__DefaultConnection": "mysql://x"}, "ConnectionStrings__DefaultConnection"),
        ({"ConnectionStrings__DefaultConnection": "Host=db"}, "ConnectionStrings__DefaultConnection"),
        ({"ConnectionStrings__DefaultConnection": "Host=db;Database=x;Port=abc"}, "ConnectionStrings__DefaultConnection"),
        ({"Logging__Level": "LOUD"}, "Logging__Level"),
        ({"Oidc__Authority": "id.example.com"}, "Oidc__Authority"),
        ({"Api__BaseUrl": "localhost:8080"}, "Api__BaseUrl"),
        ({"Tls__CertificatePath": "/nonexistent.pem"}, "Tls__CertificatePath"),
        ({"Tls__KeyPath": "/k.pem"}, "Tls__KeyPath"),
        ({"Mail__Domains": "example.com,not a domain"}, "Mail__Domains"),
        ({"Push__VapidPublicKey": "abc"}, "Push__Vapid"),
        ({"Network__ShutdownGraceSeconds": "soon"}, "Network__ShutdownGraceSeconds"),
    ],
    ids=lambda v: next(iter(v)) if isinstance(v, dict) else "",
)
def test_bad_values_name_the_variable(env, message):
    with pytest.raises(ConfigError) as err:
        load_settings(env)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_lists_and_case():
    s = load_settings({"Mail__Domains": " Example.COM , example.org. ", "Admin__Emails": "Root@Example.com",
                       "Cors__AllowedOrigins": "https://a.test,https://b.test"})
    assert s.mail_domains == ("example.com", "example.org")
    assert s.admin_emails == ("root@example.com",)
    assert s.cors_allowed_origins == ("https://a.test", "https://b.test")


def test_per_protocol_certificate_overrides(tmp_path):
    common = tmp_path / "common.pem"
    imap = tmp_path / "imap.pem"
    common.write_text("x")
    imap.write_text("y")
    s = load_settings({"Tls__CertificatePath": str(common), "Imap__CertificatePath": str(imap)})
    assert s.tls_for("imap").certificate_path == str(imap)
    assert s.tls_for("smtp").certificate_path == str(common)


def test_disabled_listener_port_zero():
    s = load_settings({"Smtp__MxPort": "0"})
    assert s.smtp.mx_port == 0
