"""Out-of-stock choices: orders waiting on hold with offers are reserved as ordered once their stock arrived (a
pre-ordered receipt, a transfer made after its approval, stock received anyway)."""
import logging

from jobs.runtime import job
from shared.actors import SYSTEM
from shared.extensions import db
from shared.models import Order
from shared.services import stock_offers

log = logging.getLogger("orderloom.jobs")


@job
def reserve_arrived_stock(limit: int = 500) -> dict:
    """Every few minutes: each waiting order looked at once (one transaction each, so one refusal stops no other);
    a rerun with nothing arrived changes nothing."""
    released, reserved = [], []
    for order_id in stock_offers.waiting_order_ids(limit):
        order = db.session.get(Order, order_id)
        outcome = stock_offers.check_stock_again(order, SYSTEM)
        db.session.commit()
        if outcome is not None:
            reserved.append(order.order_no)
            if outcome.released:
                released.append(order.order_no)
    log.info("job=reserve_arrived_stock reserved=%s released=%s", len(reserved), len(released))
    return {"reserved": reserved, "released": released}
