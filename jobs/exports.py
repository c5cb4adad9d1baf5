"""Governed exports: make one export's file (with progress), re-send the unclaimed, and the nightly expiry/purge."""
import logging

from shared import dispatch
from shared.extensions import db
from shared.services import exports

from jobs import queues
from jobs.runtime import job

log = logging.getLogger("orderloom.jobs")


@job
def run_export(export_id: int) -> str:
    """Claim the export (one job per export makes the file), write it committing progress, end done or failed."""
    if not exports.claim(export_id):
        db.session.rollback()
        log.info("job=run_export export=%s skipped=not_queued", export_id)
        return "skipped"
    db.session.commit()
    try:
        made = exports.build(export_id, commit=db.session.commit)
        rows = made.row_count
        db.session.commit()
    except Exception as error:
        db.session.rollback()
        exports.fail(export_id, f"{type(error).__name__}: {error}")
        db.session.commit()
        log.exception("job=run_export export=%s failed", export_id)
        return "failed"
    log.info("job=run_export export=%s rows=%s", export_id, rows)
    return "done"


@job
def start_queued_exports() -> int:
    """Every minute: send a job for queued exports nothing has claimed (Redis was down, cleared elsewhere)."""
    ids = exports.unclaimed_export_ids()
    db.session.rollback()
    for export_id in ids:
        dispatch.send(exports.RUN_JOB, export_id, queue=queues.DOCUMENTS, job_timeout=exports.JOB_TIMEOUT)
    return len(ids)
