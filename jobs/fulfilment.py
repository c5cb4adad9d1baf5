"""Fulfilment jobs: allocate confirmed orders, release a wave (with progress), check time limits and stalls."""
import logging

from jobs.runtime import job
from shared.actors import SYSTEM
from shared.extensions import db
from shared.models import Order
from shared.services import alarms, allocation, lots, tracking, waves
from shared.services.errors import ServiceError

log = logging.getLogger("orderloom.jobs")


@job
def allocate_confirmed(limit: int = 500) -> dict:
    """Every minute: allocate paid confirmed orders in batches; what a batch cannot take goes one at a time,
    and refusals stay confirmed with a log line."""
    tally = {"allocated": 0, "refused": 0}
    ids = allocation.allocation_queue(limit)
    db.session.rollback()
    try:
        shipments, ids = allocation.allocate_many(ids, SYSTEM)
        db.session.commit()
        tally["allocated"] += len(shipments)
    except allocation.BatchConflict as conflict:
        db.session.rollback()
        log.info("job=allocate_confirmed batch gave way: %s", conflict)
    for order_id in ids:
        order = db.session.get(Order, order_id)
        try:
            allocation.allocate(order, SYSTEM)
            db.session.commit()
            tally["allocated"] += 1
        except ServiceError as refused:
            db.session.rollback()
            tally["refused"] += 1
            log.info("job=allocate_confirmed order=%s refused=%s", order_id, refused.code)
    return tally


@job
def release_wave(wave_id: int, chunk: int = 500) -> int:
    """Build the wave's pick tasks a chunk at a time, committing each, so the portal can show progress."""
    today = lots.merchant_today()
    handled = 0
    while True:
        done = waves.release_chunk(wave_id, today, limit=chunk)
        db.session.commit()
        if not done:
            break
        handled += done
    waves.finish_release(wave_id)
    db.session.commit()
    log.info("job=release_wave wave=%s shipments=%s", wave_id, handled)
    return handled


@job
def check_fulfilment() -> int:
    """Every minute: steps over their time limit, and parcels with no carrier news."""
    raised = alarms.check()
    stalled = tracking.find_stalled()
    db.session.commit()
    for alarm in raised:
        alarms.deliver(alarm)
    db.session.commit()
    return len(raised) + len(stalled)


@job
def poll_tracking() -> dict:
    """Every 10 minutes: ask Kuaidi100 about parcels no push has mentioned for 2 hours."""
    from flask import current_app

    from shared.carriers.tracking import Kuaidi100Client

    config = current_app.config
    if not config.get("KUAIDI100_CUSTOMER") or not config.get("KUAIDI100_KEY"):
        return {"asked": 0, "skipped": "Kuaidi100 query credentials are not configured"}
    with Kuaidi100Client(config["KUAIDI100_API_URL"], config["KUAIDI100_CUSTOMER"], config["KUAIDI100_KEY"]) as client:
        outcome = tracking.poll_quiet(client)
    db.session.commit()
    return outcome
