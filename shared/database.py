"""Engine set-up per database kind, and migrations run through Alembic (the only way the schema is made)."""
from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import Engine

from shared.config import PROJECT_ROOT


def tune_engine(engine: Engine) -> None:
    """SQLite: WAL, foreign keys, a busy timeout, and BEGIN IMMEDIATE so writers queue instead of failing.

    With a deferred BEGIN, two transactions that both read and then write deadlock and one gets
    SQLITE_BUSY at once; taking the write lock at BEGIN makes concurrent reservations wait their turn.
    """
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection):
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)
