"""The worker and cron entry points, run inside an app context built by the CLI."""
import gc
import logging

from flask import current_app

from jobs import queues
from jobs.schedule import SCHEDULE, TIMEOUTS
from shared.dispatch import redis_connection, resolve

log = logging.getLogger("orderloom.worker")


def _redis():
    connection = redis_connection()
    if connection is None:
        raise SystemExit(f"no Redis reachable at REDIS_URL={current_app.config.get('REDIS_URL')!r}")
    return connection


def run_worker(burst: bool = False, simple: bool = False) -> bool:
    from rq import Queue, SimpleWorker, Worker

    connection = _redis()
    worker_class = SimpleWorker if simple else Worker
    worker = worker_class([Queue(name, connection=connection) for name in queues.ALL], connection=connection)
    log.info("worker=%s queues=%s burst=%s", worker.name, ",".join(queues.ALL), burst)
    if current_app.config.get("INVOICE_PDF_WARM", not current_app.testing):  # tests start many workers
        _warm_invoice_pdf()
    # The app, its modules and tables are loaded for good: frozen, the collector stops re-scanning them on
    # every full collection. A batch job allocates hundreds of thousands of objects (a tracking drain of 4,000
    # events, in process: collection 0.11 s unfrozen, 0.04 s frozen; 0.66 s against 0.06 s when the heap also
    # held the bench's generated payloads); forked job processes share the frozen pages.
    gc.collect()
    gc.freeze()
    return worker.work(burst=burst, with_scheduler=False)


def _warm_invoice_pdf() -> None:
    """Invoice PDFs: WeasyPrint imported and the shipped fonts and stylesheet loaded once, before the fork (≈ 1 s at
    start; each work horse then renders warm, ≈ 0.2 s). A font problem is logged and leaves the other queues working."""
    import time

    started = time.perf_counter()
    try:
        from shared.finance import invoice_pdf

        invoice_pdf.warm_up()
        log.info("worker: invoice PDF fonts loaded in %.2f s", time.perf_counter() - started)
    except Exception:
        log.exception("worker: invoice PDF fonts not loaded; the first invoice job will try again")


def run_cron() -> None:
    """Register the schedule with RQ's cron scheduler; names are stable so a restart does not duplicate."""
    from rq.cron import CronScheduler

    scheduler = CronScheduler(connection=_redis(), name="orderloom-cron")
    for name, dotted, interval, queue in SCHEDULE:
        scheduler.register(resolve(dotted), queue, interval=interval, name=name, job_timeout=TIMEOUTS.get(name))
    scheduler.start()
