"""What the detectors already find, turned into exceptions: one query per detector (never row by row), all raised
together through `exceptions.raise_many`, so a rerun raises nothing new.

Each problem's `occurred_at` is when the detector saw it happen (an alarm's raising, a parcel's stall, the
platform's update), so a problem a person resolved is reopened only by a new occurrence, not by the same one
seen again.

Not fed, because the data does not hold it: over-limit purchases (no SKU or buyer carries a purchase limit yet;
`raise_exception("over_limit_purchase", ...)` is there for the check that will).
"""
from datetime import datetime, time, timedelta

from sqlalchemy import String, and_, case, cast, func, literal, or_, select, type_coerce
from sqlalchemy.orm import aliased

from shared.actors import SYSTEM
from shared.exception_lifecycle import DONE
from shared.extensions import db
from shared.models import (CarrierAttempt, ExceptionCase, FulfilmentAlarm, InboxItem, Lot, Order, Shipment, Sku, StatusMapping,
                           StockTake, StockTakeLine, WebhookDelivery)
from shared.services.exceptions import Problem, Raised, raise_many
from shared.timekeeping import as_utc, utc_now

UNPAID_AFTER = timedelta(minutes=30)
NEAR_EXPIRY_DAYS = 30
DUPLICATE_WITHIN = timedelta(hours=24)
DUPLICATE_LOOKBACK = timedelta(days=2)  # orders placed this recently are compared with earlier ones
INBOX_KINDS = {"unmapped_sku": "unmapped_sku", "address_change_too_late": "address_changed_after_packing",
               "insufficient_stock": "out_of_stock"}  # any other review/dead item: a callback that failed
ALARM_KINDS = {"not_packed_in_time": "late_packing", "pick_not_packed": "late_packing",
               "parcel_stalled": "parcel_stalled", "low_stock": "out_of_stock"}
CLOSED_ORDERS = ("cancelled", "closed")
LIMIT = 5000  # rows per detector per run that still need raising; the next run takes the rest


def _key(prefix, column):
    """The dedupe key in SQL, the same text the detector builds in Python (`prefix` + id)."""
    head = literal(prefix) if isinstance(prefix, str) else type_coerce(prefix, String)
    return head.concat(cast(column, String))


def _still_needed(key, occurred):
    """No live exception of this key, or one resolved before this occurrence: the anti-join (on the unique live
    key) that makes the LIMIT apply to rows still needing an exception, however many were raised before."""
    settled = select(ExceptionCase.id).where(ExceptionCase.live_key == key, or_(
        ExceptionCase.status.not_in(DONE), ExceptionCase.resolved_at.is_(None), ExceptionCase.resolved_at >= occurred))
    return ~settled.exists()


def paid_not_recorded(now: datetime) -> list[Problem]:
    """The platform's status (its mapping says paid) while the order here is still unpaid 30 minutes later."""
    rows = db.session.execute(
        select(Order.id, Order.order_no, Order.platform_status, Order.platform_modified_at,
               Order.receiver_phone_index)
        .join(StatusMapping, and_(StatusMapping.channel_id == Order.channel_id,
                                  StatusMapping.platform_status == Order.platform_status))
        .where(StatusMapping.payment_status == "paid", Order.payment_status == "unpaid",
               Order.status.not_in(CLOSED_ORDERS), Order.platform_modified_at <= now - UNPAID_AFTER,
               _still_needed(_key("payment_not_received:order:", Order.id), Order.platform_modified_at))
        .order_by(Order.id).limit(LIMIT)).all()
    return [Problem("payment_not_received", f"payment_not_received:order:{r.id}",
                    f"{r.order_no}: paid on the platform ({r.platform_status}), unpaid here",
                    r.platform_modified_at, order_id=r.id, buyer_index=r.receiver_phone_index) for r in rows]


def _inbox_kind():
    return type_coerce(case(*((InboxItem.error_code == code, kind) for code, kind in INBOX_KINDS.items()),
                            else_="callback_failed"), String)


def inbox_problems(now: datetime) -> list[Problem]:
    """Inbox items in review or dead: an unmapped SKU, an address changed after packing, no stock, or a message
    that could not be applied (a failed callback)."""
    rows = db.session.execute(
        select(InboxItem.id, InboxItem.error_code, InboxItem.last_error, InboxItem.processed_at,
               InboxItem.received_at, InboxItem.order_id, InboxItem.external_id, Order.receiver_phone_index)
        .outerjoin(Order, Order.id == InboxItem.order_id)
        .where(InboxItem.status.in_(("review", "dead")),
               _still_needed(_key(_inbox_kind().concat(":inbox:"), InboxItem.id),
                             func.coalesce(InboxItem.processed_at, InboxItem.received_at)))
        .order_by(InboxItem.id).limit(LIMIT)).all()
    problems = []
    for r in rows:
        kind = INBOX_KINDS.get(r.error_code or "", "callback_failed")
        problems.append(Problem(kind, f"{kind}:inbox:{r.id}",
                                f"inbox #{r.id} ({r.external_id or '—'}): {(r.last_error or r.error_code or '')[:200]}",
                                r.processed_at or r.received_at, order_id=r.order_id,
                                buyer_index=r.receiver_phone_index,
                                details={"inbox_item": r.id, "error_code": r.error_code}))
    return problems


def failed_webhooks(now: datetime) -> list[Problem]:
    """Our own callbacks to the merchant's systems that gave up (dead deliveries)."""
    rows = db.session.execute(select(WebhookDelivery.id, WebhookDelivery.last_error, WebhookDelivery.last_attempt_at)
                              .where(WebhookDelivery.status == "dead", _still_needed(
                                  _key("callback_failed:delivery:", WebhookDelivery.id),
                                  func.coalesce(WebhookDelivery.last_attempt_at, now)))
                              .order_by(WebhookDelivery.id)
                              .limit(LIMIT)).all()
    return [Problem("callback_failed", f"callback_failed:delivery:{r.id}",
                    f"webhook delivery #{r.id} gave up: {(r.last_error or '')[:200]}", r.last_attempt_at or now,
                    details={"delivery": r.id}) for r in rows]


def _alarm_key():
    kind = type_coerce(case(*((FulfilmentAlarm.kind == alarm, kind) for alarm, kind in ALARM_KINDS.items())), String)
    subject = type_coerce(case(
        (FulfilmentAlarm.shipment_id.is_not(None), _key("shipment:", FulfilmentAlarm.shipment_id)),
        (FulfilmentAlarm.order_id.is_not(None), _key("order:", FulfilmentAlarm.order_id)),
        else_=FulfilmentAlarm.subject), String)
    return kind.concat(":").concat(subject)


def fulfilment_alarms(now: datetime) -> list[Problem]:
    """Open fulfilment alarms: late packing, stalled parcels, stock at its safety level."""
    rows = db.session.execute(
        select(FulfilmentAlarm.id, FulfilmentAlarm.kind, FulfilmentAlarm.message, FulfilmentAlarm.raised_at,
               FulfilmentAlarm.order_id, FulfilmentAlarm.shipment_id, FulfilmentAlarm.subject,
               Order.receiver_phone_index, Sku.id.label("sku_id"))
        .outerjoin(Order, Order.id == FulfilmentAlarm.order_id)
        .outerjoin(Sku, (FulfilmentAlarm.kind == "low_stock") & (FulfilmentAlarm.subject == "sku:" + Sku.code))
        .where(FulfilmentAlarm.resolved_at.is_(None), FulfilmentAlarm.kind.in_(ALARM_KINDS),
               _still_needed(_alarm_key(), FulfilmentAlarm.raised_at))
        .order_by(FulfilmentAlarm.id).limit(LIMIT)).all()
    problems = []
    for r in rows:
        kind = ALARM_KINDS[r.kind]
        subject = (f"shipment:{r.shipment_id}" if r.shipment_id else f"order:{r.order_id}" if r.order_id
                   else r.subject)
        problems.append(Problem(kind, f"{kind}:{subject}", r.message, r.raised_at, order_id=r.order_id,
                                shipment_id=r.shipment_id, sku_id=r.sku_id, buyer_index=r.receiver_phone_index,
                                details={"alarm": r.id}))
    return problems


def returned_parcels(now: datetime) -> list[Problem]:
    """Parcels the carrier reports returned, returning or refused by the receiver (tracking flags)."""
    flagged = Shipment.tracking_flags.like("%return%") | Shipment.tracking_flags.like("%refused%")
    rows = db.session.execute(
        select(Shipment.id, Shipment.waybill_no, Shipment.carrier_code, Shipment.tracking_flags,
               Shipment.last_event_at, Shipment.shipped_at, Shipment.order_id, Order.order_no,
               Order.receiver_phone_index)
        .join(Order, Order.id == Shipment.order_id)
        .where(Shipment.tracking_flags.is_not(None), flagged,
               _still_needed(_key("parcel_returned:shipment:", Shipment.id),
                             func.coalesce(Shipment.last_event_at, Shipment.shipped_at, now)))
        .order_by(Shipment.id).limit(LIMIT)).all()
    return [Problem("parcel_returned", f"parcel_returned:shipment:{r.id}",
                    f"{r.order_no}: parcel {r.waybill_no} ({r.carrier_code}) {r.tracking_flags}",
                    r.last_event_at or r.shipped_at or now, order_id=r.order_id, shipment_id=r.id,
                    buyer_index=r.receiver_phone_index) for r in rows]


def carrier_refusals(now: datetime) -> list[Problem]:
    """Waybill requests a carrier refused, for parcels still without a waybill."""
    rows = db.session.execute(
        select(CarrierAttempt.shipment_id, CarrierAttempt.carrier_code, CarrierAttempt.message,
               CarrierAttempt.occurred_at, Shipment.order_id, Order.order_no, Order.receiver_phone_index)
        .join(Shipment, Shipment.id == CarrierAttempt.shipment_id).join(Order, Order.id == Shipment.order_id)
        .where(CarrierAttempt.outcome == "refused", Shipment.waybill_no.is_(None),
               Shipment.status.not_in(("cancelled", "shipped", "delivered")),
               _still_needed(_key("carrier_refused:shipment:", Shipment.id), CarrierAttempt.occurred_at))
        .order_by(CarrierAttempt.id).limit(LIMIT)).all()
    return [Problem("carrier_refused", f"carrier_refused:shipment:{r.shipment_id}",
                    f"{r.order_no}: {r.carrier_code} refused the waybill: {(r.message or '')[:200]}",
                    r.occurred_at, order_id=r.order_id, shipment_id=r.shipment_id,
                    buyer_index=r.receiver_phone_index) for r in rows]


def near_expiry_lots(now: datetime, today=None) -> list[Problem]:
    """Lots with stock that expire within 30 days; the problem 'happened' the day the lot came within 30 days."""
    from shared.services.lots import merchant_today

    today = today or merchant_today()
    rows = db.session.execute(
        select(Lot.id, Lot.lot_no, Lot.expires_on, Lot.quantity, Lot.sku_id, Sku.code)
        .join(Sku, Sku.id == Lot.sku_id)
        .where(Lot.expires_on.is_not(None), Lot.expires_on <= today + timedelta(days=NEAR_EXPIRY_DAYS),
               Lot.quantity > 0, _still_needed(_key("near_expiry:lot:", Lot.id), ExceptionCase.occurred_at))
        .order_by(Lot.id).limit(LIMIT)).all()
    return [Problem("near_expiry", f"near_expiry:lot:{r.id}",
                    f"{r.code} lot {r.lot_no}: {r.quantity} units expire on {r.expires_on}",
                    min(now, datetime.combine(r.expires_on - timedelta(days=NEAR_EXPIRY_DAYS), time(0),
                                              now.tzinfo)), sku_id=r.sku_id) for r in rows]


def stocktake_variances(now: datetime) -> list[Problem]:
    """Counted lines of a submitted stock-take that differ from the expected figure, waiting for a decision."""
    rows = db.session.execute(
        select(StockTakeLine.id, StockTakeLine.sku_id, StockTakeLine.expected, StockTakeLine.counted,
               StockTake.id.label("take_id"), StockTake.started_at, Sku.code)
        .join(StockTake, StockTake.id == StockTakeLine.stock_take_id).join(Sku, Sku.id == StockTakeLine.sku_id)
        .where(StockTake.status == "submitted", StockTakeLine.counted.is_not(None),
               StockTakeLine.counted != StockTakeLine.expected,
               _still_needed(_key("stocktake_variance:line:", StockTakeLine.id), StockTake.started_at))
        .order_by(StockTakeLine.id).limit(LIMIT)).all()
    return [Problem("stocktake_variance", f"stocktake_variance:line:{r.id}",
                    f"stock-take {r.take_id}: {r.code} counted {r.counted}, expected {r.expected}",
                    r.started_at, sku_id=r.sku_id, details={"stock_take": r.take_id}) for r in rows]


def duplicate_buyers(now: datetime) -> list[Problem]:
    """Orders of one buyer (the receiver phone's blind index) on two channels within 24 hours: one self-join, the
    window's exact bound checked on the pairs it finds."""
    newer, older = aliased(Order), aliased(Order)
    rows = db.session.execute(
        select(newer.id, newer.order_no, newer.placed_at, newer.receiver_phone_index, older.id.label("older_id"),
               older.order_no.label("older_no"), older.placed_at.label("older_placed_at"))
        .join(older, and_(older.receiver_phone_index == newer.receiver_phone_index,
                          older.channel_id != newer.channel_id, older.id != newer.id,
                          older.placed_at <= newer.placed_at, older.placed_at >= now - DUPLICATE_LOOKBACK
                          - DUPLICATE_WITHIN, older.status.not_in(CLOSED_ORDERS)))
        .where(newer.placed_at >= now - DUPLICATE_LOOKBACK, newer.status.not_in(CLOSED_ORDERS),
               newer.receiver_phone_index != "",
               _still_needed(_key("duplicate_buyer_orders:order:", newer.id), newer.placed_at))
        .order_by(newer.id, older.id).limit(LIMIT)).all()
    found: dict[int, Problem] = {}
    for r in rows:
        if as_utc(r.placed_at) - as_utc(r.older_placed_at) > DUPLICATE_WITHIN or r.id in found:
            continue
        found[r.id] = Problem("duplicate_buyer_orders", f"duplicate_buyer_orders:order:{r.id}",
                              f"{r.order_no} and {r.older_no}: one buyer, two channels, within 24 h",
                              r.placed_at, order_id=r.id, buyer_index=r.receiver_phone_index,
                              details={"other_order": r.older_no})
    return list(found.values())


DETECTORS = (paid_not_recorded, inbox_problems, failed_webhooks, fulfilment_alarms, returned_parcels,
             carrier_refusals, near_expiry_lots, stocktake_variances, duplicate_buyers)


def feed(now: datetime | None = None, today=None) -> Raised:
    """Run every detector once and raise what they found (as the system)."""
    now = now or utc_now()
    problems = []
    for detector in DETECTORS:
        problems += detector(now, today) if detector is near_expiry_lots else detector(now)
    return raise_many(problems, SYSTEM, now)
