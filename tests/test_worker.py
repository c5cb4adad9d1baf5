"""A real RQ worker (the `orderloom worker --burst` console script) running jobs from Redis."""
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from flask import current_app
from sqlalchemy import select, update

from jobs import queues
from jobs.runtime import job
from jobs.schedule import SCHEDULE
from shared.dispatch import resolve
from shared.extensions import db
from shared.models import AuditEvent, Order, Reservation, StockLevel
from shared.services import orders
from shared.services.audit import verify_chain
from shared.timekeeping import utc_now
from tests.conftest import REDIS_URL, TEST_DATA_KEY, app_config
from tests.factories import ADMIN, open_shop, order_payload

JOB = "jobs.reservations.release_expired_reservations"
WORKER_TIMEOUT = 60
ROOT = Path(__file__).resolve().parent.parent


@job
def probe_context() -> dict:
    """A probe job: the app it runs in, and whether its session arrived with a transaction already open."""
    return {"app": current_app.name, "open_transaction": db.session().in_transaction()}


@job
def probe_leave_transaction_open() -> None:
    """A probe job that reads and returns without commit or rollback, as a careless job might."""
    db.session.execute(select(1))


def _redis():
    """The Redis test database, or a failure that says how to start Redis."""
    from redis import Redis
    from redis.exceptions import RedisError

    connection = Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=10)
    try:
        connection.ping()
    except RedisError as exc:
        pytest.fail(f"Redis is not reachable at {REDIS_URL}: start it with 'redis-server --daemonize yes' "
                    f"or set TEST_REDIS_URL ({exc})")
    return connection


def _worker_env(database_url: str) -> dict:
    """The environment the worker reads its configuration from (shared/config.py), matching the test apps."""
    config = app_config(database_url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERLOOM_")}
    env.update({"DATABASE_URL": database_url, "REDIS_URL": REDIS_URL, "ORDERLOOM_DATA_KEYS": TEST_DATA_KEY,
                "ORDERLOOM_INDEX_KEY": config["BLIND_INDEX_KEY"], "ORDERLOOM_SECRET_KEY": config["SECRET_KEY"],
                "PYTHONPATH": os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), str(ROOT)]))})
    return env


def _seed(live_apps) -> dict:
    """A channel, a warehouse, 20 units of one SKU, and three orders: unpaid-expired, unpaid-current, paid."""
    with live_apps.core.app_context():
        open_shop()
        db.session.commit()
        made = {}
        for key, quantity, paid in (("expired", 2, False), ("waiting", 3, False), ("paid", 1, True)):
            lines = [{"sku": "SKU-1", "quantity": quantity, "unit_price": "59.90"}]
            order = orders.create_order(order_payload(channel_order_id=f"W-{key}", lines=lines, paid=paid), ADMIN)
            db.session.commit()
            made[key] = order.order_no
        expired_id = db.session.execute(select(Order.id).where(Order.order_no == made["expired"])).scalar_one()
        # Test set-up, not product code: age the reservation past its deadline.
        db.session.execute(update(Reservation).where(Reservation.order_id == expired_id)
                           .values(expires_at=utc_now() - timedelta(minutes=1)))
        db.session.commit()
        level = db.session.execute(select(StockLevel)).scalar_one()
        assert (level.on_hand, level.reserved, level.available) == (20, 6, 14)
    return made


def _run_worker(database_url: str, *extra: str) -> subprocess.CompletedProcess:
    command = [str(Path(sys.executable).parent / "orderloom"), "worker", "--burst", *extra]
    try:
        return subprocess.run(command, env=_worker_env(database_url), capture_output=True, text=True,
                              timeout=WORKER_TIMEOUT, cwd=ROOT)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the worker did not finish within {WORKER_TIMEOUT}s:\n{exc.stdout}\n{exc.stderr}")


@pytest.mark.live
@pytest.mark.parametrize(("live_apps", "mode"), [("sqlite", "fork"), ("postgresql", "fork"), ("postgresql", "simple")],
                         indirect=["live_apps"])
def test_worker_releases_expired_unpaid_reservations(live_apps, mode):
    """Only the expired unpaid order is cancelled, its stock given back, audited as system; a rerun is a no-op."""
    from rq import Queue
    from rq.job import Job, JobStatus

    redis = _redis()
    redis.flushdb()  # only the test database (REDIS_URL ends in /15), never FLUSHALL
    made = _seed(live_apps)
    urgent = Queue(queues.URGENT, connection=redis)
    first, again = urgent.enqueue(JOB), urgent.enqueue(JOB)

    finished = _run_worker(live_apps.url, *(["--simple"] if mode == "simple" else []))

    output = f"stdout:\n{finished.stdout}\nstderr:\n{finished.stderr}"
    assert finished.returncode == 0, output
    first, again = Job.fetch(first.id, connection=redis), Job.fetch(again.id, connection=redis)
    assert (first.get_status(), again.get_status()) == (JobStatus.FINISHED, JobStatus.FINISHED), output
    assert (first.return_value(), again.return_value()) == (1, 0), output
    with live_apps.core.app_context():
        by_no = {o.order_no: o for o in db.session.execute(select(Order)).scalars()}
        expired, waiting, paid = by_no[made["expired"]], by_no[made["waiting"]], by_no[made["paid"]]
        assert (expired.status, expired.payment_status) == ("cancelled", "unpaid")
        assert "unpaid after" in expired.cancel_reason
        assert (waiting.status, paid.status) == ("pending_review", "confirmed")
        statuses = {r.order_id: r.status for r in db.session.execute(select(Reservation)).scalars()}
        assert statuses == {expired.id: "released", waiting.id: "active", paid.id: "active"}
        level = db.session.execute(select(StockLevel)).scalar_one()
        assert (level.on_hand, level.reserved, level.available) == (20, 4, 16)
        intact, checked, problem = verify_chain()
        assert intact, problem
        cancellation = db.session.execute(
            select(AuditEvent).where(AuditEvent.entity_type == "order", AuditEvent.entity_id == expired.order_no,
                                     AuditEvent.action == "order.transition")
        ).scalars().all()
        assert [(e.actor_label, e.after["status"]) for e in cancellation] == [("system", "cancelled")]
        assert cancellation[0].actor_id is None
        by_system = db.session.execute(
            select(AuditEvent).where(AuditEvent.actor_label == "system", AuditEvent.action == "order.transition")
        ).scalars().all()
        assert [e.entity_id for e in by_system if e.after["status"] == "cancelled"] == [expired.order_no]
    assert redis.llen(f"rq:queue:{queues.URGENT}") == 0


@pytest.mark.live
@pytest.mark.parametrize("live_apps", ["sqlite"], indirect=True)
def test_each_job_gets_the_worker_app_and_a_fresh_session(live_apps):
    """In one worker process, jobs run in the worker's own app, and no job inherits another's open transaction."""
    from rq import Queue
    from rq.job import Job

    redis = _redis()
    redis.flushdb()
    urgent = Queue(queues.URGENT, connection=redis)
    probes = [urgent.enqueue(f"tests.test_worker.{name}")
              for name in ("probe_context", "probe_leave_transaction_open", "probe_context")]

    finished = _run_worker(live_apps.url, "--simple")

    assert finished.returncode == 0, finished.stderr
    clean = {"app": "orderloom.worker", "open_transaction": False}
    assert [Job.fetch(p.id, connection=redis).return_value() for p in probes] == [clean, None, clean]


def test_schedule_entries_resolve_to_jobs():
    """Every cron entry names a callable job by dotted path, with a stable unique name and a real queue."""
    names = [name for name, *_ in SCHEDULE]
    assert names and len(names) == len(set(names))
    for name, dotted, interval, queue in SCHEDULE:
        target = resolve(dotted)
        assert callable(target), dotted
        assert target.__name__ == dotted.rpartition(".")[2]
        assert isinstance(interval, int) and interval > 0, name
        assert queue in queues.ALL, name
