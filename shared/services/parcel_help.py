""""Not received yet?" (issue 13 item 5): for a shipped, undelivered order, what the customer is told before anyone
asks — the parcel's last known position, the delivery estimate learned from the merchant's own history
(shared/services/transit_estimates.py), the courier's contact when the carrier names one — and one click that
opens a case in the exception center with the order attached and its SLA, the same case on a second click."""
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from shared.actors import Actor
from shared.exception_lifecycle import DONE
from shared.extensions import db
from shared.models import ExceptionCase, Order, ParcelCourier, Shipment, TrackingEvent
from shared.services import exceptions, transit_estimates
from shared.services.errors import ValidationFailed
from shared.services.validation import N_, say
from shared.timekeeping import utc_now

KIND = "parcel_not_received"
NOT_ON_ITS_WAY = N_("this order has no parcel on its way: it can be asked about once shipped and until delivered")


def case_key(order: Order) -> str:
    return f"{KIND}:order:{order.id}"


@dataclass
class ParcelHelp:
    shipment: Shipment
    last_event: TrackingEvent | None
    estimate: transit_estimates.Estimate | None
    courier: tuple[str | None, str | None] | None  # (name, phone) of the courier to call now
    case: ExceptionCase | None  # the customer's open case about this parcel


def parcel_on_its_way(order: Order) -> Shipment | None:
    """The order's newest parcel when the order is shipped and that parcel is not delivered, else None."""
    if order.status != "shipped":
        return None
    shipment = db.session.execute(select(Shipment).where(Shipment.order_id == order.id, Shipment.status == "shipped")
                                  .order_by(Shipment.id.desc())).scalars().first()
    if shipment is None or shipment.delivered_at is not None:
        return None
    return shipment


def open_case(order: Order) -> ExceptionCase | None:
    row = db.session.execute(select(ExceptionCase).where(ExceptionCase.live_key == case_key(order))
                             ).scalar_one_or_none()
    return row if row is not None and row.status not in DONE else None


def parcel_help(order: Order, now: datetime | None = None) -> ParcelHelp | None:
    """What the order page shows under "Not received yet?"; None when no parcel is on its way."""
    shipment = parcel_on_its_way(order)
    if shipment is None:
        return None
    last = db.session.execute(select(TrackingEvent).where(TrackingEvent.shipment_id == shipment.id)
                              .order_by(TrackingEvent.occurred_at.desc(), TrackingEvent.id.desc())
                              .limit(1)).scalars().first()
    courier_row = db.session.get(ParcelCourier, shipment.id)
    courier = None
    if courier_row is not None:
        if courier_row.delivery_name or courier_row.delivery_phone:
            courier = (courier_row.delivery_name, courier_row.delivery_phone)
        elif courier_row.pickup_name or courier_row.pickup_phone:
            courier = (courier_row.pickup_name, courier_row.pickup_phone)
    return ParcelHelp(shipment, last, transit_estimates.estimate_for(shipment, now), courier, open_case(order))


def contact_service(order: Order, actor: Actor, now: datetime | None = None) -> ExceptionCase:
    """Open the "parcel not received" case for this order (the order and parcel attached, the logistics SLA), or
    give back the one already open: a second click never opens a second case. The caller commits."""
    now = now or utc_now()
    shipment = parcel_on_its_way(order)
    if shipment is None:
        raise ValidationFailed(say(NOT_ON_ITS_WAY), field="order_no", code="parcel_not_on_its_way")
    existing = open_case(order)
    if existing is not None:
        return existing
    last = shipment.last_event_at or shipment.shipped_at
    summary = (f"customer asks about parcel {shipment.waybill_no or '-'} ({shipment.carrier_code or '-'}) of order "
               f"{order.order_no}: not received; last carrier news {last:%Y-%m-%d %H:%M} UTC" if last else
               f"customer asks about parcel {shipment.waybill_no or '-'} of order {order.order_no}: not received")
    return exceptions.raise_exception(KIND, case_key(order), summary[:300], actor, now=now, order_id=order.id,
                                      shipment_id=shipment.id, buyer_index=order.receiver_phone_index)
