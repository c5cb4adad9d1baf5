"""Stock operations besides receipts: transfers between warehouses, stock-takes approved by a manager before
they adjust anything, returns restocked after inspection. Every change of on-hand stock is a ledger movement
(through `stock.adjust_stock`)."""
from sqlalchemy import select

from shared.actors import Actor
from shared.extensions import db
from shared.models import Order, StockLevel, StockTake, StockTakeLine
from shared.services import audit
from shared.services import stock as stock_service
from shared.services import validation as check
from shared.services.errors import Conflict, Forbidden, NotFound, ValidationFailed
from shared.timekeeping import utc_now

APPROVERS = frozenset({"admin", "ops_manager"})  # who may turn a count into an adjustment


def _count(value, field: str, positive: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < (1 if positive else 0):
        raise ValidationFailed(f"{field} must be a {'positive' if positive else 'non-negative'} whole number",
                               field=field, code="invalid_quantity")
    return value


def transfer(sku_code: str, from_code: str, to_code: str, quantity, reason: str, actor: Actor) -> None:
    """Move units between warehouses: out of the source only if they are free there (never what is reserved)."""
    quantity = _count(quantity, "quantity", positive=True)
    if from_code == to_code:
        raise ValidationFailed("a transfer needs two different warehouses", field="to", code="same_warehouse")
    reason = check.text(reason, "reason", 500)
    stock_service.adjust_stock(sku_code, from_code, -quantity, f"transfer to {to_code}: {reason}", actor,
                               kind="transfer_out")
    stock_service.adjust_stock(sku_code, to_code, quantity, f"transfer from {from_code}: {reason}", actor,
                               kind="transfer_in")


def start_stock_take(warehouse_code: str, actor: Actor) -> StockTake:
    """A count sheet of every SKU the warehouse holds, with the figure the system expects."""
    warehouse = stock_service.get_warehouse(warehouse_code)
    if db.session.execute(select(StockTake.id).where(StockTake.warehouse_id == warehouse.id,
                                                     StockTake.status.in_(("counting", "submitted")))).first():
        raise Conflict(f"{warehouse.code} already has a stock-take in progress", code="stock_take_open")
    take = StockTake(warehouse_id=warehouse.id, status="counting", started_by=actor.label, started_at=utc_now())
    db.session.add(take)
    db.session.flush()
    for level in db.session.execute(select(StockLevel).where(StockLevel.warehouse_id == warehouse.id)
                                    .order_by(StockLevel.sku_id)).scalars():
        db.session.add(StockTakeLine(stock_take_id=take.id, sku_id=level.sku_id, expected=level.on_hand))
    audit.record(actor, "stock_take.start", "stock_take", take.id, after={"warehouse": warehouse.code})
    db.session.flush()
    return take


def _take(take_id: int, status: str) -> StockTake:
    take = db.session.get(StockTake, take_id)
    if take is None:
        raise NotFound("no such stock-take", code="stock_take_not_found")
    if take.status != status:
        raise Conflict(f"stock-take {take.id} is {take.status}, not {status}", code="stock_take_state")
    return take


def record_count(take_id: int, sku_code: str, counted, actor: Actor) -> StockTakeLine:
    take = _take(take_id, "counting")
    sku = stock_service.get_sku(sku_code)
    line = next((line for line in take.lines if line.sku_id == sku.id), None)
    if line is None:
        line = StockTakeLine(stock_take_id=take.id, sku_id=sku.id, expected=0)  # found where none was expected
        db.session.add(line)
    line.counted = _count(counted, "counted")
    audit.record(actor, "stock_take.count", "stock_take", take.id, after={"sku": sku.code, "counted": line.counted})
    db.session.flush()
    return line


def submit(take_id: int, actor: Actor) -> StockTake:
    take = _take(take_id, "counting")
    uncounted = [line.sku.code for line in take.lines if line.counted is None]
    if uncounted:
        raise Conflict(f"not counted yet: {', '.join(uncounted[:10])}", code="count_incomplete")
    take.status = "submitted"
    audit.record(actor, "stock_take.submit", "stock_take", take.id,
                 after={"variances": {line.sku.code: line.variance for line in take.lines if line.variance}})
    return take


def decide(take_id: int, approve: bool, actor: Actor, note: str | None = None) -> StockTake:
    """A manager approves (each variance becomes a stock-take movement in the ledger) or rejects the count."""
    if actor.role not in APPROVERS:
        raise Forbidden(f"the {actor.role} role may not approve a stock-take", code="approval_forbidden")
    take = _take(take_id, "submitted")
    if take.started_by == actor.label:
        raise Forbidden("the person who counted may not approve the count", code="approval_forbidden")
    take.decided_by, take.decided_at = actor.label, utc_now()
    take.note = check.text(note, "note", 500, required=not approve)
    if approve:
        for line in take.lines:
            if line.variance:
                stock_service.adjust_stock(line.sku.code, take.warehouse.code, line.variance,
                                           f"stock-take {take.id}: counted {line.counted}, expected {line.expected}",
                                           actor, kind="stocktake")
    take.status = "approved" if approve else "rejected"
    audit.record(actor, f"stock_take.{take.status}", "stock_take", take.id, reason=take.note)
    return take


def restock_return(order_no: str, sku_code: str, warehouse_code: str, quantity, passed_inspection: bool,
                   actor: Actor, note: str | None = None) -> None:
    """A returned item back on the shelf after inspection (a ledger return), or written off when it failed."""
    from shared.services.orders import get_order

    order: Order = get_order(order_no)
    quantity = _count(quantity, "quantity", positive=True)
    sku = stock_service.get_sku(sku_code)
    sold = sum(line.quantity for line in order.lines if line.sku_id == sku.id)
    if sold < quantity:
        raise ValidationFailed(f"{order.order_no} sold {sold} of {sku.code}, not {quantity}", field="quantity",
                               code="more_than_sold")
    if order.status not in ("shipped", "completed", "closed"):
        raise Conflict(f"{order.order_no} is {order.status}: only shipped orders come back", code="not_shipped")
    if passed_inspection:
        stock_service.adjust_stock(sku.code, warehouse_code, quantity, f"return of {order.order_no}, inspected",
                                   actor, kind="return", order_id=order.id)
    audit.record(actor, "stock.return_inspected", "order", order.order_no,
                 after={"sku": sku.code, "quantity": quantity, "restocked": passed_inspection},
                 reason=check.text(note, "note", 500, required=not passed_inspection))
