"""Waves: allocated shipments grouped by warehouse, carrier and cut-off, released in committed chunks into
first-expiry-first-out pick tasks."""
from collections import defaultdict
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import defer, selectinload

from shared import sets
from shared.actors import SYSTEM, Actor
from shared import labels
from shared.extensions import db
from shared.floor_lifecycle import SHIPMENT, WAVE
from shared.lifecycle import OrderStatus
from shared.models import Bin, Lot, Order, OrderLine, PickTask, Shipment, Wave
from shared.services import audit
from shared.services import orders as order_service
from shared.services import stock as stock_service
from shared.services.errors import Conflict, NotFound
from shared.services.validation import N_, say
from shared.timekeeping import utc_now

# What a person reads when this module refuses: message codes, said in the reader's language (say).
WAVE_NOT_FOUND = N_("No such wave")
WAVE_NOT_PLANNED = N_("Wave %(wave_id)s is %(wave_status)s")

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
        wave = Wave(warehouse_id=warehouse.id, carrier_code=carrier, cutoff_at=cutoff, status=WAVE.initial,
                    order_count=len(ids), released_count=0, task_count=0, short_count=0, created_at=now)
        db.session.add(wave)
        db.session.flush()
        # Read `allocated` just now (locked on PostgreSQL): a parcel that moved since is left out of the wave.
        taken = SHIPMENT.move_set(Shipment, [(shipment_id, "allocated") for shipment_id in ids], "waved",
                                  values={"wave_id": wave.id})
        wave.order_count = len(taken.moved)
        audit.record(actor, "wave.plan", "wave", wave.id, after={"warehouse": warehouse.code, "carrier": carrier,
                                                                  "orders": wave.order_count})
        waves.append(wave)
    return waves


def start_release(wave_id: int, actor: Actor) -> Wave:
    wave = db.session.execute(select(Wave).where(Wave.id == wave_id).with_for_update(of=Wave)).scalar_one_or_none()
    if wave is None:
        raise NotFound(say(WAVE_NOT_FOUND), code="wave_not_found")
    if not WAVE.allowed(wave.status, "releasing"):
        raise Conflict(say(WAVE_NOT_PLANNED, wave_id=wave.id, wave_status=labels.label(labels.WAVE_STATUS,
                           wave.status)),
                       code="wave_not_planned")
    # A wave left "releasing" by a job that died may be released again: chunks only take unreleased shipments.
    audit.record(actor, "wave.release" if wave.status == "planned" else "wave.resume_release", "wave", wave.id,
                 after={"orders": wave.order_count})
    WAVE.move(wave, "releasing")
    return wave


def _expire_loaded(model, ids) -> None:
    """Rows changed by a set-based statement: objects of them already in the session are read again on use."""
    wanted = set(ids)
    for obj in list(db.session.identity_map.values()):
        if isinstance(obj, model) and obj.id in wanted:
            db.session.expire(obj)


def release_chunk(wave_id: int, today: date, limit: int = 500) -> int:
    """Turn up to `limit` of a releasing wave's shipments into pick tasks; returns how many were handled.

    Lots are taken first-expiry-first-out (first received where there is no expiry), expired lots never;
    a shipment no lots can cover goes back to `allocated` (counted as short).

    Set-based: the chunk's shipments (locked), lines and lots are read with three queries (the wave row locked
    first, so two releasers of one wave take turns and never see the same shipment), the lots are shared out in
    memory, and the writes are one INSERT of all the tasks and one UPDATE of the lots (each one executemany: one
    round trip, which psycopg pipelines; a 1,000-row VALUES list costs more to build and parse than to write), two
    set moves of shipments through the floor lifecycle, and one set move of the orders through theirs. A chunk is one
    transaction: killed halfway, nothing of it stays, and the next run takes exactly the shipments still `waved`
    (no task twice)."""
    wave = db.session.execute(select(Wave).where(Wave.id == wave_id).with_for_update(of=Wave)).scalar_one()
    shipments = db.session.execute(
        select(Shipment.id, Shipment.order_id, Shipment.line_ids)
        .where(Shipment.wave_id == wave_id, Shipment.status == "waved")
        .order_by(Shipment.priority.desc(), Shipment.id).limit(limit).with_for_update(of=Shipment)).all()
    if not shipments:
        return 0
    lines_by_order: dict[int, list] = defaultdict(list)
    for order_id, line_id, sku_id, quantity in db.session.execute(
            select(OrderLine.order_id, OrderLine.id, OrderLine.sku_id, OrderLine.quantity)
            .where(sets.among(OrderLine.order_id, {s.order_id for s in shipments})).order_by(OrderLine.id)).all():
        lines_by_order[order_id].append((line_id, sku_id, quantity))

    def lines_of_row(row) -> list:
        lines = lines_by_order[row.order_id]
        return lines if row.line_ids is None else [line for line in lines if line[0] in set(row.line_ids)]

    sku_ids = {sku_id for row in shipments for _id, sku_id, _q in lines_of_row(row)}
    lots: dict[int, list] = defaultdict(list)
    free: dict[int, int] = {}
    for lot_id, sku_id, bin_id, walk_order, quantity, allocated in db.session.execute(
            select(Lot.id, Lot.sku_id, Lot.bin_id, Bin.walk_order, Lot.quantity, Lot.allocated)
            .join(Bin, Bin.id == Lot.bin_id)
            .where(Lot.warehouse_id == wave.warehouse_id, sets.among(Lot.sku_id, sku_ids), Lot.quantity > Lot.allocated,
                   (Lot.expires_on.is_(None)) | (Lot.expires_on > today))
            .order_by(Lot.sku_id, Lot.expires_on.is_(None), Lot.expires_on, Lot.received_at, Lot.id)
            .with_for_update(of=Lot)).all():
        lots[sku_id].append((lot_id, bin_id, walk_order))
        free[lot_id] = quantity - allocated
    allocated_now: dict[int, int] = defaultdict(int)
    tasks, picking, short, order_ids = [], [], [], []
    for row in shipments:
        planned = []
        taken: dict[int, int] = defaultdict(int)
        for _line_id, sku_id, quantity in lines_of_row(row):
            wanted = quantity
            for lot_id, bin_id, walk_order in lots[sku_id]:
                take = min(wanted, free[lot_id] - taken[lot_id])
                if take > 0:
                    planned.append((lot_id, sku_id, bin_id, walk_order, take))
                    taken[lot_id] += take
                    wanted -= take
                if wanted == 0:
                    break
            if wanted:
                break
        else:
            for lot_id, sku_id, bin_id, walk_order, take in planned:
                free[lot_id] -= take
                allocated_now[lot_id] += take
                tasks.append({"wave_id": wave.id, "shipment_id": row.id, "sku_id": sku_id, "lot_id": lot_id,
                              "bin_id": bin_id, "walk_order": walk_order, "quantity": take, "picked": 0,
                              "status": "open"})
            picking.append(row.id)
            order_ids.append(row.order_id)
            continue
        short.append(row.id)  # waits for stock and the next wave
    if allocated_now:
        db.session.execute(update(Lot.__table__).where(Lot.__table__.c.id == bindparam("lot"))
                           .values(allocated=Lot.__table__.c.allocated + bindparam("take")),
                           [{"lot": lot_id, "take": take} for lot_id, take in sorted(allocated_now.items())])
        _expire_loaded(Lot, allocated_now)
    if tasks:
        db.session.execute(insert(PickTask.__table__), tasks)
    # The chunk's shipments were read `waved` under lock: each set move takes all of them or refuses the chunk.
    SHIPMENT.move_set(Shipment, [(shipment_id, "waved") for shipment_id in picking], "picking", refuse=True)
    SHIPMENT.move_set(Shipment, [(shipment_id, "waved") for shipment_id in short], "allocated",
                      values={"wave_id": None}, refuse=True)
    # A split order goes to picking with its first parcel. Loaded with what its outbox snapshot reads (a subscriber
    # never sees the street: it is not decrypted).
    to_floor = db.session.execute(
        select(Order).options(selectinload(Order.lines), selectinload(Order.customer), selectinload(Order.warehouse),
                              defer(Order.street))
        .where(sets.among(Order.id, set(order_ids)), Order.status == S.ALLOCATED).order_by(Order.id)
        .with_for_update(of=Order.__table__)).scalars().all()  # locked: an edit meanwhile waits, not aborts the chunk
    order_service.transition_many(to_floor, S.PICKING, SYSTEM)  # one set move for the chunk, not one per order
    wave.task_count += len(tasks)
    wave.short_count += len(short)
    wave.released_count += len(shipments)
    return len(shipments)


def finish_release(wave_id: int) -> Wave:
    wave = db.session.get(Wave, wave_id)
    WAVE.move(wave, "released")
    wave.released_at = utc_now()
    return wave


def pick_list(wave_id: int) -> list[PickTask]:
    """The wave's tasks in walking order through the bins."""
    return db.session.execute(select(PickTask).where(PickTask.wave_id == wave_id)
                              .order_by(PickTask.walk_order, PickTask.bin_id, PickTask.id)).scalars().all()


# ------------------------------------------------------------------------------------------ scans

