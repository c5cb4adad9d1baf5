"""Approval escalation run by a real RQ worker (`orderloom worker --burst`), with the clock set by the test."""
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from jobs import queues
from shared.actors import Actor
from shared.extensions import db
from shared.models import ApprovalStep, AuditEvent
from shared.services import orders, roles, staff
from shared.services.audit import verify_chain
from tests.factories import ADMIN, PASSWORD, open_shop, order_payload
from tests.robot_receiver import RobotReceiver
from tests.test_worker import ROOT, WORKER_TIMEOUT, _redis, _worker_env

JOB = "jobs.approvals.escalate_stalled_approvals"


def _run_worker(database_url: str, robot_url: str) -> subprocess.CompletedProcess:
    """tests.test_worker's worker, with the group robot configured (the worker reads ORDERLOOM_* like production)."""
    env = {**_worker_env(database_url), "ORDERLOOM_ALERT_ROBOT_KIND": "wecom", "ORDERLOOM_ALERT_ROBOT_URL": robot_url}
    command = [str(Path(sys.executable).parent / "orderloom"), "worker", "--burst"]
    try:
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=WORKER_TIMEOUT, cwd=ROOT)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the worker did not finish within {WORKER_TIMEOUT}s:\n{exc.stdout}\n{exc.stderr}")


def _seed(live_apps) -> dict:
    """An agent in team cs (lead: a cs_lead) under ops (lead: an ops manager), and a 5,008.00 CNY order held for
    the cs_lead's approval."""
    with live_apps.core.app_context():
        open_shop()
        made = {name: staff.create_user(name, PASSWORD, role, ADMIN) for name, role in (
            ("agent", "customer_service"), ("lead", "cs_lead"), ("boss", "ops_manager"), ("top", "admin"))}
        top = roles.create_team("hq", "总部", "Head office", ADMIN, lead=made["top"])
        ops = roles.create_team("ops", "运营", "Operations", ADMIN, lead=made["boss"], parent=top)
        cs = roles.create_team("cs", "客服", "Customer service", ADMIN, lead=made["lead"], parent=ops)
        roles.assign_team(made["agent"], cs, ADMIN)
        db.session.commit()
        order = orders.create_order(order_payload(lines=[{"sku": "SKU-1", "quantity": 1, "unit_price": "5000.00"}]),
                                    Actor.for_staff(made["agent"]))
        step = order.approval_request.steps[0]
        db.session.commit()
        return {"step_id": step.id, "due_at": step.due_at, "ids": {k: u.id for k, u in made.items()},
                "order_no": order.order_no}


@pytest.mark.live
@pytest.mark.parametrize("live_apps", ["postgresql"], indirect=True)
def test_a_real_worker_escalates_a_stalled_step_to_the_superiors_and_tells_the_robot(live_apps):
    from rq import Queue
    from rq.job import Job, JobStatus

    redis = _redis()
    redis.flushdb()  # only this test's Redis database (TEST_REDIS_URL), never FLUSHALL
    seeded = _seed(live_apps)
    due = seeded["due_at"]
    queue = Queue(queues.DEFAULT, connection=redis)
    with RobotReceiver() as robot:
        robot_url = robot.url + "/cgi-bin/webhook/send?key=k"
        # Before the due time nothing happens; at it, level 1; a second run at the same moment changes nothing
        # (the next due time starts then); two business hours later, level 2; after that, never again.
        early = queue.enqueue(JOB, now=(due - timedelta(minutes=1)).isoformat())
        first = queue.enqueue(JOB, now=due.isoformat())
        same = queue.enqueue(JOB, now=due.isoformat())
        finished = _run_worker(live_apps.url, robot_url)
        output = f"stdout:\n{finished.stdout}\nstderr:\n{finished.stderr}"
        assert finished.returncode == 0, output
        results = [Job.fetch(j.id, connection=redis) for j in (early, first, same)]
        assert [j.get_status() for j in results] == [JobStatus.FINISHED] * 3, output
        assert [j.return_value()["escalated"] for j in results] == [0, 1, 0], output
        with live_apps.core.app_context():
            step = db.session.get(ApprovalStep, seeded["step_id"])
            assert step.stalled and step.escalation_level == 1
            assert step.candidates == [seeded["ids"]["lead"], seeded["ids"]["boss"]]
            second_due = step.due_at
        later = queue.enqueue(JOB, now=second_due.isoformat())
        never = queue.enqueue(JOB, now=(second_due + timedelta(days=30)).isoformat())
        finished = _run_worker(live_apps.url, robot_url)
        assert finished.returncode == 0, finished.stderr
        assert [Job.fetch(j.id, connection=redis).return_value()["escalated"] for j in (later, never)] == [1, 0]
        messages = robot.wait_for(2)
    assert [m.json["msgtype"] for m in messages] == ["markdown", "markdown"]
    assert "审批滞留" in messages[0].json["markdown"]["content"] and "@boss" in messages[0].json["markdown"]["content"]
    assert "@top" in messages[1].json["markdown"]["content"]
    with live_apps.core.app_context():
        step = db.session.get(ApprovalStep, seeded["step_id"])
        assert step.escalation_level == 2
        assert step.candidates == [seeded["ids"][n] for n in ("lead", "boss", "top")]
        levels = db.session.execute(select(AuditEvent).where(AuditEvent.action == "approval.escalate")
                                    .order_by(AuditEvent.id)).scalars().all()
        assert [(e.actor_label, e.after["level"]) for e in levels] == [("system", 1), ("system", 2)]
        intact, _checked, problem = verify_chain()
        assert intact, problem
