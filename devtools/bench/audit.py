"""`orderloom bench audit-verify`: how long verifying N sealed audit events takes, and where the time goes.

The chain is seeded directly (rows MACed and chained by the same functions the sealer uses, written with COPY on
PostgreSQL), except the last `--unsealed` events, which go through the real commit path and the real sealer so
its rate is measured too. Then `verify` walks the whole chain `--repeat` times; a fetch-only walk and a
MAC-only pass split its time into database + decoding and hashing.
"""
import io
import itertools
import json
import statistics
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, select, text

STATUSES = ("pending_review", "confirmed", "allocated", "picking", "packed", "shipped", "completed")


def _snapshot(n: int, step: int) -> dict:
    return {"status": STATUSES[step % len(STATUSES)], "payment_status": "paid", "refund_status": "none",
            "total": f"{100 + n % 900}.{n % 100:02d}", "currency": "CNY", "warehouse_id": 1 + n % 3}


def _event(n: int, start: datetime) -> dict:
    return {"occurred_at": start + timedelta(milliseconds=n), "actor_id": None, "actor_label": "system",
            "ip": None, "action": "order.transition", "entity_type": "order", "entity_id": f"SO{n // 5:09d}",
            "before": _snapshot(n, n % 6), "after": _snapshot(n, n % 6 + 1), "reason": "auto-review"}


def _seed_sealed(app, count: int, progress) -> float:
    """Write `count` sealed events as the sealer would have; returns the seconds it took."""
    from shared.extensions import db
    from shared.models import AuditEvent, AuditSeal
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
                row["row_mac"] = sealing.row_mac(chained, sealing.canonical_fields(chained, row), key)
                row["key_id"] = key_id
                row["id"] = row["seq"] = n + 1
                row["chain_mac"] = prev = sealing.chain_mac(chained, n + 1, n + 1, prev, row["row_mac"], key)
                rows.append(row)
            if postgres:
                _copy(db, rows)
            else:
                db.session.execute(insert(AuditEvent.__table__), rows)
            db.session.commit()
            progress(f"seeded {min(base + chunk, count):,} sealed events")
        if postgres:
            db.session.execute(text("SELECT setval(pg_get_serial_sequence('audit_events', 'id'), :n)"),
                               {"n": max(count, 1)})
        state = db.session.get(AuditSeal, "audit")
        last = db.session.execute(select(AuditEvent.seq).order_by(AuditEvent.seq.desc()).limit(1)).scalar() or 0
        sealing._write_head(state, state.last_seq, last_seq=last, last_mac=prev)
        db.session.commit()
    return time.perf_counter() - started


COLUMNS = ("id", "seq", "occurred_at", "actor_id", "actor_label", "ip", "action", "entity_type", "entity_id",
           "before", "after", "reason", "row_mac", "chain_mac", "key_id")


def _copy(db, rows: list[dict]) -> None:
    connection = db.session.connection().connection.driver_connection
    with connection.cursor() as cursor:
        with cursor.copy(f"COPY audit_events ({', '.join(COLUMNS)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row([json.dumps(row[c]) if c in ("before", "after") else row[c] for c in COLUMNS])


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


def _profile(app, limit: int = 200_000) -> dict:
    """Split a walk over the first `limit` rows: fetching and decoding rows vs computing their MACs."""
    from shared.extensions import db
    from shared.services import sealing

    chained = sealing.LOGS["audit"]
    with app.app_context():
        key = sealing.newest_key()[1]
        started = time.perf_counter()
        rows = list(itertools.islice(sealing.sealed_rows(chained, 20_000), limit))
        fetch_s = time.perf_counter() - started
        started = time.perf_counter()
        for row in rows:
            sealing.content_message(chained, row[sealing.FIELDS:])
        message_s = time.perf_counter() - started
        started = time.perf_counter()
        prev = sealing.GENESIS
        for row in rows:
            sealing.row_mac(chained, row[sealing.FIELDS:], key)
            prev = sealing.chain_mac(chained, row.seq, row.id, prev, row.row_mac, key)
        mac_s = time.perf_counter() - started
        db.session.remove()
    return {"rows": len(rows), "fetch_decode_s": fetch_s, "canonical_text_s": message_s,
            "hmac_s_incl_text": mac_s}


def run_audit_verify(url: str, events: int, unsealed: int, repeat: int, progress=print) -> dict:
    from shared.appcore import create_core_app
    from shared.extensions import db
    from shared.services import sealing

    unsealed = min(unsealed, events)
    app = create_core_app("orderloom.bench", {"SQLALCHEMY_DATABASE_URI": url})
    seed_s = _seed_sealed(app, events - unsealed, progress)
    commit = _commit_and_seal(app, unsealed, progress) if unsealed else None
    runs, cpu, reports = [], [], []
    for attempt in range(repeat):
        with app.app_context():
            started, started_cpu = time.perf_counter(), time.process_time()
            report = sealing.verify_all(logs=("audit",))[0]
            runs.append(time.perf_counter() - started)
            cpu.append(time.process_time() - started_cpu)
            reports.append(report)
            db.session.remove()
        progress(f"verify {attempt + 1}/{repeat}: {report.checked:,} events in {runs[-1]:.2f} s "
                 f"({'intact' if report.intact else report.problem})")
    profile = _profile(app)
    with app.app_context():
        db.engine.dispose()
    ok = all(r.intact and r.checked == events for r in reports)
    return {"events": events, "seed_s": seed_s, "commit_path": commit, "verify_s": runs, "verify_cpu_s": cpu,
            "verify_median_s": statistics.median(runs), "events_per_s": events / statistics.median(runs),
            "profile": profile, "ok": ok, "problems": [str(r.problem) for r in reports if not r.intact],
            "aims": [{"aim": "audit verify of 1,000,000 events < 10 s",
                      "measured": f"{statistics.median(runs):.2f} s for {events:,} events",
                      "met": events >= 1_000_000 and statistics.median(runs) < 10}]}


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
    out.write(f"| of which this process's CPU (the rest: PostgreSQL, and waiting for a core) | "
              f"{', '.join(f'{s:.2f}' for s in results['verify_cpu_s'])} s |\n")
    profile = results["profile"]
    out.write(f"| of which fetch + decode ({profile['rows']:,} rows) | {profile['fetch_decode_s']:.2f} s |\n")
    out.write(f"| of which canonical text | {profile['canonical_text_s']:.2f} s |\n")
    out.write(f"| of which two HMACs per row (incl. text) | {profile['hmac_s_incl_text']:.2f} s |\n")
    print(out.getvalue())
