"""`orderloom bench api`: orders created through `POST /api/v1/orders` on gunicorn, beside the ceiling.

The portal runs under gunicorn (`wsgi:portal`, sync workers) on the bench schema; `--clients` threads each
keep posting two-line paid orders with one bearer token, all started together. Before every run pgbench
measures the ceiling (the same minimal writes of one order, see `ceiling.py`) on the same database, so each
run's figure is reported as a ratio to the ceiling measured moments before it.

`--hot`: every order takes one unit of the same SKU (plus one random SKU), whose stock is 90 % of the orders
sent: exactly that many must be created, the rest refused with 409 `insufficient_stock` (no oversell).
"""
import http.client
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import threading
import time


from devtools.bench import ceiling, machine
from devtools.bench.orders import (BENCH_ACTOR, BENCH_PASSWORD, core_app, dispose, placed_at, progress,
                                   rate_cell, seed_reference, split, stock_sku, verify_audit_chain, markdown_table,
                                   new_phone, order_payload, seed_skus, spread, verify_hot_sku,
                                   verify_stock_consistent)
from shared.config import PROJECT_ROOT


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def gunicorn_server(url: str, port: int, workers: int, overrides: dict | None, env_extra: dict | None = None
              ) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": url, "REDIS_URL": "", "PYTHONPATH": str(PROJECT_ROOT),
           "ORDERLOOM_SIGN_IN_LIMIT": "100000 per minute", **(env_extra or {})}
    keys = overrides or {}
    if keys.get("DATA_KEYS"):
        env["ORDERLOOM_DATA_KEYS"] = ",".join(keys["DATA_KEYS"])
    if keys.get("BLIND_INDEX_KEY"):
        env["ORDERLOOM_INDEX_KEY"] = keys["BLIND_INDEX_KEY"]
    if keys.get("SECRET_KEY"):
        env["ORDERLOOM_SECRET_KEY"] = keys["SECRET_KEY"]
    command = [sys.executable, "-m", "gunicorn", "--workers", str(workers), "--bind", f"127.0.0.1:{port}",
               "--log-level", "warning", "--timeout", "120", "wsgi:portal"]
    process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited: {process.stderr.read().decode()[-800:]}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/healthz")
            if connection.getresponse().status == 200:
                return process
        except OSError:
            pass
        time.sleep(0.3)
    process.terminate()
    raise RuntimeError("gunicorn did not answer /healthz within 90 s")


def _token(app) -> str:
    from shared.extensions import db
    from shared.services import staff

    with app.app_context():
        user = staff.create_user("bench-api", BENCH_PASSWORD, "admin", BENCH_ACTOR)
        token = staff.issue_token(user, BENCH_ACTOR)
        db.session.commit()
        db.session.remove()
    return token


def _post_loop(port: int, token: str, bodies: list[bytes], barrier, tally: dict) -> None:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json",
               "Accept-Language": "en"}
    barrier.wait()
    tally["start"] = time.monotonic()
    for body in bodies:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            connection.request("POST", "/api/v1/orders", body=body, headers=headers)
            response = connection.getresponse()
            answer = response.read()
            connection.close()
        except OSError as exc:
            tally["errors"] += 1
            tally["first_error"] = tally["first_error"] or repr(exc)
            continue
        if response.status == 201:
            tally["ok"] += 1
            tally["last_ok"] = time.monotonic()
        elif response.status == 409 and b"insufficient_stock" in answer:
            tally["insufficient"] += 1
        else:
            tally["errors"] += 1
            tally["first_error"] = tally["first_error"] or f"{response.status} {answer[:300]!r}"
    tally["end"] = time.monotonic()


def run_posts(port: int, token: str, jobs: list[list[dict]]) -> dict:
    """Every client posts its orders, one connection per request (gunicorn's sync workers close them)."""
    barrier = threading.Barrier(len(jobs), timeout=120)
    tallies = [{"ok": 0, "insufficient": 0, "errors": 0, "first_error": None, "last_ok": None} for _ in jobs]
    bodies = [[json.dumps(payload).encode() for payload in job] for job in jobs]
    threads = [threading.Thread(target=_post_loop, args=(port, token, bodies[i], barrier, tallies[i]))
               for i in range(len(jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    start = min(t["start"] for t in tallies)
    last_ok = max((t["last_ok"] for t in tallies if t["last_ok"]), default=start)
    end = max(t["end"] for t in tallies)
    ok = sum(t["ok"] for t in tallies)
    return {"ok": ok, "insufficient": sum(t["insufficient"] for t in tallies),
            "errors": sum(t["errors"] for t in tallies),
            "first_error": next((t["first_error"] for t in tallies if t["first_error"]), None),
            "wall_s": end - start, "orders_per_s": ok / (last_ok - start) if last_ok > start else 0.0}


def _jobs(codes: list[str], clients: int, orders: int, tag: str, rng, hot_code: str | None) -> list[list[dict]]:
    placed, jobs, counter = placed_at(), [], 0
    for share in split(orders, clients):
        job = []
        for _ in range(share):
            counter += 1
            if hot_code:
                lines = [{"sku": hot_code, "quantity": 1, "unit_price": "59.90"},
                         {"sku": rng.choice(codes), "quantity": 1, "unit_price": "128.00"}]
            else:
                first, second = rng.sample(codes, 2)
                lines = [{"sku": first, "quantity": 1, "unit_price": "59.90"},
                         {"sku": second, "quantity": 1, "unit_price": "128.00"}]
            job.append(order_payload("OS", f"A-{tag}-{counter}", lines, new_phone(), placed))
        jobs.append(job)
    return jobs


def run_api(url: str, clients: int = 8, orders: int = 2000, repeat: int = 3, hot: bool = False, skus: int = 2000,
            workers: int | None = None, ceiling_seconds: int = 10, overrides: dict | None = None,
            seed: int = 11) -> dict:
    """Orders/s through the API on gunicorn, each run beside a ceiling run on the same database."""
    from shared.extensions import db

    rng = random.Random(seed)
    app = core_app(url, overrides, pool_size=4)
    results: dict = {"benchmark": "api-hot" if hot else "api", "clients": clients, "orders_per_run": orders,
                     "workers": workers or clients, "repeat": repeat, "runs": [], "ok": True}
    server = None
    try:
        seed_reference(app)
        codes = seed_skus(app, skus, units=1_000_000)
        token = _token(app)
        variables = ceiling.prepare(url, skus=skus, overrides=overrides)
        port = free_port()
        server = gunicorn_server(url, port, workers or clients, overrides)
        for rep in range(repeat):
            hot_code, hot_ids, units = None, None, 0
            if hot:
                hot_code, units = f"HOT-API-{rep}", orders * 9 // 10
                hot_ids = stock_sku(app, hot_code, units)
            progress(f"api{' hot' if hot else ''}: ceiling run {rep + 1}/{repeat}")
            roof = ceiling.run_pgbench(url, variables, hot, clients, ceiling_seconds)
            progress(f"api{' hot' if hot else ''}: {clients} clients, run {rep + 1}/{repeat}")
            jobs = _jobs(codes, clients, orders, f"{rep}", rng, hot_code)
            cpu_before = (time.process_time(), machine.tree_cpu(server.pid), machine.postgres_cpu())
            outcome = run_posts(port, token, jobs)
            cpu_after = (time.process_time(), machine.tree_cpu(server.pid), machine.postgres_cpu())
            run = {"ceiling_per_s": roof["orders_per_s"], **outcome,
                   # where the run's CPU went, per order created (all on this machine's cores)
                   "cpu_ms_per_order": {part: (after - before) * 1000 / max(outcome["ok"], 1) for part, before, after
                                        in zip(("client", "gunicorn", "postgres"), cpu_before, cpu_after)}}
            if hot:
                run["checks"] = verify_hot_sku(app, hot_ids[0], hot_ids[1], units, outcome["ok"], with_orders=True)
                expected_refusals = orders - units
                run["checks"]["refused == orders - stock"] = outcome["insufficient"] == expected_refusals
            ok_run = outcome["errors"] == 0 and (all(run["checks"].values()) if hot else outcome["ok"] == orders)
            results["ok"] = results["ok"] and ok_run
            results["runs"].append(run)
        figures = [r["orders_per_s"] for r in results["runs"]]
        roofs = [r["ceiling_per_s"] for r in results["runs"]]
        results["orders_per_s"], results["ceiling_per_s"] = spread(figures), spread(roofs)
        results["ratio"] = ceiling.ratio_summary(figures, roofs)
        results["checks"] = verify_stock_consistent(app)
        results["audit_chain"] = verify_audit_chain(app)
        results["ok"] = results["ok"] and all(results["checks"].values()) and results["audit_chain"]["intact"]
        results["aims"] = [{"aim": f"≥ 0.25 of the ceiling{' (hot SKU, no oversell)' if hot else ''}",
                            "measured": f"{results['ratio']['median']:.3f} ({results['orders_per_s']['median']:.0f}"
                                        f"/s of {results['ceiling_per_s']['median']:.0f}/s)",
                            "met": results["ratio"]["median"] >= 0.25 and results["ok"]}]
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
        with app.app_context():
            db.session.remove()
        dispose(app)
    return results


def print_api(results: dict) -> None:
    hot = results["benchmark"] == "api-hot"
    print(f"\n### {results['benchmark']}: POST /api/v1/orders on gunicorn ({results['workers']} sync workers), "
          f"{results['clients']} clients, {results['orders_per_run']} two-line orders per run"
          f"{', one hot SKU in every order' if hot else ', random SKUs'}\n")
    rows = [[i + 1, f"{r['orders_per_s']:.0f}", f"{r['ceiling_per_s']:.0f}",
             f"{r['orders_per_s'] / r['ceiling_per_s']:.3f}" if r["ceiling_per_s"] else "-", r["ok"],
             r["insufficient"], r["errors"]] for i, r in enumerate(results["runs"])]
    print(markdown_table(["run", "orders/s", "ceiling orders/s (pgbench, same run)", "ratio", "created",
                          "refused (409)", "errors"], rows))
    ratio = results["ratio"]
    print(f"\nmedian {rate_cell(results['orders_per_s'])} orders/s against a ceiling of "
          f"{rate_cell(results['ceiling_per_s'])}: ratio {ratio['median']:.3f} "
          f"({ratio['min']:.3f}–{ratio['max']:.3f})")
    cpu = [r["cpu_ms_per_order"] for r in results["runs"] if r.get("cpu_ms_per_order")]
    if cpu:
        parts = {part: statistics.median(c[part] for c in cpu) for part in ("client", "gunicorn", "postgres")}
        print(f"\nCPU per order created (median of runs, ms; {os.cpu_count()} cores): the app's gunicorn workers "
              f"{parts['gunicorn']:.1f}, PostgreSQL (all server processes) {parts['postgres']:.1f}, this bench's "
              f"client threads {parts['client']:.1f}; total {sum(parts.values()):.1f} ms, so at most "
              f"{os.cpu_count() * 1000 / sum(parts.values()):.0f} orders/s on these cores")
    first_error = next((r["first_error"] for r in results["runs"] if r["first_error"]), None)
    if first_error:
        print(f"\nfirst error: {first_error}")
    for run in results["runs"]:
        if run.get("checks") and not all(run["checks"].values()):
            print(f"\nFAILED checks: {run['checks']}")


