"""Purchase suggestions: the weekly run (computed and mailed to the suppliers once per ISO week). Thin: the service
decides whether this week's run exists and does the work."""
import logging

from jobs.runtime import job
from shared.extensions import db
from shared.services import purchasing
from shared.timekeeping import parse_aware

log = logging.getLogger("orderloom.jobs")


@job
def suggest_purchases(now: str | None = None) -> dict:
    """Hourly check: the first one in a new week (merchant zone) computes the suggestions and queues each
    supplier's mail; the others find this week's run and do nothing."""
    run = purchasing.weekly(parse_aware(now, "now") if now else None)
    db.session.commit()
    if run is None:
        log.info("job=suggest_purchases run=none reason=this_week_done")
        return {"run": None}
    result = {"run": run.id, "week": run.week, "lines": run.line_count}
    log.info("job=suggest_purchases run=%s week=%s lines=%s", run.id, run.week, run.line_count)
    return result
