"""Demo carrier credibility (issue 15 item 2): the parcels behind the seeded completed orders, so the carrier
scorecard has a history, and one carrier falls under the line and is de-weighted.

Every completed order gets its delivered parcel (the warehouse's two carriers, SF and YTO, in turn): YTO delivers
almost everything within 72 hours with a signed photo; SF delivers every third parcel late, stalls every fifth and
reports no photos. The months those parcels were shipped in (with at least MIN_MONTH_PARCELS) are then scored as the monthly job scores them
(shared.services.carrier_scores.run_month, audited as the system): SF ends under 85, de-weighted with its reason,
and allocation and waybills choose YTO first from then on. The parcels are history rows written directly (there is
no service that "ships in the past"); nothing else in the seeded data changes.
"""
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from flask import current_app

from sqlalchemy import select

from shared.actors import SYSTEM
from shared.extensions import db
from shared.models import Order, Shipment, Warehouse
from shared.services import carrier_scores
from shared.timekeeping import as_utc

CARRIERS = ("SF", "YTO")
# A month with fewer seeded parcels (the first days of a month) is left to the monthly job: a handful of parcels
# would not say how a carrier delivers.
MIN_MONTH_PARCELS = 10


@dataclass
class SeededScores:
    parcels: int = 0
    months: list[str] = field(default_factory=list)
    deweighted: list[str] = field(default_factory=list)


def _parcel(order: Order, warehouse_id: int, carrier: str, serial: int, now: datetime) -> Shipment:
    shipped = min(as_utc(order.placed_at) + timedelta(hours=6), now - timedelta(hours=2))
    if carrier == "SF":
        hours, stalled, photo = (96 if serial % 3 == 0 else 40), serial % 5 == 0, None
    else:
        hours, stalled, photo = (80 if serial % 25 == 0 else 30), False, serial % 10 != 0
    delivered = min(shipped + timedelta(hours=hours), now - timedelta(hours=1))
    return Shipment(order_id=order.id, warehouse_id=warehouse_id, status="delivered", priority=0, carrier_code=carrier,
                    waybill_no=f"{carrier}DEMO{order.id:09d}", allocated_at=shipped - timedelta(hours=4),
                    packed_at=shipped - timedelta(hours=1), shipped_at=shipped, delivered_at=delivered,
                    stalled_at=shipped + timedelta(hours=30) if stalled else None, sign_photo=photo,
                    tracking_step="delivered", last_event_at=delivered)


def seed_carrier_scores(now: datetime) -> SeededScores:
    """Parcels for the completed orders without one, then their months scored and the standings applied."""
    seeded = SeededScores()
    zone = ZoneInfo(current_app.config.get("MERCHANT_TIMEZONE", "Asia/Shanghai"))
    fallback = db.session.execute(select(Warehouse.id).order_by(Warehouse.id)).scalars().first()
    completed = db.session.execute(select(Order).where(
        Order.status == "completed", ~select(Shipment.id).where(Shipment.order_id == Order.id).exists())
        .order_by(Order.id)).scalars().all()
    months: dict = {}
    for serial, order in enumerate(completed):
        shipment = _parcel(order, order.warehouse_id or fallback, CARRIERS[serial % 2], serial // 2, now)
        db.session.add(shipment)
        month = shipment.shipped_at.astimezone(zone).date().replace(day=1)  # the merchant's month
        months[month] = months.get(month, 0) + 1
    db.session.flush()
    seeded.parcels = len(completed)
    for month in sorted(month for month, parcels in months.items() if parcels >= MIN_MONTH_PARCELS):
        result = carrier_scores.run_month(month, SYSTEM, now)
        seeded.months.append(month.strftime("%Y-%m"))
        seeded.deweighted = sorted(set(seeded.deweighted) - set(result["restored"]) | set(result["deweighted"]))
    return seeded
