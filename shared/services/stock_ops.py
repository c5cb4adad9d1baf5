"""Stock operations besides receipts: transfers between warehouses, stock-takes approved by a manager before
they adjust anything, returns restocked after inspection. Every change of on-hand stock is a ledger movement
(through `stock.adjust_stock`)."""
from sqlalchemy import select

from shared.actors import Actor
from shared.extensions import db
from shared.labels import STATUS, STOCK_TAKE_STATUS, label, role_name
from shared.models import Order, Sku, StockLevel, StockTake, StockTakeLine
from shared.security.permissions import can
from shared.services import audit
from shared.services import stock as stock_service
from shared.services import validation as check
from shared.services.errors import Conflict, Forbidden, NotFound, ValidationFailed
from shared.services.validation import N_, say
from shared.timekeeping import utc_now

POSITIVE_COUNT = N_("%(field)s must be a positive whole number")
NON_NEGATIVE_COUNT = N_("%(field)s must be a whole number, 0 or more")
SAME_WAREHOUSE = N_("A transfer needs two different warehouses")
TRANSFER_BELOW_FREE = N_("Stock of %(sku)s in %(warehouse)s cannot go below what is reserved or held (on hand "
                         "%(on_hand)s, available %(available)s)")
NO_RECEIVING_BIN = N_("%(warehouse)s has no bin to receive into")
TAKE_OPEN = N_("%(warehouse)s already has a stock-take in progress")
NO_TAKE = N_("No such stock-take")
TAKE_STATE = N_("Stock-take %(id)s is at %(status)s (this needs: %(wanted)s)")
NOT_COUNTED = N_("Not counted yet: %(skus)s")
ROLE_MAY_NOT_APPROVE = N_("The %(role)s role may not approve a stock-take")
COUNTER_MAY_NOT_APPROVE = N_("The person who counted may not approve the count")
MORE_THAN_SOLD = N_("%(order_no)s sold %(sold)s of %(sku)s, not %(quantity)s")
NOT_SHIPPED = N_("%(order_no)s is %(status)s: only shipped orders come back")
ALREADY_BACK = N_("%(order_no)s sold %(sold)s of %(sku)s and %(already)s came back already")


def _count(value, field: str, positive: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < (1 if positive else 0):
        raise ValidationFailed(say(POSITIVE_COUNT if positive else NON_NEGATIVE_COUNT, field=field),
                               field=field, code="invalid_quantity")
    return value


def transfer(sku_code: str, from_code: str, to_code: str, quantity, reason: str, actor: Actor):
    """Move units between warehouses: out of the source only if they are free there (never what is reserved).

    When an approval rule applies (seeded: every transfer, warehouse manager and customer service in parallel),
    nothing moves yet: the request raised is returned, and the transfer is made when it is approved."""
    from shared.services import approvals

    quantity = _count(quantity, "quantity", positive=True)
    if from_code == to_code:
        raise ValidationFailed(say(SAME_WAREHOUSE), field="to", code="same_warehouse")
    reason = check.text(reason, "reason", 500)
    sku = stock_service.get_sku(sku_code)
    source, destination = stock_service.get_warehouse(from_code), stock_service.get_warehouse(to_code)
    level = db.session.execute(select(StockLevel).where(StockLevel.sku_id == sku.id,
                                                        StockLevel.warehouse_id == source.id)).scalar_one_or_none()
    if level is None or level.available < quantity:  # refused now, not after someone approved it
        raise Conflict(say(TRANSFER_BELOW_FREE, sku=sku.code, warehouse=source.code,
                           on_hand=level.on_hand if level else 0, available=level.available if level else 0),
                       field="delta", code="stock_below_zero")
    held = approvals.gate("stock.transfer", sku.code, {"warehouses": [source.code, destination.code]},
                          {"sku": sku.code, "from": source.code, "to": destination.code, "quantity": quantity,
                           "reason": reason}, actor, summary=f"{sku.code} {quantity} {source.code} → {destination.code}")
    if held is not None:
        return held
    stock_service.adjust_stock(sku_code, from_code, -quantity, f"transfer to {to_code}: {reason}", actor,
                               kind="transfer_out")
    stock_service.adjust_stock(sku_code, to_code, quantity, f"transfer from {from_code}: {reason}", actor,
                               kind="transfer_in")
    _move_lots(stock_service.get_sku(sku_code), stock_service.get_warehouse(from_code),
               stock_service.get_warehouse(to_code), quantity)


def _move_lots(sku, source, destination, quantity: int) -> None:
    """The units go with their batches: out of the source's lots first expiry first (never units promised to a
    released pick), into the destination's first bin with the same batch number and dates."""
    from sqlalchemy import update

    from shared.models import Bin, Lot

    receiving = db.session.execute(select(Bin).where(Bin.warehouse_id == destination.id)
                                   .order_by(Bin.walk_order, Bin.id).limit(1)).scalar_one_or_none()
    if receiving is None:
        raise ValidationFailed(say(NO_RECEIVING_BIN, warehouse=destination.code), field="to", code="unknown_bin")
    lots = db.session.execute(
        select(Lot).where(Lot.sku_id == sku.id, Lot.warehouse_id == source.id, Lot.quantity > Lot.allocated)
        .order_by(Lot.expires_on.is_(None), Lot.expires_on, Lot.received_at, Lot.id).with_for_update(of=Lot)
    ).scalars().all()
    left = quantity
    for lot in lots:
        take = min(left, lot.quantity - lot.allocated)
        db.session.execute(update(Lot).where(Lot.id == lot.id).values(quantity=Lot.quantity - take)
                           .execution_options(synchronize_session=False))
        db.session.add(Lot(sku_id=sku.id, warehouse_id=destination.id, bin_id=receiving.id, lot_no=lot.lot_no,
                           produced_on=lot.produced_on, expires_on=lot.expires_on, received_at=utc_now(),
                           quantity=take, allocated=0))
        left -= take
        if left == 0:
            break
    if left:  # counted stock never put on a bin travels as such, and is placed on arrival
        db.session.add(Lot(sku_id=sku.id, warehouse_id=destination.id, bin_id=receiving.id, lot_no="UNPLACED",
                           received_at=utc_now(), quantity=left, allocated=0))


def start_stock_take(warehouse_code: str, actor: Actor) -> StockTake:
    """A count sheet of every SKU the warehouse holds, with the figure the system expects."""
    warehouse = stock_service.get_warehouse(warehouse_code)
    if db.session.execute(select(StockTake.id).where(StockTake.warehouse_id == warehouse.id,
                                                     StockTake.status.in_(("counting", "submitted")))).first():
        raise Conflict(say(TAKE_OPEN, warehouse=warehouse.code), code="stock_take_open")
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
        raise NotFound(say(NO_TAKE), code="stock_take_not_found")
    if take.status != status:
        raise Conflict(say(TAKE_STATE, id=take.id, status=label(STOCK_TAKE_STATUS, take.status),
                           wanted=label(STOCK_TAKE_STATUS, status)), code="stock_take_state")
    return take


def record_count(take_id: int, sku_code: str, counted, actor: Actor) -> StockTakeLine:
    take = _take(take_id, "counting")
    sku = stock_service.get_sku(sku_code)
    return _write_count(take, sku, _count(counted, "counted"), actor)


def _write_count(take: StockTake, sku, counted: int, actor: Actor, on_hand: int | None = None) -> StockTakeLine:
    """One checked figure on the sheet (a line added for a SKU found where none was expected), audited."""
    line = next((line for line in take.lines if line.sku_id == sku.id), None)
    if line is None:
        line = StockTakeLine(stock_take_id=take.id, sku_id=sku.id, expected=0)  # found where none was expected
        db.session.add(line)
        take.lines.append(line)
    # The book figure to compare with is the one at the moment the shelf is counted, not when the sheet was
    # started: stock shipped or received meanwhile is already in the ledger and must not be adjusted twice.
    if on_hand is None:
        on_hand = db.session.execute(select(StockLevel.on_hand).where(
            StockLevel.sku_id == sku.id, StockLevel.warehouse_id == take.warehouse_id)).scalar_one_or_none() or 0
    started_with = line.expected
    line.expected = on_hand
    line.counted, line.counted_by = counted, actor.label
    audit.record(actor, "stock_take.count", "stock_take", take.id,
                 after={"sku": sku.code, "counted": line.counted, "expected": on_hand,
                        "expected_at_start": started_with})
    db.session.flush()
    return line


class CountsRefused(ValidationFailed):
    """A count sheet saved at once with wrong figures: `errors` maps each refused SKU to why; nothing was saved."""

    code = "invalid_counts"

    def __init__(self, errors: dict[str, str]):
        super().__init__(say(COUNTS_REFUSED, lines=len(errors)), field="counts")
        self.errors = errors


COUNTS_REFUSED = N_("%(lines)s counts are wrong: nothing was saved")
MAX_COUNTS = 5000


def record_counts(take_id: int, counts: dict[str, object], actor: Actor) -> list[StockTakeLine]:
    """The whole count sheet in one go ({sku code: counted}): every figure checked by the rules of record_count
    first; one wrong figure (or an unknown SKU) refuses them all with CountsRefused listing each, and nothing is
    saved. The book figures are read in one query, and each count is audited as record_count does."""
    take = _take(take_id, "counting")
    if not isinstance(counts, dict) or len(counts) > MAX_COUNTS:
        raise ValidationFailed(say(check.TOO_MANY, field="counts", limit=MAX_COUNTS), field="counts",
                               code="invalid_counts")
    skus = {sku.code: sku for sku in db.session.execute(select(Sku).where(Sku.code.in_(set(counts)))).scalars()}
    checked, errors = [], {}
    for code, counted in counts.items():
        try:
            sku = skus.get(code) or stock_service.get_sku(code)  # unknown: refused as record_count refuses it
            checked.append((sku, _count(counted, "counted")))
        except (ValidationFailed, NotFound) as refused:
            errors[code] = refused.message
    if errors:
        raise CountsRefused(errors)
    on_hand = dict(db.session.execute(select(StockLevel.sku_id, StockLevel.on_hand).where(
        StockLevel.warehouse_id == take.warehouse_id, StockLevel.sku_id.in_([sku.id for sku, _ in checked]))).all())
    return [_write_count(take, sku, counted, actor, on_hand=on_hand.get(sku.id, 0)) for sku, counted in checked]


def submit(take_id: int, actor: Actor) -> StockTake:
    take = _take(take_id, "counting")
    uncounted = [line.sku.code for line in take.lines if line.counted is None]
    if uncounted:
        raise Conflict(say(NOT_COUNTED, skus=", ".join(uncounted[:10])), code="count_incomplete")
    take.status = "submitted"
    audit.record(actor, "stock_take.submit", "stock_take", take.id,
                 after={"variances": {line.sku.code: line.variance for line in take.lines if line.variance}})
    return take


def decide(take_id: int, approve: bool, actor: Actor, note: str | None = None) -> StockTake:
    """A manager approves (each variance becomes a stock-take movement in the ledger) or rejects the count."""
    if not can(actor.role, "stock", "approve"):  # the permission table: who turns counts into adjustments
        raise Forbidden(say(ROLE_MAY_NOT_APPROVE, role=role_name(actor.role)), code="approval_forbidden")
    take = _take(take_id, "submitted")
    if actor.label == take.started_by or actor.label in {line.counted_by for line in take.lines}:
        raise Forbidden(say(COUNTER_MAY_NOT_APPROVE), code="approval_forbidden")
    note = check.text(note, "note", 500, required=not approve)
    take.approval_request = None
    if approve:
        from shared.services import approvals

        variances = [line.variance for line in take.lines if line.variance]
        held = approvals.gate("stock_take.variance", take.id, {
            "variance_units": sum(abs(v) for v in variances), "warehouses": [take.warehouse.code]},
            {"note": note}, actor, summary=f"stock-take {take.id} {take.warehouse.code}: {len(variances)} variances")
        if held is not None:
            take.approval_request = held  # still submitted: the adjustment waits for the approval
            return take
    take.decided_by, take.decided_at = actor.label, utc_now()
    take.note = note
    if approve:  # every variance in one set: one UPDATE per SKU, one ledger INSERT
        stock_service.adjust_many(take.warehouse, {
            line.sku: (line.variance, f"stock-take {take.id}: counted {line.counted}, expected {line.expected}")
            for line in take.lines if line.variance}, actor, kind="stocktake")
    take.status = "approved" if approve else "rejected"
    audit.record(actor, f"stock_take.{take.status}", "stock_take", take.id, reason=take.note)
    return take


def _returned(order: Order, sku_code: str) -> int:
    """Units of a SKU of this order already dealt with: restocked (the ledger) or written off (the audit trail)."""
    from sqlalchemy import func

    from shared.models import AuditEvent, Sku, StockMovement

    restocked = db.session.execute(select(func.coalesce(func.sum(StockMovement.delta), 0)).join(
        Sku, Sku.id == StockMovement.sku_id).where(StockMovement.order_id == order.id, StockMovement.kind == "return",
                                                  Sku.code == sku_code)).scalar()
    events = db.session.execute(select(AuditEvent.after).where(
        AuditEvent.entity_type == "order", AuditEvent.entity_id == order.order_no,
        AuditEvent.action == "stock.return_inspected")).scalars().all()
    written_off = sum(int(after.get("quantity", 0)) for after in events
                      if after and after.get("sku") == sku_code and not after.get("restocked"))
    return restocked + written_off


def restock_return(order_no: str, sku_code: str, warehouse_code: str, quantity, passed_inspection: bool,
                   actor: Actor, note: str | None = None) -> None:
    """A returned item back on the shelf after inspection (a ledger return), or written off when it failed."""
    from shared.services.orders import get_order

    order: Order = get_order(order_no)
    quantity = _count(quantity, "quantity", positive=True)
    sku = stock_service.get_sku(sku_code)
    sold = sum(line.quantity for line in order.lines if line.sku_id == sku.id)
    if sold < quantity:
        raise ValidationFailed(say(MORE_THAN_SOLD, order_no=order.order_no, sold=sold, sku=sku.code, quantity=quantity),
                               field="quantity",
                               code="more_than_sold")
    if order.status not in ("shipped", "completed", "closed"):
        raise Conflict(say(NOT_SHIPPED, order_no=order.order_no, status=label(STATUS, order.status)),
                       code="not_shipped")
    stock_service.get_warehouse(warehouse_code)  # an unknown warehouse is refused, restocked or not
    already = _returned(order, sku.code)
    if already + quantity > sold:
        raise ValidationFailed(say(ALREADY_BACK, order_no=order.order_no, sold=sold, sku=sku.code, already=already),
                               field="quantity", code="more_than_sold")
    if passed_inspection:
        stock_service.adjust_stock(sku.code, warehouse_code, quantity, f"return of {order.order_no}, inspected",
                                   actor, kind="return", order_id=order.id)
    audit.record(actor, "stock.return_inspected", "order", order.order_no,
                 after={"sku": sku.code, "quantity": quantity, "restocked": passed_inspection},
                 reason=check.text(note, "note", 500, required=not passed_inspection))
