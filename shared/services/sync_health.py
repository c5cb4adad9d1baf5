"""Sync health per channel, and the alarms: a channel silent for two polling periods, a failure rate over the
threshold, payloads dead-lettered. Alerts go to a WeCom or DingTalk group robot when one is configured and
are always shown in the portal.
"""
import logging
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from shared.channels import polls
from shared.extensions import db
from shared.models import Channel, ChannelConnection, InboxItem, Order, SyncAlert
from shared.timekeeping import as_utc, utc_now

log = logging.getLogger("orderloom.sync_health")
FAILURE_WINDOW = timedelta(hours=1)
MIN_ITEMS_FOR_RATE = 20
BACKLOG_STATUSES = ("received", "processing", "retry")


def _start_of_local_day(now: datetime) -> datetime:
    zone = ZoneInfo(current_app.config["MERCHANT_TIMEZONE"])
    return now.astimezone(zone).replace(hour=0, minute=0, second=0, microsecond=0)


def _percentile(values: list[int], pct: float) -> int | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered) + 0.5) - 1))]


def health(now: datetime | None = None) -> list[dict]:
    """One row per active channel; five grouped queries in all, whatever the number of channels."""
    now = now or utc_now()
    day = _start_of_local_day(now)
    channels = db.session.execute(select(Channel).where(Channel.active).order_by(Channel.code)).scalars().all()
    connections = {c.channel_id: c for c in db.session.execute(select(ChannelConnection)).scalars()}
    orders_today = dict(db.session.execute(
        select(Order.channel_id, func.count()).where(Order.placed_at >= day).group_by(Order.channel_id)).all())
    outcomes: dict[int, dict[str, int]] = {}
    for channel_id, status, count in db.session.execute(
            select(InboxItem.channel_id, InboxItem.status, func.count())
            .where(InboxItem.processed_at >= day).group_by(InboxItem.channel_id, InboxItem.status)).all():
        outcomes.setdefault(channel_id, {})[status] = count
    backlog = dict(db.session.execute(
        select(InboxItem.channel_id, func.count()).where(InboxItem.status.in_(BACKLOG_STATUSES))
        .group_by(InboxItem.channel_id)).all())
    delays: dict[int, list[int]] = {}
    for channel_id, delay in db.session.execute(
            select(InboxItem.channel_id, InboxItem.visible_delay_ms)
            .where(InboxItem.processed_at >= day, InboxItem.visible_delay_ms.is_not(None))).all():
        delays.setdefault(channel_id, []).append(delay)
    open_alerts = dict(db.session.execute(
        select(SyncAlert.channel_id, func.count()).where(SyncAlert.resolved_at.is_(None))
        .group_by(SyncAlert.channel_id)).all())
    rows = []
    for channel in channels:
        connection = connections.get(channel.id)
        done = outcomes.get(channel.id, {})
        processed = sum(done.values())
        rows.append({
            "channel": channel, "connection": connection, "orders_today": orders_today.get(channel.id, 0),
            "processed_today": processed,
            "success_rate": (done.get("done", 0) / processed) if processed else None,
            "failed_today": done.get("review", 0) + done.get("dead", 0),
            "delay_p50_ms": _percentile(delays.get(channel.id, []), 50),
            "delay_p95_ms": _percentile(delays.get(channel.id, []), 95),
            "last_success_at": as_utc(connection.last_success_at) if connection else None,
            "last_error": connection.last_error if connection else None,
            "backlog": backlog.get(channel.id, 0), "open_alerts": open_alerts.get(channel.id, 0),
        })
    return rows


def _raise(channel: Channel | None, kind: str, message: str) -> SyncAlert | None:
    """Raise an alert once: while one of the same kind is open for the channel, nothing new is sent."""
    existing = db.session.execute(select(SyncAlert).where(
        SyncAlert.channel_id == (channel.id if channel else None), SyncAlert.kind == kind,
        SyncAlert.resolved_at.is_(None))).scalar_one_or_none()
    if existing is not None:
        return None
    from shared.services import alarms

    if alarms.is_muted(kind, f"channel:{channel.code}" if channel else None):
        return None  # staff muted this kind (for this channel) for a while: audited `alarm.muted`
    alert = SyncAlert(channel_id=channel.id if channel else None, kind=kind, message=message[:1000],
                      raised_at=utc_now(), delivered=False)
    db.session.add(alert)
    db.session.flush()
    return alert


def _resolve(channel: Channel, kind: str) -> None:
    for alert in db.session.execute(select(SyncAlert).where(
            SyncAlert.channel_id == channel.id, SyncAlert.kind == kind, SyncAlert.resolved_at.is_(None))).scalars():
        alert.resolved_at = utc_now()


def check(now: datetime | None = None) -> list[SyncAlert]:
    """Evaluate every channel; returns the alerts newly raised (the caller delivers them after commit)."""
    now = now or utc_now()
    raised = []
    rows = db.session.execute(select(ChannelConnection).join(Channel, Channel.id == ChannelConnection.channel_id)
                              .where(Channel.active, ChannelConnection.polling_enabled)).scalars().all()
    since = now - FAILURE_WINDOW
    rates = {}
    for channel_id, status, count in db.session.execute(
            select(InboxItem.channel_id, InboxItem.status, func.count()).where(InboxItem.processed_at >= since)
            .group_by(InboxItem.channel_id, InboxItem.status)).all():
        rates.setdefault(channel_id, {})[status] = count
    threshold = current_app.config["SYNC_FAILURE_RATE_ALERT"]
    for connection in rows:
        channel = connection.channel
        if not polls(channel.kind):
            continue
        period = timedelta(minutes=connection.poll_minutes)
        last = as_utc(connection.last_success_at)
        silent_since = last or as_utc(connection.last_poll_at)
        if silent_since is not None and now - silent_since > 2 * period:
            alert = _raise(channel, "not_syncing",
                           f"{channel.name} ({channel.code}) has not synced since "
                           f"{silent_since:%Y-%m-%d %H:%M} UTC (polling every {connection.poll_minutes} min)"
                           + (f"; last error: {connection.last_error}" if connection.last_error else ""))
            raised += [alert] if alert else []
        elif last is not None:
            _resolve(channel, "not_syncing")
        counts = rates.get(channel.id, {})
        processed = sum(counts.values())
        failed = counts.get("review", 0) + counts.get("dead", 0)
        if processed >= MIN_ITEMS_FOR_RATE and failed / processed > threshold:
            alert = _raise(channel, "failure_rate",
                           f"{channel.name} ({channel.code}): {failed} of {processed} payloads failed in the last "
                           f"hour ({failed / processed:.0%}, threshold {threshold:.0%})")
            raised += [alert] if alert else []
        elif processed >= MIN_ITEMS_FOR_RATE:
            _resolve(channel, "failure_rate")
    dead = dict(db.session.execute(select(InboxItem.channel_id, func.count()).where(
        InboxItem.status == "dead", InboxItem.processed_at >= since).group_by(InboxItem.channel_id)).all())
    for channel_id, count in dead.items():
        channel = db.session.get(Channel, channel_id)
        alert = _raise(channel, "dead_letter", f"{channel.name} ({channel.code}): {count} payloads gave up after "
                                               f"every retry and wait in the dead-letter list")
        raised += [alert] if alert else []
    return raised


def deliver(alert: SyncAlert) -> None:
    """Send one alert to the configured group robot; without one, the portal shows it (and that is all)."""
    from shared.notify.robots import Alert, deliver as send

    kind, url = current_app.config.get("ALERT_ROBOT_KIND"), current_app.config.get("ALERT_ROBOT_URL")
    if not kind or not url:
        return
    title = {"not_syncing": "渠道同步中断 Channel not syncing", "failure_rate": "渠道同步失败率过高 Sync failures",
             "dead_letter": "同步死信 Dead-lettered payloads"}.get(alert.kind, alert.kind)
    result = send(kind, url, Alert(title=title, lines=[alert.message], severity="warning"),
                  secret=current_app.config.get("ALERT_ROBOT_SECRET"))
    alert.delivered = result.ok
    alert.delivery_error = None if result.ok else (result.error or f"HTTP {result.status}: {result.body}")[:500]
    if not result.ok:
        log.warning("alert %s not delivered: %s", alert.id, alert.delivery_error)


def open_alerts(limit: int = 50) -> list[SyncAlert]:
    return db.session.execute(select(SyncAlert).where(SyncAlert.resolved_at.is_(None))
                              .options(selectinload(SyncAlert.acknowledged_by), selectinload(SyncAlert.assigned_to))
                              .order_by(SyncAlert.raised_at.desc()).limit(limit)).scalars().all()
