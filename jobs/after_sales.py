"""After-sales jobs: requests whose merchant side is past due raised as exceptions (once per request and state)."""
import logging

from jobs.runtime import job
from shared.extensions import db
from shared.services import after_sales
from shared.timekeeping import parse_aware

log = logging.getLogger("orderloom.jobs")


@job
def check_after_sales_slas(now: str | None = None) -> dict:
    """Every minute: overdue after-sales requests into the exception center (its SLA clock takes them from there)."""
    raised = after_sales.check_slas(parse_aware(now, "now") if now else None)
    db.session.commit()
    log.info("job=check_after_sales_slas raised=%s", len(raised))
    return {"raised": len(raised)}
