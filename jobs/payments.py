"""Payment jobs: apply waiting payment notifications in batches, wake those whose order arrived, sweep retries, and
the daily bill download and reconciliation."""
import logging
import time
from datetime import timedelta

from shared import dispatch
from shared.actors import SYSTEM
from shared.extensions import db
from shared.services import payments
from shared.timekeeping import local_date, utc_now

from jobs.runtime import job

log = logging.getLogger("orderloom.jobs")


@job
def drain_payment_notices() -> dict:
    """Apply waiting notices until none are left (one job for a burst); notices whose order arrived since join in."""
    total: dict = {}
    while True:
        dispatch.release(payments.DRAIN_KEY)  # from here on, a new notice starts a job of its own
        payments.wake_waiting()
        claimed = payments.claim_received()
        db.session.commit()
        if not claimed:
            return total
        started = time.perf_counter()
        tally = payments.process_notices(claimed)
        db.session.commit()
        log.info("job=drain_payment_notices notices=%s tally=%s ms=%d", len(claimed), tally,
                 (time.perf_counter() - started) * 1000)
        for key, value in tally.items():
            total[key] = total.get(key, 0) + value


@job
def sweep_payment_notices() -> int:
    """Every minute: orders that arrived wake their waiting payments; retries due and abandoned rows go again."""
    woken = payments.wake_waiting()
    due = payments.sweep()
    db.session.commit()
    if woken or due:
        payments.kick()
    return len(woken) + len(due)


@job
def reconcile_yesterday() -> list[int]:
    """Daily: download yesterday's (Beijing) bill of every account that holds its merchant API key, through the
    provider's signed API, and reconcile it."""
    day = local_date(utc_now(), payments.BEIJING) - timedelta(days=1)
    done = []
    for account in payments.accounts():
        if not account.active or not payments.can_download(account):
            continue
        try:
            data = payments.download_bill(account, day)
            run = payments.reconcile(account, day, data, SYSTEM, source="download")
            db.session.commit()
            done.append(run.id)
        except Exception:  # noqa: BLE001  (one provider down does not stop the others)
            db.session.rollback()
            log.exception("job=reconcile_yesterday account=%s failed", account.id)
    return done
