"""Deliver outbound order webhooks: fan new outbox events out to subscriptions, then send what is due."""
import logging

import httpx

from shared.extensions import db
from shared.services import outbox

from jobs.runtime import job

log = logging.getLogger("orderloom.jobs")


@job
def deliver_outbox(rounds: int = 20) -> dict:
    tally = {"fanned_out": 0, "delivered": 0, "retry": 0, "dead": 0}
    for _ in range(rounds):
        fanned = outbox.fan_out()
        db.session.commit()
        tally["fanned_out"] += fanned
        if fanned < 1000:
            break
    due = outbox.due_delivery_ids()
    if due:  # an HTTP client (its TLS context) only when there is something to send: this job follows every ingest
        with httpx.Client() as client:
            for delivery_id in due:
                delivery = outbox.deliver(delivery_id, client)
                db.session.commit()
                if delivery is not None:
                    tally[delivery.status] = tally.get(delivery.status, 0) + 1
    if any(tally.values()):
        log.info("job=deliver_outbox %s", " ".join(f"{k}={v}" for k, v in tally.items() if v))
    return tally
