"""Queue follow-up work by dotted path: through RQ when Redis answers, inline otherwise.

Work queued during a request or job is sent only after the transaction commits, so a worker
never sees a job for data that was rolled back.
"""
import importlib
import logging
import time

from flask import current_app
from sqlalchemy import event
from sqlalchemy.orm import Session

from shared import pending
from shared.extensions import db

log = logging.getLogger("orderloom.dispatch")
_AFTER_COMMIT = "orderloom_after_commit_jobs"
REDIS_RETRY_SECONDS = 10


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
    if time.monotonic() < current_app.extensions.get("orderloom_redis_down_until", 0):
        return None  # asked a moment ago and it did not answer: don't wait a second on every call
    connection = Redis.from_url(url, socket_connect_timeout=1, socket_timeout=5)
    try:
        connection.ping()
    except RedisError:
        current_app.extensions["orderloom_redis_down_until"] = time.monotonic() + REDIS_RETRY_SECONDS
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


def send_once(dotted: str, *args, key: str, queue: str = "default", hold_seconds: int = 60) -> None:
    """Send a job unless one sent under `key` has not yet called `release(key)` (or `hold_seconds` passed).

    For "drain what has arrived" jobs: a burst of webhooks starts one job, which releases the key before
    each round of work, so anything stored after that round began starts (or finds) a job of its own.
    """
    connection = None if jobs_run_inline() else redis_connection()
    if connection is not None:
        from redis.exceptions import RedisError

        try:
            if not connection.set(f"orderloom:once:{key}", "1", nx=True, ex=hold_seconds):
                return
        except RedisError:
            pass  # no flag to check: sending an extra job is harmless, missing one is not
    send(dotted, *args, queue=queue)


def release(key: str) -> None:
    connection = None if jobs_run_inline() else redis_connection()
    if connection is not None:
        from redis.exceptions import RedisError

        try:
            connection.delete(f"orderloom:once:{key}")
        except RedisError:
            pass


def after_commit(dotted: str, *args, queue: str = "default", skip_inline: bool = False,
                 coalesce_seconds: int = 0) -> None:
    """Queue a job to be sent once the current transaction has committed.

    `skip_inline`: when jobs run inline the schedule picks this work up instead (an inline job cannot run
    inside the commit that asked for it). `coalesce_seconds`: send at most one such job in that many seconds
    (e.g. "deliver the outbox" asked for by every order an ingest job commits; the schedule sweeps up after).
    """
    if skip_inline and jobs_run_inline():
        return
    pending.add(db.session(), _AFTER_COMMIT, (dotted, args, queue, coalesce_seconds))


@event.listens_for(Session, "after_commit")
def _send_queued(session: Session) -> None:
    sent = set()
    for dotted, args, queue, coalesce_seconds in pending.take(session, _AFTER_COMMIT):
        key = (dotted, repr(args), queue)
        if key in sent:  # e.g. "deliver the outbox" asked for by every order changed in one transaction
            continue
        sent.add(key)
        if coalesce_seconds and not _first_in_window(key, coalesce_seconds):
            continue
        send(dotted, *args, queue=queue)


def _first_in_window(key: tuple, seconds: int) -> bool:
    """True for the first caller in a window of `seconds` (a Redis key with NX and an expiry)."""
    connection = redis_connection()
    if connection is None:
        return True
    from redis.exceptions import RedisError

    try:
        return bool(connection.set(f"orderloom:coalesce:{':'.join(key)}", "1", nx=True, ex=seconds))
    except RedisError:
        return True
