"""Release the stock of orders that stayed unpaid too long."""
import logging

from shared.extensions import db
from shared.services import orders
from shared.timekeeping import utc_now

from jobs.runtime import job

log = logging.getLogger("orderloom.jobs")


@job
def release_expired_reservations(batch: int = 500) -> int:
    """Cancel expired unpaid orders a batch per transaction (stock released per SKU and warehouse, not per
    order); returns how many were cancelled."""
    now = utc_now()
    cancelled = 0
    while True:
        ids = orders.expired_unpaid_order_ids(now, limit=batch)
        db.session.rollback()  # end the read transaction before the writes
        if not ids:
            break
        round_cancelled = orders.cancel_unpaid_many(ids, now)
        db.session.commit()
        cancelled += round_cancelled
        if len(ids) < batch or round_cancelled == 0:
            break
    log.info("job=release_expired_reservations cancelled=%s", cancelled)
    return cancelled
