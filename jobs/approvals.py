"""Approval jobs: steps idle past their due time are marked stalled (审批滞留), escalated, and told to the robot."""
import logging

from jobs.runtime import job
from shared.actors import SYSTEM
from shared.extensions import db
from shared.services import approvals
from shared.timekeeping import parse_aware, utc_now

log = logging.getLogger("orderloom.jobs")


@job
def escalate_stalled_approvals(now: str | None = None, limit: int = 500) -> dict:
    """Every minute: each pending step past its due time (business hours, per rule) is escalated one level to the
    approvers' superiors (at most approvals.MAX_ESCALATION), committed step by step, then the robot is told.
    `now` (ISO 8601) lets a caller (a test) set the clock; a re-run before the next due time changes nothing."""
    moment = parse_aware(now, "now") if now else utc_now()
    tally = {"escalated": 0, "notified": 0}
    for step_id in [step.id for step in approvals.stalled_steps(moment, limit)]:
        step = db.session.get(approvals.ApprovalStep, step_id)
        added = approvals.escalate(step, moment, SYSTEM)
        db.session.commit()
        tally["escalated"] += 1
        try:
            if approvals.notify_stalled(step, added):
                tally["notified"] += 1
        except Exception:  # the robot being down never undoes the escalation
            log.warning("job=escalate_stalled_approvals step=%s robot failed", step_id, exc_info=True)
        log.info("job=escalate_stalled_approvals step=%s level=%s added=%s", step_id, step.escalation_level, added)
    return tally
