"""Running a job inside an application context, whether in a worker, the cron, or inline."""
import functools
import logging
import os

from flask import current_app, has_app_context

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
    """Run the job in the current app context (inline) or a worker's own; roll back whatever it leaves."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        if has_app_context() and current_app.config.get("_pid") is None:
            return _run(func, args, kwargs)
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
