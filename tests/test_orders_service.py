"""Order creation, the lifecycle state machine, holds, payment and expiry, through the services."""
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from shared import order_numbers
from shared.actors import Actor
from shared.extensions import db
from shared.lifecycle import TRANSITIONS
from shared.models import AuditEvent, Order, OrderLine, Reservation, StockLevel
from shared.services import orders, stock
from shared.services.errors import Forbidden, InsufficientStock, InvalidTransition, NotFound, ValidationFailed
from shared.timekeeping import utc_now
from tests.factories import ADMIN, order_payload


def counts():
    return (db.session.scalar(select(func.count()).select_from(Order)),
            db.session.scalar(select(func.count()).select_from(OrderLine)),
            db.session.scalar(select(func.count()).select_from(Reservation)),
            db.session.execute(select(StockLevel.on_hand, StockLevel.reserved)).all())


def as_role(role: str) -> Actor:
    return Actor(id=None, label=f"test-{role}", role=role)


def test_paid_order_reserves_stock_and_is_confirmed(create_order, stocked):
    order = create_order()
    assert order.status == "confirmed" and order.payment_status == "paid"
    assert order_numbers.validate(order.order_no) == order.order_no
    assert order.order_no.startswith("OS")
    level = db.session.execute(select(StockLevel)).scalar_one()
    assert (level.on_hand, level.reserved, level.available) == (20, 1, 19)
    assert str(order.total) == "67.90"  # 59.90 + 8.00 shipping


def test_order_number_uses_merchant_local_date(stocked):
    # 2026-11-20 17:30 UTC is already 2026-11-21 in Shanghai.
    payload = order_payload(placed_at="2026-11-20T17:30:00+00:00", paid_at="2026-11-20T17:31:00+00:00")
    order = orders.create_order(payload, ADMIN)
    assert order.order_no[2:10] == "20261121"
    second = orders.create_order(order_payload(placed_at="2026-11-20T18:00:00Z"), ADMIN)
    assert int(second.order_no[10:16]) == int(order.order_no[10:16]) + 1


def test_order_numbers_come_in_blocks_on_postgresql_and_are_never_handed_out_twice(stocked, backend, monkeypatch):
    """For the API on PostgreSQL a process takes NUMBER_BLOCK numbers from the counter at once (its own
    autocommit connection) and hands them out from memory; another process (here: the blocks forgotten), the
    one-at-a-time numbers and the batch path's ranges (`take_range`) continue after them, so no number is given
    twice. SQLite: one per order."""
    from datetime import date

    day = date(2031, 1, 2)
    monkeypatch.setattr(order_numbers, "NUMBER_BLOCK", 5)
    first = [order_numbers.next_number("OS", day, block=True) for _ in range(3)]
    monkeypatch.setattr(order_numbers, "_blocks", {})  # a second process: it knows nothing of the first's block
    second = [order_numbers.next_number("OS", day, block=True) for _ in range(5)]
    second.append(order_numbers.next_number("OS", day))  # one at a time (a job): straight from the counter
    batch_last = order_numbers.take_range("OS", day, 4)
    sequences = [int(number[10:16]) for number in first + second]
    assert all(order_numbers.validate(number) == number for number in first + second)
    assert len(set(sequences)) == len(sequences) and sequences[:3] == sorted(sequences[:3])
    if backend == "postgresql":
        assert sequences == [1, 2, 3, 6, 7, 8, 9, 10, 11] and batch_last == 15  # 4 and 5 stay unused: a gap
    else:
        assert sequences == list(range(1, 10)) and batch_last == 13
    parent = order_numbers.next_number("OS", day, block=True)  # PostgreSQL: a new block, 17 to 20 left over
    monkeypatch.setattr(order_numbers, "_owner", [-1])  # a forked child: its parent's leftovers are not its own
    child = order_numbers.next_number("OS", day, block=True)
    expected = (14, 15) if backend == "sqlite" else (16, 21)
    assert (int(parent[10:16]), int(child[10:16])) == expected


def test_reserves_all_lines_or_none(stocked, create_sku):
    create_sku("SKU-2", "空库存商品")  # no stock at all
    before = counts()
    payload = order_payload(lines=[{"sku": "SKU-1", "quantity": 2, "unit_price": "10.00"},
                                   {"sku": "SKU-2", "quantity": 1, "unit_price": "10.00"}])
    with pytest.raises(InsufficientStock) as refused:
        orders.create_order(payload, ADMIN)
    assert refused.value.code == "insufficient_stock"
    assert counts() == before  # the first line's reservation was rolled back too


@pytest.mark.parametrize("line, field, code", [
    ({"sku": "NOPE", "quantity": 1, "unit_price": "1.00"}, "sku", "unknown_sku"),
    ({"sku": "SKU-1", "quantity": 0, "unit_price": "1.00"}, "lines[0].quantity", "invalid_quantity"),
    ({"sku": "SKU-1", "quantity": -3, "unit_price": "1.00"}, "lines[0].quantity", "invalid_quantity"),
    ({"sku": "SKU-1", "quantity": 1.5, "unit_price": "1.00"}, "lines[0].quantity", "invalid_quantity"),
    ({"sku": "SKU-1", "quantity": 1, "unit_price": "1.005"}, "lines[0].unit_price", "invalid_amount"),
    ({"sku": "SKU-1", "quantity": 1, "unit_price": "abc"}, "lines[0].unit_price", "invalid_amount"),
    ({"sku": "SKU-1", "quantity": 1, "unit_price": "-1.00"}, "lines[0].unit_price", "invalid_amount"),
    ({"sku": "SKU-1", "quantity": 1, "unit_price": "NaN"}, "lines[0].unit_price", "invalid_amount"),
])
def test_bad_lines_are_refused_and_change_nothing(stocked, line, field, code):
    before = counts()
    with pytest.raises((ValidationFailed, NotFound)) as refused:
        orders.create_order(order_payload(lines=[line]), ADMIN)
    assert refused.value.code == code and refused.value.field == field
    assert counts() == before


@pytest.mark.parametrize("override, code", [
    ({"placed_at": "2026-11-21T10:00:00"}, "naive_timestamp"),
    ({"placed_at": "yesterday"}, "invalid_timestamp"),
    ({"currency": "XXX"}, "invalid_currency"),
    ({"channel": "ZZ"}, "unknown_channel"),
    ({"discount": "1000.00"}, "invalid_amount"),
    ({"shipping_fee": "8.001"}, "invalid_amount"),
    ({"lines": []}, "required"),
    ({"customer": {"name": "张伟", "phone": "not-a-phone"}}, "invalid_phone"),
    ({"customer": {"name": "张\x00伟", "phone": "13800000000"}}, "invalid_characters"),
])
def test_bad_orders_are_refused_and_change_nothing(stocked, override, code):
    before = counts()
    with pytest.raises((ValidationFailed, NotFound)) as refused:
        orders.create_order(order_payload(**override), ADMIN)
    assert refused.value.code == code
    assert counts() == before


def test_duplicate_channel_order_is_refused(create_order):
    first = create_order(channel_order_id="DUP-1")
    with pytest.raises(Exception) as refused:
        orders.create_order(order_payload(channel_order_id="DUP-1"), ADMIN)
    assert refused.value.code == "duplicate_order" and first.order_no in refused.value.message


def test_lifecycle_to_shipped_consumes_stock_and_ledger_reproduces_level(create_order, stocked):
    order = create_order(status="shipped")
    level = db.session.execute(select(StockLevel)).scalar_one()
    assert (level.on_hand, level.reserved) == (19, 0)
    assert stock.ledger_on_hand(level.sku_id, level.warehouse_id) == level.on_hand
    assert order.shipped_at is not None
    statuses = [e.after["status"] for e in db.session.execute(
        select(AuditEvent).where(AuditEvent.entity_id == order.order_no, AuditEvent.action == "order.transition")
        .order_by(AuditEvent.id)).scalars()]
    assert statuses == ["confirmed", "allocated", "picking", "packed", "shipped"]


def test_cancel_releases_reservation(create_order):
    order = create_order()
    orders.transition_order(order, "cancelled", as_role("customer_service"), reason="customer changed mind")
    level = db.session.execute(select(StockLevel)).scalar_one()
    assert (order.status, level.reserved, level.on_hand) == ("cancelled", 0, 20)
    assert db.session.execute(select(Reservation.status)).scalar_one() == "released"


@pytest.mark.parametrize("status, target", [
    ("confirmed", "shipped"), ("confirmed", "completed"), ("shipped", "cancelled"), ("pending_review", "packed"),
])
def test_transitions_not_declared_are_refused(create_order, status, target):
    order = create_order(status=status, paid=status != "pending_review")
    before = (order.status, db.session.scalar(select(func.count()).select_from(AuditEvent)))
    with pytest.raises(InvalidTransition) as refused:
        orders.transition_order(order, target, ADMIN, reason="try")
    assert refused.value.code == "invalid_transition" and refused.value.status == 409
    assert (order.status, db.session.scalar(select(func.count()).select_from(AuditEvent))) == before


@pytest.mark.parametrize("role, status, target", [
    ("finance", "confirmed", "allocated"), ("auditor", "confirmed", "cancelled"),
    ("customer_service", "packed", "shipped"), ("warehouse", "confirmed", "cancelled"),
    ("customer_service", "picking", "cancelled"),
])
def test_transitions_refused_for_role(create_order, role, status, target):
    order = create_order(status=status)
    with pytest.raises(Forbidden) as refused:
        orders.transition_order(order, target, as_role(role), reason="try")
    assert refused.value.status == 403
    db.session.refresh(order)
    assert order.status == status


def test_every_declared_transition_names_known_guards_and_effects():
    for transition in TRANSITIONS:
        assert set(transition.guards) <= set(orders.GUARDS)
        assert set(transition.effects) <= set(orders.EFFECTS)


def test_unpaid_order_cannot_be_allocated(create_order):
    order = create_order(paid=False)
    orders.transition_order(order, "confirmed", as_role("customer_service"))
    with pytest.raises(InvalidTransition) as refused:
        orders.transition_order(order, "allocated", as_role("warehouse"))
    assert refused.value.code == "guard_failed" and "not paid" in refused.value.message


def test_hold_and_release_need_reasons_and_return_to_previous_state(create_order):
    order = create_order(status="allocated")
    with pytest.raises(ValidationFailed):
        orders.transition_order(order, "on_hold", ADMIN)
    orders.transition_order(order, "on_hold", as_role("customer_service"), reason="address check")
    assert (order.status, order.status_before_hold, order.hold_reason) == ("on_hold", "allocated", "address check")
    with pytest.raises(InvalidTransition):
        orders.transition_order(order, "picking", ADMIN, reason="skip the hold")
    orders.transition_order(order, "allocated", as_role("customer_service"), reason="address confirmed by phone")
    assert order.status == "allocated" and order.status_before_hold is None
    db.session.commit()  # audit events take their place in the hash chain at commit
    actions = db.session.execute(select(AuditEvent.action).where(AuditEvent.entity_id == order.order_no)
                                 .order_by(AuditEvent.id)).scalars().all()
    assert actions[-2:] == ["order.transition", "order.release_hold"]


def test_unpaid_reservation_expires_and_payment_stops_expiry(create_order, portal):
    stale = create_order(paid=False)
    fresh = create_order(paid=False)
    paid_late = create_order(paid=False)
    orders.record_payment(paid_late, utc_now(), as_role("finance"))
    for order in (stale, paid_late):
        for reservation in order.reservations:
            reservation.expires_at = utc_now() - timedelta(minutes=1)
    db.session.commit()
    due = orders.expired_unpaid_order_ids(utc_now())
    assert due == [stale.id]
    assert orders.cancel_unpaid(stale.id, utc_now()) is True
    db.session.commit()
    assert (stale.status, fresh.status, paid_late.status) == ("cancelled", "pending_review", "pending_review")
    assert "unpaid" in stale.cancel_reason
    level = db.session.execute(select(StockLevel)).scalar_one()
    assert level.reserved == 2


def test_record_payment_refused_for_customer_service_and_twice(create_order):
    order = create_order(paid=False)
    with pytest.raises(Forbidden):
        orders.record_payment(order, utc_now(), as_role("customer_service"))
    orders.record_payment(order, utc_now(), as_role("finance"))
    with pytest.raises(Exception) as refused:
        orders.record_payment(order, utc_now(), as_role("finance"))
    assert refused.value.code == "already_paid"


@pytest.mark.parametrize("typed, code", [
    ("OS2026112100000", "malformed_order_no"), ("hello", "malformed_order_no"), ("", "malformed_order_no"),
    ("'; DROP TABLE orders; --", "malformed_order_no"),
])
def test_malformed_order_numbers_are_refused_before_lookup(session, typed, code):
    with pytest.raises(ValidationFailed) as refused:
        orders.get_order(typed)
    assert refused.value.code == code


def test_mistyped_order_number_fails_its_check_character(create_order, backend):
    order = create_order()
    digits = list(order.order_no)
    digits[12] = "9" if digits[12] != "9" else "8"  # one wrong digit in the sequence
    with pytest.raises(ValidationFailed) as refused:
        orders.get_order("".join(digits))
    assert refused.value.code == "order_no_check_failed"
    swapped = order.order_no[:10] + order.order_no[11] + order.order_no[10] + order.order_no[12:]
    if swapped != order.order_no:
        with pytest.raises(ValidationFailed):
            orders.get_order(swapped)
    assert orders.get_order(order.order_no.lower()).id == order.id


def test_text_with_markup_and_sql_is_stored_verbatim(stocked):
    nasty = "<script>alert('x')</script>'; DROP TABLE orders; --"
    payload = order_payload(shipping_address={"receiver": nasty[:60], "phone": "13812345678", "province": "浙江省",
                                              "city": "杭州市", "district": "<b>西湖区</b>", "street": nasty})
    order = orders.create_order(payload, ADMIN)
    db.session.commit()
    db.session.expire_all()
    stored = db.session.get(Order, order.id)
    assert stored.street == nasty and stored.district == "<b>西湖区</b>"
