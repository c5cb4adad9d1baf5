"""Running a job inside an application context, whether in a worker, the cron, or inline."""
import functools
import logging
import os

from flask import has_app_context
from rq import get_current_job

from shared.appcore import create_core_app
from shared.extensions import db

log = logging.getLogger("orderloom.jobs")
_worker_app = None


def worker_app():
    """The app a worker process runs jobs in, built once per process (after any fork)."""
    global _worker_app
    if _worker_app is None or _worker_app.config.get("_pid") != os.getpid():
        _worker_app = create_core_app("orderloom.worker")
        _worker_app.config["_pid"] = os.getpid()
    return _worker_app


def job(func):
    """Run inline in the caller's app context, or in a worker in the worker's own app with a fresh session.

    A forked work horse inherits the CLI's app context, so the test is "am I an RQ job", not "is there a context".
    """

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        if has_app_context() and get_current_job() is None:
            return _run(func, args, kwargs)  # inline: the caller's app context and transaction
        with worker_app().app_context():
            try:
                return _run(func, args, kwargs)
            finally:
                db.session.remove()

    return wrapper


def _run(func, args, kwargs):
    try:
        return func(*args, **kwargs)
    except Exception:
        db.session.rollback()
        log.exception("job=%s.%s failed", func.__module__, func.__name__)
        raise
