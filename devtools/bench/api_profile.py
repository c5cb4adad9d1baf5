"""In-process profile of POST /api/v1/orders: where one order's CPU and statements go (issue 10).

    python -m devtools.bench.api_profile [--orders 200] [--dump FILE.pstats]

A fresh PostgreSQL schema (bench_prof_api_<pid> in database `test`), the portal app, one admin token, 40 SKUs
with stock; then N two-line paid orders, each with a new customer, through the Flask test client. Reports CPU
per order (time.process_time, the whole request), wall per order, SQL statements per order (a
before_cursor_execute listener on the app's engine and on the order-number counter's engine, COMMIT counted
separately), the statement shapes of one order, and a cProfile top-20 by package (own time).
"""
import argparse
import cProfile
import json
import pstats
import random
import time
from collections import Counter, defaultdict

from sqlalchemy import event

from devtools.bench.orders import (BENCH_ACTOR, BENCH_PASSWORD, bench_config, bench_database, dispose, new_phone,
                                   order_payload, placed_at, seed_reference, seed_skus)


def package_of(filename: str) -> str:
    if "site-packages/" in filename:
        return filename.split("site-packages/")[1].split("/")[0]
    for mark in ("/shared/", "/portal/", "/devtools/", "/tests/"):
        if mark in filename:
            return mark.strip("/") + "." + filename.split(mark)[1].split("/")[0].removesuffix(".py")
    if filename.startswith("~") or filename.startswith("<"):
        return "builtins"
    return "stdlib:" + filename.rsplit("/", 1)[-1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=200)
    parser.add_argument("--skus", type=int, default=40)
    parser.add_argument("--dump", help="write the cProfile stats to this file (pstats format)")
    args = parser.parse_args()

    from portal import create_app
    from shared import order_numbers
    from shared.extensions import db
    from shared.services import staff

    with bench_database("prof_api", None) as url:
        app = create_app(bench_config(url, {"TESTING": False}))
        try:
            seed_reference(app)
            codes = seed_skus(app, args.skus, 100_000)
            with app.app_context():
                user = staff.create_user("prof-api", BENCH_PASSWORD, "admin", BENCH_ACTOR)
                token = staff.issue_token(user, BENCH_ACTOR)
                db.session.commit()
                db.session.remove()
            rng = random.Random(7)
            when = placed_at()

            def body(n: int, tag: str) -> bytes:
                a, b = rng.sample(codes, 2)
                return json.dumps(order_payload("OS", f"PROF-{tag}-{n}", [
                    {"sku": a, "quantity": 1, "unit_price": "12.50"},
                    {"sku": b, "quantity": 2, "unit_price": "3.20"}], new_phone(), when)).encode()

            headers = {"Authorization": f"Bearer {token}", "Accept-Language": "en"}
            client = app.test_client()

            def post(data: bytes):
                response = client.post("/api/v1/orders", data=data, headers=headers, content_type="application/json")
                if response.status_code != 201:
                    raise SystemExit(f"unexpected {response.status_code}: {response.get_data(as_text=True)[:400]}")
                return response

            for n in range(20):  # warm-up: compiled-statement caches, imports, the counter's pool
                post(body(n, "warm"))

            statements: list[str] = []

            def record(_conn, _cursor, statement, *_args):
                statements.append(statement)

            with app.app_context():
                engines = [db.engine]
            engines += list(order_numbers._counter_engines.values())
            commits = Counter()

            def on_commit(_conn):
                commits["commit"] += 1

            for engine in engines:
                event.listen(engine, "before_cursor_execute", record)
                event.listen(engine, "commit", on_commit)
            bodies = [body(n, "run") for n in range(args.orders)]
            cpu0, wall0 = time.process_time(), time.perf_counter()
            for data in bodies:
                post(data)
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
            counted = len(statements)
            one_order: list[str] = []
            statements.clear()
            post(body(0, "shape"))
            one_order = list(statements)
            for engine in engines:
                event.remove(engine, "before_cursor_execute", record)
                event.remove(engine, "commit", on_commit)

            profile = cProfile.Profile(time.process_time)  # CPU, not waiting on the server
            prof_bodies = [body(n, "prof") for n in range(args.orders)]
            profile.enable()
            for data in prof_bodies:
                post(data)
            profile.disable()
            stats = pstats.Stats(profile)
            own = defaultdict(float)
            total_own = 0.0
            for (filename, _line, _name), (_cc, _nc, tottime, _ct, _callers) in stats.stats.items():
                own[package_of(filename)] += tottime
                total_own += tottime

            n = args.orders
            print(f"orders: {n} (two lines, new customer each), PostgreSQL")
            print(f"CPU per order: {cpu / n * 1000:.2f} ms   wall per order: {wall / n * 1000:.2f} ms")
            print(f"SQL statements per order (COMMIT not included): {counted / n:.2f}; "
                  f"commits per order: {commits['commit'] / n:.2f}")
            print("statements of one order:")
            for statement in one_order:
                print("   ", " ".join(statement.split())[:110])
            print(f"cProfile top-20 by package (own CPU time, {total_own / n * 1000:.2f} ms per order under profiler):")
            for package, seconds in sorted(own.items(), key=lambda kv: -kv[1])[:20]:
                print(f"   {package:40s} {seconds / n * 1000:7.3f} ms  {seconds / total_own * 100:5.1f} %")
            if args.dump:
                stats.dump_stats(args.dump)
        finally:
            dispose(app)


if __name__ == "__main__":
    main()
