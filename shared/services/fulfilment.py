"""Fulfilment: allocation to one warehouse, receipts into lots, waves with first-expiry-first-out pick tasks,
and the handheld scans that pick, pack (with a waybill, falling back to a backup carrier) and load.

Stock: `StockLevel` says what the merchant owns per warehouse (the ledger moves it at shipment); `Lot` says
where those units lie (bin, batch, dates). A pick takes units out of a lot's bin; the ledger records the
shipment when the parcel is loaded.
"""
import hashlib
import secrets
from collections import defaultdict
from dataclasses import replace
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import func, select, update

from shared.actors import SYSTEM, Actor
from shared.data.places import distance_km, locate
from shared.extensions import db
from shared.lifecycle import OrderStatus
from shared.models import (Bin, CarrierAttempt, Device, Lot, Order, PickTask, Reservation, ScanEvent, Shipment, Sku,
                           StockLevel, Warehouse, Wave)
from shared.services import audit
from shared.services import orders as order_service
from shared.services import stock as stock_service
from shared.services import validation as check
from shared.services.errors import Conflict, Forbidden, InsufficientStock, NotFound, ValidationFailed
from shared.timekeeping import as_utc, utc_now

S = OrderStatus
SHIP_WITHIN = timedelta(hours=24)  # the promise to ship, counted from payment
TIER_WEIGHT = {"vip": 300, "gold": 200, "silver": 100}
OPEN_SHIPMENT = ("allocated", "waved", "picking", "picked", "packed")


class ScanRefused(Conflict):
    code = "scan_refused"


# ------------------------------------------------------------------------------------------ allocation

def priority_of(order: Order, now: datetime) -> int:
    """Higher first: customer tier, then how close the promised ship-by time is, then the order's age."""
    paid = as_utc(order.paid_at or order.placed_at)
    minutes_left = (paid + SHIP_WITHIN - now).total_seconds() / 60
    urgency = max(0, int(SHIP_WITHIN.total_seconds() / 60 - minutes_left)) // 10
    age = int((now - as_utc(order.placed_at)).total_seconds() // 600)
    return TIER_WEIGHT.get(order.customer.tier if order.customer else "", 0) + urgency + age


def _needs(order: Order) -> dict[int, int]:
    needs: dict[int, int] = defaultdict(int)
    for line in order.lines:
        needs[line.sku_id] += line.quantity
    return needs


def candidate_warehouses(order: Order) -> list[tuple[Warehouse, float]]:
    """Warehouses that can ship every line (counting the order's own reservations there), nearest first.

    A cold-chain SKU rules out every warehouse that cannot keep it cold."""
    needs = _needs(order)
    cold = any(line.sku.cold_chain for line in order.lines)
    free: dict[tuple[int, int], int] = {}
    for level in db.session.execute(select(StockLevel).where(StockLevel.sku_id.in_(list(needs)))).scalars():
        free[(level.warehouse_id, level.sku_id)] = level.available
    for reservation in db.session.execute(select(Reservation).where(Reservation.order_id == order.id,
                                                                    Reservation.status == "active")).scalars():
        key = (reservation.warehouse_id, reservation.sku_id)
        free[key] = free.get(key, 0) + reservation.quantity
    receiver = locate(order.province, order.city)
    found = []
    for warehouse in db.session.execute(select(Warehouse).where(Warehouse.active).order_by(Warehouse.id)).scalars():
        if cold and not warehouse.cold_chain:
            continue
        if all(free.get((warehouse.id, sku_id), 0) >= qty for sku_id, qty in needs.items()):
            found.append((warehouse, distance_km(locate(warehouse.province, warehouse.city), receiver)))
    return sorted(found, key=lambda pair: (pair[1], pair[0].id))


def _move_reservations(order: Order, warehouse_id: int, line_ids: set[int] | None = None) -> None:
    """Bring the order's active reservations (of `line_ids`, or all) into one warehouse: take, then release."""
    for reservation in db.session.execute(select(Reservation).where(
            Reservation.order_id == order.id, Reservation.status == "active",
            Reservation.warehouse_id != warehouse_id)).scalars().all():
        if line_ids is not None and reservation.order_line_id not in line_ids:
            continue
        taken = db.session.execute(
            update(StockLevel).where(StockLevel.sku_id == reservation.sku_id, StockLevel.warehouse_id == warehouse_id,
                                     StockLevel.on_hand - StockLevel.reserved - StockLevel.held >= reservation.quantity)
            .values(reserved=StockLevel.reserved + reservation.quantity, updated_at=utc_now())
            .execution_options(synchronize_session=False)).rowcount
        if taken != 1:
            raise InsufficientStock("the stock moved meanwhile; allocate again", code="insufficient_stock")
        db.session.execute(
            update(StockLevel).where(StockLevel.sku_id == reservation.sku_id,
                                     StockLevel.warehouse_id == reservation.warehouse_id)
            .values(reserved=StockLevel.reserved - reservation.quantity, updated_at=utc_now())
            .execution_options(synchronize_session=False))
        reservation.warehouse_id = warehouse_id


def allocate(order: Order, actor: Actor, now: datetime | None = None) -> Shipment:
    """Allocate a confirmed, paid order to the nearest warehouse that can ship all of it (one shipment).

    The order row is locked and its status checked, and the database allows one open shipment per order, so
    two clerks (or a clerk and the job) can never allocate the same order to two warehouses."""
    now = now or utc_now()
    db.session.refresh(order, with_for_update={"of": Order})
    if order.status == S.ALLOCATED or db.session.execute(select(Shipment.id).where(
            Shipment.order_id == order.id, Shipment.status.in_(OPEN_SHIPMENT))).first():
        raise Conflict(f"{order.order_no} is already allocated", field="order_no", code="already_allocated")
    if order.status != S.CONFIRMED:
        raise Conflict(f"{order.order_no} is {order.status}; only confirmed orders are allocated", field="order_no",
                       code="invalid_transition")
    candidates = candidate_warehouses(order)
    if not candidates and current_app.config.get("SPLIT_SHIPMENTS"):
        return _allocate_split(order, actor, now)
    if not candidates:
        cold = any(line.sku.cold_chain for line in order.lines)
        raise Conflict(f"no {'cold-chain ' if cold else ''}warehouse holds every line of {order.order_no}",
                       field="order_no", code="no_warehouse")
    warehouse, distance = candidates[0]
    with db.session.begin_nested():
        _move_reservations(order, warehouse.id)
        order.warehouse_id = warehouse.id
        order_service.transition_order(order, S.ALLOCATED, actor)
        shipment = Shipment(order_id=order.id, order=order, warehouse_id=warehouse.id, status="allocated",
                            priority=priority_of(order, now), allocated_at=now,
                            ship_by=as_utc(order.paid_at or order.placed_at) + SHIP_WITHIN,
                            carrier_code=(warehouse.carriers or "SF").split(",")[0].strip())
        db.session.add(shipment)
        db.session.flush()
    audit.record(actor, "shipment.allocate", "order", order.order_no,
                 after={"warehouse": warehouse.code, "distance_km": round(distance), "priority": shipment.priority})
    return shipment


def _allocate_split(order: Order, actor: Actor, now: datetime) -> Shipment:
    """Where the merchant allows it: each line from the nearest warehouse that holds that line (cold lines only
    from cold warehouses), one shipment per warehouse. Returns the first; all are on the order."""
    cold_skus = {line.sku_id for line in order.lines if line.sku.cold_chain}
    free: dict[tuple[int, int], int] = {}
    for level in db.session.execute(select(StockLevel).where(
            StockLevel.sku_id.in_([line.sku_id for line in order.lines]))).scalars():
        free[(level.warehouse_id, level.sku_id)] = level.available
    held = {r.order_line_id: r for r in db.session.execute(select(Reservation).where(
        Reservation.order_id == order.id, Reservation.status == "active")).scalars()}
    receiver = locate(order.province, order.city)
    warehouses = db.session.execute(select(Warehouse).where(Warehouse.active).order_by(Warehouse.id)).scalars().all()
    plan: dict[int, list] = defaultdict(list)  # warehouse id → lines
    for line in order.lines:
        own = held.get(line.id)
        options = []
        for warehouse in warehouses:
            if line.sku_id in cold_skus and not warehouse.cold_chain:
                continue
            mine = own.quantity if own is not None and own.warehouse_id == warehouse.id else 0
            if free.get((warehouse.id, line.sku_id), 0) + mine >= line.quantity:
                options.append((distance_km(locate(warehouse.province, warehouse.city), receiver), warehouse.id))
        if not options:
            raise Conflict(f"no warehouse holds line {line.sku.code} of {order.order_no}", field="order_no",
                           code="no_warehouse")
        _distance, warehouse_id = min(options)
        if own is None or own.warehouse_id != warehouse_id:
            free[(warehouse_id, line.sku_id)] = free.get((warehouse_id, line.sku_id), 0) - line.quantity
        plan[warehouse_id].append(line)
    by_id = {w.id: w for w in warehouses}
    shipments = []
    with db.session.begin_nested():
        for warehouse_id, lines in plan.items():
            _move_reservations(order, warehouse_id, line_ids={line.id for line in lines})
        order.warehouse_id = next(iter(plan))
        order_service.transition_order(order, S.ALLOCATED, actor)
        for warehouse_id, lines in plan.items():
            warehouse = by_id[warehouse_id]
            shipments.append(Shipment(
                order_id=order.id, order=order, warehouse_id=warehouse_id, status="allocated",
                priority=priority_of(order, now), allocated_at=now, line_ids=[line.id for line in lines],
                ship_by=as_utc(order.paid_at or order.placed_at) + SHIP_WITHIN,
                carrier_code=(warehouse.carriers or "SF").split(",")[0].strip()))
        db.session.add_all(shipments)
        db.session.flush()
    audit.record(actor, "shipment.allocate_split", "order", order.order_no,
                 after={"parcels": [{"warehouse": by_id[w].code, "lines": [line.sku.code for line in lines]}
                                    for w, lines in plan.items()]})
    return shipments[0]


def lines_of(shipment: Shipment) -> list:
    """The order lines a parcel carries: all of them, or its share when the order was split."""
    if shipment.line_ids is None:
        return list(shipment.order.lines)
    wanted = set(shipment.line_ids)
    return [line for line in shipment.order.lines if line.id in wanted]


def _open_parcels(order_id: int) -> list[Shipment]:
    return db.session.execute(select(Shipment).where(Shipment.order_id == order_id,
                                                     Shipment.status != "cancelled")).scalars().all()


class BatchConflict(Exception):
    """The batch cannot be allocated as a whole (stock moved meanwhile): allocate its orders one at a time."""


def allocate_many(order_ids: list[int], actor: Actor, now: datetime | None = None) -> tuple[list[Shipment], list[int]]:
    """Allocate many paid confirmed orders with a fixed number of statements: rows locked and read once, the
    warehouse chosen in memory as `allocate` chooses it, reservations moved with one conditional UPDATE per
    SKU and warehouse (in key order, so batches never deadlock), the lifecycle moved with one flush.

    Returns (shipments, ids left for the one-at-a-time path: no warehouse fits, or not allocatable now)."""
    from sqlalchemy.orm import selectinload

    now = now or utc_now()
    orders = db.session.execute(
        select(Order).options(selectinload(Order.lines), selectinload(Order.customer))
        .where(Order.id.in_(order_ids), Order.status == S.CONFIRMED, Order.payment_status == "paid")
        .order_by(Order.id).with_for_update(of=Order)).scalars().all()
    taken = set(db.session.execute(select(Shipment.order_id).where(
        Shipment.order_id.in_([o.id for o in orders]), Shipment.status.in_(OPEN_SHIPMENT))).scalars())
    left = sorted(set(order_ids) - {o.id for o in orders if o.id not in taken})
    orders = [o for o in orders if o.id not in taken]
    if not orders:
        return [], left
    sku_ids = {line.sku_id for order in orders for line in order.lines}
    cold_skus = set(db.session.execute(select(Sku.id).where(Sku.id.in_(list(sku_ids)), Sku.cold_chain)).scalars())
    free = {(lvl.warehouse_id, lvl.sku_id): lvl.available for lvl in db.session.execute(
        select(StockLevel).where(StockLevel.sku_id.in_(list(sku_ids)))).scalars()}
    reservations: dict[int, list[Reservation]] = defaultdict(list)
    for reservation in db.session.execute(select(Reservation).where(
            Reservation.order_id.in_([o.id for o in orders]), Reservation.status == "active")).scalars():
        reservations[reservation.order_id].append(reservation)
    warehouses = db.session.execute(select(Warehouse).where(Warehouse.active).order_by(Warehouse.id)).scalars().all()
    places = {w.id: locate(w.province, w.city) for w in warehouses}
    delta: dict[tuple[int, int], int] = defaultdict(int)  # reserved change per (warehouse, sku)
    chosen_for: dict[int, tuple[Warehouse, float]] = {}
    for order in orders:
        held = reservations[order.id]
        if {line.id for line in order.lines} - {r.order_line_id for r in held}:
            left.append(order.id)  # a line holds no reservation: the one-at-a-time path says why
            continue
        needs = _needs(order)
        cold = any(sku_id in cold_skus for sku_id in needs)
        receiver = locate(order.province, order.city)
        best = None
        for warehouse in warehouses:
            if cold and not warehouse.cold_chain:
                continue
            own = defaultdict(int)
            for r in held:
                if r.warehouse_id == warehouse.id:
                    own[r.sku_id] += r.quantity
            if all(free.get((warehouse.id, sku_id), 0) + own[sku_id] >= qty for sku_id, qty in needs.items()):
                distance = distance_km(places[warehouse.id], receiver)
                if best is None or (distance, warehouse.id) < (best[1], best[0].id):
                    best = (warehouse, distance)
        if best is None:
            left.append(order.id)
            continue
        warehouse = best[0]
        for r in held:
            if r.warehouse_id != warehouse.id:
                free[(warehouse.id, r.sku_id)] = free.get((warehouse.id, r.sku_id), 0) - r.quantity
                free[(r.warehouse_id, r.sku_id)] = free.get((r.warehouse_id, r.sku_id), 0) + r.quantity
                delta[(warehouse.id, r.sku_id)] += r.quantity
                delta[(r.warehouse_id, r.sku_id)] -= r.quantity
                r.warehouse_id = warehouse.id
        chosen_for[order.id] = best
    for (warehouse_id, sku_id), change in sorted(delta.items()):
        if change > 0:
            moved = db.session.execute(
                update(StockLevel).where(StockLevel.sku_id == sku_id, StockLevel.warehouse_id == warehouse_id,
                                         StockLevel.on_hand - StockLevel.reserved - StockLevel.held >= change)
                .values(reserved=StockLevel.reserved + change, updated_at=now)
                .execution_options(synchronize_session=False)).rowcount
            if moved != 1:
                raise BatchConflict(f"stock of SKU {sku_id} moved meanwhile")
        elif change < 0:
            db.session.execute(update(StockLevel).where(StockLevel.sku_id == sku_id,
                                                        StockLevel.warehouse_id == warehouse_id)
                               .values(reserved=StockLevel.reserved + change, updated_at=now)
                               .execution_options(synchronize_session=False))
    allocated = [o for o in orders if o.id in chosen_for]
    for order in allocated:
        order.warehouse_id = chosen_for[order.id][0].id
    # is_paid and stock_reserved were checked above from the rows this batch holds locked.
    order_service.transition_many(allocated, S.ALLOCATED, actor, guards_checked=True)
    shipments = []
    for order in allocated:
        warehouse, distance = chosen_for[order.id]
        shipments.append(Shipment(
            order_id=order.id, order=order, warehouse_id=warehouse.id, status="allocated",
            priority=priority_of(order, now), allocated_at=now,
            ship_by=as_utc(order.paid_at or order.placed_at) + SHIP_WITHIN,
            carrier_code=(warehouse.carriers or "SF").split(",")[0].strip()))
        audit.record(actor, "shipment.allocate", "order", order.order_no,
                     after={"warehouse": warehouse.code, "distance_km": round(distance),
                            "priority": shipments[-1].priority})
    db.session.add_all(shipments)
    db.session.flush()
    return shipments, sorted(left)


def allocation_queue(limit: int = 500) -> list[int]:
    """Confirmed paid orders waiting for a warehouse, oldest first (the job allocates them)."""
    return db.session.execute(select(Order.id).where(Order.status == S.CONFIRMED, Order.payment_status == "paid")
                              .order_by(Order.placed_at, Order.id).limit(limit)).scalars().all()


# ------------------------------------------------------------------------------------------ receipts and lots

def receive(sku_code: str, warehouse_code: str, bin_code: str, quantity, actor: Actor, lot_no: str | None = None,
            produced_on: date | None = None, expires_on: date | None = None, today: date | None = None) -> Lot:
    """Units arriving into a bin: a lot (with dates when the SKU is batch-tracked) and a receipt in the ledger."""
    sku = stock_service.get_sku(sku_code)
    warehouse = stock_service.get_warehouse(warehouse_code)
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity <= 0:
        raise ValidationFailed("quantity must be a positive whole number", field="quantity", code="invalid_quantity")
    bin_ = db.session.execute(select(Bin).where(Bin.warehouse_id == warehouse.id,
                                                Bin.code == check.text(bin_code, "bin", 32))).scalar_one_or_none()
    if bin_ is None:
        raise NotFound(f"no bin {bin_code} in {warehouse.code}", field="bin", code="unknown_bin")
    if sku.batch_tracked and (not lot_no or expires_on is None):
        raise ValidationFailed(f"{sku.code} is batch-tracked: give the batch number and expiry date", field="lot_no",
                               code="batch_required")
    today = today or merchant_today()
    if expires_on is not None and expires_on <= today:
        raise ValidationFailed(f"batch {lot_no} expired on {expires_on}", field="expires_on", code="expired_batch")
    if produced_on and expires_on and produced_on >= expires_on:
        raise ValidationFailed("the production date is after the expiry date", field="produced_on",
                               code="invalid_dates")
    on_bin = db.session.execute(select(func.coalesce(func.sum(Lot.quantity), 0)).where(Lot.bin_id == bin_.id)).scalar()
    if on_bin + quantity > bin_.capacity:
        raise Conflict(f"bin {bin_.code} holds {bin_.capacity}; {on_bin} are in it", field="quantity",
                       code="bin_full")
    lot = Lot(sku_id=sku.id, warehouse_id=warehouse.id, bin_id=bin_.id, lot_no=check.text(lot_no or "-", "lot_no", 40),
              produced_on=produced_on, expires_on=expires_on, received_at=utc_now(), quantity=quantity, allocated=0)
    db.session.add(lot)
    stock_service.adjust_stock(sku.code, warehouse.code, quantity, f"receipt into {bin_.code}, batch {lot.lot_no}",
                               actor, kind="receipt")
    db.session.flush()
    return lot


def merchant_today() -> date:
    """Expiry dates are the merchant's calendar days, whatever zone the server runs in."""
    return utc_now().astimezone(ZoneInfo(current_app.config["MERCHANT_TIMEZONE"])).date()


def near_expiry(warehouse_code: str | None = None, within_days: int = 90, today: date | None = None) -> list[Lot]:
    today = today or merchant_today()
    query = select(Lot).where(Lot.expires_on.is_not(None), Lot.expires_on <= today + timedelta(days=within_days),
                              Lot.quantity > 0).order_by(Lot.expires_on, Lot.id)
    if warehouse_code:
        query = query.where(Lot.warehouse_id == stock_service.get_warehouse(warehouse_code).id)
    return db.session.execute(query).scalars().all()


# ------------------------------------------------------------------------------------------ waves

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

def device_for_token(token: str) -> Device:
    device = db.session.execute(select(Device).where(
        Device.token_hash == hashlib.sha256(token.encode()).hexdigest(), Device.active)).scalar_one_or_none()
    if device is None:
        raise Forbidden("unknown or disabled device token", code="device_refused")
    return device


def register_device(name: str, warehouse_code: str, actor: Actor) -> tuple[Device, str]:
    """A new handheld and its token (shown once)."""
    token = secrets.token_urlsafe(32)
    device = Device(name=check.text(name, "name", 60), warehouse_id=stock_service.get_warehouse(warehouse_code).id,
                    token_hash=hashlib.sha256(token.encode()).hexdigest(), active=True)
    db.session.add(device)
    db.session.flush()
    audit.record(actor, "device.register", "device", device.id, after={"name": device.name})
    return device, token


def record_scan(device: Device, kind: str, payload: dict, accepted: bool, message: str,
                shipment_id: int | None = None) -> ScanEvent:
    event = ScanEvent(device_id=device.id, operator=str(payload.get("operator") or "")[:60] or "unknown",
                      station=(str(payload.get("station"))[:40] if payload.get("station") else None), kind=kind,
                      shipment_id=shipment_id, payload=payload, accepted=accepted, message=message[:300],
                      occurred_at=utc_now())
    db.session.add(event)
    return event


def _refuse(message: str, field: str | None = None):
    raise ScanRefused(message, field=field)


def pick(device: Device, payload: dict, today: date | None = None) -> PickTask:
    """Pick `quantity` of the task's SKU and batch from its bin; wrong bin, SKU, batch or too many are refused."""
    today = today or merchant_today()
    task_id = payload.get("task")
    task = db.session.execute(select(PickTask).where(PickTask.id == task_id).with_for_update(of=PickTask)
                              ).scalar_one_or_none() if isinstance(task_id, int) and not isinstance(task_id, bool) \
        else None
    if task is None:
        _refuse(f"no pick task {task_id!r}", "task")
    shipment = db.session.get(Shipment, task.shipment_id)
    if shipment.warehouse_id != device.warehouse_id:
        _refuse("this task belongs to another warehouse", "task")
    if task.status == "done":
        _refuse(f"task {task.id} is already picked", "task")
    if payload.get("bin") != task.bin.code:
        _refuse(f"wrong bin: go to {task.bin.code}", "bin")
    if payload.get("sku") != task.sku.code:
        _refuse(f"wrong SKU: this task takes {task.sku.code}", "sku")
    if payload.get("lot") != task.lot.lot_no:
        _refuse(f"wrong batch: take batch {task.lot.lot_no}", "lot")
    if task.lot.expires_on is not None and task.lot.expires_on <= today:
        _refuse(f"batch {task.lot.lot_no} has expired: set it aside and call the supervisor", "lot")
    quantity = payload.get("quantity")
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity <= 0:
        _refuse("quantity must be a positive whole number", "quantity")
    if quantity > task.lot.quantity:
        _refuse(f"the bin holds only {task.lot.quantity} of batch {task.lot.lot_no}", "quantity")
    if task.picked + quantity > task.quantity:
        _refuse(f"over-pick: the task needs {task.quantity - task.picked} more", "quantity")
    now = utc_now()
    # One atomic update of the lot: two handhelds picking from the same bin never lose each other's units.
    taken = db.session.execute(
        update(Lot).where(Lot.id == task.lot_id, Lot.quantity >= quantity, Lot.allocated >= quantity)
        .values(quantity=Lot.quantity - quantity, allocated=Lot.allocated - quantity)
        .execution_options(synchronize_session=False)).rowcount
    if taken != 1:
        _refuse(f"the bin no longer holds {quantity} of batch {task.lot.lot_no}", "quantity")
    db.session.expire(task.lot, ["quantity", "allocated"])
    task.picked += quantity
    task.device_id, task.started_at = device.id, task.started_at or now
    task.status = "done" if task.picked == task.quantity else "picking"
    task.done_at = now if task.status == "done" else None
    if shipment.picked_at is None and not db.session.execute(select(PickTask.id).where(
            PickTask.shipment_id == shipment.id, PickTask.status != "done", PickTask.id != task.id)).first() \
            and task.status == "done":
        shipment.status, shipment.picked_at = "picked", now
    return task


def pack(device: Device, payload: dict, carriers) -> Shipment:
    """Pack a fully picked order into a box and get its waybill (the warehouse's carriers in order)."""
    order_no = payload.get("order")
    try:
        order = order_service.get_order(str(order_no or ""), for_update=True)
    except (NotFound, ValidationFailed):
        _refuse(f"no order {order_no!r}", "order")
    shipment = db.session.execute(select(Shipment).where(
        Shipment.order_id == order.id, Shipment.warehouse_id == device.warehouse_id,
        Shipment.status != "cancelled")).scalar_one_or_none()
    if shipment is None:
        _refuse(f"{order.order_no} is not for this warehouse", "order")
    if shipment.status in ("packed", "shipped", "delivered"):
        _refuse(f"{order.order_no} is packed already (box {shipment.box_code})", "order")
    if shipment.status != "picked":
        _refuse(f"{order.order_no} is not fully picked yet", "order")
    box = check.text(payload.get("box"), "box", 40)
    request_waybill(shipment, carriers)
    shipment.status, shipment.box_code, shipment.packed_at = "packed", box, utc_now()
    if all(parcel.status in ("packed", "shipped", "delivered") for parcel in _open_parcels(order.id)):
        order_service.transition_order(order, S.PACKED, SYSTEM)  # a split order: when its last parcel is packed
    return shipment


def request_waybill(shipment: Shipment, carriers) -> None:
    """Ask the warehouse's carriers in order; a refusal is logged and the next carrier is asked."""
    from shared.carriers.waybills import CarrierRefused, CarrierUnavailable, WaybillRequest

    order, warehouse = shipment.order, shipment.warehouse
    codes = [c.strip() for c in (warehouse.carriers or "SF").split(",") if c.strip()]
    # The e-waybill API answers the same order code with the same waybill (a retry is safe); each parcel of a
    # split order is an order of its own there.
    order_code = order.order_no if shipment.line_ids is None else f"{order.order_no}-{shipment.id}"
    request = WaybillRequest(
        order_code=order_code, carrier_code=codes[0],
        sender={"Name": warehouse.name, "Mobile": "4000000000", "ProvinceName": warehouse.province,
                "CityName": warehouse.city, "ExpAreaName": warehouse.city, "Address": warehouse.name},
        receiver={"Name": order.receiver_name, "Mobile": order.receiver_phone, "ProvinceName": order.province,
                  "CityName": order.city, "ExpAreaName": order.district, "Address": order.street},
        goods=[(line.sku.name, line.quantity) for line in lines_of(shipment)])
    problems = []
    for code in codes:
        try:
            waybill = carriers.request(replace(request, carrier_code=code))
        except (CarrierRefused, CarrierUnavailable) as error:
            outcome = "refused" if isinstance(error, CarrierRefused) else "unavailable"
            db.session.add(CarrierAttempt(shipment_id=shipment.id, carrier_code=code, outcome=outcome,
                                          message=str(error)[:300], occurred_at=utc_now()))
            problems.append(f"{code}: {error}")
            continue
        db.session.add(CarrierAttempt(shipment_id=shipment.id, carrier_code=code, outcome="issued",
                                      message=waybill.waybill_no, occurred_at=utc_now()))
        shipment.carrier_code, shipment.waybill_no = code, waybill.waybill_no
        shipment.sort_code, shipment.label_html = waybill.sort_code, waybill.label_html
        if code != codes[0]:
            audit.record(SYSTEM, "shipment.backup_carrier", "order", order.order_no,
                         after={"carrier": code, "refused": problems})
        return
    raise ScanRefused(f"no carrier issued a waybill: {'; '.join(problems)}", field="order", code="no_waybill")


def load(device: Device, payload: dict, actor: Actor = SYSTEM) -> Shipment:
    """Load a packed parcel onto a truck: the order ships and its stock leaves the ledger."""
    parcel = str(payload.get("parcel") or "")
    shipment = db.session.execute(select(Shipment).where(Shipment.waybill_no == parcel)
                                  .with_for_update(of=Shipment)).scalar_one_or_none()
    if shipment is None or shipment.warehouse_id != device.warehouse_id:
        _refuse(f"no parcel {parcel!r} in this warehouse", "parcel")
    if shipment.status != "packed":
        _refuse(f"parcel {parcel} is {shipment.status}, not packed", "parcel")
    shipment.truck_code = check.text(payload.get("truck"), "truck", 40)
    shipment.status, shipment.shipped_at = "shipped", utc_now()
    shipment.tracking_step, shipment.last_event_at = "awaiting_pickup", shipment.shipped_at
    if all(parcel.status in ("shipped", "delivered") for parcel in _open_parcels(shipment.order_id)) \
            and shipment.order.status == S.PACKED:
        order_service.transition_order(shipment.order, S.SHIPPED, actor)  # the stock leaves with the last parcel
    return shipment


def shelve_unplaced(warehouse_code: str, bin_code: str, actor: Actor) -> int:
    """Put stock that is on hand but in no lot (counted before bins were kept) onto a bin, one lot per SKU.

    No ledger movement: the units were already on hand; this only says where they lie."""
    warehouse = stock_service.get_warehouse(warehouse_code)
    bin_ = db.session.execute(select(Bin).where(Bin.warehouse_id == warehouse.id, Bin.code == bin_code)
                              ).scalar_one_or_none()
    if bin_ is None:
        raise NotFound(f"no bin {bin_code} in {warehouse.code}", field="bin", code="unknown_bin")
    in_lots = dict(db.session.execute(select(Lot.sku_id, func.sum(Lot.quantity)).where(
        Lot.warehouse_id == warehouse.id).group_by(Lot.sku_id)).all())
    placed = 0
    for level in db.session.execute(select(StockLevel).where(StockLevel.warehouse_id == warehouse.id)).scalars():
        missing = level.on_hand - in_lots.get(level.sku_id, 0)
        if missing > 0:
            db.session.add(Lot(sku_id=level.sku_id, warehouse_id=warehouse.id, bin_id=bin_.id, lot_no="UNPLACED",
                               received_at=utc_now(), quantity=missing, allocated=0))
            placed += missing
    audit.record(actor, "stock.shelve", "warehouse", warehouse.code, after={"bin": bin_.code, "units": placed})
    return placed
