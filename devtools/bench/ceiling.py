"""Where the machine stops, measured in the same run as the figure it is compared with.

`orderloom bench ceiling` drives pgbench (a C client) through the minimal writes of one order, in one
transaction, on the real tables of a migrated bench schema: the order row, its two line rows (one multi-row
INSERT), one audit row, then two conditional stock UPDATEs (in SKU order) and COMMIT. The UPDATEs come last,
as in `create_order`, so a hot row is locked only from its UPDATE to the commit: the strongest ordering of
these writes, hence the honest ceiling. Every throughput benchmark
reports its own figure beside this ceiling as a ratio, with the spread of that ratio over its runs.

Two variants: `many` (both lines on random SKUs out of thousands) and `hot` (every order takes one unit of
the same SKU, plus one random SKU), because a hot row serialises its writers and has a lower ceiling.
"""
import os
import re
import shutil
import statistics
import subprocess
import tempfile
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

PGBENCH_CANDIDATES = ("pgbench", "/usr/lib/postgresql/15/bin/pgbench")
CEILING_CHANNEL = "CL"
CEILING_SCRIPT = """\\set a random(:first_sku, :last_sku)
\\set b random(:first_sku, :last_sku)
\\set lo {lo}
\\set hi {hi}
BEGIN;
INSERT INTO orders (order_no, channel_id, channel_order_id, customer_id, warehouse_id, status, payment_status,
  refund_status, currency, goods_total, shipping_fee, discount, tax, total, receiver_name, receiver_phone,
  receiver_phone_index, province, city, district, street, placed_at, paid_at, created_at, updated_at, version)
  VALUES ('CL' || nextval('ceiling_numbers'), :channel, 'CL-' || currval('ceiling_numbers'), :customer, :wh,
  'confirmed', 'paid', 'none', 'CNY', 187.90, 8.00, 0.00, 0.00, 195.90, 'v1-ceiling-name', 'v1-ceiling-phone',
  'ceiling-index', '浙江省', '杭州市', '西湖区', 'v1-ceiling-street', now(), now(), now(), now(), 1);
INSERT INTO order_lines (order_id, sku_id, quantity, unit_price, line_total)
  VALUES (currval('orders_id_seq'), :lo, 1, 59.90, 59.90), (currval('orders_id_seq'), :hi, 1, 128.00, 128.00);
INSERT INTO ceiling_audit_events (occurred_at, actor_label, action, entity_type, entity_id, after, row_mac, key_id)
  VALUES (now(), 'ceiling', 'order.create', 'order', 'CL' || currval('ceiling_numbers'),
  '{{"status": "confirmed", "total": "195.90"}}',
  encode(sha256(('CL' || currval('ceiling_numbers'))::bytea), 'hex'), 'ceiling');
UPDATE stock_levels SET reserved = reserved + 1, updated_at = now()
  WHERE sku_id = :lo AND warehouse_id = :wh AND on_hand - reserved - held >= 1;
UPDATE stock_levels SET reserved = reserved + 1, updated_at = now()
  WHERE sku_id = :hi AND warehouse_id = :wh AND on_hand - reserved - held >= 1;
COMMIT;
"""


class CeilingUnavailable(Exception):
    """pgbench is not installed or not usable against this database."""


def pgbench_path() -> str:
    for candidate in PGBENCH_CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    raise CeilingUnavailable("pgbench is not installed (Debian: apt-get install postgresql-contrib)")


def _libpq_env(url: str) -> tuple[list[str], dict]:
    """pgbench connection arguments and environment for a SQLAlchemy URL with a search_path option."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        raise CeilingUnavailable("the ceiling is measured on PostgreSQL only")
    args = ["-h", parsed.host or "127.0.0.1", "-p", str(parsed.port or 5432), "-U", parsed.username or "postgres",
            parsed.database or "postgres"]
    env = dict(os.environ)
    if parsed.password:
        env["PGPASSWORD"] = parsed.password
    options = parsed.query.get("options")
    if options:
        env["PGOPTIONS"] = options if isinstance(options, str) else " ".join(options)
    return args, env


def prepare(url: str, skus: int = 2000, units: int = 10_000_000, overrides: dict | None = None) -> dict:
    """Seed what the minimal writes need beside whatever the benchmark seeded: a channel, a customer, a
    warehouse and `skus` SKUs with plenty of stock, the hot one first (lowest id, locked first, as the
    application locks rows in SKU order). Returns the pgbench variables."""
    from shared.models import Channel, Customer, Sku, StockLevel, StockMovement, Warehouse

    from devtools.bench.orders import core_app, dispose
    from shared.extensions import db

    app = core_app(url, overrides, pool_size=2)
    try:
        with app.app_context():
            connection = db.session
            connection.execute(sa.text("CREATE SEQUENCE IF NOT EXISTS ceiling_numbers"))
            # The audit row goes to a twin of audit_events (same columns and indexes, its own ids, no triggers):
            # the same write, without putting rows the sealer never wrote into the real chain beside the run.
            connection.execute(sa.text("CREATE TABLE IF NOT EXISTS ceiling_audit_events "
                                       "(LIKE audit_events INCLUDING INDEXES)"))
            connection.execute(sa.text("DO $$ BEGIN ALTER TABLE ceiling_audit_events ALTER COLUMN id "
                                       "ADD GENERATED BY DEFAULT AS IDENTITY; "
                                       "EXCEPTION WHEN others THEN NULL; END $$"))  # prepared before: kept
            channel = connection.execute(sa.insert(Channel.__table__).values(
                code=CEILING_CHANNEL, name="ceiling", kind="own_shop").returning(Channel.__table__.c.id)).scalar_one()
            customer = connection.execute(sa.insert(Customer.__table__).values(
                name="v1:ceiling", phone="v1:ceiling", phone_index="ceiling-customer")
                .returning(Customer.__table__.c.id)).scalar_one()
            warehouse = connection.execute(sa.insert(Warehouse.__table__).values(
                code="CEIL-WH", name="ceiling", province="浙江省", city="杭州市")
                .returning(Warehouse.__table__.c.id)).scalar_one()
            connection.execute(sa.insert(Sku.__table__), [
                {"code": f"CEIL-{n:06d}", "name": f"ceiling {n}"} for n in range(1, skus + 1)])
            ids = connection.execute(sa.select(Sku.__table__.c.id).where(Sku.__table__.c.code.like("CEIL-%"))
                                     .order_by(Sku.__table__.c.id)).scalars().all()
            connection.execute(sa.insert(StockLevel.__table__), [
                {"sku_id": sku_id, "warehouse_id": warehouse, "on_hand": units, "reserved": 0, "held": 0}
                for sku_id in ids])
            connection.execute(sa.insert(StockMovement.__table__), [
                {"sku_id": sku_id, "warehouse_id": warehouse, "delta": units, "on_hand_after": units,
                 "kind": "receipt", "reason": "ceiling opening stock"} for sku_id in ids])
            db.session.commit()
    finally:
        dispose(app)
    return {"channel": channel, "customer": customer, "wh": warehouse, "first_sku": min(ids), "last_sku": max(ids),
            "hot_sku": min(ids)}


def run_pgbench(url: str, variables: dict, hot: bool, clients: int = 8, seconds: int = 10) -> dict:
    """One pgbench run; returns transactions per second (orders/s) and the failure count."""
    lo, hi = (":hot_sku", ":b") if hot else ("least(:a, :b)", "greatest(:a, :b)")
    if hot:
        variables = {**variables, "first_sku": variables["first_sku"] + 1}  # the second line: never the hot SKU
    script = CEILING_SCRIPT.format(lo=lo, hi=hi)
    with tempfile.TemporaryDirectory(prefix="orderloom-ceiling-") as folder:
        path = Path(folder) / "order.sql"
        path.write_text(script)
        connect, env = _libpq_env(url)
        command = [pgbench_path(), "-n", "-f", str(path), "-c", str(clients), "-j", str(min(clients, 2)),
                   "-T", str(seconds), "-M", "prepared"]
        for name, value in variables.items():
            command += ["-D", f"{name}={value}"]
        done = subprocess.run(command + connect, capture_output=True, text=True, env=env, timeout=seconds + 120)
    _give_back(url, variables["wh"])
    if done.returncode != 0:
        raise CeilingUnavailable(f"pgbench failed: {done.stderr.strip()[-500:]}")
    tps = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", done.stdout)
    failed = re.search(r"number of failed transactions: (\d+)", done.stdout)
    processed = re.search(r"number of transactions actually processed: (\d+)", done.stdout)
    if tps is None:
        raise CeilingUnavailable(f"unexpected pgbench output: {done.stdout[-500:]}")
    return {"orders_per_s": float(tps.group(1)), "failed": int(failed.group(1)) if failed else 0,
            "transactions": int(processed.group(1)) if processed else 0}


def _give_back(url: str, warehouse_id: int) -> None:
    """The ceiling's reservations belong to no order: return them, so the benchmark's stock checks still hold."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(sa.text("UPDATE stock_levels SET reserved = 0 WHERE warehouse_id = :wh"),
                               {"wh": warehouse_id})
    finally:
        engine.dispose()


def ratio_summary(figures: list[float], ceilings: list[float]) -> dict:
    """Figure against ceiling, run by run (each pair measured back to back), with median and spread."""
    ratios = [f / c for f, c in zip(figures, ceilings) if c]
    if not ratios:
        return {"median": 0.0, "min": 0.0, "max": 0.0, "runs": []}
    return {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios), "runs": ratios}


def run_ceiling(url: str, clients: int = 8, seconds: int = 10, repeat: int = 3, skus: int = 2000,
                variants: tuple[str, ...] = ("many", "hot"), overrides: dict | None = None) -> dict:
    """`orderloom bench ceiling`: both variants, `repeat` times each, interleaved."""
    from devtools.bench.orders import spread

    variables = prepare(url, skus=skus, overrides=overrides)
    runs: dict[str, list[dict]] = {variant: [] for variant in variants}
    for _ in range(repeat):
        for variant in variants:
            runs[variant].append(run_pgbench(url, variables, variant == "hot", clients, seconds))
    rows = [{"variant": variant, "clients": clients, "seconds": seconds,
             "orders_per_s": spread([r["orders_per_s"] for r in results]),
             "failed": sum(r["failed"] for r in results)} for variant, results in runs.items()]
    return {"benchmark": "ceiling", "rows": rows, "ok": all(row["failed"] == 0 for row in rows),
            "script": CEILING_SCRIPT}


def print_ceiling(results: dict) -> None:
    from devtools.bench.orders import rate_cell, markdown_table

    print("\n### ceiling: pgbench, minimal writes of one order (2 conditional stock UPDATEs, order, 2 lines, "
          "audit row, one transaction)\n")
    print(markdown_table(["variant", "clients", "seconds per run", "orders/s median (min–max)", "failed"],
                         [[r["variant"], r["clients"], r["seconds"], rate_cell(r["orders_per_s"]), r["failed"]]
                          for r in results["rows"]]))


def repeat_with_ceiling(name: str, base_url: str | None, repeat: int, run_once, figure, clients: int = 8,
                        seconds: int = 10, overrides: dict | None = None) -> dict:
    """Run a throughput benchmark `repeat` times, each in a fresh schema, and measure the ceiling (many SKUs)
    in that same schema right after it: every figure beside the ceiling of its own run, as a ratio."""
    from devtools.bench.orders import progress, bench_database, spread

    runs = []
    for rep in range(repeat):
        with bench_database(f"{name}-{rep}", base_url) as url:
            progress(f"{name}: run {rep + 1}/{repeat}")
            result = run_once(url)
            progress(f"{name}: ceiling for run {rep + 1}/{repeat}")
            roof = run_pgbench(url, prepare(url, overrides=overrides), False, clients, seconds)
            runs.append({"result": result, "figure": figure(result), "ceiling_per_s": roof["orders_per_s"]})
    figures, roofs = [r["figure"] for r in runs], [r["ceiling_per_s"] for r in runs]
    return {"benchmark": name, "runs": runs, "figure": spread(figures), "ceiling_per_s": spread(roofs),
            "ratio": ratio_summary(figures, roofs), "ok": all(r["result"]["ok"] for r in runs)}


def print_with_ceiling(results: dict, unit: str) -> None:
    from devtools.bench.orders import rate_cell, markdown_table

    print(f"\n### {results['benchmark']} beside the ceiling (pgbench, minimal order writes, 8 clients, same schema)\n")
    print(markdown_table(["run", unit, "ceiling orders/s", "ratio", "checks"],
                         [[i + 1, f"{r['figure']:,.0f}", f"{r['ceiling_per_s']:,.0f}",
                           f"{r['figure'] / r['ceiling_per_s']:.3f}" if r["ceiling_per_s"] else "-",
                           "ok" if r["result"]["ok"] else "FAILED"] for i, r in enumerate(results["runs"])]))
    ratio = results["ratio"]
    print(f"\nmedian {rate_cell(results['figure'])} {unit}, ceiling {rate_cell(results['ceiling_per_s'])}: "
          f"ratio {ratio['median']:.3f} ({ratio['min']:.3f}–{ratio['max']:.3f})")
