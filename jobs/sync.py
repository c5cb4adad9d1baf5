"""Channel sync jobs: process inbox batches, poll due channels, sweep the inbox, check health, reconcile; and drain the
carrier tracking-push inbox in batches."""
import logging
import time

from sqlalchemy.exc import DBAPIError

from shared import dispatch
from shared.actors import SYSTEM
from shared.extensions import db
from shared.services import inbox, polling, reconciliation, sync_health, tracking
from shared.services.bulk_orders import BatchConflict

from jobs import queues
from jobs.runtime import job

log = logging.getLogger("orderloom.jobs")


@job
def process_inbox(ids: list[int]) -> dict:
    """Claim the rows (committed, so a crash shows as a stuck row the sweeper frees), then process them."""
    claimed = inbox.claim(ids)
    db.session.commit()
    return _process_claimed(claimed)


@job
def drain_channel(channel_id: int) -> dict:
    """Process a channel's waiting webhooks in batches until none are left (one job for a burst, not one each)."""
    total: dict = {}
    while True:
        dispatch.release(inbox.drain_key(channel_id))  # from here on, a new webhook starts a job of its own
        claimed = inbox.claim_received(channel_id)
        db.session.commit()
        if not claimed:
            return total
        for key, value in _process_claimed(claimed).items():
            total[key] = total.get(key, 0) + value


def _process_claimed(claimed: list[int]) -> dict:
    """Create the batch's new orders together, then apply every other row one order per transaction."""
    started = time.perf_counter()
    if not claimed:
        return {}
    tally = {"done": 0, "review": 0, "waiting": 0, "retry": 0, "dead": 0}
    parsed = inbox.prepare(claimed)
    tally["review"] += len(claimed) - len(parsed)
    db.session.commit()
    inbox.reload(claimed)
    read = time.perf_counter()
    contexts = inbox.Contexts()
    try:  # new orders together: one transaction, a handful of statements for the whole batch
        created, left = inbox.create_in_bulk(contexts, parsed)
        db.session.commit()
        tally["done"] += created
    except (BatchConflict, DBAPIError) as conflict:  # e.g. a parallel worker took the stock: one at a time
        db.session.rollback()
        log.info("job=process_inbox bulk path gave way: %s", conflict)
        contexts, left, created = inbox.Contexts(), parsed, 0
    except Exception:  # a bug in the fast path must not cost the batch: each order still gets its own outcome
        db.session.rollback()
        log.exception("job=process_inbox bulk path failed; processing one at a time")
        contexts, left, created = inbox.Contexts(), parsed, 0
    bulk = time.perf_counter()
    for item, canonical in left:
        tally[inbox.process_one(contexts, item, canonical)] += 1
        db.session.commit()
    if contexts.woken:  # refunds that waited for an order created in this batch: applied now, in this job
        woken = inbox.claim(contexts.woken)
        db.session.commit()
        for key, value in _process_claimed(woken).items():
            tally[key] = tally.get(key, 0) + value
    log.info("job=process_inbox items=%s bulk=%s %s ms_read=%.0f ms_bulk=%.0f ms_single=%.0f", len(claimed), created,
             " ".join(f"{k}={v}" for k, v in tally.items() if v), (read - started) * 1000, (bulk - read) * 1000,
             (time.perf_counter() - bulk) * 1000)
    return tally


@job
def poll_channel(channel_id: int) -> str:
    run = polling.poll(channel_id, db.session.commit)
    return run.status


@job
def poll_due_channels() -> list[int]:
    """Every minute: start a poll for each channel whose own period (default 5 minutes) has passed."""
    due = polling.due_channel_ids()
    db.session.rollback()
    for channel_id in due:
        dispatch.send("jobs.sync.poll_channel", channel_id, queue=queues.SYNC, job_id=f"poll-channel-{channel_id}")
    return due


@job
def sweep_inbox() -> int:
    """Re-queue rows nothing is working on: received while Redis was down, due for retry, or orphaned; the same for
    tracking pushes."""
    ids = inbox.sweep()
    pushes = tracking.sweep_pushes()
    db.session.commit()
    inbox.queue(ids)
    for start in range(0, len(pushes), tracking.BATCH):
        dispatch.send("jobs.sync.process_tracking", pushes[start:start + tracking.BATCH], queue=queues.SYNC)
    if ids or pushes:
        log.info("job=sweep_inbox requeued=%s tracking_requeued=%s", len(ids), len(pushes))
    return len(ids) + len(pushes)


@job
def drain_tracking() -> dict:
    """Process waiting tracking pushes in batches until none are left (one job for a burst of pushes)."""
    total: dict = {}
    while True:
        dispatch.release(tracking.DRAIN_KEY)  # from here on, a new push starts a job of its own
        claimed = tracking.claim_received()
        db.session.commit()
        if not claimed:
            return total
        for key, value in _process_pushes(claimed).items():
            total[key] = total.get(key, 0) + value


@job
def process_tracking(ids: list[int]) -> dict:
    """Claim the given pushes (retries, replays), then process them."""
    claimed = tracking.claim(ids)
    db.session.commit()
    return _process_pushes(claimed)


def _process_pushes(claimed: list[int]) -> dict:
    if not claimed:
        return {}
    started = time.perf_counter()
    tally = tracking.process_pushes(claimed)
    db.session.commit()
    log.info("job=process_tracking pushes=%s %s ms=%.0f", len(claimed),
             " ".join(f"{k}={v}" for k, v in sorted(tally.items())), (time.perf_counter() - started) * 1000)
    return tally


@job
def check_sync_health() -> int:
    raised = sync_health.check()
    db.session.commit()
    for alert in raised:
        sync_health.deliver(alert)
    db.session.commit()
    return len(raised)


@job
def reconcile_channel(channel_id: int, trigger: str = "schedule") -> int:
    report = reconciliation.reconcile(channel_id, SYSTEM, db.session.commit, trigger=trigger)
    return report.id


@job
def reconcile_due_channels() -> list[int]:
    """Every 10 minutes: after 02:00 merchant time, reconcile each channel not yet reconciled today."""
    due = reconciliation.due_channel_ids()
    db.session.rollback()
    for channel_id in due:
        dispatch.send("jobs.sync.reconcile_channel", channel_id, queue=queues.SYNC,
                      job_id=f"reconcile-channel-{channel_id}")
    return due
