"""Waves: allocated shipments grouped by warehouse, carrier and cut-off, released in committed chunks into
first-expiry-first-out pick tasks."""
from collections import defaultdict
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import select, update

from shared.actors import SYSTEM, Actor
from shared.extensions import db
from shared.lifecycle import OrderStatus
from shared.models import Lot, Order, PickTask, Shipment, Wave
from shared.services import audit
from shared.services import orders as order_service
from shared.services import stock as stock_service
from shared.services.allocation import lines_of
from shared.services.errors import Conflict, NotFound
from shared.timekeeping import utc_now

S = OrderStatus


def next_cutoff(now: datetime, hour: int = 16) -> datetime:
    """Today's carrier cut-off in the merchant's zone, or tomorrow's once it has passed."""
    zone = ZoneInfo(current_app.config["MERCHANT_TIMEZONE"])
    local = now.astimezone(zone)
    cutoff = local.replace(hour=hour, minute=0, second=0, microsecond=0)
    return (cutoff if cutoff > local else cutoff + timedelta(days=1)).astimezone(now.tzinfo)


def plan_waves(warehouse_code: str, actor: Actor, now: datetime | None = None, limit: int = 20_000) -> list[Wave]:
    """Group the warehouse's allocated shipments by carrier into waves for the next cut-off, highest priority first."""
    now = now or utc_now()
    warehouse = stock_service.get_warehouse(warehouse_code)
    query = select(Shipment.id, Shipment.carrier_code).where(
        Shipment.warehouse_id == warehouse.id, Shipment.status == "allocated"
    ).order_by(Shipment.priority.desc(), Shipment.allocated_at, Shipment.id).limit(limit)
    if db.engine.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)  # two planners at once split the shipments, never share
    shipments = db.session.execute(query).all()
    by_carrier: dict[str, list[int]] = defaultdict(list)
    for shipment_id, carrier in shipments:
        by_carrier[carrier or "SF"].append(shipment_id)
    cutoff = next_cutoff(now)
    waves = []
    for carrier, ids in sorted(by_carrier.items()):
        wave = Wave(warehouse_id=warehouse.id, carrier_code=carrier, cutoff_at=cutoff, status="planned",
                    order_count=len(ids), released_count=0, task_count=0, short_count=0, created_at=now)
        db.session.add(wave)
        db.session.flush()
        taken = 0
        for start in range(0, len(ids), 5000):
            taken += db.session.execute(
                update(Shipment).where(Shipment.id.in_(ids[start:start + 5000]), Shipment.status == "allocated")
                .values(wave_id=wave.id, status="waved").execution_options(synchronize_session=False)).rowcount
        wave.order_count = taken
        audit.record(actor, "wave.plan", "wave", wave.id, after={"warehouse": warehouse.code, "carrier": carrier,
                                                                  "orders": len(ids)})
        waves.append(wave)
    return waves


def start_release(wave_id: int, actor: Actor) -> Wave:
    wave = db.session.execute(select(Wave).where(Wave.id == wave_id).with_for_update(of=Wave)).scalar_one_or_none()
    if wave is None:
        raise NotFound("no such wave", code="wave_not_found")
    if wave.status not in ("planned", "releasing"):
        raise Conflict(f"wave {wave.id} is {wave.status}", code="wave_not_planned")
    # A wave left "releasing" by a job that died may be released again: chunks only take unreleased shipments.
    audit.record(actor, "wave.release" if wave.status == "planned" else "wave.resume_release", "wave", wave.id,
                 after={"orders": wave.order_count})
    wave.status = "releasing"
    return wave


def release_chunk(wave_id: int, today: date, limit: int = 500) -> int:
    """Turn up to `limit` of a releasing wave's shipments into pick tasks; returns how many were handled.

    Lots are taken first-expiry-first-out (first received where there is no expiry), expired lots never;
    a shipment no lots can cover goes back to `allocated` (counted as short)."""
    from sqlalchemy.orm import selectinload

    wave = db.session.get(Wave, wave_id)
    shipments = db.session.execute(select(Shipment).options(selectinload(Shipment.order).selectinload(Order.lines))
                                   .where(Shipment.wave_id == wave_id, Shipment.status == "waved")
                                   .order_by(Shipment.priority.desc(), Shipment.id).limit(limit)).scalars().all()
    if not shipments:
        return 0
    sku_ids = {line.sku_id for shipment in shipments for line in lines_of(shipment)}
    lots: dict[int, list[Lot]] = defaultdict(list)
    for lot in db.session.execute(
            select(Lot).where(Lot.warehouse_id == wave.warehouse_id, Lot.sku_id.in_(list(sku_ids)),
                              Lot.quantity > Lot.allocated,
                              (Lot.expires_on.is_(None)) | (Lot.expires_on > today))
            .order_by(Lot.sku_id, Lot.expires_on.is_(None), Lot.expires_on, Lot.received_at, Lot.id)
            .with_for_update(of=Lot)).scalars():
        lots[lot.sku_id].append(lot)
    to_floor = []
    for shipment in shipments:
        planned = []
        for line in lines_of(shipment):
            wanted = line.quantity
            for lot in lots[line.sku_id]:
                take = min(wanted, lot.quantity - lot.allocated)
                if take > 0:
                    planned.append((lot, take))
                    wanted -= take
                if wanted == 0:
                    break
            if wanted:
                break
        else:
            for lot, take in planned:
                lot.allocated += take
                db.session.add(PickTask(wave_id=wave.id, shipment_id=shipment.id, sku_id=lot.sku_id, lot_id=lot.id,
                                        bin_id=lot.bin_id, walk_order=lot.bin.walk_order, quantity=take, picked=0,
                                        status="open"))
            shipment.status = "picking"
            wave.task_count += len(planned)
            if shipment.order.status == S.ALLOCATED and shipment.order not in to_floor:
                to_floor.append(shipment.order)  # a split order goes to picking with its first parcel
            continue
        shipment.status, shipment.wave_id = "allocated", None  # short: waits for stock and the next wave
        wave.short_count += 1
    order_service.transition_many(to_floor, S.PICKING, SYSTEM)  # one flush for the chunk, not one per order
    wave.released_count += len(shipments)
    return len(shipments)


def finish_release(wave_id: int) -> Wave:
    wave = db.session.get(Wave, wave_id)
    wave.status, wave.released_at = "released", utc_now()
    return wave


def pick_list(wave_id: int) -> list[PickTask]:
    """The wave's tasks in walking order through the bins."""
    return db.session.execute(select(PickTask).where(PickTask.wave_id == wave_id)
                              .order_by(PickTask.walk_order, PickTask.bin_id, PickTask.id)).scalars().all()


# ------------------------------------------------------------------------------------------ scans

