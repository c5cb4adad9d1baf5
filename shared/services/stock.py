"""Stock: adjustments through the ledger, atomic reservations, release and consumption."""
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from shared.actors import Actor
from shared.extensions import db
from shared.models import Reservation, Sku, StockLevel, StockMovement, Warehouse
from shared.services import audit
from shared.services.errors import Conflict, InsufficientStock, NotFound, ValidationFailed
from shared.timekeeping import utc_now

MAX_REASON = 500


def get_sku(code: str) -> Sku:
    sku = db.session.execute(select(Sku).where(Sku.code == (code or "").strip())).scalar_one_or_none()
    if sku is None:
        raise NotFound(f"unknown SKU {code!r}", field="sku", code="unknown_sku")
    return sku


def get_skus(codes: list[str]) -> dict[str, Sku]:
    """Several SKUs by code in one query; the first unknown code is refused by name."""
    found = {sku.code: sku for sku in db.session.execute(select(Sku).where(Sku.code.in_(set(codes)))).scalars()}
    for code in codes:
        if code not in found:
            raise NotFound(f"unknown SKU {code!r}", field="sku", code="unknown_sku")
    return found


def get_warehouse(code: str) -> Warehouse:
    warehouse = db.session.execute(
        select(Warehouse).where(Warehouse.code == (code or "").strip())
    ).scalar_one_or_none()
    if warehouse is None:
        raise NotFound(f"unknown warehouse {code!r}", field="warehouse", code="unknown_warehouse")
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
            raise ValidationFailed(f"{field} must be a whole number", field=field, code="invalid_quantity")
    if value == 0 or (value < 0 and not allow_negative):
        raise ValidationFailed(f"{field} must be a positive whole number" if not allow_negative
                               else f"{field} must not be zero", field=field, code="invalid_quantity")
    if abs(value) > 10_000_000:
        raise ValidationFailed(f"{field} is too large", field=field, code="invalid_quantity")
    return value


def _reason(reason: str | None) -> str:
    text = (reason or "").strip()
    if not text:
        raise ValidationFailed("a reason is required", field="reason", code="reason_required")
    if len(text) > MAX_REASON:
        raise ValidationFailed(f"the reason is longer than {MAX_REASON} characters", field="reason")
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
        .where(StockLevel.id == level.id, StockLevel.on_hand + delta - StockLevel.reserved - StockLevel.held >= 0)
        .values(on_hand=StockLevel.on_hand + delta, updated_at=utc_now())
        .returning(StockLevel.on_hand)
    ).first()
    if result is None:
        db.session.refresh(level)
        raise Conflict(
            f"stock of {sku.code} in {warehouse.code} cannot go below what is reserved or held "
            f"(on hand {level.on_hand}, reserved {level.reserved}, held {level.held})",
            field="delta", code="stock_below_zero")
    movement = StockMovement(sku_id=sku.id, warehouse_id=warehouse.id, delta=delta, on_hand_after=result[0],
                             kind=kind, reason=reason, actor_id=actor.id, order_id=order_id, created_at=utc_now())
    db.session.add(movement)
    db.session.flush()
    audit.record(actor, "stock.adjust", "stock", f"{sku.code}@{warehouse.code}",
                 before={"on_hand": result[0] - delta}, after={"on_hand": result[0]}, reason=reason)
    db.session.expire(level)
    return movement


def set_held(sku_code: str, warehouse_code: str, held, reason: str, actor: Actor) -> StockLevel:
    """Set aside stock (e.g. a promotion pool) so that it cannot be sold; never more than is free."""
    sku, warehouse = get_sku(sku_code), get_warehouse(warehouse_code)
    if isinstance(held, bool) or not str(held).strip().lstrip("-").isdigit() or int(str(held)) < 0:
        raise ValidationFailed("held must be zero or a positive whole number", field="held", code="invalid_quantity")
    held, reason = int(str(held)), _reason(reason)
    level = _level_row(sku.id, warehouse.id)
    before = level.held
    result = db.session.execute(
        update(StockLevel)
        .where(StockLevel.id == level.id, StockLevel.on_hand - StockLevel.reserved - held >= 0)
        .values(held=held, updated_at=utc_now())
    )
    if result.rowcount != 1:
        raise Conflict("cannot hold more than is on hand and not reserved", field="held", code="insufficient_stock")
    audit.record(actor, "stock.hold", "stock", f"{sku.code}@{warehouse.code}",
                 before={"held": before}, after={"held": held}, reason=reason)
    db.session.expire(level)
    return level


def _warehouses_with(sku_id: int, quantity: int) -> list[int]:
    """Warehouses that have the quantity free now, most available first: a plain read, it takes no lock."""
    return db.session.execute(
        select(StockLevel.warehouse_id)
        .where(StockLevel.sku_id == sku_id, StockLevel.on_hand - StockLevel.reserved - StockLevel.held >= quantity)
        .order_by((StockLevel.on_hand - StockLevel.reserved - StockLevel.held).desc(), StockLevel.warehouse_id)
    ).scalars().all()


def plan_reservation(sku: Sku, quantity: int) -> list[int]:
    """Where a line could be reserved; an empty plan refuses the order before anything is written."""
    warehouse_ids = _warehouses_with(sku.id, quantity)
    if not warehouse_ids:
        raise InsufficientStock(f"not enough stock of {sku.code}: {quantity} wanted, {available_for(sku.id)} "
                                f"available", field="lines", code="insufficient_stock")
    return warehouse_ids


def common_warehouse(plans: list[list[int]]) -> int:
    """The warehouse that can ship every line (in the first line's order of preference), else the first line's."""
    shared = set(plans[0]).intersection(*plans[1:])
    return next((w for w in plans[0] if w in shared), plans[0][0])


def _take(sku_id: int, warehouse_id: int, quantity: int) -> bool:
    """The atomic conditional reservation: true only if the units were free, checked by row count."""
    return db.session.execute(
        update(StockLevel)
        .where(StockLevel.sku_id == sku_id, StockLevel.warehouse_id == warehouse_id,
               StockLevel.on_hand - StockLevel.reserved - StockLevel.held >= quantity)
        .values(reserved=StockLevel.reserved + quantity, updated_at=utc_now())
        .execution_options(synchronize_session=False)
    ).rowcount == 1


def reserve_line(order, line, expires_at: datetime | None, plan: list[int]) -> Reservation:
    """Reserve one order line in one warehouse: the order's warehouse first, then the rest of the plan.

    The plan was read without locks, so its stock may be gone; the conditional UPDATE is what prevents
    oversell, and one fresh look at the end finds stock that arrived in another warehouse meanwhile.
    """
    planned = list(dict.fromkeys(w for w in (order.warehouse_id, *plan) if w is not None))
    warehouse_id = next((w for w in planned if _take(line.sku_id, w, line.quantity)), None)
    if warehouse_id is None:
        fresh = [w for w in _warehouses_with(line.sku_id, line.quantity) if w not in planned]
        warehouse_id = next((w for w in fresh if _take(line.sku_id, w, line.quantity)), None)
    if warehouse_id is not None:
        reservation = Reservation(order_id=order.id, order_line_id=line.id, sku_id=line.sku_id,
                                  warehouse_id=warehouse_id, quantity=line.quantity, status="active",
                                  expires_at=expires_at, created_at=utc_now())
        db.session.add(reservation)
        return reservation
    raise InsufficientStock(f"not enough stock of {line.sku.code}: {line.quantity} wanted, "
                            f"{available_for(line.sku_id)} available", field="lines", code="insufficient_stock")


def available_for(sku_id: int) -> int:
    return db.session.execute(
        select(func.coalesce(func.sum(StockLevel.on_hand - StockLevel.reserved - StockLevel.held), 0))
        .where(StockLevel.sku_id == sku_id)
    ).scalar_one()


def release_reservations(order) -> int:
    """Give an order's active reservations back to available stock; returns units released."""
    released = 0
    for reservation in _active_reservations(order.id):
        db.session.execute(
            update(StockLevel)
            .where(StockLevel.sku_id == reservation.sku_id, StockLevel.warehouse_id == reservation.warehouse_id)
            .values(reserved=StockLevel.reserved - reservation.quantity, updated_at=utc_now())
            .execution_options(synchronize_session=False)
        )
        reservation.status, reservation.closed_at = "released", utc_now()
        released += reservation.quantity
    return released


def consume_reservations(order, actor: Actor) -> int:
    """Shipping takes reserved units off the shelf: on hand and reserved fall together, with a ledger row."""
    shipped = 0
    for reservation in _active_reservations(order.id):
        on_hand_after = db.session.execute(
            update(StockLevel)
            .where(StockLevel.sku_id == reservation.sku_id, StockLevel.warehouse_id == reservation.warehouse_id)
            .values(on_hand=StockLevel.on_hand - reservation.quantity,
                    reserved=StockLevel.reserved - reservation.quantity, updated_at=utc_now())
            .returning(StockLevel.on_hand)
            .execution_options(synchronize_session=False)
        ).scalar_one()
        db.session.add(StockMovement(
            sku_id=reservation.sku_id, warehouse_id=reservation.warehouse_id, delta=-reservation.quantity,
            on_hand_after=on_hand_after, kind="shipment", reason=f"shipped {order.order_no}", order_id=order.id,
            actor_id=actor.id, created_at=utc_now()))
        reservation.status, reservation.closed_at = "consumed", utc_now()
        shipped += reservation.quantity
    return shipped


def _active_reservations(order_id: int) -> list[Reservation]:
    return db.session.execute(
        select(Reservation).where(Reservation.order_id == order_id, Reservation.status == "active")
        .order_by(Reservation.id)
    ).scalars().all()


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
