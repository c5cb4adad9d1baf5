"""The exception jobs through a real RQ worker (the `orderloom worker --burst` console script) on Redis, with time
controlled by the job's `now` argument: the SLA clock breaches and escalates to the team lead, an hour later to the
lead's superior, sends the robot its messages, and a rerun does nothing; the feed raises each problem once."""
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from jobs import queues
from jobs.schedule import SCHEDULE, TIMEOUTS
from shared.actors import SYSTEM
from shared.extensions import db
from shared.models import ExceptionCase, Order, StatusMapping
from shared.services import exceptions, orders, roles, staff
from tests.factories import ADMIN, PASSWORD, open_shop, order_payload
from tests.robot_receiver import RobotReceiver
from tests.test_worker import _redis, _run_worker

SLA_JOB = "jobs.exceptions.check_exception_slas"
FEED_JOB = "jobs.exceptions.feed_exceptions"
T0 = datetime(2026, 11, 2, 2, 0, tzinfo=UTC)


def _seed(live_apps) -> dict:
    with live_apps.core.app_context():
        manager = staff.create_user("ops_boss", PASSWORD, "ops_manager", ADMIN)
        lead = staff.create_user("fin_lead", PASSWORD, "finance", ADMIN)
        db.session.flush()
        ops = roles.create_team("ops", "运营部", "Operations", ADMIN, lead=manager)
        roles.create_team("finance", "财务组", "Finance", ADMIN, lead=lead, parent=ops)
        row = exceptions.raise_exception("payment_not_received", "payment_not_received:order:77",
                                         "paid there, unpaid here", SYSTEM, now=T0)
        db.session.commit()
        return {"exception": row.id, "lead": lead.id, "manager": manager.id}


def _run(live_apps, jobs: list[tuple[str, dict]], robot_url: str | None = None):
    from rq import Queue
    from rq.job import Job

    redis = _redis()
    urgent = Queue(queues.URGENT, connection=redis)
    enqueued = [urgent.enqueue(name, kwargs=kwargs) for name, kwargs in jobs]
    extra_env = {"ORDERLOOM_ALERT_ROBOT_KIND": "wecom", "ORDERLOOM_ALERT_ROBOT_URL": robot_url} if robot_url else {}
    finished = _run_worker_with(live_apps.url, extra_env)
    assert finished.returncode == 0, f"{finished.stdout}\n{finished.stderr}"
    return [Job.fetch(job.id, connection=redis).return_value() for job in enqueued]


def _run_worker_with(url: str, extra_env: dict):
    """tests.test_worker's worker run, with the robot's address added to its environment."""
    import tests.test_worker as worker_tests

    original = worker_tests._worker_env

    def env(database_url):
        return {**original(database_url), **extra_env}

    worker_tests._worker_env = env
    try:
        return _run_worker(url, "--simple")
    finally:
        worker_tests._worker_env = original


@pytest.mark.live
@pytest.mark.parametrize("live_apps", ["postgresql", "sqlite"], indirect=True)
def test_the_sla_job_escalates_to_the_lead_then_the_manager_through_a_worker(live_apps):
    _redis().flushdb()  # only this test's Redis database (TEST_REDIS_URL), never FLUSHALL
    made = _seed(live_apps)
    with RobotReceiver(answer={"errcode": 0, "errmsg": "ok"}) as robot:
        url = robot.url + "/cgi-bin/webhook/send?key=test"
        quiet, breach, again = _run(live_apps, [
            (SLA_JOB, {"now": (T0 + timedelta(minutes=10)).isoformat()}),
            (SLA_JOB, {"now": (T0 + timedelta(minutes=16)).isoformat()}),
            (SLA_JOB, {"now": (T0 + timedelta(minutes=20)).isoformat()})], url)
        assert quiet["breached"] == [] and breach["breached"] == [made["exception"]] and again["breached"] == []
        with live_apps.core.app_context():
            row = db.session.get(ExceptionCase, made["exception"])
            assert (row.breached, row.escalation_level, row.escalated_to_id) == (True, 1, made["lead"])
        later, = _run(live_apps, [(SLA_JOB, {"now": (T0 + timedelta(minutes=77)).isoformat()})], url)
        assert later["escalated"] == [made["exception"]] and later["notified"] == 1
        messages = robot.wait_for(2)
    texts = [request.json["markdown"]["content"] if "markdown" in request.json else str(request.json)
             for request in messages]
    assert "fin_lead" in texts[0] and "ops_boss" in texts[1]
    with live_apps.core.app_context():
        row = db.session.get(ExceptionCase, made["exception"])
        assert (row.escalation_level, row.escalated_to_id, row.breached) == (2, made["manager"], True)
        exceptions.transition(row, "resolved", ADMIN, comment="paid", now=T0 + timedelta(minutes=90))
        db.session.commit()
    resolved, = _run(live_apps, [(SLA_JOB, {"now": (T0 + timedelta(minutes=200)).isoformat()})])
    assert resolved["breached"] == [] and resolved["escalated"] == []
    with live_apps.core.app_context():
        assert db.session.get(ExceptionCase, made["exception"]).breached  # the flag stays


@pytest.mark.live
@pytest.mark.parametrize("live_apps", ["postgresql"], indirect=True)
def test_the_feed_job_raises_each_problem_once_through_a_worker(live_apps):
    _redis().flushdb()
    with live_apps.core.app_context():
        open_shop()
        db.session.commit()
        order = orders.create_order(order_payload(channel_order_id="P-1", paid=False), ADMIN)
        db.session.add(StatusMapping(channel_id=order.channel_id, platform_status="PAID", lifecycle="confirmed",
                                     payment_status="paid"))
        # Test set-up, not product code: the platform said "paid" an hour ago and nothing recorded it here.
        db.session.execute(update(Order).where(Order.id == order.id).values(
            platform_status="PAID", platform_modified_at=datetime.now(UTC) - timedelta(hours=1)))
        db.session.commit()
    first, second = _run(live_apps, [(FEED_JOB, {}), (FEED_JOB, {})])
    assert (first["raised"], second["raised"]) == (1, 0)
    with live_apps.core.app_context():
        rows = db.session.execute(select(ExceptionCase)).scalars().all()
        assert [(r.kind, r.order.channel_order_id, r.status) for r in rows] == [("payment_not_received", "P-1",
                                                                                 "open")]


def test_both_jobs_are_scheduled_with_stable_ids_and_timeouts():
    names = {name: (dotted, interval) for name, dotted, interval, _queue in SCHEDULE}
    assert names["feed_exceptions"] == (FEED_JOB, 60) and names["check_exception_slas"] == (SLA_JOB, 60)
    assert TIMEOUTS["feed_exceptions"] > 0 and TIMEOUTS["check_exception_slas"] > 0
