"""Return pickups (上门取件, issue 13 item 2, the carrier side): a return e-waybill with the customer's address as
sender and the warehouse's return address as receiver, and a courier booked at the customer's door for a time
slot, through the Kuaidi100 商家寄件 adapter (shared/carriers/pickups.py); cancelled before collection; the
courier named by the carrier's order callback; the return parcel tracked by the same pushes and polls as any
parcel (`ingest_events`, called by shared/services/tracking.py for numbers that are not outbound parcels).

`book` changes nothing when anything is refused (bad input, a slot that cannot be booked, the carrier saying no);
the serial sent as thirdOrderId makes a retry after a lost answer give back the same carrier order.
"""
import hashlib
from collections import Counter, defaultdict
from datetime import datetime

from sqlalchemy import func, select

from shared import sets
from shared.actors import SYSTEM, Actor
from shared import labels
from shared.extensions import db
from shared.models import Order, ReturnPickup, ReturnPickupEvent, Warehouse, WarehouseReturnAddress
from shared.services import audit
from shared.services import validation as check
from shared.services.errors import Conflict, NotFound, ServiceError, ValidationFailed
from shared.services.validation import N_, say
NO_PICKUP = N_("No return pickup \"%(id)s\"")
NO_PICKUP_FOR_ORDER = N_("No return pickup for carrier order %(order)s")
from shared.timekeeping import utc_now

LIVE = ("booked", "collected", "in_transit")
RETURNABLE_ORDERS = ("shipped", "completed")
ADDRESS_FIELDS = ("name", "phone", "province", "city", "district", "street")

UNKNOWN_ORDER = N_("no order %(order_no)s")
NOT_SHIPPED = N_("a return pickup is booked for an order that was shipped")
NO_RETURN_ADDRESS = N_("warehouse %(warehouse)s has no return address yet: customer service sets one first")
NO_PICKUP_CARRIER = N_("none of warehouse %(warehouse)s's carriers collects at the door")
BAD_SLOT = N_("choose one of the offered pickup times")
SLOT_GONE = N_("this pickup time can no longer be booked: choose a later one")
CARRIER_REFUSED = N_("the carrier refused the pickup: %(reason)s")
CARRIER_DOWN = N_("the carrier could not be reached: nothing was booked, try again in a moment")
NOT_CANCELLABLE = N_("this pickup is %(status)s and can no longer be cancelled")
LINES_REQUIRED = N_("say what goes back (the items and quantities)")
BAD_AFTER_SALE = N_("after_sale_id must be a positive whole number")


class PickupCarrierDown(ServiceError):
    status = 503


# --- return addresses ----------------------------------------------------------------------------------------------

def return_address(warehouse_id: int) -> WarehouseReturnAddress | None:
    return db.session.get(WarehouseReturnAddress, warehouse_id)


def set_return_address(warehouse_code: str, data: dict, actor: Actor) -> WarehouseReturnAddress:
    """Where returns to a warehouse go (receiver, phone, province, city, district, street), audited."""
    from shared.services import stock

    warehouse = stock.get_warehouse(warehouse_code)
    data = check.mapping(data, "return_address")
    values = {"receiver": check.text(data.get("receiver"), "receiver", 60),
              "phone": check.phone(data.get("phone"), "phone"),
              "province": check.text(data.get("province"), "province", 40),
              "city": check.text(data.get("city"), "city", 40),
              "district": check.text(data.get("district"), "district", 40),
              "street": check.text(data.get("street"), "street", 200)}
    row = db.session.get(WarehouseReturnAddress, warehouse.id)
    before = None if row is None else {name: getattr(row, name) for name in values}
    if row is None:
        row = WarehouseReturnAddress(warehouse_id=warehouse.id)
        db.session.add(row)
    for name, value in values.items():
        setattr(row, name, value)
    row.updated_by, row.updated_at = actor.label, utc_now()
    db.session.flush()
    audit.record(actor, "warehouse.return_address", "warehouse", warehouse.code, before=before, after=values)
    return row


# --- booking -------------------------------------------------------------------------------------------------------

def _order(order_no: str) -> Order:
    from shared import order_numbers

    try:
        number = order_numbers.validate(order_no)
    except ValidationFailed:
        number = None
    order = db.session.execute(select(Order).where(Order.order_no == number)).scalar_one_or_none() if number else None
    if order is None:
        raise NotFound(say(UNKNOWN_ORDER, order_no=str(order_no)[:40]), field="order_no", code="unknown_order")
    return order


def _destination(order: Order) -> tuple[Warehouse, WarehouseReturnAddress, str]:
    """The warehouse the parcel goes back to (the one that shipped it), its return address and the carrier."""
    from shared.carriers.pickups import SLICES

    warehouse = db.session.get(Warehouse, order.warehouse_id) if order.warehouse_id else None
    if warehouse is None:
        raise ValidationFailed(say(NOT_SHIPPED), field="order_no", code="order_not_shipped")
    address = return_address(warehouse.id)
    if address is None:
        raise ValidationFailed(say(NO_RETURN_ADDRESS, warehouse=warehouse.code), field="warehouse",
                               code="no_return_address")
    carrier = next((code for code in (warehouse.carriers or "").split(",") if code.strip() in SLICES), None)
    if carrier is None:
        raise ValidationFailed(say(NO_PICKUP_CARRIER, warehouse=warehouse.code), field="warehouse",
                               code="no_pickup_carrier")
    return warehouse, address, carrier.strip()


def _returnable(order: Order) -> None:
    if order.status not in RETURNABLE_ORDERS:
        raise ValidationFailed(say(NOT_SHIPPED), field="order_no", code="order_not_shipped")


def _address(address) -> dict:
    address = check.mapping(address, "address")
    return {"name": check.text(address.get("name"), "address.name", 60),
            "phone": check.phone(address.get("phone"), "address.phone"),
            "province": check.text(address.get("province"), "address.province", 40),
            "city": check.text(address.get("city"), "address.city", 40),
            "district": check.text(address.get("district"), "address.district", 40),
            "street": check.text(address.get("street"), "address.street", 200)}


def slots(order: Order, address, now: datetime | None = None) -> list:
    """The pickup times the customer may choose (PickupSlot: today, tomorrow and the day after, each carrier's
    published slices, none ending within 2 hours)."""
    from shared.carriers.pickups import pickup_slots

    _returnable(order)
    _address(address)
    _warehouse, _return_to, carrier = _destination(order)
    return pickup_slots(carrier, now or utc_now())


def slot_holding(order: Order, moment: datetime) -> str:
    """The key of the pickup slot of the order's warehouse carrier that holds `moment` (its start included, its end
    not): how a pickup given as a time is booked. A time no slice holds (before 09:00, after the last slice) is
    refused (422 `invalid_slot`)."""
    from shared.carriers.pickups import slices_on

    _returnable(order)
    _warehouse, _return_to, carrier = _destination(order)
    for slot in slices_on(carrier, moment):
        if slot.starts_at <= moment < slot.ends_at:
            return slot.key
    raise ValidationFailed(say(BAD_SLOT), field="pickup.at", code="invalid_slot")


def check_slot(order: Order, key: str, now: datetime, past_message: str) -> str:
    """A slot key as given (`YYYY-MM-DD HH:MM-HH:MM`, Beijing time) checked against the order's pickup carrier: one
    of its slices (422 `invalid_slot`), not over already (422 `pickup_in_past`, said with `past_message`)."""
    from shared.carriers.pickups import parse_slot

    _returnable(order)
    _warehouse, _return_to, carrier = _destination(order)
    try:
        slot = parse_slot(carrier, key)
    except ValueError:
        raise ValidationFailed(say(BAD_SLOT), field="pickup.slot", code="invalid_slot") from None
    if slot.ends_at <= now:
        raise ValidationFailed(say(past_message), field="pickup.slot", code="pickup_in_past")
    return slot.key


def pickup_client():
    """The Kuaidi100 商家寄件 client from configuration (KUAIDI100_API_URL, _KEY, _SECRET, PICKUP_CALLBACK_URL,
    PICKUP_SALT)."""
    from flask import current_app

    from shared.carriers.pickups import PickupClient

    config = current_app.config
    return PickupClient(config["KUAIDI100_API_URL"], config.get("KUAIDI100_KEY", ""),
                        config.get("KUAIDI100_SECRET", ""), callback_url=config.get("PICKUP_CALLBACK_URL", ""),
                        salt=config.get("PICKUP_SALT", ""))


def _printed(address: dict) -> str:
    return f"{address['province']}{address['city']}{address['district']}{address['street']}"


def book(order_no: str, address, slot: str, lines_summary: str, actor: Actor, after_sale_id: int | None = None,
         *, client=None, now: datetime | None = None) -> ReturnPickup:
    """Book a door pickup of a return parcel: the booking (waybill number, slot; the courier once the carrier's
    callback names one). A live booking for the same order and after-sales request is given back as it is.
    The caller commits."""
    from shared.carriers.pickups import PickupRefused, PickupRequest, PickupUnavailable, bookable, parse_slot

    now = now or utc_now()
    order = _order(order_no)
    _returnable(order)
    sender = _address(address)
    summary = check.text(lines_summary, "lines_summary", 300, required=False)
    if not summary:
        raise ValidationFailed(say(LINES_REQUIRED), field="lines_summary", code="required")
    if after_sale_id is not None and (isinstance(after_sale_id, bool) or not isinstance(after_sale_id, int)
                                      or after_sale_id < 1):
        raise ValidationFailed(say(BAD_AFTER_SALE), field="after_sale_id", code="invalid_type")
    warehouse, return_to, carrier = _destination(order)
    try:
        chosen = parse_slot(carrier, slot)
    except ValueError:
        raise ValidationFailed(say(BAD_SLOT), field="slot", code="invalid_slot") from None
    if not bookable(chosen, now):
        raise ValidationFailed(say(SLOT_GONE), field="slot", code="slot_not_bookable")
    live = db.session.execute(select(ReturnPickup).where(
        ReturnPickup.order_id == order.id, ReturnPickup.status.in_(LIVE),
        ReturnPickup.after_sale_id.is_(None) if after_sale_id is None else ReturnPickup.after_sale_id == after_sale_id)
    ).scalars().first()
    if live is not None:
        return live
    count = db.session.execute(select(func.count()).select_from(ReturnPickup)
                               .where(ReturnPickup.order_id == order.id)).scalar()
    serial = f"RP{order.order_no}{count + 1:02d}"
    request = PickupRequest(
        serial=serial, carrier_code=carrier,
        sender={"name": sender["name"], "mobile": sender["phone"], "address": _printed(sender)},
        receiver={"name": return_to.receiver, "mobile": return_to.phone,
                  "address": f"{return_to.province}{return_to.city}{return_to.district}{return_to.street}"},
        cargo=f"退货 {summary}"[:50], slot=chosen, remark=f"退货 {order.order_no}")
    own_client = client is None
    client = client or pickup_client()
    try:
        answer = client.book(request, now)
    except PickupRefused as refused:
        raise ValidationFailed(say(CARRIER_REFUSED, reason=refused.reason[:200]), field="slot",
                               code="pickup_refused") from None
    except PickupUnavailable:
        raise PickupCarrierDown(say(CARRIER_DOWN), code="carrier_unavailable") from None
    finally:
        if own_client:
            client.close()
    booking = ReturnPickup(
        serial=serial, order_id=order.id, after_sale_id=after_sale_id, warehouse_id=warehouse.id,
        carrier_code=carrier, status="booked", task_id=answer.task_id, provider_order_id=answer.order_id,
        waybill_no=answer.waybill_no, slot_start=chosen.starts_at, slot_end=chosen.ends_at,
        sender_name=sender["name"], sender_phone=sender["phone"], sender_province=sender["province"],
        sender_city=sender["city"], sender_district=sender["district"], sender_street=sender["street"],
        lines_summary=summary, created_by=actor.label, created_at=now, updated_at=now)
    db.session.add(booking)
    db.session.flush()
    audit.record(actor, "return_pickup.book", "return_pickup", booking.id, after={
        "order_no": order.order_no, "serial": serial, "carrier": carrier, "waybill_no": answer.waybill_no,
        "slot": chosen.key, "after_sale_id": after_sale_id, "warehouse": warehouse.code})
    return booking


def get_booking(booking_id) -> ReturnPickup:
    row = db.session.get(ReturnPickup, int(booking_id)) if str(booking_id or "").isdigit() else None
    if row is None:
        raise NotFound(say(NO_PICKUP, id=str(booking_id)[:20]), field="id", code="unknown_pickup")
    return row


def cancel(booking: ReturnPickup | int, actor: Actor, reason: str = "客户取消退货", *, client=None) -> ReturnPickup:
    """Cancel a pickup not yet collected (the carrier is told first; if it refuses, nothing changes here)."""
    from shared.carriers.pickups import PickupRefused, PickupUnavailable

    booking = booking if isinstance(booking, ReturnPickup) else get_booking(booking)
    if booking.status != "booked":
        raise Conflict(say(NOT_CANCELLABLE, status=labels.label(labels.RETURN_PICKUP_STATUS, booking.status)),
                       code="pickup_not_cancellable")
    reason = check.text(reason, "reason", 200)
    own_client = client is None
    client = client or pickup_client()
    try:
        client.cancel(booking.task_id, booking.provider_order_id, reason)
    except PickupRefused as refused:
        raise Conflict(say(CARRIER_REFUSED, reason=refused.reason[:200]), code="pickup_refused") from None
    except PickupUnavailable:
        raise PickupCarrierDown(say(CARRIER_DOWN), code="carrier_unavailable") from None
    finally:
        if own_client:
            client.close()
    now = utc_now()
    booking.status, booking.cancelled_at, booking.cancel_reason, booking.updated_at = "cancelled", now, reason, now
    db.session.flush()
    audit.record(actor, "return_pickup.cancel", "return_pickup", booking.id, before={"status": "booked"},
                 after={"status": "cancelled", "reason": reason})
    return booking


def apply_callback(form: dict, salt: str | None = None) -> ReturnPickup:
    """A carrier's order callback (verified with the salt): the courier assigned (1), collected (10), cancelled by
    the carrier (99) or confirmed (9), the waybill number of an asynchronous carrier (0); audited as the system."""
    from flask import current_app

    from shared.carriers.pickups import read_pickup_callback

    callback = read_pickup_callback(form, salt if salt is not None else current_app.config.get("PICKUP_SALT", ""))
    booking = db.session.execute(select(ReturnPickup).where(
        ReturnPickup.provider_order_id == callback.order_id)).scalars().first()
    if booking is None:
        raise NotFound(say(NO_PICKUP_FOR_ORDER, order=callback.order_id), code="unknown_pickup")
    before = {"status": booking.status, "courier": booking.courier_name, "waybill_no": booking.waybill_no}
    if callback.waybill_no and not booking.waybill_no:
        booking.waybill_no = callback.waybill_no
    if callback.courier_name or callback.courier_mobile:
        booking.courier_name, booking.courier_phone = callback.courier_name, callback.courier_mobile
    if callback.meaning == "collected" and booking.status == "booked":
        booking.status = "collected"
    elif callback.meaning in ("cancelled", "cancelled_by_carrier") and booking.status == "booked":
        booking.status, booking.cancelled_at = "cancelled", booking.cancelled_at or utc_now()
        booking.cancel_reason = booking.cancel_reason or (callback.message or callback.meaning)[:200]
    booking.updated_at = utc_now()
    db.session.flush()
    audit.record(SYSTEM, "return_pickup.callback", "return_pickup", booking.id, before=before,
                 after={"status": booking.status, "courier": booking.courier_name, "waybill_no": booking.waybill_no,
                        "carrier_status": callback.status})
    return booking


def bookings_for_order(order_id: int) -> list[ReturnPickup]:
    return list(db.session.execute(select(ReturnPickup).where(ReturnPickup.order_id == order_id)
                                   .order_by(ReturnPickup.id.desc())).scalars())


# --- tracking of return parcels --------------------------------------------------------------------------------------

_EVENT_KEY = ["pickup_id", "occurred_at", "source", "description_hash"]


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def ingest_events(events: list, now: datetime | None = None) -> dict[str, int]:
    """Events of return parcels (numbers no outbound parcel has): stored once each, each booking's step and flags
    recomputed from all its events, `received` when delivered to the warehouse. Returns, for each number it knew,
how many of its events were new. A
    handful of statements for the batch: one look-up, one insert, one read back, one update per booking touched."""
    from shared.carriers.tracking import summarize

    now = now or utc_now()
    numbers = {event.waybill_no for event in events}
    if not numbers:
        return {}
    bookings = {row.waybill_no: row for row in db.session.execute(
        select(ReturnPickup).where(sets.among(ReturnPickup.waybill_no, numbers), ReturnPickup.status != "cancelled")
        .order_by(ReturnPickup.id).with_for_update(of=ReturnPickup.__table__)).scalars()}
    if not bookings:
        return {}
    rows, seen = [], set()
    for event in events:
        booking = bookings.get(event.waybill_no)
        if booking is None:
            continue
        key = (booking.id, event.occurred_at, event.source, _hash(event.description))
        if key in seen:
            continue
        seen.add(key)
        rows.append({"pickup_id": booking.id, "occurred_at": event.occurred_at, "source": event.source,
                     "raw_status": str(event.raw_status)[:40], "step": event.step, "flag": event.flag,
                     "description": event.description[:500], "description_hash": key[3],
                     "location": (event.location or None) and event.location[:120], "received_at": now})
    inserted = Counter(pickup_id for (pickup_id,) in sets.insert_new_rows(
        ReturnPickupEvent, rows, conflict=_EVENT_KEY, returning=["pickup_id"]))
    stored = defaultdict(list)
    for row in db.session.execute(select(ReturnPickupEvent).where(
            sets.among(ReturnPickupEvent.pickup_id, [b.id for b in bookings.values()]))
            .order_by(ReturnPickupEvent.occurred_at, ReturnPickupEvent.id)).scalars():
        stored[row.pickup_id].append(row)
    arrived = []
    for booking in bookings.values():
        mine = stored.get(booking.id, [])
        if not mine:
            continue
        step, flags = summarize(_Stored(row) for row in mine)
        before = booking.status
        booking.tracking_step, booking.tracking_flags = step, ",".join(sorted(flags)) or None
        booking.last_event_at = max(row.occurred_at for row in mine)
        if step == "delivered":
            booking.status = "received"
            booking.received_at = booking.received_at or max(row.occurred_at for row in mine if row.step == "delivered")
        elif step != "awaiting_pickup" and booking.status in ("booked", "collected"):
            booking.status = "in_transit"
        booking.updated_at = now
        if booking.status != before:
            audit.record(SYSTEM, "return_pickup.tracking", "return_pickup", booking.id, before={"status": before},
                         after={"status": booking.status, "step": step})
            if booking.status == "received":
                arrived.append(booking)
    db.session.flush()
    if arrived:
        from shared.services import after_sales

        for booking in arrived:  # the after-sales request is received at the delivery time (its refund clock)
            after_sales.receive_returned(booking)
    return {number: inserted.get(booking.id, 0) for number, booking in bookings.items()}


class _Stored:
    """A stored event in the shape summarize() reads."""

    __slots__ = ("occurred_at", "description", "source", "step", "flag")

    def __init__(self, row):
        self.occurred_at, self.description, self.source = row.occurred_at, row.description_hash, row.source
        self.step, self.flag = row.step, row.flag
