"""A bulk action worked through by a real RQ worker (the `orderloom worker --burst` console script) from Redis."""
import pytest
from sqlalchemy import select

from jobs import queues
from shared.actors import Actor
from shared.extensions import db
from shared.models import AuditEvent, BulkJob
from shared.services import bulk_actions, orders, staff
from tests.factories import ADMIN, PASSWORD, open_shop, order_payload
from tests.test_worker import _redis, _run_worker


def _seed(live_apps) -> dict:
    """Two confirmed orders and one on hold, an operations manager, and a bulk hold of all three, queued."""
    with live_apps.core.app_context():
        open_shop()
        numbers = []
        for n in range(3):
            order = orders.create_order(order_payload(channel_order_id=f"BULK-{n}"), ADMIN)
            if order.status != "confirmed":
                orders.transition_order(order, "confirmed", ADMIN, reason="test")
            numbers.append(order.order_no)
        orders.transition_order(orders.get_order(numbers[2]), "on_hold", ADMIN, reason="test")
        user = staff.create_user("lin", PASSWORD, "ops_manager", ADMIN, display_name="林经理")
        db.session.commit()
        job = bulk_actions.start("hold", Actor.for_staff(user, ip="10.1.1.1"), order_nos=numbers, reason="盘点")
        db.session.commit()
        return {"job": job.id, "orders": numbers}


@pytest.mark.live
@pytest.mark.parametrize("live_apps", ["postgresql", "sqlite"], indirect=True)
def test_a_worker_runs_each_bulk_action_once_with_a_result_per_order(live_apps):
    from rq import Queue
    from rq.job import Job, JobStatus

    redis = _redis()
    redis.flushdb()  # only the test database (TEST_REDIS_URL), never FLUSHALL
    made = _seed(live_apps)
    queue = Queue(bulk_actions.QUEUE, connection=redis)
    jobs = [queue.enqueue(bulk_actions.RUN_JOB, made["job"], job_timeout=bulk_actions.JOB_TIMEOUT),
            queue.enqueue(bulk_actions.RUN_JOB, made["job"])]  # sent twice (a retry): worked through once

    finished = _run_worker(live_apps.url)

    output = f"stdout:\n{finished.stdout}\nstderr:\n{finished.stderr}"
    assert finished.returncode == 0, output
    jobs = [Job.fetch(j.id, connection=redis) for j in jobs]
    assert [j.get_status() for j in jobs] == [JobStatus.FINISHED] * 2, output
    assert [j.return_value() for j in jobs] == ["done", "skipped"], output
    with live_apps.core.app_context():
        job = db.session.get(BulkJob, made["job"])
        assert (job.status, job.total, job.done_count, job.refused_count) == ("done", 3, 2, 1)
        results = {item.order_no: (item.outcome, item.code) for item in bulk_actions.items_of(job)}
        first, second, held = made["orders"]
        assert results == {first: ("done", None), second: ("done", None), held: ("refused", "invalid_transition")}
        moved = db.session.execute(select(AuditEvent.entity_id).where(
            AuditEvent.action == "order.transition", AuditEvent.actor_label == "lin")).scalars().all()
        assert sorted(moved) == sorted([first, second])
        assert [orders.get_order(no).status for no in made["orders"]] == ["on_hold"] * 3
    assert redis.llen(f"rq:queue:{queues.DEFAULT}") == 0
