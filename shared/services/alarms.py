"""Time limits on fulfilment steps: an order confirmed but not packed within 4 hours, a parcel picked but not
packed within 12 minutes (its packing goes back to the pool). Each alarm is raised once, names the role that
must act, is sent to the group robot when one is configured and shown in the portal, and resolves itself
when the step happens."""
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import func, select, update
from sqlalchemy.orm import selectinload

from shared.actors import Actor
from shared.extensions import db
from shared.lifecycle import OrderStatus
from shared.models import AlarmMute, FulfilmentAlarm, Order, PickTask, Shipment, Sku, StockLevel, SyncAlert
from shared.services import audit
from shared.services import validation
from shared.services.errors import Conflict, NotFound, ValidationFailed
from shared.services.validation import N_, say
from shared.timekeeping import merchant_time_text, utc_now

NOT_PACKED_WITHIN = timedelta(hours=4)
PICKED_NOT_PACKED_WITHIN = timedelta(minutes=12)
WAITING_TO_PACK = (OrderStatus.CONFIRMED, OrderStatus.ALLOCATED, OrderStatus.PICKING)


def _no_open_alarm(kind: str, column):
    """NOT EXISTS an unresolved alarm of this kind for the row: the anti-join is done by the database, so the
    limit applies to rows that still need an alarm (however many alarms are already open)."""
    key = FulfilmentAlarm.shipment_id if kind == "pick_not_packed" else FulfilmentAlarm.order_id
    return ~select(FulfilmentAlarm.id).where(FulfilmentAlarm.kind == kind, FulfilmentAlarm.resolved_at.is_(None),
                                             key == column).exists()


def check(now: datetime | None = None, limit: int = 1000) -> list[FulfilmentAlarm]:
    """Raise what is overdue, resolve what has moved on; returns the alarms raised now."""
    now = now or utc_now()
    raised = []
    late = db.session.execute(
        select(Order.id, Order.order_no, Order.status, func.coalesce(Order.paid_at, Order.placed_at))
        .where(Order.status.in_(WAITING_TO_PACK), Order.payment_status == "paid",
               func.coalesce(Order.paid_at, Order.placed_at) < now - NOT_PACKED_WITHIN,
               _no_open_alarm("not_packed_in_time", Order.id))
        .order_by(Order.id).limit(limit)).all()
    for order_id, order_no, status, since in late:
        raised.append(FulfilmentAlarm(
            kind="not_packed_in_time", order_id=order_id, role="warehouse", raised_at=now,
            message=f"{order_no} was confirmed at {merchant_time_text(since)} and is still {status}"))
    stuck = db.session.execute(select(Shipment).where(Shipment.status == "picked",
                                                      Shipment.picked_at < now - PICKED_NOT_PACKED_WITHIN,
                                                      _no_open_alarm("pick_not_packed", Shipment.id))
                               .order_by(Shipment.id).limit(limit)).scalars().all()
    for shipment in stuck:
        # Back to the pool: whoever picked it no longer holds it; any packing station may take it.
        db.session.execute(update(PickTask).where(PickTask.shipment_id == shipment.id).values(device_id=None))
        raised.append(FulfilmentAlarm(
            kind="pick_not_packed", order_id=shipment.order_id, shipment_id=shipment.id, role="warehouse",
            raised_at=now, message=f"{shipment.order.order_no} was picked at "
                                   f"{merchant_time_text(shipment.picked_at, '%H:%M')} and is not packed; it is "
                                   f"back in the packing pool"))
    raised += _low_stock(now)
    silenced = _muted(raised, now)
    raised = [alarm for alarm in raised if alarm not in silenced]
    db.session.add_all(raised)
    _resolve_done(now)
    db.session.flush()
    return raised


def _low_stock(now: datetime) -> list[FulfilmentAlarm]:
    """SKUs whose free stock over all warehouses fell to their safety stock: one alarm for purchasing (the ops
    manager; there is no purchasing role yet) until stock is back above it."""
    free = func.sum(StockLevel.available)
    short = db.session.execute(
        select(Sku.id, Sku.code, Sku.name, Sku.safety_stock, free).join(StockLevel, StockLevel.sku_id == Sku.id)
        .where(Sku.active, Sku.safety_stock > 0).group_by(Sku.id, Sku.code, Sku.name, Sku.safety_stock)
        .having(free <= Sku.safety_stock)).all()
    open_keys = set(db.session.execute(select(FulfilmentAlarm.subject).where(
        FulfilmentAlarm.kind == "low_stock", FulfilmentAlarm.resolved_at.is_(None))).scalars())
    now_short = {f"sku:{code}" for _id, code, *_rest in short}
    db.session.execute(update(FulfilmentAlarm).where(
        FulfilmentAlarm.kind == "low_stock", FulfilmentAlarm.resolved_at.is_(None),
        FulfilmentAlarm.subject.not_in(now_short or {""})).values(resolved_at=now)
        .execution_options(synchronize_session=False))
    return [FulfilmentAlarm(kind="low_stock", subject=f"sku:{code}", role="ops_manager", raised_at=now,
                            message=f"{code} {name}: {available} free against a safety stock of {safety}; "
                                    f"time to reorder")
            for _id, code, name, safety, available in short if f"sku:{code}" not in open_keys]


def _resolve_done(now: datetime) -> None:
    """Alarms whose step has happened since."""
    waiting = select(Order.id).where(Order.status.in_(WAITING_TO_PACK))
    db.session.execute(update(FulfilmentAlarm).where(
        FulfilmentAlarm.kind == "not_packed_in_time", FulfilmentAlarm.resolved_at.is_(None),
        FulfilmentAlarm.order_id.not_in(waiting)).values(resolved_at=now).execution_options(synchronize_session=False))
    picked = select(Shipment.id).where(Shipment.status == "picked")
    db.session.execute(update(FulfilmentAlarm).where(
        FulfilmentAlarm.kind == "pick_not_packed", FulfilmentAlarm.resolved_at.is_(None),
        FulfilmentAlarm.shipment_id.not_in(picked)).values(resolved_at=now)
        .execution_options(synchronize_session=False))


ROLE_WORDS = {"warehouse": "仓库 Warehouse", "customer_service": "客服 Customer service", "ops_manager": "运营 Ops"}
TITLES = {"not_packed_in_time": "超时未打包 Not packed in 4 h", "pick_not_packed": "拣货后未打包 Picked, not packed",
          "parcel_stalled": "包裹停滞 Parcel stalled", "low_stock": "低于安全库存 Below safety stock"}


def deliver(alarm: FulfilmentAlarm) -> None:
    """To the configured WeCom/DingTalk group robot, addressed to the role; without one, the portal shows it."""
    from shared.notify.robots import Alert
    from shared.notify.robots import deliver as send

    kind, url = current_app.config.get("ALERT_ROBOT_KIND"), current_app.config.get("ALERT_ROBOT_URL")
    if not kind or not url:
        return
    result = send(kind, url, Alert(title=TITLES.get(alarm.kind, alarm.kind),
                                   lines=[f"@{ROLE_WORDS.get(alarm.role, alarm.role)}", alarm.message]),
                  secret=current_app.config.get("ALERT_ROBOT_SECRET"))
    alarm.delivered = result.ok


def open_alarms(limit: int = 100) -> list[FulfilmentAlarm]:
    """Unresolved alarms, newest first, with who acknowledged and who is assigned (loaded in one more query)."""
    return db.session.execute(select(FulfilmentAlarm).where(FulfilmentAlarm.resolved_at.is_(None))
                              .options(selectinload(FulfilmentAlarm.acknowledged_by),
                                       selectinload(FulfilmentAlarm.assigned_to))
                              .order_by(FulfilmentAlarm.raised_at.desc()).limit(limit)).scalars().all()


def get_alarm(alarm_id: int, model=FulfilmentAlarm):
    alarm = db.session.get(model, alarm_id)
    if alarm is None:
        raise NotFound(say(N_("no such alarm")), code="alarm_not_found")
    return alarm


# --- staff's handling: acknowledge, assign, mute -------------------------------------------------------------------

# Kinds staff may mute: the fulfilment steps and stock, and channel sync alerts (subject `channel:<code>`). A
# search-rate alarm is the auditor's security signal and cannot be muted (shared/order_search.py raises it).
MUTABLE_KINDS = ("not_packed_in_time", "pick_not_packed", "parcel_stalled", "low_stock")
SYNC_KINDS = ("not_syncing", "failure_rate", "dead_letter")
MUTABLE = MUTABLE_KINDS + SYNC_KINDS


def _entity(alarm) -> str:
    """How the audit trail names what is handled: a fulfilment alarm or a channel sync alert."""
    return "sync_alert" if isinstance(alarm, SyncAlert) else "alarm"
MAX_MUTE = timedelta(days=7)


def acknowledge(alarm, actor: Actor):
    """Seen and being handled: who and when (once; a second acknowledgement is refused). A FulfilmentAlarm or a
    SyncAlert."""
    if alarm.acknowledged_at is not None:
        raise Conflict(say(N_("this alarm was already acknowledged")), code="already_acknowledged")
    alarm.acknowledged_at, alarm.acknowledged_by_id = utc_now(), actor.id
    audit.record(actor, "alarm.acknowledged", _entity(alarm), alarm.id, after={"kind": alarm.kind})
    return alarm


def assign(alarm, username, actor: Actor):
    """Give the alarm (or sync alert) to an active staff user (by username)."""
    from shared.models import StaffUser

    name = (username or "").strip()
    user = db.session.execute(select(StaffUser).where(StaffUser.username == name, StaffUser.active)).scalar() \
        if name else None
    if user is None:
        raise ValidationFailed(say(N_("choose an active user to assign the alarm to")), field="assignee",
                               code="unknown_user")
    before = {"assignee": alarm.assigned_to.username if alarm.assigned_to else None}
    alarm.assigned_to_id = user.id
    alarm.assigned_to = user
    audit.record(actor, "alarm.assigned", _entity(alarm), alarm.id, before=before,
                 after={"assignee": user.username})
    return alarm


def mute(kind, subject, hours, reason, actor: Actor, now: datetime | None = None,
         kinds: tuple = MUTABLE_KINDS) -> AlarmMute:
    """No new alarm of this kind (for this subject, e.g. `sku:TEA` or `order:<order_no>`, when given) until the
    period ends; open alarms stay on the board. Audited `alarm.muted` with the reason."""
    now = now or utc_now()
    if kind not in kinds or kind not in MUTABLE:
        raise ValidationFailed(say(N_("this kind of alarm cannot be muted")), field="kind", code="not_mutable")
    try:
        period = timedelta(hours=int(hours))
    except (TypeError, ValueError):
        period = timedelta(0)
    if not timedelta(hours=1) <= period <= MAX_MUTE:
        raise ValidationFailed(say(N_("mute for 1 to 168 hours")), field="hours", code="invalid_period")
    reason = validation.text(reason, "reason", 300)
    subject = validation.text(subject, "subject", 80, required=False)
    muted = AlarmMute(kind=kind, subject=subject, muted_until=now + period, muted_by_id=actor.id, reason=reason,
                      created_at=now)
    db.session.add(muted)
    audit.record(actor, "alarm.muted", "alarm_mute", f"{kind}:{subject or '*'}",
                 after={"kind": kind, "subject": subject, "muted_until": muted.muted_until.isoformat()},
                 reason=reason)
    return muted


def active_mutes(now: datetime | None = None) -> list[AlarmMute]:
    now = now or utc_now()
    return list(db.session.scalars(select(AlarmMute).where(AlarmMute.muted_until > now).order_by(AlarmMute.id)))


def is_muted(kind: str, subject: str | None, now: datetime | None = None) -> bool:
    """Whether a mute in force covers a new alarm of this kind and subject (a channel's sync alert)."""
    now = now or utc_now()
    return db.session.execute(select(AlarmMute.id).where(
        AlarmMute.kind == kind, AlarmMute.muted_until > now,
        (AlarmMute.subject.is_(None)) | (AlarmMute.subject == subject))).first() is not None


def _muted(alarms: list[FulfilmentAlarm], now: datetime) -> list[FulfilmentAlarm]:
    """The alarms a mute in force covers (one read of the mutes, matched in memory)."""
    mutes = active_mutes(now)
    if not mutes or not alarms:
        return []
    order_nos = dict(db.session.execute(select(Order.id, Order.order_no).where(
        Order.id.in_({a.order_id for a in alarms if a.order_id}))).all())

    def covered(alarm):
        keys = {None, alarm.subject, f"order:{order_nos.get(alarm.order_id)}" if alarm.order_id else None}
        return any(m.kind == alarm.kind and m.subject in keys for m in mutes)
    return [alarm for alarm in alarms if covered(alarm)]
