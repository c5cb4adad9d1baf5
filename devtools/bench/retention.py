"""`orderloom bench retention`: the nightly retention run's two heavy steps over a sizeable seed, each beside a
ceiling measured in the same run on the same rows.

- Anonymising: `retention._anonymise_orders` over every finished order of a bulk seed (PostgreSQL COPY,
  devtools/bench/bulk.py), beside the ceiling: one bare UPDATE of the same rows to the same values (no batches, no
  hold checks, no exceptions' blind index).
- Archiving: `sealing.prune` of sealed access-log rows (archive file written and fsynced, head moved, rows deleted),
  beside the ceiling: reading the same rows and deleting them from an unguarded copy of the table.

Every round runs in a transaction that is rolled back, so each round meets the same rows; the median is reported.
"""
import shutil
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from devtools.bench.orders import (BENCH_ACTOR, LIST_CHANNELS, LIST_WAREHOUSES, bench_config, markdown_table,
                                   progress)

FINISHED_SQL = "('completed', 'cancelled', 'closed')"


def _seed_access_rows(count: int) -> None:
    from shared.extensions import db
    from shared.models import AccessLogEntry
    from shared.services import sealing
    from shared.timekeeping import utc_now

    old = utc_now() - timedelta(days=4 * 365)
    chained = sealing.LOGS["access"]
    rows = [sealing.stamp(chained, {"occurred_at": old + timedelta(seconds=n), "actor_id": None,
                                    "actor_label": "bench", "ip": "10.0.0.1", "action": "reveal",
                                    "entity_type": "order", "entity_id": f"SO{n:08d}", "fields": "phone",
                                    "channel": "portal"}) for n in range(count)]
    for start in range(0, count, 20_000):
        db.session.execute(AccessLogEntry.__table__.insert(), rows[start:start + 20_000])
    db.session.commit()
    sealing.seal_all(commit=db.session.commit, limit=20_000)


def run_retention(url: str, orders: int = 100_000, access_rows: int = 100_000, repeat: int = 5,
                  seed: int = 11) -> dict:
    from sqlalchemy import text

    from portal import create_app
    from shared.extensions import db
    from shared.services import catalog, retention, sealing
    from shared.timekeeping import utc_now

    app = create_app(bench_config(url, None, pool_size=2))
    archive = Path(tempfile.mkdtemp(prefix="orderloom-bench-archive-"))
    app.config["AUDIT_ARCHIVE_DIR"] = str(archive)
    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            raise SystemExit("bench retention seeds by PostgreSQL COPY: give a PostgreSQL --database-url")
        for code, name, kind, _ in LIST_CHANNELS:
            catalog.create_channel(code, name, kind, BENCH_ACTOR)
        for code, name, province, city in LIST_WAREHOUSES:
            catalog.create_warehouse({"code": code, "name": name, "province": province, "city": city}, BENCH_ACTOR)
        db.session.commit()
        db.session.remove()
    from devtools.bench import bulk

    started = time.perf_counter()
    bulk.seed(app, orders, seed=seed, progress=progress)
    results = {"benchmark": "retention", "orders": orders, "access_rows": access_rows, "repeat": repeat,
               "rows": [], "ok": True, "aims": []}
    with app.app_context():
        progress(f"retention: {access_rows} sealed access-log rows")
        _seed_access_rows(access_rows)
        results["seed_s"] = time.perf_counter() - started
        now = utc_now() + timedelta(days=4 * 365)
        cutoff = now - retention.period("order_personal")
        due = db.session.execute(text(f"SELECT count(*) FROM orders WHERE status IN {FINISHED_SQL} "
                                      f"AND updated_at < :cutoff"), {"cutoff": cutoff}).scalar()
        db.session.rollback()
        ours, roof, counted = [], [], set()
        for round_no in range(repeat):
            progress(f"retention: anonymise round {round_no + 1}/{repeat}")
            begin = time.perf_counter()
            counted.add(retention._anonymise_orders(now))
            ours.append(time.perf_counter() - begin)
            db.session.rollback()
            begin = time.perf_counter()
            db.session.execute(text(
                f"UPDATE orders SET receiver_name = '', receiver_phone = '', receiver_phone_index = '', street = '', "
                f"postal_code = NULL, platform_ciphertext = NULL, platform_buyer_key = NULL, anonymised_at = :now, "
                f"version = version + 1 WHERE status IN {FINISHED_SQL} AND anonymised_at IS NULL "
                f"AND updated_at < :cutoff"), {"now": now, "cutoff": cutoff})
            roof.append(time.perf_counter() - begin)
            db.session.rollback()
        results["ok"] &= counted == {due}
        results["rows"].append(_row("anonymise finished orders", due, ours, roof))

        ours, roof, counted = [], [], set()
        for round_no in range(repeat):
            progress(f"retention: archive round {round_no + 1}/{repeat}")
            begin = time.perf_counter()
            done = 0
            while (pruned := sealing.prune("access", now - retention.period("access_log"))) and pruned.count:
                done += pruned.count
            ours.append(time.perf_counter() - begin)
            counted.add(done)
            db.session.rollback()
            shutil.rmtree(archive, ignore_errors=True)
            db.session.execute(text("CREATE TEMP TABLE bench_access AS SELECT * FROM access_log"))
            begin = time.perf_counter()
            db.session.execute(text("SELECT * FROM bench_access ORDER BY seq")).all()
            db.session.execute(text("DELETE FROM bench_access"))
            roof.append(time.perf_counter() - begin)
            db.session.rollback()
        results["ok"] &= counted == {access_rows}
        results["rows"].append(_row("archive and delete access-log rows", access_rows, ours, roof))
    shutil.rmtree(archive, ignore_errors=True)
    return results


def _row(step: str, rows: int, ours: list[float], roof: list[float]) -> dict:
    median, ceiling = statistics.median(ours), statistics.median(roof)
    return {"step": step, "rows": rows, "median_s": median, "ceiling_s": ceiling,
            "rows_per_s": rows / median if median else None, "ratio": median / ceiling if ceiling else None}


def print_retention(results: dict) -> None:
    print(markdown_table(["step", "rows", "median s", "ceiling s (same rows, bare SQL)", "rows/s", "× ceiling"],
                         [[r["step"], f"{r['rows']:,}", f"{r['median_s']:.2f}", f"{r['ceiling_s']:.2f}",
                           f"{r['rows_per_s']:,.0f}", f"{r['ratio']:.1f}"] for r in results["rows"]]))
    print(f"\nseed {results['seed_s']:.0f} s; {results['repeat']} rounds each, median; checks "
          f"{'ok' if results['ok'] else 'FAILED'}")
