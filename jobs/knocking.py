"""Keep the record of refused webhook and tracking requests bounded: detail rows and hourly roll-ups expire."""
import logging

from shared.extensions import db
from shared.services import knocking

from jobs.runtime import job

log = logging.getLogger("orderloom.jobs")


@job
def prune_refused_requests() -> dict:
    """Delete refused-request rows past REJECTION_KEEP_DAYS and roll-ups past ROLLUP_KEEP_DAYS."""
    deleted = knocking.prune()
    db.session.commit()
    log.info("job=prune_refused_requests rejections=%s rollups=%s", deleted["rejections"], deleted["rollups"])
    return deleted
