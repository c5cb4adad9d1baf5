"""Bulk actions on orders: one job per bulk action works through its frozen set, committing progress."""
import logging

from shared.extensions import db
from shared.services import bulk_actions

from jobs.runtime import job

log = logging.getLogger("orderloom.jobs")


@job
def run_bulk_job(job_id: int) -> str:
    """Claim the bulk job (one job does the work however often it is sent), act on each order, end done or failed."""
    if not bulk_actions.claim(job_id):
        db.session.rollback()
        log.info("job=run_bulk_job bulk=%s skipped=not_queued", job_id)
        return "skipped"
    db.session.commit()
    try:
        made = bulk_actions.run(job_id, commit=db.session.commit)
        done, refused = made.done_count, made.refused_count
        db.session.commit()
    except Exception as error:
        db.session.rollback()
        bulk_actions.fail(job_id, f"{type(error).__name__}: {error}")
        db.session.commit()
        log.exception("job=run_bulk_job bulk=%s failed", job_id)
        return "failed"
    log.info("job=run_bulk_job bulk=%s done=%s refused=%s", job_id, done, refused)
    return "done"
