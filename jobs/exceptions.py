"""Exception center jobs: turn what the detectors find into exceptions, and run the SLA clock."""
import logging

from jobs.runtime import job
from shared.extensions import db
from shared.services import exception_feeds, exceptions
from shared.timekeeping import parse_aware

log = logging.getLogger("orderloom.jobs")


def _moment(now: str | None):
    """The job's `now`: the present, or a moment given as ISO 8601 with an offset (how tests control time)."""
    return parse_aware(now, "now") if now else None


@job
def feed_exceptions(now: str | None = None) -> dict:
    """Every minute: every detector once, their findings raised in sets (idempotent)."""
    outcome = exception_feeds.feed(_moment(now))
    db.session.commit()
    result = {"raised": len(outcome.raised), "reopened": len(outcome.reopened),
              "superseded": len(outcome.superseded)}
    log.info("job=feed_exceptions raised=%(raised)s reopened=%(reopened)s superseded=%(superseded)s", result)
    return result


@job
def check_exception_slas(now: str | None = None) -> dict:
    """Every minute: warnings at 80%, escalations at breach and an hour later, auto-close; robot messages are sent
    after the commit, so a rolled-back pass tells nobody anything."""
    result = exceptions.check_slas(_moment(now))
    db.session.commit()
    sent = exceptions.deliver_notices(result.notices)
    summary = {"warned": result.warned, "breached": result.breached, "escalated": result.escalated,
               "closed": result.closed, "routed": result.routed, "notified": sent}
    log.info("job=check_exception_slas warned=%s breached=%s escalated=%s closed=%s routed=%s notified=%s",
             len(result.warned), len(result.breached), len(result.escalated), len(result.closed), result.routed,
             sent)
    return summary
