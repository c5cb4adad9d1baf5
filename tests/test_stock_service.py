"""Stock adjustments, holds, low-stock flags, and the database's own guard against negative stock."""
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from shared.extensions import db
from shared.models import StockLevel, StockMovement
from shared.services import stock
from shared.services.errors import Conflict, InsufficientStock, NotFound, ValidationFailed
from tests.factories import ADMIN


def snapshot():
    return (db.session.execute(select(StockLevel.on_hand, StockLevel.reserved, StockLevel.held)).all(),
            db.session.scalar(select(func.count()).select_from(StockMovement)))


def test_adjustment_writes_ledger_and_keeps_level_reproducible(stocked):
    stock.adjust_stock("SKU-1", "HZ1", -5, "damaged in storage", ADMIN)
    stock.adjust_stock("SKU-1", "HZ1", 12, "supplier delivery", ADMIN, kind="receipt")
    level = db.session.execute(select(StockLevel)).scalar_one()
    assert level.on_hand == 27
    assert stock.ledger_on_hand(level.sku_id, level.warehouse_id) == 27
    assert [m.on_hand_after for m in db.session.execute(select(StockMovement).order_by(StockMovement.id)).scalars()] \
        == [20, 15, 27]


@pytest.mark.parametrize("sku, warehouse, delta, reason, error, code", [
    ("NOPE", "HZ1", 1, "x", NotFound, "unknown_sku"),
    ("SKU-1", "NOPE", 1, "x", NotFound, "unknown_warehouse"),
    ("SKU-1", "HZ1", 0, "x", ValidationFailed, "invalid_quantity"),
    ("SKU-1", "HZ1", "2.5", "x", ValidationFailed, "invalid_quantity"),
    ("SKU-1", "HZ1", 1, "  ", ValidationFailed, "reason_required"),
    ("SKU-1", "HZ1", -21, "x", Conflict, "stock_below_zero"),
])
def test_bad_adjustments_change_nothing(stocked, sku, warehouse, delta, reason, error, code):
    before = snapshot()
    with pytest.raises(error) as refused:
        stock.adjust_stock(sku, warehouse, delta, reason, ADMIN)
    assert refused.value.code == code
    assert snapshot() == before


def test_adjustment_cannot_take_reserved_units(create_order):
    create_order(lines=[{"sku": "SKU-1", "quantity": 15, "unit_price": "1.00"}])
    with pytest.raises(Conflict) as refused:
        stock.adjust_stock("SKU-1", "HZ1", -6, "count correction", ADMIN)
    assert "reserved 15" in refused.value.message
    stock.adjust_stock("SKU-1", "HZ1", -5, "count correction", ADMIN)
    assert db.session.execute(select(StockLevel.on_hand)).scalar_one() == 15


def test_held_stock_is_not_sold(create_order, stocked):
    stock.set_held("SKU-1", "HZ1", 18, "双十一 promotion pool", ADMIN)
    create_order(lines=[{"sku": "SKU-1", "quantity": 2, "unit_price": "1.00"}])
    with pytest.raises(InsufficientStock):
        create_order(lines=[{"sku": "SKU-1", "quantity": 1, "unit_price": "1.00"}])
    with pytest.raises(Conflict):
        stock.set_held("SKU-1", "HZ1", 19, "more", ADMIN)


def test_low_stock_flag_follows_safety_stock(stocked, create_sku):
    assert stock.stock_summary(stocked["sku"])["low_stock"] is False
    stock.adjust_stock("SKU-1", "HZ1", -15, "sold offline", ADMIN)
    stocked["sku"].safety_stock = 5
    summary = stock.stock_summary(stocked["sku"])
    assert summary["available"] == 5 and summary["low_stock"] is True


def test_database_refuses_negative_available_even_without_the_service(stocked):
    with pytest.raises(IntegrityError):
        with db.session.begin_nested():
            db.session.execute(text("UPDATE stock_levels SET reserved = on_hand + 1"))


def test_ledger_is_append_only(stocked):
    with pytest.raises(Exception) as refused:
        with db.session.begin_nested():
            db.session.execute(text("UPDATE stock_movements SET delta = 999"))
    assert "append-only" in str(refused.value)
