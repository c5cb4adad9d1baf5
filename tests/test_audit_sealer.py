"""The sealer under faults, with real commits: a crash mid-batch, sealers racing each other and the writers,
the periodic job, the CLI, and the database role the app runs as."""
import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import text

from shared.extensions import db
from shared.models import AccessLogEntry
from shared.services import audit, catalog, sealing, stock
from tests.conftest import TEST_DATA_KEY
from tests.factories import ADMIN

TABLES = {"audit": "audit_events", "access": "access_log", "stock": "stock_movements"}


@pytest.fixture
def live(live_apps, tmp_path):
    """A live database with a warehouse and a SKU, and a checkpoint file of its own."""
    live_apps.core.config["AUDIT_CHECKPOINT_PATH"] = str(tmp_path / "checkpoints.jsonl")
    with live_apps.core.app_context():
        catalog.create_warehouse({"code": "HZ1", "name": "杭州仓", "province": "浙江省", "city": "杭州市"}, ADMIN)
        catalog.create_sku({"sku": "SKU-1", "name": "龙井茶"}, ADMIN)
        db.session.commit()
    return live_apps


def _write(count: int) -> None:
    for n in range(count):
        stock.adjust_stock("SKU-1", "HZ1", 1, f"unit {n}", ADMIN)
        audit.log_access(ADMIN, "reveal", "order", f"SO-{n}", ["phone"], channel="portal")
        db.session.commit()


def _chain_state(table: str) -> tuple[list[int], int]:
    """(sequence numbers in order, rows still unsealed), read fresh."""
    db.session.rollback()
    seqs = db.session.execute(text(f"SELECT seq FROM {table} WHERE seq IS NOT NULL ORDER BY seq")).scalars().all()
    unsealed = db.session.execute(text(f"SELECT count(*) FROM {table} WHERE seq IS NULL")).scalar()
    return seqs, unsealed


def test_sealer_crash_mid_batch_reruns_and_seals_exactly_once(live, monkeypatch):
    with live.core.app_context():
        _write(7)
        batches = []

        def crash_on_second_batch(log, seals):
            batches.append((log, len(seals)))
            if log == "audit" and len(batches) == 2:
                raise RuntimeError("sealer killed between its row updates and its head update")

        monkeypatch.setattr(sealing, "_after_rows_hook", crash_on_second_batch)
        with pytest.raises(RuntimeError, match="killed"):
            sealing.seal_all(commit=db.session.commit, limit=3)
        db.session.rollback()
        seqs, unsealed = _chain_state("audit_events")
        assert seqs == [1, 2, 3] and unsealed > 0  # the first batch stands, the crashed one left no trace
        assert db.session.get(sealing.AuditSeal, "audit").last_seq == 3
        monkeypatch.setattr(sealing, "_after_rows_hook", None)
        sealing.seal_all(commit=db.session.commit, limit=3)
        seqs, unsealed = _chain_state("audit_events")
        total = db.session.execute(text("SELECT count(*) FROM audit_events")).scalar()
        assert seqs == list(range(1, total + 1)) and unsealed == 0
        assert all(report.intact for report in sealing.verify_all()), sealing.verify_all()


CRASHING_SEALER = """
import os, sys
from shared.appcore import create_core_app
from shared.extensions import db
from shared.services import sealing

def die(log, seals):
    if log == "stock":
        os._exit(9)  # a real crash: no rollback, no clean-up, the connection just drops

sealing._after_rows_hook = die
app = create_core_app("crash", {"SQLALCHEMY_DATABASE_URI": os.environ["DATABASE_URL"]})
with app.app_context():
    sealing.seal_all(commit=db.session.commit, limit=2)
"""


def test_sealer_process_killed_mid_batch(live):
    with live.core.app_context():
        _write(5)
    env = {**os.environ, "DATABASE_URL": live.url, "ORDERLOOM_DATA_KEYS": TEST_DATA_KEY}
    crashed = subprocess.run([sys.executable, "-c", CRASHING_SEALER], env=env, capture_output=True, text=True,
                             timeout=120, cwd=Path(__file__).resolve().parent.parent)
    assert crashed.returncode == 9, crashed.stderr
    with live.core.app_context():
        seqs, unsealed = _chain_state("stock_movements")
        assert seqs == [] and unsealed == 5  # the killed sealer's batch rolled back with its connection
        assert _chain_state("audit_events")[1] == 0  # the logs it had finished stay sealed
        sealing.seal_all(commit=db.session.commit)
        assert _chain_state("stock_movements") == ([1, 2, 3, 4, 5], 0)
        assert all(report.intact for report in sealing.verify_all())


def test_two_sealers_at_once_one_wins_no_fork(live, monkeypatch):
    with live.core.app_context():
        _write(6)
    inside, release, results, errors = threading.Event(), threading.Event(), {}, []

    def hold(log, seals):
        if threading.current_thread().name == "first" and log == "audit":
            inside.set()
            release.wait(30)

    monkeypatch.setattr(sealing, "_after_rows_hook", hold)

    def run(name):
        try:
            with live.core.app_context():
                results[name] = sealing.seal_all(commit=db.session.commit)
                db.session.remove()
        except Exception as exc:  # noqa: BLE001 - the test reports it
            errors.append(exc)

    first = threading.Thread(target=run, args=("first",), name="first")
    first.start()
    assert inside.wait(30)
    second = threading.Thread(target=run, args=("second",), name="second")
    second.start()
    second.join(2)  # PostgreSQL: the second finds the audit log taken and moves on; SQLite: it waits its turn
    release.set()
    first.join(60)
    second.join(60)
    assert not errors, errors
    assert results["first"]["audit"] > 0 and not results["second"]["audit"]  # one sealed them, the other none
    with live.core.app_context():
        for table in TABLES.values():
            seqs, unsealed = _chain_state(table)
            assert seqs == list(range(1, len(seqs) + 1)) and unsealed == 0, table
        assert all(report.intact for report in sealing.verify_all())


def test_sealers_racing_the_writers_keep_one_chain(live):
    """Three sealers in a loop while four writers commit: every row sealed once, in one unbroken chain per log."""
    stop, errors = threading.Event(), []

    def writer(n):
        try:
            with live.core.app_context():
                for i in range(8):
                    audit.record(ADMIN, "test.write", "thing", f"{n}-{i}")
                    audit.log_access(ADMIN, "reveal", "order", f"{n}-{i}", ["phone"], channel="api")
                    db.session.commit()
                db.session.remove()
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    def sealer():
        try:
            with live.core.app_context():
                while not stop.is_set():
                    sealing.seal_all(commit=db.session.commit, limit=5)
                db.session.remove()
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    sealers = [threading.Thread(target=sealer) for _ in range(3)]
    writers = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in sealers + writers:
        thread.start()
    for thread in writers:
        thread.join(120)
    stop.set()
    for thread in sealers:
        thread.join(120)
    assert not errors, errors
    with live.core.app_context():
        sealing.seal_all(commit=db.session.commit)
        for table in ("audit_events", "access_log"):
            seqs, unsealed = _chain_state(table)
            total = db.session.execute(text(f"SELECT count(*) FROM {table}")).scalar()
            assert seqs == list(range(1, total + 1)) and unsealed == 0
        assert all(report.intact for report in sealing.verify_all())


def test_seal_job_seals_and_anchors_a_new_chain_with_its_first_checkpoint(live):
    from jobs.audit import seal_audit_logs, write_audit_checkpoint

    with live.core.app_context():
        _write(2)
        sealed = seal_audit_logs()
        assert sealed["audit"] >= 4 and sealed["stock"] == 2 and sealed["access"] == 2
        path = sealing.checkpoint_path()
        assert len(path.read_text().splitlines()) == 3  # the first checkpoint of each log, written unasked
        seal_audit_logs()
        assert len(path.read_text().splitlines()) == 3  # ... once
        lines = write_audit_checkpoint()
        assert [line["log"] for line in lines] == ["audit", "access", "stock"]
        reports = sealing.verify_all()
        assert all(r.intact and r.checkpoints == 2 for r in reports), reports


def test_schedule_seals_every_second_with_its_own_timeout():
    from jobs.schedule import SCHEDULE, TIMEOUTS

    entries = {name: (dotted, interval) for name, dotted, interval, _queue in SCHEDULE}
    assert entries["seal_audit_logs"] == ("jobs.audit.seal_audit_logs", 1)
    assert entries["write_audit_checkpoint"] == ("jobs.audit.write_audit_checkpoint", 86400)
    assert 0 < TIMEOUTS["seal_audit_logs"] < 180 and TIMEOUTS["write_audit_checkpoint"] > 0


def _orderloom(live, tmp_path, *args, archive=None):
    env = {"DATABASE_URL": live.url, "ORDERLOOM_DATA_KEYS": TEST_DATA_KEY, "PATH": "/usr/bin:/bin",
           "ORDERLOOM_AUDIT_CHECKPOINTS": str(tmp_path / "cli-checkpoints.jsonl"),
           "ORDERLOOM_AUDIT_ARCHIVE_DIR": str(archive or tmp_path / "cli-archive"),
           "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-c", "from cli import main; main()", *args], env=env,
                          capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parent.parent)


def test_cli_checkpoint_then_verify_each_log_and_a_missing_checkpoint_file(live, tmp_path):
    with live.core.app_context():
        _write(2)
    made = _orderloom(live, tmp_path, "audit", "checkpoint")
    assert made.returncode == 0, made.stderr
    assert "stock: #2 " in made.stdout and "access: #2 " in made.stdout
    verified = _orderloom(live, tmp_path, "audit", "verify", "--log", "stock")
    assert verified.returncode == 0 and "stock chain intact: 2 events, 1 checkpoints checked; 0 unsealed" in \
        verified.stdout, verified.stdout + verified.stderr
    (tmp_path / "cli-checkpoints.jsonl").unlink()
    broken = _orderloom(live, tmp_path, "audit", "verify")
    assert broken.returncode == 1 and "audit chain BROKEN" in broken.stderr
    assert "checkpoint missing: 1 audit checkpoints were written but 0 are in" in broken.stderr


def test_app_role_may_add_and_seal_but_never_rewrite(live, tmp_path):
    from shared.security.app_role import app_role_sql

    if live.backend == "sqlite":  # no roles in SQLite: the command says so instead of pretending
        refused = _orderloom(live, tmp_path, "db", "grant-app-role", "orderloom_app")
        assert refused.returncode == 1 and "PostgreSQL feature" in refused.stderr
        return
    role = f"orderloom_app_{uuid.uuid4().hex[:8]}"
    with pytest.raises(ValueError):
        app_role_sql("app; DROP TABLE audit_events", "public")
    engine = sa.create_engine(live.url)
    try:
        with engine.connect() as connection:
            schema = connection.execute(text("SELECT current_schema()")).scalar()
            connection.rollback()
            transaction = connection.begin()
            connection.execute(text(f"CREATE ROLE {role}"))
            for statement in app_role_sql(role, schema):
                connection.exec_driver_sql(statement)
            connection.execute(text(f"SET LOCAL ROLE {role}"))
            connection.execute(text("INSERT INTO access_log (occurred_at, actor_label, action, entity_type, "
                                    "entity_id, fields, channel) VALUES (now(), 'app', 'view', 'order', 'SO-1', "
                                    "'phone', 'api')"))
            connection.execute(text("UPDATE access_log SET seq = 1, chain_mac = 'c', row_mac = 'r', key_id = 'k' "
                                    "WHERE seq IS NULL"))  # the sealer's one fill
            for statement in ("TRUNCATE access_log", "UPDATE access_log SET fields = 'x'",
                              "DELETE FROM audit_seals", "UPDATE stock_movements SET reason = 'x'",
                              "TRUNCATE audit_events", "ALTER TABLE audit_events DISABLE TRIGGER USER"):
                savepoint = connection.begin_nested()
                with pytest.raises(sa.exc.DBAPIError) as denied:
                    connection.execute(text(statement))
                assert "permission denied" in str(denied.value) or "must be owner" in str(denied.value), statement
                savepoint.rollback()
            # Retention may delete chained rows, but only those below the head's pruned floor: the guard refuses
            # this one (the floor is 0).
            savepoint = connection.begin_nested()
            with pytest.raises(sa.exc.DBAPIError, match="append-only"):
                connection.execute(text("DELETE FROM access_log"))
            savepoint.rollback()
            transaction.rollback()
    finally:
        engine.dispose()


def test_a_sealer_of_another_installation_never_blocks_this_one(live, databases, monkeypatch):
    """Two installations in one PostgreSQL database (schemas) or two SQLite files: each has its own sealer lock."""
    from shared.appcore import create_core_app
    from tests.conftest import app_config

    other = create_core_app("other", app_config(databases.create(live.backend, "other")))
    with other.app_context():
        audit.record(ADMIN, "test.other", "thing", "1")
        db.session.commit()
    with live.core.app_context():
        _write(2)
    inside, release, errors = threading.Event(), threading.Event(), []

    def hold(log, seals):
        if threading.current_thread().name == "other":
            inside.set()
            release.wait(30)

    monkeypatch.setattr(sealing, "_after_rows_hook", hold)

    def seal_other():
        try:
            with other.app_context():
                sealing.seal_all(commit=db.session.commit, logs=("audit",))
                db.session.remove()
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    thread = threading.Thread(target=seal_other, name="other")
    thread.start()
    try:
        assert inside.wait(30)  # the other installation's sealer holds its audit log
        with live.core.app_context():
            assert sealing.seal_all(commit=db.session.commit, logs=("audit",))["audit"] > 0
    finally:
        release.set()
        thread.join(60)
    assert not errors, errors
    with other.app_context():
        db.engine.dispose()


def test_verify_while_the_sealer_seals_reports_no_false_alarm(live):
    """PostgreSQL: verify reads the head before and after its walk, so a sealer moving the head meanwhile is no
    'head reset'. SQLite: verify holds the writer lock for its walk, so no sealer can move the head at all."""
    import sqlite3

    outcome = {}
    with live.core.app_context():
        _write(3)
        sealing.seal_all(commit=db.session.commit)
        # The chain is read by `_rows` on SQLite and by `_stream_batch` (the streamed walk) on PostgreSQL.
        reader = "_rows" if live.backend == "sqlite" else "_stream_batch"
        original = getattr(sealing, reader)

        def sealer_runs_then_rows(*args):
            """The head was read; now, before the chain is read, another sealer moves it on."""
            if live.backend == "sqlite":
                other = sqlite3.connect(live.url.removeprefix("sqlite:///"), timeout=0.2)
                try:
                    other.execute("BEGIN IMMEDIATE")
                    outcome["other writer"] = "got the lock"
                except sqlite3.OperationalError as refused:
                    outcome["other writer"] = str(refused)
                finally:
                    other.close()
            elif not outcome:
                with live.core.app_context():  # another session: the cron's sealer, committing more rows
                    _write(1)
                    outcome["sealed meanwhile"] = sealing.seal_all(commit=db.session.commit)["audit"]
                    db.session.remove()
            return original(*args)

        setattr(sealing, reader, sealer_runs_then_rows)
        try:
            reports = sealing.verify_all()
        finally:
            setattr(sealing, reader, original)
        assert all(r.intact for r in reports), [str(r.problem) for r in reports]
    if live.backend == "sqlite":
        assert set(outcome.values()) == {"database is locked"}
    else:
        assert outcome["sealed meanwhile"] > 0


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_upgrading_keeps_the_old_sha256_chain_verifiable_and_chains_on_from_it(backend, tmp_path):
    """Events sealed by the old unkeyed chain (before 0006) verify as they were; new events chain on from them."""
    import hashlib
    import json as json_module
    from datetime import UTC, datetime

    from shared.appcore import create_core_app
    from shared.database import upgrade
    from tests.conftest import PG_BASE, app_config

    if backend == "sqlite":
        url, admin, schema = f"sqlite:///{tmp_path / 'old.sqlite3'}", None, None
    else:
        schema = f"t_upgrade_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        admin = sa.create_engine(PG_BASE, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        url = f"{PG_BASE}?options=-csearch_path%3D{schema}"
    try:
        upgrade(url, "0005")
        engine = sa.create_engine(url)
        prev = "0" * 64
        with engine.begin() as connection:
            for seq in (1, 2, 3):
                when = datetime(2026, 11, 1, 8, seq, tzinfo=UTC)
                event = {"seq": seq, "occurred_at": when.isoformat(), "actor_id": None, "actor_label": "system",
                         "ip": None, "action": "order.transition", "entity_type": "order", "entity_id": f"SO-{seq}",
                         "before": {"status": "confirmed"}, "after": {"status": "allocated"}, "reason": None}
                canonical = json_module.dumps(event, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
                digest = hashlib.sha256((prev + canonical).encode()).hexdigest()
                connection.execute(text(
                    "INSERT INTO audit_events (seq, occurred_at, actor_label, action, entity_type, entity_id, before, "
                    "after, prev_hash, hash) VALUES (:seq, :at, 'system', 'order.transition', 'order', :entity, "
                    ":before, :after, :prev, :hash)"),
                    {"seq": seq, "at": when if backend == "postgresql" else when.replace(tzinfo=None),
                     "entity": f"SO-{seq}", "before": '{"status": "confirmed"}', "after": '{"status": "allocated"}',
                     "prev": prev, "hash": digest})
                prev = digest
            connection.execute(text("UPDATE audit_chain_head SET last_seq = 3, last_hash = :h"), {"h": prev})
        engine.dispose()
        upgrade(url)
        app = create_core_app("upgrade", app_config(url))
        with app.app_context():
            audit.record(ADMIN, "test.after_upgrade", "thing", "1")
            db.session.commit()
            sealing.seal_all(commit=db.session.commit)
            report = sealing.verify_all(logs=("audit",))[0]
            assert report.intact and report.checked == 4 and report.legacy == 3, report
            db.session.execute(text("ALTER TABLE audit_events DISABLE TRIGGER USER" if backend == "postgresql" else
                                    "DROP TRIGGER audit_events_no_update"))
            db.session.execute(text("UPDATE audit_events SET entity_id = 'SO-X' WHERE seq = 2"))
            problem = sealing.verify_all(logs=("audit",))[0].problem
            assert (problem.kind, problem.seq) == (sealing.EDITED, 2) and "legacy hash" in problem.detail
            db.session.rollback()
            db.engine.dispose()
    finally:
        if admin is not None:
            with admin.connect() as connection:
                connection.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            admin.dispose()


def test_cli_retention_run_archives_old_rows_and_verify_archive_checks_them(live, tmp_path):
    """`orderloom retention run` then `orderloom audit verify-archive`, on a real database, in other processes; a
    changed archive file fails the check (exit 1)."""
    from datetime import timedelta

    from shared.timekeeping import utc_now

    with live.core.app_context():
        old = utc_now() - timedelta(days=4 * 365)
        for n in range(3):
            db.session.add(AccessLogEntry(**sealing.stamp(sealing.LOGS["access"], {
                "occurred_at": old, "actor_id": None, "actor_label": "old", "ip": None, "action": "reveal",
                "entity_type": "order", "entity_id": f"SO-{n}", "fields": "phone", "channel": "portal"})))
        db.session.commit()
    env_archive = tmp_path / "archive"
    run = _orderloom(live, tmp_path, "retention", "run", archive=env_archive)
    assert run.returncode == 0, run.stderr
    assert "access_log: 3" in run.stdout
    checked = _orderloom(live, tmp_path, "audit", "verify-archive", "--log", "access", archive=env_archive)
    assert checked.returncode == 0 and "intact, #1..#3 (3 rows)" in checked.stdout, checked.stdout + checked.stderr
    verified = _orderloom(live, tmp_path, "audit", "verify", "--log", "access", archive=env_archive)
    assert verified.returncode == 0, verified.stderr
    archive_file, = env_archive.glob("access-*.jsonl")
    archive_file.write_text(archive_file.read_text(encoding="utf-8").replace("SO-1", "SO-9"), encoding="utf-8")
    broken = _orderloom(live, tmp_path, "audit", "verify-archive", "--log", "access", archive=env_archive)
    assert broken.returncode == 1 and "BROKEN" in broken.stderr
