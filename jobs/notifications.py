"""Customer notification jobs: send one queued notification, and sweep up what is due (a lost job, inline
running, a relay that was down and is retried). Thin: ids in, shared/services/notifications.py does the work."""
import logging
from datetime import datetime

from jobs.runtime import job
from shared.extensions import db
from shared.services import notifications
from shared.timekeeping import parse_aware

log = logging.getLogger("orderloom.jobs")


@job
def deliver_notification(notification_id: int) -> str | None:
    status = notifications.deliver(notification_id)
    db.session.commit()
    log.info("job=deliver_notification notification=%s status=%s", notification_id, status)
    return status


@job
def send_due_notifications(now: str | None = None) -> dict:
    """Every due notification, one commit each (one relay failure does not undo the others' records)."""
    moment: datetime | None = parse_aware(now, "now") if now else None
    tally = {"sent": 0, "retrying": 0, "failed": 0}
    for notification_id in notifications.due_ids(moment):
        status = notifications.deliver(notification_id, moment)
        db.session.commit()
        if status == "sent":
            tally["sent"] += 1
        elif status == "queued":
            tally["retrying"] += 1
        elif status == "failed":
            tally["failed"] += 1
    log.info("job=send_due_notifications tally=%s", tally)
    return tally
