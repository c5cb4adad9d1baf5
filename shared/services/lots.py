"""Lots: receipts into bins with batch and dates, near-expiry views, shelving unplaced stock.

`StockLevel` says what the merchant owns per warehouse; `Lot` says where those units lie (bin, batch, dates)."""
from datetime import date, timedelta
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import func, select

from shared.actors import Actor
from shared.extensions import db
from shared.models import Bin, Lot, StockLevel
from shared.services import audit
from shared.services import stock as stock_service
from shared.services import validation as check
from shared.services.errors import Conflict, NotFound, ValidationFailed
from shared.services.validation import N_, say
from shared.timekeeping import utc_now

# What a person reads when this module refuses: message codes, said in the reader's language (say).
NOT_POSITIVE = N_("%(field)s must be a positive whole number")
UNKNOWN_BIN = N_("No bin %(bin_code)s in %(warehouse_code)s")
BATCH_REQUIRED = N_("%(sku_code)s is batch-tracked: give the batch number and expiry date")
EXPIRED_BATCH = N_("Batch %(lot_no)s expired on %(expires_on)s")
INVALID_DATES = N_("The production date is after the expiry date")
BIN_FULL = N_("Bin %(bin_code)s holds at most %(capacity)s; %(on_bin)s are in it already")


def receive(sku_code: str, warehouse_code: str, bin_code: str, quantity, actor: Actor, lot_no: str | None = None,
            produced_on: date | None = None, expires_on: date | None = None, today: date | None = None) -> Lot:
    """Units arriving into a bin: a lot (with dates when the SKU is batch-tracked) and a receipt in the ledger."""
    sku = stock_service.get_sku(sku_code)
    warehouse = stock_service.get_warehouse(warehouse_code)
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity <= 0:
        raise ValidationFailed(say(NOT_POSITIVE, field="quantity"), field="quantity",
                               code="invalid_quantity")
    bin_ = db.session.execute(select(Bin).where(Bin.warehouse_id == warehouse.id,
                                                Bin.code == check.text(bin_code, "bin", 32))).scalar_one_or_none()
    if bin_ is None:
        raise NotFound(say(UNKNOWN_BIN, bin_code=bin_code, warehouse_code=warehouse.code), field="bin",
                       code="unknown_bin")
    if sku.batch_tracked and (not lot_no or expires_on is None):
        raise ValidationFailed(say(BATCH_REQUIRED, sku_code=sku.code), field="lot_no",
                               code="batch_required")
    today = today or merchant_today()
    if expires_on is not None and expires_on <= today:
        raise ValidationFailed(say(EXPIRED_BATCH, lot_no=lot_no, expires_on=expires_on), field="expires_on",
                               code="expired_batch")
    if produced_on and expires_on and produced_on >= expires_on:
        raise ValidationFailed(say(INVALID_DATES), field="produced_on",
                               code="invalid_dates")
    on_bin = db.session.execute(select(func.coalesce(func.sum(Lot.quantity), 0)).where(Lot.bin_id == bin_.id)).scalar()
    if on_bin + quantity > bin_.capacity:
        raise Conflict(say(BIN_FULL, bin_code=bin_.code, capacity=bin_.capacity, on_bin=on_bin), field="quantity",
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

def shelve_unplaced(warehouse_code: str, bin_code: str, actor: Actor) -> int:
    """Put stock that is on hand but in no lot (counted before bins were kept) onto a bin, one lot per SKU.

    No ledger movement: the units were already on hand; this only says where they lie."""
    warehouse = stock_service.get_warehouse(warehouse_code)
    bin_ = db.session.execute(select(Bin).where(Bin.warehouse_id == warehouse.id, Bin.code == bin_code)
                              ).scalar_one_or_none()
    if bin_ is None:
        raise NotFound(say(UNKNOWN_BIN, bin_code=bin_code, warehouse_code=warehouse.code), field="bin",
                       code="unknown_bin")
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
