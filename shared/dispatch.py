"""Queue follow-up work by dotted path: through RQ when Redis answers, inline otherwise.

Work queued during a request or job is sent only after the transaction commits, so a worker
never sees a job for data that was rolled back.
"""
import importlib
import logging

from flask import current_app
from sqlalchemy import event
from sqlalchemy.orm import Session

from shared import pending
from shared.extensions import db

log = logging.getLogger("orderloom.dispatch")
_AFTER_COMMIT = "orderloom_after_commit_jobs"


def redis_connection():
    """A Redis connection if REDIS_URL is set and answers, else None."""
    from redis import Redis
    from redis.exceptions import RedisError

    url = current_app.config.get("REDIS_URL")
    if not url:
        return None
    cached = current_app.extensions.get("orderloom_redis")
    if cached is not None:
        return cached
    connection = Redis.from_url(url, socket_connect_timeout=1, socket_timeout=5)
    try:
        connection.ping()
    except RedisError:
        return None
    current_app.extensions["orderloom_redis"] = connection
    return connection


def jobs_run_inline() -> bool:
    forced = current_app.config.get("JOBS_INLINE")
    if forced is not None:
        return bool(forced)
    return redis_connection() is None


def resolve(dotted: str):
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


def send(dotted: str, *args, queue: str = "default", job_id: str | None = None):
    """Start a job now: enqueue it on RQ, or run it here when there is no Redis."""
    if jobs_run_inline():
        log.info("job=%s mode=inline args=%s", dotted, args)
        return resolve(dotted)(*args)
    from rq import Queue

    return Queue(queue, connection=redis_connection()).enqueue(dotted, *args, job_id=job_id)


def after_commit(dotted: str, *args, queue: str = "default") -> None:
    """Queue a job to be sent once the current transaction has committed."""
    pending.add(db.session(), _AFTER_COMMIT, (dotted, args, queue))


@event.listens_for(Session, "after_commit")
def _send_queued(session: Session) -> None:
    for dotted, args, queue in pending.take(session, _AFTER_COMMIT):
        send(dotted, *args, queue=queue)
