"""Carrier credibility: last month's scores per carrier and route, and the standings they decide (de-weighting)."""
import logging
from datetime import date

from sqlalchemy import select

from jobs.runtime import job
from shared.actors import SYSTEM
from shared.extensions import db
from shared.models import CarrierScore
from shared.services import carrier_scores
from shared.timekeeping import parse_aware

log = logging.getLogger("orderloom.jobs")


@job
def score_carriers(month: str | None = None, now: str | None = None) -> dict:
    """Daily, doing its work once a month: last month (merchant time) scored and the standings applied, unless that
    month is scored already. `month` (YYYY-MM) scores that month again (e.g. after late deliveries)."""
    moment = parse_aware(now, "now") if now else None
    wanted = date.fromisoformat(f"{month}-01") if month else carrier_scores.last_month(moment)
    if month is None and db.session.execute(select(CarrierScore.month).where(
            CarrierScore.month == wanted).limit(1)).first():
        log.info("job=score_carriers month=%s skipped=already_scored", wanted.isoformat())
        return {"month": wanted.isoformat(), "skipped": True}
    result = carrier_scores.run_month(wanted, SYSTEM, moment)
    db.session.commit()
    log.info("job=score_carriers month=%s rows=%s deweighted=%s restored=%s", result["month"], result["rows"],
             ",".join(result["deweighted"]) or "-", ",".join(result["restored"]) or "-")
    return result
