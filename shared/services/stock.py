"""Stock: adjustments through the ledger, atomic reservations, release and consumption."""
from collections import defaultdict
from typing import NamedTuple

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from shared import sets
from shared.actors import Actor
from shared.extensions import db
from shared.models import Reservation, Sku, StockLevel, StockMovement, Warehouse
from shared.services import audit
from shared.services.errors import Conflict, InsufficientStock, NotFound, ValidationFailed
from shared.services.validation import N_, say
from shared.timekeeping import utc_now

# What a person reads when this module refuses: message codes, said in the reader's language (say).
UNKNOWN_SKU = N_("Unknown SKU \"%(code)s\"")
UNKNOWN_WAREHOUSE = N_("Unknown warehouse \"%(code)s\"")
NOT_POSITIVE = N_("%(field)s must be a positive whole number")
NOT_ZERO = N_("%(field)s must not be zero")
TOO_LARGE = N_("%(field)s is too large")
REASON_REQUIRED = N_("A reason is required")
REASON_TOO_LONG = N_("The reason is longer than %(max_reason)s characters")
STOCK_BELOW_ZERO = N_("Stock of %(sku_code)s in %(warehouse_code)s cannot go below what is reserved or held (on hand "
                      "%(on_hand)s, reserved %(reserved)s, held %(held)s)")
NOT_ZERO_OR_MORE = N_("%(field)s must be zero or a positive whole number")
HOLD_TOO_MUCH = N_("Cannot hold more than is on hand and not reserved")
STOCK_BELOW_ZERO_SHORT = N_("Stock of %(sku_code)s in %(warehouse_code)s cannot go below what is reserved or held")
NOT_ENOUGH_STOCK = N_("Not enough stock of %(sku_code)s: %(quantity)s wanted, %(available)s available")
NOT_WHOLE = N_("%(field)s must be a whole number")

MAX_REASON = 500


def get_sku(code: str) -> Sku:
    sku = db.session.execute(select(Sku).where(Sku.code == (code or "").strip())).scalar_one_or_none()
    if sku is None:
        raise NotFound(say(UNKNOWN_SKU, code=code), field="sku", code="unknown_sku")
    return sku


def get_skus(codes: list[str]) -> dict[str, Sku]:
    """Several SKUs by code in one query; the first unknown code is refused by name."""
    found = {sku.code: sku for sku in db.session.execute(select(Sku).where(Sku.code.in_(set(codes)))).scalars()}
    for code in codes:
        if code not in found:
            raise NotFound(say(UNKNOWN_SKU, code=code), field="sku", code="unknown_sku")
    return found


def get_warehouse(code: str) -> Warehouse:
    warehouse = db.session.execute(
        select(Warehouse).where(Warehouse.code == (code or "").strip())
    ).scalar_one_or_none()
    if warehouse is None:
        raise NotFound(say(UNKNOWN_WAREHOUSE, code=code), field="warehouse", code="unknown_warehouse")
    return warehouse


def _level_row(sku_id: int, warehouse_id: int) -> StockLevel:
    """The stock row for a SKU in a warehouse, created empty on first use."""
    query = select(StockLevel).where(StockLevel.sku_id == sku_id, StockLevel.warehouse_id == warehouse_id)
    level = db.session.execute(query).scalar_one_or_none()
    if level is None:
        try:
            with db.session.begin_nested():
                level = StockLevel(sku_id=sku_id, warehouse_id=warehouse_id, on_hand=0, reserved=0, held=0)
                db.session.add(level)
        except IntegrityError:  # another transaction created it first
            level = db.session.execute(query).scalar_one()
    return level


def _check_quantity(value, field: str = "quantity", allow_negative: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            if isinstance(value, float) or isinstance(value, bool):
                raise ValueError
            value = int(str(value).strip())
        except (TypeError, ValueError):
            raise ValidationFailed(say(NOT_WHOLE, field=field), field=field, code="invalid_quantity")
    if value == 0 or (value < 0 and not allow_negative):
        raise ValidationFailed(say(NOT_POSITIVE, field=field) if not allow_negative
                               else say(NOT_ZERO, field=field), field=field, code="invalid_quantity")
    if abs(value) > 10_000_000:
        raise ValidationFailed(say(TOO_LARGE, field=field), field=field, code="invalid_quantity")
    return value


def _reason(reason: str | None) -> str:
    text = (reason or "").strip()
    if not text:
        raise ValidationFailed(say(REASON_REQUIRED), field="reason", code="reason_required")
    if len(text) > MAX_REASON:
        raise ValidationFailed(say(REASON_TOO_LONG, max_reason=MAX_REASON), field="reason")
    return text


def adjust_stock(sku_code: str, warehouse_code: str, delta, reason: str, actor: Actor,
                 kind: str = "adjustment", order_id: int | None = None) -> StockMovement:
    """Change on-hand stock by delta with one conditional update; the level never goes below what is promised."""
    sku, warehouse = get_sku(sku_code), get_warehouse(warehouse_code)
    delta = _check_quantity(delta, "delta", allow_negative=True)
    reason = _reason(reason)
    level = _level_row(sku.id, warehouse.id)
    result = db.session.execute(
        update(StockLevel)
        .where(StockLevel.id == level.id, StockLevel.available + delta >= 0)
        .values(on_hand=StockLevel.on_hand + delta, updated_at=utc_now())
        .returning(StockLevel.on_hand)
    ).first()
    if result is None:
        db.session.refresh(level)
        raise Conflict(
            say(STOCK_BELOW_ZERO, sku_code=sku.code, warehouse_code=warehouse.code, on_hand=level.on_hand,
                reserved=level.reserved, held=level.held),
            field="delta", code="stock_below_zero")
    movement = StockMovement(sku_id=sku.id, warehouse_id=warehouse.id, delta=delta, on_hand_after=result[0],
                             kind=kind, reason=reason, actor_id=actor.id, order_id=order_id, created_at=utc_now())
    db.session.add(movement)
    db.session.flush()
    audit.record(actor, "stock.adjust", "stock", f"{sku.code}@{warehouse.code}",
                 before={"on_hand": result[0] - delta}, after={"on_hand": result[0]}, reason=reason)
    db.session.expire(level)
    return movement


def adjust_many(warehouse: Warehouse, changes: dict[Sku, tuple[int, str]], actor: Actor, kind: str) -> int:
    """Many on-hand changes in one warehouse (a stock-take's variances): one conditional UPDATE per SKU in the
    system's lock order, one multi-row INSERT into the ledger, an audit event per SKU. A change that would take
    a level below what is promised refuses the whole set (the caller rolls back). `changes`: SKU → (delta,
    reason). Returns rows changed."""
    now = utc_now()
    movements = []
    for sku in sorted((sku for sku, (delta, _r) in changes.items() if delta), key=lambda sku: sku.id):
        delta = _check_quantity(changes[sku][0], "delta", allow_negative=True)
        reason = _reason(changes[sku][1])
        level = _level_row(sku.id, warehouse.id)
        on_hand_after = db.session.execute(
            update(StockLevel).where(StockLevel.id == level.id, StockLevel.available + delta >= 0)
            .values(on_hand=StockLevel.on_hand + delta, updated_at=now).returning(StockLevel.on_hand)
            .execution_options(synchronize_session=False)).scalar_one_or_none()
        if on_hand_after is None:
            raise Conflict(say(STOCK_BELOW_ZERO_SHORT, sku_code=sku.code, warehouse_code=warehouse.code),
                           field="delta", code="stock_below_zero")
        db.session.expire(level)
        movements.append({"sku_id": sku.id, "warehouse_id": warehouse.id, "delta": delta,
                          "on_hand_after": on_hand_after, "kind": kind, "reason": reason, "actor_id": actor.id,
                          "order_id": None, "created_at": now})
        audit.record(actor, "stock.adjust", "stock", f"{sku.code}@{warehouse.code}",
                     before={"on_hand": on_hand_after - delta}, after={"on_hand": on_hand_after}, reason=reason)
    if movements:
        db.session.execute(insert(StockMovement), movements)
    return len(movements)


def set_held(sku_code: str, warehouse_code: str, held, reason: str, actor: Actor) -> StockLevel:
    """Set aside stock (e.g. a promotion pool) so that it cannot be sold; never more than is free."""
    sku, warehouse = get_sku(sku_code), get_warehouse(warehouse_code)
    if isinstance(held, bool) or not str(held).strip().lstrip("-").isdigit() or int(str(held)) < 0:
        raise ValidationFailed(say(NOT_ZERO_OR_MORE, field="held"), field="held", code="invalid_quantity")
    held, reason = int(str(held)), _reason(reason)
    level = _level_row(sku.id, warehouse.id)
    before = level.held
    result = db.session.execute(
        update(StockLevel)
        .where(StockLevel.id == level.id, StockLevel.available + StockLevel.held - held >= 0)
        .values(held=held, updated_at=utc_now())
    )
    if result.rowcount != 1:
        raise Conflict(say(HOLD_TOO_MUCH), field="held", code="insufficient_stock")
    audit.record(actor, "stock.hold", "stock", f"{sku.code}@{warehouse.code}",
                 before={"held": before}, after={"held": held}, reason=reason)
    db.session.expire(level)
    return level


# ------------------------------------------------------------------ the stock-level changes (one place)
#
# Every change of `reserved` (reserve, release, move between warehouses) and every shipment out of it goes
# through the functions below; nothing else in the code writes these columns. Each exists for one line and
# for a whole batch: a batch is aggregated per (SKU, warehouse) and its statements are issued in that key
# order, the one lock order of the whole system, so two batches (or a batch and a single order) never wait
# on each other in a circle.

Key = tuple[int, int]  # (sku_id, warehouse_id)


# THE conditional reservation: it succeeds only if the units are free, which the row count says. Built once.
# (Executed on the session's connection: a plain Core UPDATE, without the ORM's bulk-update machinery.)
RESERVE = (update(StockLevel)
           .where(StockLevel.sku_id == bindparam("sku_id_"), StockLevel.warehouse_id == bindparam("warehouse_id_"),
                  StockLevel.available >= bindparam("quantity_"))
           .values(reserved=StockLevel.reserved + bindparam("quantity_"), updated_at=bindparam("now_"))
           .execution_options(synchronize_session=False))
RELEASE = (update(StockLevel)
           .where(StockLevel.sku_id == bindparam("sku_id_"), StockLevel.warehouse_id == bindparam("warehouse_id_"))
           .values(reserved=StockLevel.reserved - bindparam("quantity_"), updated_at=bindparam("now_"))
           .execution_options(synchronize_session=False))


def take(sku_id: int, warehouse_id: int, quantity: int, now=None) -> bool:
    """Reserve `quantity` units of one SKU in one warehouse; False (and nothing changed) if they are not free."""
    parameters = {"sku_id_": sku_id, "warehouse_id_": warehouse_id, "quantity_": quantity, "now_": now or utc_now()}
    return db.session.connection().execute(RESERVE, parameters).rowcount == 1


def give_back(sku_id: int, warehouse_id: int, quantity: int, now=None) -> None:
    """Release `quantity` reserved units of one SKU in one warehouse."""
    db.session.execute(RELEASE, {"sku_id_": sku_id, "warehouse_id_": warehouse_id, "quantity_": quantity,
                                 "now_": now or utc_now()})


def totals_of(items) -> dict[Key, int]:
    """Aggregate (sku_id, warehouse_id, quantity) triples per key."""
    totals: dict[Key, int] = defaultdict(int)
    for sku_id, warehouse_id, quantity in items:
        totals[(sku_id, warehouse_id)] += quantity
    return dict(totals)


def change_reserved(changes: dict[Key, int], now=None) -> list[Key]:
    """Apply a batch of reservation changes (positive: reserve, negative: release), one statement per key, in
    key order. Returns the keys whose reservation was refused (not enough free); the caller decides whether
    that undoes the batch (roll back) or only the orders behind those keys."""
    now = now or utc_now()
    refused = []
    for key in sorted(changes):
        change = changes[key]
        if change > 0 and not take(key[0], key[1], change, now):
            refused.append(key)
        elif change < 0:
            give_back(key[0], key[1], -change, now)
    return refused


def reserve_many(totals: dict[Key, int], now=None) -> list[Key]:
    """Reserve a batch's totals per (SKU, warehouse); returns the refused keys (those units stay free)."""
    return change_reserved({key: qty for key, qty in totals.items() if qty > 0}, now)


def release_many(totals: dict[Key, int], now=None) -> None:
    """Release a batch's totals per (SKU, warehouse)."""
    change_reserved({key: -qty for key, qty in totals.items() if qty > 0}, now)


def consume_many(totals: dict[Key, int], now=None) -> dict[Key, int]:
    """Shipping: on hand and reserved fall together per (SKU, warehouse); returns on hand after, per key."""
    now = now or utc_now()
    after = {}
    for key in sorted(totals):
        after[key] = db.session.execute(
            update(StockLevel).where(StockLevel.sku_id == key[0], StockLevel.warehouse_id == key[1])
            .values(on_hand=StockLevel.on_hand - totals[key], reserved=StockLevel.reserved - totals[key],
                    updated_at=now)
            .returning(StockLevel.on_hand).execution_options(synchronize_session=False)).scalar_one()
    return after


def free_stock(sku_ids, warehouses: dict | None = None) -> dict[Key, int]:
    """What is free now per (SKU, warehouse), for planning: a plain read, it takes no lock.

    The warehouses come in the same statement; a caller that passes `warehouses` gets them by id, so an order
    planned from this read has its warehouse (for its JSON, the outbox event) without loading it again."""
    free = {}
    for sku_id, warehouse_id, available, warehouse in db.session.execute(
            select(StockLevel.sku_id, StockLevel.warehouse_id, StockLevel.available, Warehouse)
            .join(Warehouse, Warehouse.id == StockLevel.warehouse_id)
            .where(StockLevel.sku_id.in_(list(set(sku_ids))))).all():
        free[sku_id, warehouse_id] = available
        if warehouses is not None:
            warehouses[warehouse_id] = warehouse
    return free


class StockRef(NamedTuple):
    """A SKU or a warehouse as a new order names it (id, code, name): read by Core, in no session."""
    id: int
    code: str
    name: str | None = None


_SKU, _LEVEL, _WAREHOUSE = Sku.__table__, StockLevel.__table__, Warehouse.__table__
# The SKUs of an order and what is free of each per warehouse, with the warehouse's code: one statement, built once.
_SKUS_WITH_FREE = (select(_SKU.c.id, _SKU.c.code, _SKU.c.name, _LEVEL.c.warehouse_id,
                          StockLevel.available.label("available"),
                          _WAREHOUSE.c.code.label("warehouse_code"))
                   .select_from(_SKU).outerjoin(_LEVEL, _LEVEL.c.sku_id == _SKU.c.id)
                   .outerjoin(_WAREHOUSE, _WAREHOUSE.c.id == _LEVEL.c.warehouse_id)
                   .where(_SKU.c.code.in_(bindparam("codes", expanding=True))))


def skus_with_free_stock(codes) -> tuple[dict[str, StockRef], dict[Key, int], dict[int, StockRef]]:
    """The SKUs named by `codes` (code → ref; unknown codes are simply absent), what is free of each per (SKU,
    warehouse), and those warehouses (id → ref): one plain read, no lock, for the planning of a new order."""
    skus: dict[str, StockRef] = {}
    free: dict[Key, int] = {}
    warehouses: dict[int, StockRef] = {}
    for sku_id, code, name, warehouse_id, available, warehouse_code in db.session.connection().execute(
            _SKUS_WITH_FREE, {"codes": list(set(codes))}):
        if code not in skus:
            skus[code] = StockRef(sku_id, code, name)
        if warehouse_id is not None:
            free[sku_id, warehouse_id] = available
            if warehouse_id not in warehouses:
                warehouses[warehouse_id] = StockRef(warehouse_id, warehouse_code)
    return skus, free, warehouses


def _warehouses_with(sku_id: int, quantity: int) -> list[int]:
    """Warehouses that have the quantity free now, most available first: a plain read, it takes no lock."""
    return db.session.execute(
        select(StockLevel.warehouse_id)
        .where(StockLevel.sku_id == sku_id, StockLevel.available >= quantity)
        .order_by(StockLevel.available.desc(), StockLevel.warehouse_id)
    ).scalars().all()


def plan_lines(lines: list[tuple[Sku, int]], warehouses: dict | None = None,
               free: dict[Key, int] | None = None) -> list[list[int]]:
    """For each (sku, quantity) line, the warehouses that have it free now, most available first, from one read
    for all lines (or the caller's `free`, from `skus_with_free_stock`); an empty plan refuses the order before
    anything is written."""
    if free is None:
        free = free_stock((sku.id for sku, _qty in lines), warehouses)
    plans = []
    for sku, quantity in lines:
        options = sorted(((-f, w) for (s, w), f in free.items() if s == sku.id and f >= quantity))
        if not options:
            available = sum(f for (s, _w), f in free.items() if s == sku.id)
            raise InsufficientStock(say(NOT_ENOUGH_STOCK, sku_code=sku.code, quantity=quantity,
                                        available=available),
                                    field="lines", code="insufficient_stock")
        plans.append([w for _f, w in options])
    return plans


def common_warehouse(plans: list[list[int]]) -> int:
    """The warehouse that can ship every line (in the first line's order of preference), else the first line's."""
    shared = set(plans[0]).intersection(*plans[1:])
    return next((w for w in plans[0] if w in shared), plans[0][0])


def place_line(sku_id: int, quantity: int, preferred: list[int], now=None) -> int | None:
    """Reserve one line in the first of `preferred` warehouses that still has it free, else in any other that
    has it now; the warehouse taken, or None. The preference was read without locks, so its stock may be gone:
    the conditional UPDATE is what prevents oversell, and one fresh look finds stock that arrived meanwhile."""
    now = now or utc_now()
    planned = list(dict.fromkeys(w for w in preferred if w is not None))
    warehouse_id = next((w for w in planned if take(sku_id, w, quantity, now)), None)
    if warehouse_id is None:
        fresh = [w for w in _warehouses_with(sku_id, quantity) if w not in planned]
        warehouse_id = next((w for w in fresh if take(sku_id, w, quantity, now)), None)
    return warehouse_id


def available_for(sku_id: int) -> int:
    return db.session.execute(
        select(func.coalesce(func.sum(StockLevel.available), 0)).where(StockLevel.sku_id == sku_id)
    ).scalar_one()


def _close(reservation_ids: list[int], status: str, now) -> None:
    if reservation_ids:
        db.session.execute(update(Reservation).where(Reservation.id.in_(reservation_ids))
                           .values(status=status, closed_at=now).execution_options(synchronize_session="fetch"))


def active_reservations(order_ids: list[int]) -> list[Reservation]:
    return db.session.execute(
        select(Reservation).where(Reservation.order_id.in_(list(order_ids)), Reservation.status == "active")
        .order_by(Reservation.id)
    ).scalars().all()


def release_for_orders(order_ids: list[int], now=None) -> int:
    """Give the active reservations of these orders back to available stock, aggregated per (SKU, warehouse);
    returns units released."""
    now = now or utc_now()
    held = active_reservations(order_ids)
    release_many(totals_of((r.sku_id, r.warehouse_id, r.quantity) for r in held), now)
    _close([r.id for r in held], "released", now)
    return sum(r.quantity for r in held)


def release_reservations(order) -> int:
    """Give an order's active reservations back to available stock; returns units released."""
    return release_for_orders([order.id])


def consume_reservations(order, actor: Actor) -> int:
    """Shipping takes reserved units off the shelf: on hand and reserved fall together, with a ledger row."""
    now = utc_now()
    held = active_reservations([order.id])
    totals = totals_of((r.sku_id, r.warehouse_id, r.quantity) for r in held)
    after = consume_many(totals, now)
    db.session.execute(insert(StockMovement), [
        {"sku_id": key[0], "warehouse_id": key[1], "delta": -qty, "on_hand_after": after[key], "kind": "shipment",
         "reason": f"shipped {order.order_no}", "order_id": order.id, "actor_id": actor.id, "created_at": now}
        for key, qty in sorted(totals.items())])
    _close([r.id for r in held], "consumed", now)
    return sum(r.quantity for r in held)


def move_reservations(reservations: list[Reservation], warehouse_of: dict[int, int], now=None) -> list[Key]:
    """Move reservations (id → target warehouse in `warehouse_of`) between warehouses as one batch: taken in the
    target, released in the source, per key in key order. Returns refused keys; on any refusal nothing is
    recorded on the reservation rows and the caller must roll back (the statements before it did change)."""
    now = now or utc_now()
    changes: dict[Key, int] = defaultdict(int)
    moving = [r for r in reservations if warehouse_of.get(r.id, r.warehouse_id) != r.warehouse_id]
    for r in moving:
        changes[(r.sku_id, warehouse_of[r.id])] += r.quantity
        changes[(r.sku_id, r.warehouse_id)] -= r.quantity
    refused = change_reserved({key: change for key, change in changes.items() if change}, now)
    if not refused:  # the rows follow, one UPDATE per target warehouse; loaded objects read it again on use
        by_target: dict[int, list[Reservation]] = defaultdict(list)
        for r in moving:
            by_target[warehouse_of[r.id]].append(r)
        for warehouse_id, group in sorted(by_target.items()):
            for start in range(0, len(group), 5000):
                ids = [r.id for r in group[start:start + 5000]]
                db.session.execute(update(Reservation.__table__).where(sets.among(Reservation.__table__.c.id, ids))
                                   .values(warehouse_id=warehouse_id))
            for r in group:
                db.session.expire(r, ["warehouse_id"])
    return refused


def stock_summary(sku: Sku) -> dict:
    """The stock figure for one SKU: per warehouse and in total."""
    rows = db.session.execute(
        select(StockLevel, Warehouse.code).join(Warehouse, Warehouse.id == StockLevel.warehouse_id)
        .where(StockLevel.sku_id == sku.id).order_by(Warehouse.code)
    ).all()
    warehouses = [{"warehouse": code, "on_hand": lvl.on_hand, "reserved": lvl.reserved, "held": lvl.held,
                   "available": lvl.available} for lvl, code in rows]
    available = sum(w["available"] for w in warehouses)
    return {"sku": sku.code, "name": sku.name, "safety_stock": sku.safety_stock, "warehouses": warehouses,
            "available": available, "low_stock": available <= sku.safety_stock}


def ledger_on_hand(sku_id: int, warehouse_id: int) -> int:
    """The on-hand level reproduced from the movement ledger alone."""
    return db.session.execute(
        select(func.coalesce(func.sum(StockMovement.delta), 0))
        .where(StockMovement.sku_id == sku_id, StockMovement.warehouse_id == warehouse_id)
    ).scalar_one()
