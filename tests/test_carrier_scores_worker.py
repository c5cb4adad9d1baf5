"""The monthly carrier-score job through a real RQ worker (the `orderloom worker --burst` console script) on Redis, on
both databases: last month's scores stored per carrier and route, the carrier under 85 de-weighted (audited as the
system, with its reason), a rerun in the same month doing nothing, and allocation then choosing the other carrier."""
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select

from jobs import queues
from shared.extensions import db
from shared.models import AuditEvent, CarrierScore, CarrierStanding, Shipment
from shared.models.parcels import ANY
from shared.services import allocation, catalog, orders, stock
from tests.factories import ADMIN, order_payload
from tests.test_worker import _redis, _run_worker

JOB = "jobs.carrier_scores.score_carriers"
NOW = datetime(2026, 11, 3, 2, 0, tzinfo=UTC)  # early November: October is the month to score


def _seed(live_apps) -> None:
    """In October: YTO 30 parcels, 20 delivered in 30 h and 10 in 90 h; SF 30 parcels, all in 30 h."""
    with live_apps.core.app_context():
        catalog.create_channel("OS", "官网商城", "own_shop", ADMIN)
        warehouse = catalog.create_warehouse({"code": "HZ1", "name": "杭州仓", "province": "浙江省", "city": "杭州市",
                                              "carriers": "YTO,SF"}, ADMIN)
        catalog.create_sku({"sku": "SKU-1", "name": "龙井茶 250g"}, ADMIN)
        stock.adjust_stock("SKU-1", "HZ1", 500, "opening stock", ADMIN, kind="receipt")
        db.session.flush()
        shipped = datetime(2026, 10, 12, 2, 0, tzinfo=UTC)
        for n in range(60):
            carrier, late = ("YTO", n % 3 == 0) if n < 30 else ("SF", False)
            order = orders.create_order(order_payload(channel_order_id=f"W{n}"), ADMIN)
            db.session.flush()
            db.session.add(Shipment(order_id=order.id, warehouse_id=warehouse.id, status="delivered", priority=0,
                                    carrier_code=carrier, waybill_no=f"WB{n:012d}", shipped_at=shipped,
                                    delivered_at=shipped + timedelta(hours=90 if late else 30)))
        db.session.commit()


@pytest.mark.live
@pytest.mark.parametrize("live_apps", ["postgresql", "sqlite"], indirect=True)
def test_the_monthly_job_scores_de_weights_and_routing_follows(live_apps):
    from rq import Queue
    from rq.job import Job, JobStatus

    redis = _redis()
    redis.flushdb()  # only this test's Redis database (TEST_REDIS_URL), never FLUSHALL
    _seed(live_apps)
    queue = Queue(queues.DEFAULT, connection=redis)
    first = queue.enqueue(JOB, kwargs={"now": NOW.isoformat()})
    again = queue.enqueue(JOB, kwargs={"now": (NOW + timedelta(days=1)).isoformat()})

    finished = _run_worker(live_apps.url, "--simple")

    output = f"stdout:\n{finished.stdout}\nstderr:\n{finished.stderr}"
    assert finished.returncode == 0, output
    first, again = Job.fetch(first.id, connection=redis), Job.fetch(again.id, connection=redis)
    assert (first.get_status(), again.get_status()) == (JobStatus.FINISHED, JobStatus.FINISHED), output
    # YTO: on time 20/30 (0.4 weight), never stalled (0.3): (0.4 × 2/3 + 0.3) / 0.7 = 80.95; SF: 100.
    assert first.return_value() == {"month": "2026-10-01", "rows": 4, "deweighted": ["YTO"], "restored": []}, output
    assert again.return_value() == {"month": "2026-10-01", "skipped": True}, output
    with live_apps.core.app_context():
        october = date(2026, 10, 1)
        wide = {row.carrier_code: row.score for row in db.session.execute(select(CarrierScore).where(
            CarrierScore.month == october, CarrierScore.origin_province == ANY)).scalars()}
        assert {code: str(score) for code, score in wide.items()} == {"YTO": "80.95", "SF": "100.00"}
        standing = db.session.get(CarrierStanding, "YTO")
        assert standing.deweighted and standing.reason == "Score 80.95 in 2026-10 is under 85.00"
        events = db.session.execute(select(AuditEvent).where(AuditEvent.action == "carrier.deweight")).scalars().all()
        assert [(e.entity_id, e.actor_label, e.reason) for e in events] == [("YTO", "system", standing.reason)]
        order = orders.create_order(order_payload(channel_order_id="AFTER"), ADMIN)
        db.session.commit()
        assert allocation.allocate(order, ADMIN).carrier_code == "SF"
    assert redis.llen(f"rq:queue:{queues.DEFAULT}") == 0
