"""`orderloom bench audit-verify`: how long verifying N sealed audit events takes, and where the time goes.

The chain is seeded directly (rows MACed and chained by the same functions the sealer uses, written with COPY on
PostgreSQL, then VACUUM ANALYZE), except the last `--unsealed` events, which go through the real commit path and
the real sealer so its rate is measured too. Then `verify` walks the whole chain `--repeat` times, each run
reported as wall time, the verifying process's CPU and its PostgreSQL backend's CPU (from /proc, same machine);
`--compare-row-walk` adds one run of the walk that reads every field (SQLite's way) for comparison.
"""
import io
import json
import statistics
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, text

from devtools.bench import machine

STATUSES = ("pending_review", "confirmed", "allocated", "picking", "packed", "shipped", "completed")


def _snapshot(n: int, step: int) -> dict:
    return {"status": STATUSES[step % len(STATUSES)], "payment_status": "paid", "refund_status": "none",
            "total": f"{100 + n % 900}.{n % 100:02d}", "currency": "CNY", "warehouse_id": 1 + n % 3}


def _event(n: int, start: datetime) -> dict:
    return {"occurred_at": start + timedelta(milliseconds=n), "actor_id": None, "actor_label": "system",
            "ip": None, "action": "order.transition", "entity_type": "order", "entity_id": f"SO{n // 5:09d}",
            "before": _snapshot(n, n % 6), "after": _snapshot(n, n % 6 + 1), "reason": "auto-review"}


def _seed_sealed(app, count: int, progress) -> float:
    """Write `count` sealed events as the sealer would have (MACs made by the same public functions, in Python, so
    verify's server-built messages are checked against them); returns the seconds it took."""
    from shared.extensions import db
    from shared.models import AuditEvent
    from shared.services import sealing

    started = time.perf_counter()
    chained = sealing.LOGS["audit"]
    start = datetime(2026, 1, 1, tzinfo=UTC)
    prev, chunk = sealing.GENESIS, 50_000
    with app.app_context():
        key_id, key = sealing.newest_key()
        postgres = db.engine.dialect.name == "postgresql"
        for base in range(0, count, chunk):
            rows = []
            for n in range(base, min(base + chunk, count)):
                row = _event(n, start)
                fields = sealing.canonical_fields(chained, row)  # the JSON columns as the text to be stored
                row.update(zip(chained.fields, fields, strict=True))
                row["row_mac"] = sealing.row_mac(chained, fields, key)
                row["key_id"] = key_id
                row["id"] = row["seq"] = n + 1
                row["chain_mac"] = prev = sealing.chain_mac(chained, n + 1, n + 1, prev, row["row_mac"], key)
                rows.append(row)
            if postgres:
                _copy(db, rows)
            else:
                for row in rows:
                    row["before"], row["after"] = (json.loads(row[c]) for c in ("before", "after"))
                db.session.execute(insert(AuditEvent.__table__), rows)
            db.session.commit()
            progress(f"seeded {min(base + chunk, count):,} sealed events")
        if postgres:
            db.session.execute(text("SELECT setval(pg_get_serial_sequence('audit_events', 'id'), :n)"),
                               {"n": max(count, 1)})
        sealing.head_to_chain_end("audit")
        db.session.commit()
        _vacuum(db)
    return time.perf_counter() - started


def _vacuum(db) -> None:
    """VACUUM ANALYZE after the bulk load, as a database gets in time: hint bits set and statistics known, so verify
    is not the first reader to write every page."""
    if db.engine.dialect.name == "postgresql":
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("VACUUM (ANALYZE) audit_events")


COLUMNS = ("id", "seq", "occurred_at", "actor_id", "actor_label", "ip", "action", "entity_type", "entity_id",
           "before", "after", "reason", "row_mac", "chain_mac", "key_id")


def _copy(db, rows: list[dict]) -> None:
    connection = db.session.connection().connection.driver_connection
    with connection.cursor() as cursor:
        with cursor.copy(f"COPY audit_events ({', '.join(COLUMNS)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row([row[c] for c in COLUMNS])


def _commit_and_seal(app, count: int, progress) -> dict:
    """Events through the real commit path (record + commit), then the real sealer; both timed."""
    from shared.actors import Actor
    from shared.extensions import db
    from shared.services import audit, sealing

    actor = Actor(id=None, label="bench", role="admin", ip="127.0.0.1")
    with app.app_context():
        started = time.perf_counter()
        for n in range(count):
            audit.record(actor, "order.transition", "order", f"SO-B{n}", before=_snapshot(n, 1),
                         after=_snapshot(n, 2), reason="bench")
            if n % 5 == 4:
                db.session.commit()
        db.session.commit()
        written = time.perf_counter() - started
        started = time.perf_counter()
        sealed = sealing.seal_all(commit=db.session.commit, logs=("audit",))["audit"]
        seal_s = time.perf_counter() - started
    progress(f"{count:,} events committed in {written:.1f} s, sealed in {seal_s:.1f} s")
    return {"events": count, "commit_s": written, "seal_s": seal_s, "sealed": sealed,
            "seal_per_s": count / seal_s if seal_s else None}


def _verify_once(app, streamed: bool | None) -> dict:
    """One `verify` of the audit log: wall time, this process's CPU (all threads) and its PostgreSQL backend's."""
    from shared.extensions import db
    from shared.services import sealing

    with app.app_context():
        pid = db.session.execute(text("SELECT pg_backend_pid()")).scalar() \
            if db.engine.dialect.name == "postgresql" else None
        backend_before = machine.process_cpu(pid) if pid else None
        started, started_cpu = time.perf_counter(), time.process_time()
        report = sealing.verify_all(logs=("audit",), streamed=streamed)[0]
        wall, cpu = time.perf_counter() - started, time.process_time() - started_cpu
        backend_after = machine.process_cpu(pid) if pid else None
        db.session.remove()
    backend = backend_after - backend_before if backend_before is not None and backend_after is not None else None
    return {"wall_s": wall, "cpu_s": cpu, "postgres_cpu_s": backend, "report": report}


def run_audit_verify(url: str, events: int, unsealed: int, repeat: int, progress=print,
                     compare_row_walk: bool = False) -> dict:
    from shared.appcore import create_core_app
    from shared.extensions import db

    unsealed = min(unsealed, events)
    app = create_core_app("orderloom.bench", {"SQLALCHEMY_DATABASE_URI": url})
    seed_s = _seed_sealed(app, events - unsealed, progress)
    commit = _commit_and_seal(app, unsealed, progress) if unsealed else None
    if unsealed:
        with app.app_context():
            _vacuum(db)
    runs = []
    for attempt in range(repeat):
        runs.append(_verify_once(app, None))
        report = runs[-1]["report"]
        progress(f"verify {attempt + 1}/{repeat}: {report.checked:,} events in {runs[-1]['wall_s']:.2f} s, "
                 f"CPU {runs[-1]['cpu_s']:.2f} s here, {_seconds(runs[-1]['postgres_cpu_s'])} in PostgreSQL "
                 f"({'intact' if report.intact else report.problem})")
    row_walk = None
    if compare_row_walk:
        row_walk = _verify_once(app, False)
        progress(f"row walk (every field read, the SQLite way): {row_walk['wall_s']:.2f} s")
    with app.app_context():
        db.engine.dispose()
    reports = [r["report"] for r in runs] + ([row_walk["report"]] if row_walk else [])
    ok = all(r.intact and r.checked == events for r in reports)
    walls = [r["wall_s"] for r in runs]
    median = statistics.median(walls)
    return {"events": events, "seed_s": seed_s, "commit_path": commit, "verify_s": walls,
            "verify_cpu_s": [r["cpu_s"] for r in runs], "postgres_cpu_s": [r["postgres_cpu_s"] for r in runs],
            "verify_median_s": median, "events_per_s": events / median,
            "row_walk": None if row_walk is None else {k: v for k, v in row_walk.items() if k != "report"},
            "ok": ok, "problems": [str(r.problem) for r in reports if not r.intact],
            "aims": [{"aim": "audit verify of 1,000,000 events < 10 s",
                      "measured": f"{median:.2f} s for {events:,} events",
                      "met": events >= 1_000_000 and median < 10}]}


def _seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f} s"


def print_audit_verify(results: dict) -> None:
    out = io.StringIO()
    out.write(f"\n## audit verify of {results['events']:,} events\n\n")
    out.write("| measure | figure |\n| --- | --- |\n")
    out.write(f"| seed (sealed directly, COPY) | {results['seed_s']:.1f} s |\n")
    commit = results["commit_path"]
    if commit:
        out.write(f"| commit path: {commit['events']:,} events, record + commit (5 per transaction) | "
                  f"{commit['commit_s']:.1f} s |\n")
        out.write(f"| sealer: {commit['events']:,} events | {commit['seal_s']:.2f} s "
                  f"({commit['seal_per_s']:,.0f} events/s) |\n")
    out.write(f"| verify, median of {len(results['verify_s'])} | {results['verify_median_s']:.2f} s "
              f"({results['events_per_s']:,.0f} events/s) |\n")
    out.write(f"| verify runs | {', '.join(f'{s:.2f}' for s in results['verify_s'])} s |\n")
    out.write(f"| of which this process's CPU (both threads) | "
              f"{', '.join(f'{s:.2f}' for s in results['verify_cpu_s'])} s |\n")
    out.write(f"| PostgreSQL backend CPU (building messages, scanning) | "
              f"{', '.join(_seconds(s) for s in results['postgres_cpu_s'])} |\n")
    row_walk = results["row_walk"]
    if row_walk:
        out.write(f"| row walk for comparison (every field to Python, as on SQLite) | {row_walk['wall_s']:.2f} s, "
                  f"CPU {row_walk['cpu_s']:.2f} s, PostgreSQL {_seconds(row_walk['postgres_cpu_s'])} |\n")
    print(out.getvalue())
