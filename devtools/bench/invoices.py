"""`orderloom bench invoices`: invoice requests issued end to end through the invoicing simulator over real HTTP by
two real RQ workers (`orderloom worker`), beside the ceiling measured in the same run.

Each run: N orders of one buyer (taxed SKU) each get an invoice request (`invoices.request_invoice`, jobs inline, so
nothing is queued: set-up, timed apart); a fresh simulator serves on loopback; the workers are started and waited
for; then the clock starts, N `submit_invoice_request` jobs are enqueued, and it stops when every request is
`issued` in the database. A job reads the credit line, submits the part, polls it once (the simulator issues on the
first query): three signed HTTP calls per request, and the part's commit. The PDF render each issue queues on the
`documents` queue comes after every submit (a worker takes its queues in order) and is not in the figure (`bench
invoice-pdf` measures it); the workers are stopped when the clock stops.

The ceiling, same run: the same three calls per request (credit line, requestBillingNew, queryInvoiceResult) through
the same adapter (shared/finance/providers/nuonuo.py: signing, a new connection per call, as the workers do) from
as many plain threads as workers, against a fresh simulator in the same process, no database, no queue: the
HTTP + simulator floor. The ratio is figure / ceiling.
"""
import statistics
import threading
import time
from decimal import Decimal

from devtools.bench.orders import BENCH_ACTOR, bench_config, markdown_table, progress

AIM_PER_S = 20  # issue 12: 1,000 invoices issued end to end through the simulator with 2 workers
SELLER_TAX_ID = "91310000MA1FL8TQ7X"  # the configured default (ORDERLOOM_INVOICE_SELLER_TAX_ID)
BUYER_TAX_ID = "91110108551385082Q"  # a published example (tests/fixtures/finance/uscc_examples.json)
TAX = {"tax_code": "1010115010100000000", "tax_short_name": "茶叶", "tax_rate": 13, "tax_unit": "袋"}
CHANNEL, WAREHOUSE, SKU = "OS", "HZ1", "BENCH-TEA"


def _setup_shop(units: int) -> None:
    """Channel, warehouse, one taxed SKU with `units` on hand."""
    from sqlalchemy import select

    from shared.extensions import db
    from shared.models import Sku
    from shared.services import catalog, stock

    catalog.create_channel(CHANNEL, "官网商城", "own_shop", BENCH_ACTOR)
    catalog.create_warehouse({"code": WAREHOUSE, "name": "杭州仓", "province": "浙江省", "city": "杭州市"},
                             BENCH_ACTOR)
    catalog.create_sku({"sku": SKU, "name": "龙井茶 250g"}, BENCH_ACTOR)
    stock.adjust_stock(SKU, WAREHOUSE, units, "bench opening stock", BENCH_ACTOR, kind="receipt")
    sku = db.session.scalars(select(Sku).where(Sku.code == SKU)).one()
    for key, value in TAX.items():
        setattr(sku, key, value)
    db.session.commit()


def _order(n: int) -> dict:
    from datetime import timedelta

    from shared.timekeeping import utc_now

    placed = (utc_now() - timedelta(minutes=5)).isoformat()
    return {"channel": CHANNEL, "channel_order_id": f"BINV{n:08d}", "placed_at": placed, "paid_at": placed,
            "currency": "CNY", "customer": {"name": "杭州示例科技有限公司", "phone": "13800000001", "email": None},
            "shipping_address": {"receiver": "王芳", "phone": "13800000001", "province": "浙江省", "city": "杭州市",
                                 "district": "西湖区", "street": "文三路 90 号", "postal_code": "310012"},
            "lines": [{"sku": SKU, "quantity": 1, "unit_price": "59.90"}], "shipping_fee": "8.00",
            "discount": "0.00"}


def make_requests(app, count: int, first: int) -> tuple[list[int], float]:
    """`count` orders and one invoice request each (nothing queued); returns their ids and the seconds it took."""
    from shared.extensions import db
    from shared.models import InvoiceProfile
    from shared.services import invoices, orders

    started = time.perf_counter()
    ids, profile_id = [], None
    with app.app_context():
        for n in range(first, first + count):
            order = orders.create_order(_order(n), BENCH_ACTOR)
            db.session.commit()
            if profile_id is None:
                profile = InvoiceProfile(customer_id=order.customer_id, kind="enterprise", name="杭州示例科技有限公司",
                                         tax_id=BUYER_TAX_ID, address="杭州市西湖区文三路 90 号",
                                         phone="0571-88888888", is_default=True, created_by="staff")
                db.session.add(profile)
                db.session.commit()
                profile_id = profile.id
            ids.append(invoices.request_invoice([order.order_no], profile_id, "normal", BENCH_ACTOR).id)
            db.session.commit()
        db.session.remove()
    return ids, time.perf_counter() - started


def _issued(app, ids: list[int]) -> int:
    from sqlalchemy import func, select

    from shared.extensions import db
    from shared.models.invoices import InvoiceRequest

    with app.app_context():
        found = db.session.scalar(select(func.count()).select_from(InvoiceRequest).where(
            InvoiceRequest.id.in_(ids), InvoiceRequest.status == "issued"))
        db.session.remove()
    return int(found)


def _wait_for_workers(redis, count: int, timeout: float = 120) -> None:
    from rq import Worker

    deadline = time.monotonic() + timeout
    while len(Worker.all(connection=redis)) < count:
        if time.monotonic() > deadline:
            raise SystemExit(f"bench invoices: {count} workers did not register within {timeout:.0f}s "
                             "(see bench-results/workers.log)")
        time.sleep(0.2)


def _start_workers(url: str, redis_url: str, count: int, provider_url: str, overrides: dict | None = None) -> list:
    """`orderloom worker` processes (SimpleWorker: no fork per job, as `bench ingest` runs them) on the simulator."""
    import subprocess
    import sys
    from pathlib import Path

    from devtools.bench.orders import RESULTS_DIR
    from devtools.bench.sync import worker_env

    RESULTS_DIR.mkdir(exist_ok=True)
    log = open(RESULTS_DIR / "workers.log", "ab")  # noqa: SIM115  (kept open by the workers)
    env = {**worker_env(url, redis_url, overrides), "ORDERLOOM_INVOICE_PROVIDER_URL": provider_url}
    command = [str(Path(sys.executable).parent / "orderloom"), "worker", "--simple"]
    return [subprocess.Popen(command, cwd=RESULTS_DIR.parent, env=env, stdout=subprocess.DEVNULL, stderr=log)
            for _ in range(count)]


def run_issue(app, url: str, redis_url: str, ids: list[int], workers: int, timeout: float,
              overrides: dict | None = None) -> dict:
    """Start the workers and a fresh simulator, enqueue a submit per request, time until all are issued."""
    from redis import Redis
    from rq import Queue

    from devtools.bench.sync import WorkerMeter, stop_workers
    from devtools.simulators.invoicing import InvoicingSimulator
    from jobs import queues

    redis = Redis.from_url(redis_url)
    redis.flushdb()
    with InvoicingSimulator(credit_total=Decimal("1000000000.00"), issue_after_polls=1) as sim:
        processes = _start_workers(url, redis_url, workers, sim.base_url, overrides)
        try:
            _wait_for_workers(redis, workers)
            meter = WorkerMeter(processes)
            queue = Queue(queues.DEFAULT, connection=redis)
            started = time.perf_counter()
            for request_id in ids:
                queue.enqueue("jobs.invoices.submit_invoice_request", request_id)
            done, deadline = 0, started + timeout
            while done < len(ids) and time.perf_counter() < deadline:
                time.sleep(0.25)
                meter.sample()
                done = _issued(app, ids)
            seconds = time.perf_counter() - started
            meter.sample()
        finally:
            stop_workers(processes)
            redis.flushdb()
        calls = len(sim.requests)
    return {"requests": len(ids), "issued": done, "seconds": seconds, "rate": done / seconds,
            "simulator_calls": calls, "workers": meter.figures(), "ok": done == len(ids)}


def run_ceiling(count: int, threads: int) -> dict:
    """The same three calls per request from `threads` plain threads through the adapter, no database."""
    from devtools.simulators.invoicing import InvoicingSimulator
    from shared.finance import invoice_math
    from shared.finance.invoice_math import SourceLine, SplitRules, TaxData
    from shared.finance.providers.nuonuo import NuonuoProvider, order_payload

    (part,) = invoice_math.invoice_parts(
        [SourceLine(name="龙井茶 250g", quantity=1, gross=Decimal("59.90"),
                    tax=TaxData(code=TAX["tax_code"], short_name="茶叶", rate=13, tax_free=None, unit="袋"),
                    ref="x")], Decimal("0.00"), Decimal("8.00"), invoice_math.shipping_tax({}), SplitRules(), "运费")
    buyer = {"name": "杭州示例科技有限公司", "tax_id": BUYER_TAX_ID}
    errors: list[str] = []
    with InvoicingSimulator(credit_total=Decimal("1000000000.00"), issue_after_polls=1) as sim:
        provider = NuonuoProvider(sim.base_url, sim.app_key, sim.app_secret, SELLER_TAX_ID, timeout=10)
        serials = iter(range(count))
        lock = threading.Lock()

        def client():
            while True:
                with lock:
                    n = next(serials, None)
                if n is None:
                    return
                serial = f"CEIL{n:08d}-1"
                provider.credit_line()
                provider.submit(serial, order_payload(serial, part, "normal", buyer, SELLER_TAX_ID, "bench",
                                                      "2026-12-03 00:00:00"))
                if provider.query(serial).status != "issued":
                    errors.append(serial)

        pool = [threading.Thread(target=client, name=f"bench-ceiling-{i}") for i in range(threads)]
        started = time.perf_counter()
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()
        seconds = time.perf_counter() - started
    return {"requests": count, "seconds": seconds, "rate": count / seconds, "errors": len(errors)}


def run_invoices(url: str, redis_url: str, count: int = 1000, workers: int = 2, repeat: int = 3,
                 timeout: float = 600, overrides: dict | None = None) -> dict:
    """`repeat` runs of `count` requests in one schema (new orders each run), each beside its ceiling."""
    from portal import create_app

    app = create_app(bench_config(url, overrides, pool_size=5))
    with app.app_context():
        _setup_shop(count * repeat + 10)
    results = {"benchmark": "invoices", "requests_per_run": count, "workers": workers, "repeat": repeat,
               "runs": [], "ok": True}
    for round_no in range(repeat):
        progress(f"invoices: run {round_no + 1}/{repeat}: {count} orders and invoice requests")
        ids, setup_s = make_requests(app, count, round_no * count)
        progress(f"invoices: run {round_no + 1}/{repeat}: issuing through the simulator with {workers} workers")
        issued = run_issue(app, url, redis_url, ids, workers, timeout, overrides)
        progress(f"invoices: run {round_no + 1}/{repeat}: {issued['rate']:.1f}/s; the ceiling")
        roof = run_ceiling(count, workers)
        results["runs"].append({"setup_s": setup_s, "issue": issued, "ceiling": roof,
                                "ratio": issued["rate"] / roof["rate"]})
        results["ok"] = results["ok"] and issued["ok"] and roof["errors"] == 0
    rates = [run["issue"]["rate"] for run in results["runs"]]
    roofs = [run["ceiling"]["rate"] for run in results["runs"]]
    ratios = [run["ratio"] for run in results["runs"]]
    results["figure"] = {"median": statistics.median(rates), "min": min(rates), "max": max(rates)}
    results["ceiling"] = {"median": statistics.median(roofs), "min": min(roofs), "max": max(roofs)}
    results["ratio"] = {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios)}
    met = results["figure"]["median"] >= AIM_PER_S
    results["aims"] = [{"aim": f"≥ {AIM_PER_S} invoices/s issued end to end with {workers} workers (median)",
                        "measured": f"{results['figure']['median']:.1f}/s, ceiling "
                                    f"{results['ceiling']['median']:.1f}/s, ratio {results['ratio']['median']:.3f}",
                        "met": met}]
    with app.app_context():
        from shared.extensions import db

        db.session.remove()
        db.engine.dispose()
    return results


def print_invoices(results: dict) -> None:
    rows = []
    for index, run in enumerate(results["runs"], 1):
        issue, roof = run["issue"], run["ceiling"]
        cpu = ", ".join(f"{w['cpu_s']:.1f}" for w in issue["workers"])
        rows.append([index, f"{run['setup_s']:.1f}", f"{issue['issued']}/{issue['requests']}",
                     f"{issue['seconds']:.1f}", f"{issue['rate']:.1f}", cpu, f"{roof['rate']:.1f}",
                     f"{run['ratio']:.3f}"])
    print(markdown_table(["run", "set-up s", "issued", "seconds", "issued/s", "worker CPU s", "ceiling/s", "ratio"],
                         rows))
    figure, roof, ratio = results["figure"], results["ceiling"], results["ratio"]
    print(f"\nmedian {figure['median']:.1f}/s ({figure['min']:.1f}–{figure['max']:.1f}) beside a ceiling of "
          f"{roof['median']:.1f}/s ({roof['min']:.1f}–{roof['max']:.1f}): ratio {ratio['median']:.3f}; aim "
          f"≥ {AIM_PER_S}/s {'met' if results['aims'][0]['met'] else 'not met'}")
