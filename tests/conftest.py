"""Test harness: real PostgreSQL and SQLite databases, gevent-patched like the daemons.

- Store tests take the `backend` fixture and run once on SQLite and once on PostgreSQL.
- PostgreSQL comes from RELATE_TEST_DATABASE_URL, else 127.0.0.1:5432, else a throwaway
  cluster; only when none exists do PostgreSQL tests skip, loudly, and with
  RELATE_REQUIRE_POSTGRES=1 (CI) they fail instead.
- Each test starts from empty tables (one migrated database per session, truncated per test).
"""

from gevent import monkey

monkey.patch_all()

import gc  # noqa: E402
import os  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import psycopg2  # noqa: E402
import pytest  # noqa: E402
from sqlalchemy import text  # noqa: E402

from relate import db  # noqa: E402
from relate.config import Settings, load_settings  # noqa: E402
from tests import pgcluster  # noqa: E402

_PG_STATE: dict[str, object] = {}


def pytest_report_header(config: pytest.Config) -> list[str]:
    dsn = _pg_admin_dsn()
    return [f"relate: PostgreSQL {'at ' + dsn if dsn else 'NOT AVAILABLE: PostgreSQL tests will skip'}"]


def _pg_admin_dsn() -> str | None:
    if "dsn" not in _PG_STATE:
        dsn, cluster = pgcluster.find_server()
        _PG_STATE["dsn"] = dsn
        _PG_STATE["cluster"] = cluster
    return _PG_STATE["dsn"]  # type: ignore[return-value]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    cluster = _PG_STATE.get("cluster")
    if isinstance(cluster, pgcluster.Cluster):
        cluster.destroy()


def require_postgres() -> str:
    dsn = _pg_admin_dsn()
    if dsn is None:
        if os.environ.get("RELATE_REQUIRE_POSTGRES") == "1":
            pytest.fail("RELATE_REQUIRE_POSTGRES=1 but no PostgreSQL server is available")
        pytest.skip("!!! NO POSTGRESQL AVAILABLE: PostgreSQL test skipped !!!")
    return dsn


def _admin_exec(dsn: str, sql: str) -> None:
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()


def _sqlalchemy_url(dsn: str, dbname: str) -> str:
    parts = dict(p.split("=", 1) for p in dsn.split())
    auth = parts.get("user", "postgres")
    if parts.get("password"):
        auth += ":" + parts["password"]
    return f"postgresql+psycopg2://{auth}@{parts.get('host', '127.0.0.1')}:{parts.get('port', '5432')}/{dbname}"


@pytest.fixture
def no_gc() -> Iterator[None]:
    """No garbage collection during the test: a test timing a parser's CPU (a linear-time
    check) must not be charged a full collection of the heap the rest of the suite built,
    which costs about a second late in a run."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A migrated PostgreSQL database for this test session; yields its SQLAlchemy URL."""
    dsn = require_postgres()
    name = f"relate_test_{uuid.uuid4().hex[:10]}"
    _admin_exec(dsn, f"CREATE DATABASE {name}")
    url = _sqlalchemy_url(dsn, name)
    from relate.db import migrate

    engine = db.engine.create(url, pool_size=2)
    migrate.upgrade(engine)
    engine.dispose()
    yield url
    db.dispose()
    _admin_exec(dsn, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="session")
def sqlite_database(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("sqlite") / "relate.db"
    url = f"sqlite:///{path}"
    from relate.db import migrate

    engine = db.engine.create(url)
    migrate.upgrade(engine)
    engine.dispose()
    return url


KEEP_TABLES = {"alembic_version", "server_secrets"}


def _truncate(url: str) -> None:
    from relate.db.models import Base

    engine = db.get_engine()
    names = [t.name for t in reversed(Base.metadata.sorted_tables) if t.name not in KEEP_TABLES]
    with engine.begin() as conn:
        if url.startswith("postgresql"):
            conn.execute(text(f"TRUNCATE {', '.join(names)} RESTART IDENTITY CASCADE"))
        else:
            for name in names:
                conn.execute(text(f"DELETE FROM {name}"))


def make_settings(url: str, data_dir: Path, **env: str) -> Settings:
    environ = {"ConnectionStrings__DefaultConnection": url, "Data__Directory": str(data_dir), **env}
    return load_settings(environ)


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    """The database URL of one backend; store tests run once per backend."""
    if request.param == "postgres":
        return str(request.getfixturevalue("pg_database"))
    return str(request.getfixturevalue("sqlite_database"))


@pytest.fixture
def store(backend: str, tmp_path: Path) -> Iterator[Settings]:
    """An open, empty store on `backend`; yields the settings used."""
    from relate import store as store_mod

    settings = make_settings(backend, tmp_path, Database__AutoMigrate="false")
    store_mod.open_store(settings, migrate=False, pool_size=5)
    _truncate(backend)
    yield settings
    store_mod.bus.stop_listener()


@pytest.fixture
def pg_store(pg_database: str, tmp_path: Path) -> Iterator[Settings]:
    """An open, empty store on PostgreSQL only."""
    from relate import store as store_mod

    settings = make_settings(pg_database, tmp_path, Database__AutoMigrate="false")
    store_mod.open_store(settings, migrate=False, pool_size=5)
    _truncate(pg_database)
    yield settings
    store_mod.bus.stop_listener()
