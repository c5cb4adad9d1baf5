"""Test set-up: a migrated database per backend, each test in a rolled-back transaction.

Every database test runs on SQLite and on PostgreSQL (127.0.0.1:5432, database `test`). A missing
PostgreSQL or Redis is a failure, never a skip: the suite says how to start them.
"""
import os
import uuid

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, scoped_session, sessionmaker

from shared.actors import Actor
from shared.database import upgrade
from shared.extensions import db

PG_BASE = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
# Under pytest-xdist each worker (gw0, gw1, ...) takes its own Redis database below the one given, so one worker's
# FLUSHDB or RQ queues never touch another's (PostgreSQL schemas and SQLite files are per process already).
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
if _WORKER.startswith("gw") and _WORKER[2:].isdigit():
    _base, _, _db = REDIS_URL.rpartition("/")
    REDIS_URL = f"{_base}/{(int(_db) if _db.isdigit() else 15) - int(_WORKER[2:])}"
    os.environ["TEST_REDIS_URL"] = REDIS_URL
TEST_DATA_KEY = "dGVzdC1kYXRhLWtleS1mb3Itb3JkZXJsb29tLXRlc3Q="
BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(scope="session", autouse=True)
def cheap_password_hashing():
    """Argon2 at its lowest cost in tests: the production cost (64 MiB, 3 passes) is for attackers, not CI."""
    from argon2 import PasswordHasher

    from shared.security import passwords

    production = passwords._hasher
    passwords._hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    yield
    passwords._hasher = production


@pytest.fixture(autouse=True)
def fresh_rate_limits():
    """Each test starts with empty rate-limit counters (they live in memory, shared by the test apps)."""
    from shared.extensions import limiter

    if getattr(limiter, "_storage", None) is not None:  # no app built yet in this run: nothing to reset
        limiter.reset()
    yield


def _pg_admin_engine():
    engine = sa.create_engine(PG_BASE, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")
    except sa.exc.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {PG_BASE}: start it with "
                    f"'pg_ctlcluster --skip-systemctl-redirect 15 main start' ({exc.orig})")
    return engine


class DatabaseFactory:
    """Makes migrated databases: SQLite files, or PostgreSQL schemas dropped at the end of the run."""

    def __init__(self, tmp_dir):
        self.tmp_dir = tmp_dir
        self.schemas: list[str] = []
        self.admin = None

    def create(self, backend: str, label: str) -> str:
        if backend == "sqlite":
            url = f"sqlite:///{self.tmp_dir / f'{label}-{uuid.uuid4().hex[:6]}.sqlite3'}"
        else:
            self.admin = self.admin or _pg_admin_engine()
            schema = f"t_{label}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
            with self.admin.connect() as connection:
                connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
            self.schemas.append(schema)
            url = f"{PG_BASE}?options=-csearch_path%3D{schema}"
        upgrade(url)
        return url

    def drop_all(self):
        if self.admin is None:
            return
        with self.admin.connect() as connection:
            for schema in self.schemas:
                connection.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        self.admin.dispose()


@pytest.fixture(scope="session")
def databases(tmp_path_factory):
    factory = DatabaseFactory(tmp_path_factory.mktemp("db"))
    yield factory
    factory.drop_all()


def app_config(url: str) -> dict:
    return {"SQLALCHEMY_DATABASE_URI": url, "TESTING": True, "DATA_KEYS": [TEST_DATA_KEY],
            "BLIND_INDEX_KEY": "test-index-key", "SECRET_KEY": "test-secret", "JOBS_INLINE": True,
            "REDIS_URL": "", "RATELIMIT_STORAGE_URI": "memory://", "SERVER_NAME": None,
            "BOARD_COUNTS_MAX_AGE": 0}


class Apps:
    def __init__(self, backend: str, url: str):
        from customer_site import create_app as create_customer
        from portal import create_app as create_portal
        from shared.appcore import create_core_app

        self.backend, self.url = backend, url
        self.core = create_core_app("tests", app_config(url))
        self.portal = create_portal(app_config(url))
        self.customer = create_customer(app_config(url))


_APPS: dict[str, Apps] = {}


@pytest.fixture(scope="session", params=BACKENDS)
def apps(request, databases) -> Apps:
    """The three apps on one migrated database of the backend under test (built once per run)."""
    backend = request.param
    if backend not in _APPS:
        _APPS[backend] = Apps(backend, databases.create(backend, "tx"))
    return _APPS[backend]


@pytest.fixture
def backend(apps) -> str:
    return apps.backend


@pytest.fixture
def session(apps):
    """Run the test inside one outer transaction that is rolled back; commits become savepoints."""
    with apps.core.app_context():
        connection = db.engine.connect()
    outer = connection.begin()
    original = db.session
    db.session = scoped_session(
        sessionmaker(bind=connection, class_=Session, join_transaction_mode="create_savepoint"),
        scopefunc=original.registry.scopefunc if hasattr(original.registry, "scopefunc") else None,
    )
    context = apps.core.app_context()
    context.push()
    try:
        yield db.session
    finally:
        db.session.remove()
        context.pop()
        db.session = original
        outer.rollback()
        connection.close()


@pytest.fixture(params=BACKENDS)
def live_apps(request, databases) -> Apps:
    """Apps on a fresh migrated database whose commits are real: for threads, workers and browsers.

    Each test gets its own database (a SQLite file or a PostgreSQL schema), so nothing needs cleaning.
    """
    apps = Apps(request.param, databases.create(request.param, "live"))
    yield apps
    for app in (apps.core, apps.portal, apps.customer):
        with app.app_context():
            db.engine.dispose()


ADMIN = Actor(id=None, label="test-admin", role="admin", ip="127.0.0.1")


@pytest.fixture
def actor():
    return ADMIN


@pytest.fixture
def portal(apps, session):
    return apps.portal


@pytest.fixture
def customer_app(apps, session):
    return apps.customer
pytest_plugins = ['tests.factories']
