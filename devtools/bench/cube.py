"""The state cube and the KPI board over a sizeable seed: seconds per heatmap (its one grouped query and the
facet's), per dimension set, median of the rounds. PostgreSQL seeds by COPY (devtools/bench/bulk.py: orders,
lines and one shipment per order that reached a warehouse, with its carrier); SQLite through the services.
"""
import statistics
import time
from datetime import timedelta

from devtools.bench.orders import (BENCH_ACTOR, LIST_CHANNELS, LIST_WAREHOUSES, bench_config, markdown_table,
                                   progress, seed_list_orders)

# (rows, columns, facet, days of range, facet value or None)
CUBES = (("day", "warehouse", "status", 30, None), ("day", "status", "city", 30, "杭州市"),
         ("week", "city", "carrier", 60, None), ("hour", "carrier", "status", 7, None),
         ("city", "exception_category", "team", 60, None))


def run_cube(url: str, orders: int = 100_000, repeat: int = 5, seed: int = 11) -> dict:
    from portal import create_app
    from shared.extensions import db
    from shared.services import catalog, kpis, state_cube
    from shared.timekeeping import local_date, utc_now

    app = create_app(bench_config(url, None, pool_size=2))
    with app.app_context():
        for code, name, kind, _ in LIST_CHANNELS:
            catalog.create_channel(code, name, kind, BENCH_ACTOR)
        for code, name, province, city in LIST_WAREHOUSES:
            catalog.create_warehouse({"code": code, "name": name, "province": province, "city": city}, BENCH_ACTOR)
        db.session.commit()
        postgres = db.engine.dialect.name == "postgresql"
        db.session.remove()
    started = time.perf_counter()
    if postgres:
        from devtools.bench import bulk

        bulk.seed(app, orders, seed=seed, progress=progress)
    else:
        seed_list_orders(app, orders, seed=seed)
    results = {"benchmark": "cube", "orders": orders, "repeat": repeat, "seed_s": time.perf_counter() - started,
               "rows": [], "ok": True, "aims": []}
    with app.test_request_context():
        zone = app.config["MERCHANT_TIMEZONE"]
        today = local_date(utc_now(), zone)
        for rows, columns, facet, days, value in CUBES:
            args = {"rows": rows, "columns": columns, "facet": facet, "date_to": today.isoformat(),
                    "date_from": (today - timedelta(days=days - 1)).isoformat()}
            if value:
                args["facet_value"] = value
            request = state_cube.parse_request(args, zone, today)
            walls, cube = [], None
            for _ in range(repeat):
                begin = time.perf_counter()
                cube = state_cube.compute(request)
                walls.append(time.perf_counter() - begin)
                db.session.rollback()
            counted = sum(cube.cells.values())
            results["rows"].append({"cube": f"{rows} × {columns}, facet {facet}" + (f" = {value}" if value else ""),
                                    "days": days, "cells": len(cube.cells), "orders_in_cells": counted,
                                    "median_ms": 1000 * statistics.median(walls),
                                    "walls_ms": [1000 * w for w in walls]})
            progress(f"cube {rows}×{columns}/{facet}: {1000 * statistics.median(walls):.1f} ms")
        walls = []
        for _ in range(repeat):
            begin = time.perf_counter()
            kpis.board("week", 8, zone=zone)
            walls.append(time.perf_counter() - begin)
            db.session.rollback()
        results["rows"].append({"cube": "KPI board, 8 weeks (4 grouped queries)", "days": 56, "cells": 32,
                                "orders_in_cells": None, "median_ms": 1000 * statistics.median(walls),
                                "walls_ms": [1000 * w for w in walls]})
        # The ceiling, in the same run: the least a heatmap over 60 days can cost, one bare grouped count of the
        # range's orders by status (no bucket expression, no join, no facet).
        from sqlalchemy import text

        since = utc_now() - timedelta(days=60)
        walls = []
        for _ in range(repeat):
            begin = time.perf_counter()
            cells = db.session.execute(text("SELECT status, count(*) FROM orders WHERE placed_at >= :since "
                                            "GROUP BY status"), {"since": since}).all()
            walls.append(time.perf_counter() - begin)
            db.session.rollback()
        results["rows"].append({"cube": "ceiling: bare grouped count by status, 60 days", "days": 60,
                                "cells": len(cells), "orders_in_cells": sum(n for _, n in cells),
                                "median_ms": 1000 * statistics.median(walls), "walls_ms": [1000 * w for w in walls]})
    with app.app_context():
        db.engine.dispose()
    return results


def print_cube(results: dict) -> None:
    print(f"\n{results['orders']:,} orders seeded in {results['seed_s']:.1f} s; median of {results['repeat']} runs\n")
    print(markdown_table(["query", "range (days)", "cells", "orders in cells", "median ms", "runs ms"],
                         [[r["cube"], r["days"], r["cells"], "" if r["orders_in_cells"] is None else
                           f"{r['orders_in_cells']:,}", f"{r['median_ms']:.1f}",
                           " / ".join(f"{w:.0f}" for w in r["walls_ms"])] for r in results["rows"]]))
