"""Delivery estimates: the per-carrier, per-route transit figures recomputed from the merchant's deliveries."""
import logging

from jobs.runtime import job
from shared.extensions import db
from shared.services import transit_estimates
from shared.timekeeping import parse_aware

log = logging.getLogger("orderloom.jobs")


@job
def refresh_transit_estimates(now: str | None = None) -> dict:
    """Hourly: the transit_estimates table rewritten in one transaction (a few statements, whatever the history)."""
    rows = transit_estimates.refresh(parse_aware(now, "now") if now else None)
    db.session.commit()
    log.info("job=refresh_transit_estimates rows=%s", rows)
    return {"rows": rows}
