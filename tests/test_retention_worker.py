"""The nightly retention job run by a real RQ worker (`orderloom worker --burst`) on PostgreSQL, the clock set by the
test: orders anonymised, old access rows archived to a signed file, the chains intact, and a re-run changes nothing."""
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from jobs import queues
from shared.extensions import db
from shared.models import AccessLogEntry, AuditEvent, Order
from shared.services import orders, retention, sealing
from shared.timekeeping import utc_now
from tests.factories import ADMIN, open_shop, order_payload
from tests.test_worker import ROOT, WORKER_TIMEOUT, _redis, _worker_env

JOB = "jobs.retention.apply_retention"


@pytest.mark.live
@pytest.mark.parametrize("live_apps", ["postgresql"], indirect=True)
def test_a_real_worker_applies_retention_once(live_apps, tmp_path):
    from rq import Queue
    from rq.job import Job, JobStatus

    redis = _redis()
    redis.flushdb()  # only this test's Redis database (TEST_REDIS_URL)
    with live_apps.core.app_context():
        open_shop()
        order = orders.create_order(order_payload(), ADMIN)
        path = ["confirmed", "allocated", "picking", "packed", "shipped", "completed"]
        for step in path[path.index(order.status) + 1 if order.status in path else 0:]:
            orders.transition_order(order, step, ADMIN, reason="test")
        old = utc_now() - timedelta(days=4 * 365)
        db.session.add(AccessLogEntry(**sealing.stamp(sealing.LOGS["access"], {
            "occurred_at": old, "actor_id": None, "actor_label": "old", "ip": None, "action": "reveal",
            "entity_type": "order", "entity_id": order.order_no, "fields": "phone", "channel": "portal"})))
        # The clock jumps 3 years ahead; audit events are kept 5, so only the access log's old row is archived (and
        # the first run's own event is not archived by the second).
        retention.set_period("audit", 5 * 365, ADMIN, "five years for the tax office")
        db.session.commit()
        order_id = order.id
    later = (utc_now() + timedelta(days=3 * 365 + 2)).isoformat()
    queue = Queue(queues.DEFAULT, connection=redis)
    first = queue.enqueue(JOB, now=later)
    again = queue.enqueue(JOB, now=later)
    archive = tmp_path / "archive"
    env = {**_worker_env(live_apps.url), "ORDERLOOM_AUDIT_ARCHIVE_DIR": str(archive),
           "ORDERLOOM_AUDIT_CHECKPOINTS": str(tmp_path / "checkpoints.jsonl")}
    command = [str(Path(sys.executable).parent / "orderloom"), "worker", "--burst"]
    finished = subprocess.run(command, env=env, capture_output=True, text=True, timeout=WORKER_TIMEOUT, cwd=ROOT)
    output = f"stdout:\n{finished.stdout}\nstderr:\n{finished.stderr}"
    assert finished.returncode == 0, output
    results = [Job.fetch(j.id, connection=redis) for j in (first, again)]
    assert [j.get_status() for j in results] == [JobStatus.FINISHED] * 2, output
    counts = [j.return_value() for j in results]
    assert (counts[0]["order_personal"], counts[0]["customers"], counts[0]["access_log"], counts[0]["audit"]) == \
        (1, 1, 1, 0), counts
    assert set(counts[1].values()) == {0}, counts  # the re-run changes nothing
    with live_apps.core.app_context():
        live_apps.core.config["AUDIT_ARCHIVE_DIR"] = str(archive)
        live_apps.core.config["AUDIT_CHECKPOINT_PATH"] = str(tmp_path / "checkpoints.jsonl")
        anonymised = db.session.get(Order, order_id)
        assert anonymised.anonymised_at is not None and anonymised.receiver_phone == ""
        assert db.session.execute(select(func.count()).select_from(AccessLogEntry)).scalar() == 0
        assert [r.intact for r in sealing.verify_archives("access")] == [True]
        assert all(report.intact for report in sealing.verify_all()), sealing.verify_all()
        runs = db.session.execute(select(AuditEvent.after).where(AuditEvent.action == "retention.run")).scalars().all()
        assert len(runs) == 1 and runs[0]["order_personal"] == 1
