"""Invoices issued by a real RQ worker (`orderloom worker --burst`) against the invoicing simulator on loopback:
a submit that times out is resolved by the sweeper under the same serial, never issued twice."""
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from devtools.simulators.invoicing import InvoicingSimulator
from jobs import queues
from shared.extensions import db
from shared.models import InvoiceProfile, Sku
from shared.services import invoices, orders
from tests.factories import ADMIN, open_shop, order_payload
from tests.test_worker import ROOT, WORKER_TIMEOUT, _redis, _worker_env

USCC = "91110108551385082Q"  # a published example (tests/fixtures/finance/uscc_examples.json)


def _run_worker(database_url: str, provider_url: str) -> subprocess.CompletedProcess:
    env = {**_worker_env(database_url), "ORDERLOOM_INVOICE_PROVIDER_URL": provider_url,
           "ORDERLOOM_INVOICE_PROVIDER_TIMEOUT": "0.5"}
    command = [str(Path(sys.executable).parent / "orderloom"), "worker", "--burst"]
    try:
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=WORKER_TIMEOUT, cwd=ROOT)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the worker did not finish within {WORKER_TIMEOUT}s:\n{exc.stdout}\n{exc.stderr}")


def _seed(live_apps) -> list[int]:
    """Two orders of one buyer, each with its own invoice request (one split over the limit)."""
    with live_apps.core.app_context():
        open_shop(units=50)
        sku = db.session.scalars(select(Sku).where(Sku.code == "SKU-1")).one()
        sku.tax_code, sku.tax_short_name, sku.tax_rate, sku.tax_unit = "1010115010100000000", "茶叶", 13, "袋"
        db.session.commit()
        made = []
        for lines in ([{"sku": "SKU-1", "quantity": 1, "unit_price": "59.90"}],
                      [{"sku": "SKU-1", "quantity": 3, "unit_price": "4000.00"}]):
            order = orders.create_order(order_payload(lines=lines), ADMIN)
            db.session.commit()
            profile = InvoiceProfile(customer_id=order.customer_id, kind="enterprise", name="杭州示例科技有限公司",
                                     tax_id=USCC)
            db.session.add(profile)
            db.session.commit()
            made.append(invoices.request_invoice([order.order_no], profile.id, "normal", ADMIN).id)
            db.session.commit()
        return made


@pytest.mark.live
@pytest.mark.parametrize("live_apps", ["postgresql"], indirect=True)
def test_a_real_worker_issues_invoices_and_survives_a_provider_timeout(live_apps):
    from rq import Queue
    from rq.job import Job, JobStatus

    redis = _redis()
    redis.flushdb()  # only this test's Redis database (TEST_REDIS_URL), never FLUSHALL
    with InvoicingSimulator(issue_after_polls=1) as sim:
        first, split = _seed(live_apps)
        redis.flushdb()  # whatever the commits queued: the test enqueues its own jobs, in a known order
        sim.time_out("nuonuo.OpeMplatform.requestBillingNew", times=1, seconds=1.5)
        queue = Queue(queues.DEFAULT, connection=redis)
        jobs = [queue.enqueue("jobs.invoices.submit_invoice_request", first),   # times out: left pending
                queue.enqueue("jobs.invoices.submit_invoice_request", split),
                queue.enqueue("jobs.invoices.sweep_invoice_requests"),          # resubmits the same serial
                queue.enqueue("jobs.invoices.submit_invoice_request", split)]   # a repeat: nothing to send
        finished = _run_worker(live_apps.url, sim.base_url)
        output = f"stdout:\n{finished.stdout}\nstderr:\n{finished.stderr}"
        assert finished.returncode == 0, output
        results = [Job.fetch(j.id, connection=redis) for j in jobs]
        assert [j.get_status() for j in results] == [JobStatus.FINISHED] * 4, output
        assert results[0].return_value()["timeouts"] == 1 and results[0].return_value()["status"] == "requested"
        assert results[3].return_value()["submitted"] == 0
        with live_apps.core.app_context():
            timed_out = invoices.get_request(first)
            assert timed_out.status == "issued", output
            big = invoices.get_request(split)
            assert big.status == "issued" and len(big.parts) == 2
            assert sum(part.total_gross for part in big.parts) == Decimal("12008.00")
            numbers = [part.number for r in (timed_out, big) for part in r.parts]
            assert len(set(numbers)) == 3 and all(len(n) == 20 for n in numbers)
        # the provider holds exactly one invoice per part: the timed-out submit was not issued twice
        assert len(sim.invoices) == 3
