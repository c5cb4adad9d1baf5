"""Allocation: a paid confirmed order goes to the nearest warehouse that can ship it (or, where configured, one
parcel per warehouse), its reservations moving with it; one order at a time or a whole batch."""
from collections import defaultdict
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import insert, select
from sqlalchemy.orm import lazyload

from shared import cash_on_delivery, sets
from shared.actors import Actor
from shared.data.places import distance_km, locate
from shared.extensions import db
from shared.floor_lifecycle import OPEN_SHIPMENT_STATES, SHIPMENT
from shared.labels import STATUS, label
from shared.lifecycle import OrderStatus
from shared.models import Order, Reservation, Shipment, Sku, Warehouse
from shared.services import audit
from shared.services import carrier_scores
from shared.services import orders as order_service
from shared.services import stock as stock_service
from shared.services.errors import Conflict, InsufficientStock
from shared.services.validation import N_, say
from shared.timekeeping import as_utc, utc_now

# What a person reads when this module refuses: message codes, said in the reader's language (say).
STOCK_MOVED = N_("The stock moved meanwhile; allocate again")
ALREADY_ALLOCATED = N_("%(order_no)s is already allocated")
ONLY_CONFIRMED = N_("%(order_no)s is %(order_status)s; only confirmed orders are allocated")
NO_WAREHOUSE = N_("No warehouse holds every line of %(order_no)s: add stock, or allocate it by hand")
NO_COLD_WAREHOUSE = N_("No cold-chain warehouse holds every line of %(order_no)s: add stock, or allocate it by hand")
NO_WAREHOUSE_FOR_LINE = N_("No warehouse holds line %(sku_code)s of %(order_no)s")

S = OrderStatus


SHIP_WITHIN = timedelta(hours=24)  # the promise to ship, counted from payment
TIER_WEIGHT = {"vip": 300, "gold": 200, "silver": 100}


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


def nearest_warehouses(needs: dict[int, int], cold: bool, receiver, warehouses: list[Warehouse], places: dict,
                       free: dict, own: dict | None = None) -> list[tuple[Warehouse, float]]:
    """The one warehouse-choice rule: the warehouses that can ship `needs` ({sku id: quantity}), nearest to the
    receiver first (ties by id). A warehouse qualifies when its free stock plus what the order already holds there
    (`own`, {(warehouse id, sku id): quantity}) covers every SKU; a cold-chain order only goes to cold warehouses.
    Pure: the callers read stock and reservations in sets and call this per order or per line."""
    own = own or {}
    found = []
    for warehouse in warehouses:
        if cold and not warehouse.cold_chain:
            continue
        if all(free.get((warehouse.id, sku_id), 0) + own.get((warehouse.id, sku_id), 0) >= qty
               for sku_id, qty in needs.items()):
            found.append((warehouse, distance_km(places[warehouse.id], receiver)))
    return sorted(found, key=lambda pair: (pair[1], pair[0].id))


def _active_warehouses() -> tuple[list[Warehouse], dict]:
    warehouses = db.session.execute(select(Warehouse).where(Warehouse.active).order_by(Warehouse.id)).scalars().all()
    return warehouses, {w.id: locate(w.province, w.city) for w in warehouses}


def candidate_warehouses(order: Order) -> list[tuple[Warehouse, float]]:
    """Warehouses that can ship every line (counting the order's own reservations there), nearest first."""
    needs = _needs(order)
    free = {(w, s): f for (s, w), f in stock_service.free_stock(needs).items()}
    own: dict = defaultdict(int)
    for reservation in db.session.execute(select(Reservation).where(Reservation.order_id == order.id,
                                                                    Reservation.status == "active")).scalars():
        own[reservation.warehouse_id, reservation.sku_id] += reservation.quantity
    warehouses, places = _active_warehouses()
    return nearest_warehouses(needs, any(line.sku.cold_chain for line in order.lines),
                              locate(order.province, order.city), warehouses, places, free, own)


def _move_reservations(order: Order, warehouse_id: int, line_ids: set[int] | None = None) -> None:
    """Bring the order's active reservations (of `line_ids`, or all) into one warehouse: take, then release."""
    held = [r for r in stock_service.active_reservations([order.id])
            if line_ids is None or r.order_line_id in line_ids]
    if stock_service.move_reservations(held, {r.id: warehouse_id for r in held}):
        raise InsufficientStock(say(STOCK_MOVED), code="insufficient_stock")


def reroute_unallocated(order: Order, actor: Actor) -> Warehouse | None:
    """After the address of an order not yet allocated changed: the warehouse choice made again (the one rule,
    `candidate_warehouses`), its reservations moved to the nearest warehouse that can ship all of it. Returns that
    warehouse when it changed, else None. An allocated order keeps its warehouse: no re-routing of a shipment the
    floor may be working exists (the caller says so)."""
    if order.status not in (S.PENDING_REVIEW, S.CONFIRMED):
        return None
    candidates = candidate_warehouses(order)
    if not candidates or candidates[0][0].id == order.warehouse_id:
        return None
    warehouse, distance = candidates[0]
    before = order.warehouse.code if order.warehouse is not None else None
    with db.session.begin_nested():
        _move_reservations(order, warehouse.id)
        order.warehouse_id = warehouse.id
        db.session.flush()
    db.session.expire(order, ["warehouse"])
    audit.record(actor, "order.reroute", "order", order.order_no, before={"warehouse": before},
                 after={"warehouse": warehouse.code, "distance_km": round(distance)},
                 reason="the shipping address changed")
    return warehouse


def allocate(order: Order, actor: Actor, now: datetime | None = None) -> Shipment:
    """Allocate a confirmed, paid order to the nearest warehouse that can ship all of it (one shipment).

    The order row is locked and its status checked, and the database allows one open shipment per order, so
    two clerks (or a clerk and the job) can never allocate the same order to two warehouses."""
    now = now or utc_now()
    db.session.refresh(order, with_for_update={"of": Order})
    if order.status == S.ALLOCATED or db.session.execute(select(Shipment.id).where(
            Shipment.order_id == order.id, Shipment.status.in_(OPEN_SHIPMENT_STATES))).first():
        raise Conflict(say(ALREADY_ALLOCATED, order_no=order.order_no), field="order_no", code="already_allocated")
    if order.status != S.CONFIRMED:
        raise Conflict(say(ONLY_CONFIRMED, order_no=order.order_no, order_status=label(STATUS, order.status)),
                       field="order_no", code="invalid_transition")
    candidates = candidate_warehouses(order)
    if not candidates and current_app.config.get("SPLIT_SHIPMENTS"):
        return _allocate_split(order, actor, now)
    if not candidates:
        cold = any(line.sku.cold_chain for line in order.lines)
        raise Conflict(say(NO_COLD_WAREHOUSE if cold else NO_WAREHOUSE, order_no=order.order_no),
                       field="order_no", code="no_warehouse")
    warehouse, distance = candidates[0]
    with db.session.begin_nested():
        _move_reservations(order, warehouse.id)
        order.warehouse_id = warehouse.id
        order_service.transition_order(order, S.ALLOCATED, actor)
        shipment = Shipment(order_id=order.id, order=order, warehouse_id=warehouse.id, status=SHIPMENT.initial,
                            priority=priority_of(order, now), allocated_at=now,
                            ship_by=as_utc(order.paid_at or order.placed_at) + SHIP_WITHIN,
                            carrier_code=carrier_scores.carriers_for(warehouse, order.province)[0])
        db.session.add(shipment)
        db.session.flush()
    audit.record(actor, "shipment.allocate", "order", order.order_no,
                 after={"warehouse": warehouse.code, "distance_km": round(distance), "priority": shipment.priority})
    return shipment


def _allocate_split(order: Order, actor: Actor, now: datetime) -> Shipment:
    """Where the merchant allows it: each line from the nearest warehouse that holds that line (cold lines only
    from cold warehouses), one shipment per warehouse. Returns the first; all are on the order."""
    cold_skus = {line.sku_id for line in order.lines if line.sku.cold_chain}
    free = {(w, s): f for (s, w), f in stock_service.free_stock(line.sku_id for line in order.lines).items()}
    held = {r.order_line_id: r for r in db.session.execute(select(Reservation).where(
        Reservation.order_id == order.id, Reservation.status == "active")).scalars()}
    receiver = locate(order.province, order.city)
    warehouses, places = _active_warehouses()
    plan: dict[int, list] = defaultdict(list)  # warehouse id → lines
    for line in order.lines:
        own = held.get(line.id)
        mine = {(own.warehouse_id, line.sku_id): own.quantity} if own is not None else {}
        options = nearest_warehouses({line.sku_id: line.quantity}, line.sku_id in cold_skus, receiver, warehouses,
                                     places, free, mine)
        if not options:
            raise Conflict(say(NO_WAREHOUSE_FOR_LINE, sku_code=line.sku.code, order_no=order.order_no),
                           field="order_no", code="no_warehouse")
        warehouse_id = options[0][0].id
        if own is None or own.warehouse_id != warehouse_id:
            free[(warehouse_id, line.sku_id)] = free.get((warehouse_id, line.sku_id), 0) - line.quantity
        plan[warehouse_id].append(line)
    by_id = {w.id: w for w in warehouses}
    standing = carrier_scores.ranking()
    shipments = []
    with db.session.begin_nested():
        for warehouse_id, lines in plan.items():
            _move_reservations(order, warehouse_id, line_ids={line.id for line in lines})
        order.warehouse_id = next(iter(plan))
        order_service.transition_order(order, S.ALLOCATED, actor)
        for warehouse_id, lines in plan.items():
            warehouse = by_id[warehouse_id]
            shipments.append(Shipment(
                order_id=order.id, order=order, warehouse_id=warehouse_id, status=SHIPMENT.initial,
                priority=priority_of(order, now), allocated_at=now, line_ids=[line.id for line in lines],
                ship_by=as_utc(order.paid_at or order.placed_at) + SHIP_WITHIN,
                carrier_code=carrier_scores.carriers_for(warehouse, order.province, standing)[0]))
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


def open_parcels(order_id: int) -> list[Shipment]:
    return db.session.execute(select(Shipment).where(Shipment.order_id == order_id,
                                                     Shipment.status != "cancelled")).scalars().all()


class BatchConflict(Exception):
    """The batch cannot be allocated as a whole (stock moved meanwhile): allocate its orders one at a time."""


def allocate_many(order_ids: list[int], actor: Actor, now: datetime | None = None) -> tuple[list[Shipment], list[int]]:
    """Allocate many paid confirmed orders with a fixed number of statements, however many orders: rows locked
    and read once, the warehouse chosen in memory as `allocate` chooses it, reservations moved with one
    conditional UPDATE per SKU and warehouse (in key order, so batches never deadlock), the orders moved through
    the lifecycle as one set per warehouse, the shipments, audit events and outbox rows each one multi-row INSERT.

    Returns (shipments, ids left for the one-at-a-time path: no warehouse fits, or not allocatable now)."""
    from sqlalchemy.orm import defer, selectinload

    now = now or utc_now()
    # What allocation and the orders' outbox snapshots read, in three queries; the street is neither (a subscriber
    # sees the district, never the street), so it is not decrypted for every order of the batch.
    orders = db.session.execute(
        select(Order).options(selectinload(Order.lines), selectinload(Order.customer), defer(Order.street))
        .where(sets.among(Order.id, order_ids), Order.status == S.CONFIRMED, cash_on_delivery.may_ship_clause())
        .order_by(Order.id).with_for_update(of=Order)).scalars().all()
    taken = set(db.session.execute(select(Shipment.order_id).where(
        sets.among(Shipment.order_id, [o.id for o in orders]), Shipment.status.in_(OPEN_SHIPMENT_STATES))).scalars())
    left = sorted(set(order_ids) - {o.id for o in orders if o.id not in taken})
    orders = [o for o in orders if o.id not in taken]
    if not orders:
        return [], left
    sku_ids = {line.sku_id for order in orders for line in order.lines}
    cold_skus = set(db.session.execute(select(Sku.id).where(sets.among(Sku.id, sku_ids), Sku.cold_chain)).scalars())
    free = {(w, s): f for (s, w), f in stock_service.free_stock(sku_ids).items()}
    reservations: dict[int, list[Reservation]] = defaultdict(list)
    for reservation in db.session.execute(select(Reservation).where(
            sets.among(Reservation.order_id, [o.id for o in orders]), Reservation.status == "active")).scalars():
        reservations[reservation.order_id].append(reservation)
    warehouses, places = _active_warehouses()
    target: dict[int, int] = {}  # reservation id → warehouse it moves to
    moving: list[Reservation] = []
    chosen_for: dict[int, tuple[Warehouse, float]] = {}
    for order in orders:
        held = reservations[order.id]
        if {line.id for line in order.lines} - {r.order_line_id for r in held}:
            left.append(order.id)  # a line holds no reservation: the one-at-a-time path says why
            continue
        needs = _needs(order)
        cold = any(sku_id in cold_skus for sku_id in needs)
        own: dict = defaultdict(int)
        for r in held:
            own[r.warehouse_id, r.sku_id] += r.quantity
        options = nearest_warehouses(needs, cold, locate(order.province, order.city), warehouses, places, free, own)
        best = options[0] if options else None
        if best is None:
            left.append(order.id)
            continue
        warehouse = best[0]
        for r in held:
            if r.warehouse_id != warehouse.id:
                free[(warehouse.id, r.sku_id)] = free.get((warehouse.id, r.sku_id), 0) - r.quantity
                free[(r.warehouse_id, r.sku_id)] = free.get((r.warehouse_id, r.sku_id), 0) + r.quantity
                target[r.id] = warehouse.id
                moving.append(r)
        chosen_for[order.id] = best
    # One conditional UPDATE per (SKU, warehouse) for the whole batch, in the system's one lock order.
    refused = stock_service.move_reservations(moving, target, now)
    if refused:
        raise BatchConflict(f"stock of SKU {refused[0][0]} moved meanwhile")
    allocated = [o for o in orders if o.id in chosen_for]
    by_warehouse: dict[int, list[Order]] = defaultdict(list)
    for order in allocated:
        by_warehouse[chosen_for[order.id][0].id].append(order)
    # One set move per warehouse; is_paid and stock_reserved were checked above from the rows this batch holds locked.
    for warehouse_id, group in sorted(by_warehouse.items()):
        order_service.transition_many(group, S.ALLOCATED, actor, guards_checked=True,
                                      values={"warehouse_id": warehouse_id})
    rows = []
    standing = carrier_scores.ranking() if allocated else None  # the carriers' scores, read once for the batch
    for order in allocated:
        warehouse, distance = chosen_for[order.id]
        rows.append({"order_id": order.id, "warehouse_id": warehouse.id, "status": SHIPMENT.initial,
                     "priority": priority_of(order, now), "allocated_at": now,
                     "ship_by": as_utc(order.paid_at or order.placed_at) + SHIP_WITHIN,
                     "carrier_code": carrier_scores.carriers_for(warehouse, order.province, standing)[0]})
        audit.record(actor, "shipment.allocate", "order", order.order_no,
                     after={"warehouse": warehouse.code, "distance_km": round(distance),
                            "priority": rows[-1]["priority"]})
    # A plain executemany (no RETURNING: the driver pipelines one short statement), then the rows read back: the
    # orders are locked and had no open parcel, so their open parcels are exactly these.
    if rows:
        db.session.execute(insert(Shipment.__table__), rows)
    shipments = db.session.execute(
        select(Shipment).options(lazyload(Shipment.order), lazyload(Shipment.warehouse))
        .where(sets.among(Shipment.order_id, [o.id for o in allocated]), Shipment.status.in_(OPEN_SHIPMENT_STATES))
        .order_by(Shipment.order_id)).scalars().all() if rows else []
    return shipments, sorted(left)


def allocation_queue(limit: int = 500) -> list[int]:
    """Confirmed paid orders waiting for a warehouse, oldest first (the job allocates them)."""
    return db.session.execute(select(Order.id).where(Order.status == S.CONFIRMED, cash_on_delivery.may_ship_clause())
                              .order_by(Order.placed_at, Order.id).limit(limit)).scalars().all()


# ------------------------------------------------------------------------------------------ receipts and lots

