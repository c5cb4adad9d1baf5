"""Strangers knocking: refused webhook and tracking requests, limited per address and overall, counted per hour.

Every refused request to /hooks/... is counted in `webhook_rejection_rollups` (hour, door, address, reason):
the numbers stay when the detail rows go. A detail row (`webhook_rejections`, with the message) is written only
while the address and the whole site are under their hourly limits, so a flood cannot fill the database. An
address over REFUSED_PER_ADDRESS_PER_HOUR refusals, or the site over REFUSED_GLOBAL_PER_HOUR, is answered 429
before anything is read; `prune()` (a periodic job) deletes detail rows after REJECTION_KEEP_DAYS and roll-ups
after ROLLUP_KEEP_DAYS.
"""
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import case, delete, func, select, update
from sqlalchemy.exc import IntegrityError

from shared.extensions import db
from shared.models import WebhookRejection, WebhookRejectionRollup
from shared.timekeeping import utc_now


def _hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def _limits() -> tuple[int, int]:
    config = current_app.config
    return config.get("REFUSED_PER_ADDRESS_PER_HOUR", 120), config.get("REFUSED_GLOBAL_PER_HOUR", 5000)


def refusals_this_hour(remote_addr: str | None = None, now: datetime | None = None) -> int:
    query = select(func.coalesce(func.sum(WebhookRejectionRollup.count), 0)).where(
        WebhookRejectionRollup.hour == _hour(now or utc_now()))
    if remote_addr is not None:
        query = query.where(WebhookRejectionRollup.remote_addr == remote_addr[:64])
    return int(db.session.execute(query).scalar_one())


def over_limit(remote_addr: str, now: datetime | None = None) -> str | None:
    """"address" or "global" when refused requests from here (or overall) reached their hourly limit.

    Both counts in one query: this runs before every request to /hooks/..., the receipt's hot path."""
    per_address, overall = _limits()
    rollup = WebhookRejectionRollup
    from_here, everywhere = db.session.execute(select(
        func.coalesce(func.sum(case((rollup.remote_addr == (remote_addr or "")[:64], rollup.count), else_=0)), 0),
        func.coalesce(func.sum(rollup.count), 0)).where(rollup.hour == _hour(now or utc_now()))).one()
    if int(from_here) >= per_address:
        return "address"
    if int(everywhere) >= overall:
        return "global"
    return None


def _count(hour: datetime, door: str, remote_addr: str, reason: str) -> None:
    key = (WebhookRejectionRollup.hour == hour, WebhookRejectionRollup.channel_code == door,
           WebhookRejectionRollup.remote_addr == remote_addr, WebhookRejectionRollup.reason == reason)
    for _attempt in range(2):
        bumped = db.session.execute(update(WebhookRejectionRollup).where(*key)
                                    .values(count=WebhookRejectionRollup.count + 1)
                                    .execution_options(synchronize_session=False)).rowcount
        if bumped:
            return
        try:
            with db.session.begin_nested():  # two first refusals in the same hour: one insert wins
                db.session.add(WebhookRejectionRollup(hour=hour, channel_code=door, remote_addr=remote_addr,
                                                      reason=reason, count=1))
            return
        except IntegrityError:
            continue


def record_refusal(door: str, reason: str, detail: str, remote_addr: str | None, size: int = 0,
                   now: datetime | None = None) -> bool:
    """Count a refused request; keep its detail row while under the limits. Returns whether a row was kept."""
    now = now or utc_now()
    door, reason, remote_addr = door[:40], reason[:40], (remote_addr or "")[:64]
    keep = over_limit(remote_addr, now) is None
    _count(_hour(now), door, remote_addr, reason)
    if keep:
        db.session.add(WebhookRejection(channel_code=door, reason=reason, detail=detail[:300],
                                        remote_addr=remote_addr, size=size or 0, received_at=now))
    return keep


def prune(now: datetime | None = None) -> dict:
    """Delete detail rows and roll-ups past their keeping time; the caller commits."""
    now = now or utc_now()
    config = current_app.config
    rows = db.session.execute(delete(WebhookRejection).where(
        WebhookRejection.received_at < now - timedelta(days=config.get("REJECTION_KEEP_DAYS", 7)))).rowcount
    rollups = db.session.execute(delete(WebhookRejectionRollup).where(
        WebhookRejectionRollup.hour < _hour(now) - timedelta(days=config.get("ROLLUP_KEEP_DAYS", 90)))).rowcount
    return {"rejections": rows, "rollups": rollups}


def hourly_summary(hours: int = 24, now: datetime | None = None) -> list[tuple]:
    """(hour, door, address, reason, count) of the last hours, busiest first: what the portal shows."""
    since = _hour(now or utc_now()) - timedelta(hours=hours - 1)
    return db.session.execute(
        select(WebhookRejectionRollup.hour, WebhookRejectionRollup.channel_code, WebhookRejectionRollup.remote_addr,
               WebhookRejectionRollup.reason, WebhookRejectionRollup.count)
        .where(WebhookRejectionRollup.hour >= since)
        .order_by(WebhookRejectionRollup.hour.desc(), WebhookRejectionRollup.count.desc()).limit(200)).all()
