"""Queue follow-up work by dotted path: through RQ when Redis answers, inline otherwise.

Work queued during a request or job is sent only after the transaction commits, so a worker
never sees a job for data that was rolled back.

Whether Redis answers is asked again every REDIS_CHECK_SECONDS (up or down), and a Redis command that
fails marks it down at once: a Redis that stops is noticed within seconds (the portal's inline-jobs banner
shows, jobs run inline or wait for the sweeper), and a Redis that comes back is used again just as soon.
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
_STATE = "orderloom_redis"
REDIS_CHECK_SECONDS = 3  # default for the REDIS_CHECK_SECONDS setting: how old a "Redis is up/down" answer may be
_clock = time.monotonic  # tests move time forward by replacing this


def _redis_errors() -> tuple:
    from redis.exceptions import RedisError

    return RedisError, OSError  # OSError: a socket refused or reset below redis-py's own wrapping


def _state() -> dict:
    state = current_app.extensions.get(_STATE)
    if state is None or state["url"] != current_app.config.get("REDIS_URL"):
        state = {"url": current_app.config.get("REDIS_URL"), "connection": None, "up": None, "checked_at": None}
        current_app.extensions[_STATE] = state
    return state


def _note(state: dict, up: bool, reason: str = "") -> None:
    if state["up"] is not up:
        if up:
            log.warning("redis=up url_configured=yes jobs=queued")
        else:
            log.warning("redis=down jobs=inline_or_sweeper reason=%s", reason[:200])
    state["up"], state["checked_at"] = up, _clock()


def redis_connection():
    """A Redis connection if REDIS_URL is set and answered within the last REDIS_CHECK_SECONDS, else None."""
    url = current_app.config.get("REDIS_URL")
    if not url:
        return None
    state = _state()
    recheck = current_app.config.get("REDIS_CHECK_SECONDS", REDIS_CHECK_SECONDS)
    if state["checked_at"] is not None and _clock() - state["checked_at"] < recheck:
        return state["connection"] if state["up"] else None
    if state["connection"] is None:
        from redis import Redis

        state["connection"] = Redis.from_url(url, socket_connect_timeout=1, socket_timeout=5)
    try:
        state["connection"].ping()
    except _redis_errors() as error:
        _note(state, False, f"{type(error).__name__}: {error}")
        return None
    _note(state, True)
    return state["connection"]


def redis_failed(error: BaseException) -> None:
    """A Redis command just failed: treat Redis as down now rather than at the next check."""
    if current_app.config.get("REDIS_URL"):
        _note(_state(), False, f"{type(error).__name__}: {error}")


def jobs_run_inline() -> bool:
    forced = current_app.config.get("JOBS_INLINE")
    if forced is not None:
        return bool(forced)
    return redis_connection() is None


def resolve(dotted: str):
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


def send(dotted: str, *args, queue: str = "default", job_id: str | None = None, inline_fallback: bool = True,
         job_timeout: int | None = None):
    """Start a job now: enqueue it on RQ, or run it here when there is no Redis.

    When Redis fails during the enqueue the job runs here after all, or, with `inline_fallback=False`
    (work that the schedule's sweeper finds by itself), is left for the sweeper; None is returned then.
    """
    if not jobs_run_inline():
        from rq import Queue

        connection = redis_connection()
        try:
            if connection is None:
                raise ConnectionError("Redis did not answer")
            return Queue(queue, connection=connection).enqueue(dotted, *args, job_id=job_id, job_timeout=job_timeout)
        except _redis_errors() as error:
            redis_failed(error)
            if not inline_fallback:
                log.warning("job=%s mode=left_for_sweeper reason=redis_down", dotted)
                return None
            log.warning("job=%s mode=inline reason=redis_down args=%s", dotted, args)
            return resolve(dotted)(*args)
    log.info("job=%s mode=inline args=%s", dotted, args)
    return resolve(dotted)(*args)


def send_once(dotted: str, *args, key: str, queue: str = "default", hold_seconds: int = 60) -> None:
    """Send a job unless one sent under `key` has not yet called `release(key)` (or `hold_seconds` passed).

    For "drain what has arrived" jobs: a burst of webhooks starts one job, which releases the key before
    each round of work, so anything stored after that round began starts (or finds) a job of its own.
    """
    connection = None if jobs_run_inline() else redis_connection()
    if connection is not None:
        try:
            if not connection.set(f"orderloom:once:{key}", "1", nx=True, ex=hold_seconds):
                return
        except _redis_errors() as error:
            redis_failed(error)  # no flag to check: sending an extra job is harmless, missing one is not
    send(dotted, *args, queue=queue)


def release(key: str) -> None:
    connection = None if jobs_run_inline() else redis_connection()
    if connection is not None:
        try:
            connection.delete(f"orderloom:once:{key}")
        except _redis_errors() as error:
            redis_failed(error)


def after_commit(dotted: str, *args, queue: str = "default", skip_inline: bool = False,
                 coalesce_seconds: int = 0, job_timeout: int | None = None) -> None:
    """Queue a job to be sent once the current transaction has committed.

    `skip_inline`: when jobs run inline the schedule picks this work up instead (an inline job cannot run
    inside the commit that asked for it); if Redis fails at the moment of sending, it is left to the schedule
    too. `coalesce_seconds`: send at most one such job in that many seconds (e.g. "deliver the outbox" asked
    for by every order an ingest job commits; the schedule sweeps up after). `job_timeout`: RQ's limit for a
    long job (default 180 s).
    """
    if skip_inline and jobs_run_inline():
        return
    pending.add(db.session(), _AFTER_COMMIT, (dotted, args, queue, coalesce_seconds, skip_inline, job_timeout))


@event.listens_for(Session, "after_commit")
def _send_queued(session: Session) -> None:
    sent = set()
    for dotted, args, queue, coalesce_seconds, skip_inline, job_timeout in pending.take(session, _AFTER_COMMIT):
        key = (dotted, repr(args), queue)
        if key in sent:  # e.g. "deliver the outbox" asked for by every order changed in one transaction
            continue
        sent.add(key)
        if coalesce_seconds and not _first_in_window(key, coalesce_seconds):
            continue
        if skip_inline and jobs_run_inline():
            continue  # Redis went away between the request and its commit: the schedule sweeps this up
        send(dotted, *args, queue=queue, inline_fallback=not skip_inline, job_timeout=job_timeout)


def _first_in_window(key: tuple, seconds: int) -> bool:
    """True for the first caller in a window of `seconds` (a Redis key with NX and an expiry)."""
    connection = redis_connection()
    if connection is None:
        return True
    try:
        return bool(connection.set(f"orderloom:coalesce:{':'.join(key)}", "1", nx=True, ex=seconds))
    except _redis_errors() as error:
        redis_failed(error)
        return True


def redis_status(fresh: bool = False) -> str:
    """"not_configured", "up" or "down"; `fresh` asks Redis now instead of using the last answer."""
    if not current_app.config.get("REDIS_URL"):
        return "not_configured"
    if fresh:
        _state()["checked_at"] = None
    return "up" if redis_connection() is not None else "down"
