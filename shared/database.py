"""Engine set-up per database kind, and migrations run through Alembic (the only way the schema is made)."""
import functools

from alembic import command
from alembic.config import Config
from sqlalchemy import Table, event, func, insert, select, text
from sqlalchemy.engine import Engine

from shared.config import PROJECT_ROOT

# How long a writer waits for SQLite's one write lock before "database is locked". Every transaction takes the lock
# at BEGIN, so no code may hold a transaction across a network call (see scans.plan_pack / ask_carriers).
SQLITE_BUSY_TIMEOUT_MS = 30_000


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
        # The busy timeout first: switching the journal mode may itself have to wait for another process.
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode=WAL")  # readers never block the writer, nor the writer them
        cursor.execute("PRAGMA foreign_keys=ON")
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


# Up to this many rows an INSERT … RETURNING of the ids is as quick as anything; above it, one executemany.
EXECUTEMANY_FROM = 20


def send_rows(connection, statement, rows: list[dict]) -> None:
    """Send one prebuilt INSERT `statement` for `rows` on `connection`. Fewer than EXECUTEMANY_FROM rows go as one
    multi-row statement (SQLAlchemy's insertmanyvalues, which it uses for an INSERT … RETURNING: the key is asked
    for and dropped), more as one executemany (psycopg's pipeline). An executemany of two rows cost the API more
    CPU in psycopg's pipeline set-up than the rows themselves (py-spy, 2026-12-02)."""
    if len(rows) < EXECUTEMANY_FROM:
        connection.execute(_returning_key(statement), rows).close()
    else:
        connection.execute(statement, rows)


@functools.lru_cache(maxsize=64)
def _returning_key(statement):
    """`statement` with RETURNING of its table's key, built once per prebuilt statement (they are module-level)."""
    return statement.returning(*statement.table.primary_key.columns)


def insert_rows(table: Table, rows: list[dict], ids: bool = False, session=None) -> list[int] | None:
    """Insert `rows` (dicts with the same keys) in the session's transaction; with `ids`, return their new ids in
    the order of `rows` (also written into each dict as "id").

    A large multi-row `VALUES` statement is compiled by SQLAlchemy and parsed again by psycopg every time (its
    text differs with every row count): that was most of a 500-order ingest batch's CPU. Here one statement text
    is sent for every row count, as one pipelined executemany (psycopg sends every row, then waits once); on
    PostgreSQL the ids come first from the table's sequence in one call, while SQLite numbers the rows after the
    table's highest id, under the write lock its transaction holds; below EXECUTEMANY_FROM rows, on both, one
    INSERT … RETURNING.
    `session` defaults to the app's (`db.session`).
    """
    from shared.extensions import db

    if not rows:
        return [] if ids else None
    session = db.session if session is None else session
    if not ids:
        session.execute(insert(table), rows)
        return None
    postgresql = session.get_bind().dialect.name == "postgresql"
    if len(rows) < EXECUTEMANY_FROM:  # a few rows: one INSERT … RETURNING (row by row on SQLite's driver)
        new_ids = session.execute(insert(table).returning(table.c.id, sort_by_parameter_order=True),
                                  rows).scalars().all()
    else:
        if postgresql:
            new_ids = sorted(session.execute(
                select(func.nextval(func.pg_get_serial_sequence(table.name, "id")))
                .select_from(func.generate_series(1, len(rows)))).scalars())
        else:  # SQLite: the transaction holds the one write lock from BEGIN (tune_engine), so the next ids are ours
            last = session.execute(select(func.coalesce(func.max(table.c.id), 0))).scalar_one()
            new_ids = list(range(last + 1, last + 1 + len(rows)))
        for row, new_id in zip(rows, new_ids):
            row["id"] = new_id
        session.execute(insert(table), rows)
    for row, new_id in zip(rows, new_ids):
        row["id"] = new_id
    return new_ids


def copy_rows(table: Table, rows: list[dict], session=None) -> None:
    """PostgreSQL: insert `rows` (dicts with the same keys) in the session's transaction with one COPY. psycopg
    writes each row in C (its own escaping, None as NULL): 2,000 reconciliation differences took 14 ms against
    41 ms as an executemany. No ids are returned; column defaults apply only to columns the rows do not name.
    `session` defaults to the app's (`db.session`)."""
    from shared.extensions import db

    if not rows:
        return
    session = db.session if session is None else session
    columns = list(rows[0])
    names = ", ".join(f'"{table.c[column].name}"' for column in columns)
    cursor = session.connection().connection.driver_connection.cursor()
    try:
        with cursor.copy(f'COPY "{table.name}" ({names}) FROM STDIN') as copy:
            for row in rows:
                copy.write_row([row[column] for column in columns])
    finally:
        cursor.close()


def without_jit(session) -> None:
    """PostgreSQL: no JIT compilation for the rest of this transaction. For the dashboards' grouped reads, whose
    cost estimates (correlated sub-plans, many groups) cross jit_above_cost: compiling took 0.4-0.6 s of a query that
    runs in 0.1 s at 100,000 orders (EXPLAIN ANALYZE, docs/PERFORMANCE.md). SQLite: nothing to do."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL jit = off"))
