"""After-sales requests as a service: the declared state machine (every move allowed or refused per type), eligibility
with each refusal code, quantities across requests, photos, inspection through stock-ops' returns, the refund seam,
the SLA check raising exceptions, and the audit trail of every move."""
import itertools
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from shared import after_sales_lifecycle as lifecycle
from shared.actors import Actor
from shared.extensions import db
from shared.models import AfterSale, AuditEvent, ExceptionCase, Shipment, StockLevel, StockMovement
from shared.services import after_sales, orders, stock
from shared.services.errors import Conflict, Forbidden, ServiceError, ValidationFailed
from shared.timekeeping import utc_now
from tests.factories import ADMIN

CS = Actor(id=None, label="cs1", role="customer_service", ip="127.0.0.1")
FLOOR = Actor(id=None, label="wh1", role="warehouse", ip="127.0.0.1")
FIN = Actor(id=None, label="fin1", role="finance", ip="127.0.0.1")
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 64
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 " + b"\x00" * 64


def customer_of(order) -> Actor:
    return Actor(id=None, label=f"customer:{order.customer_id}", role="customer", ip="127.0.0.1")


def deliver(order, days_ago: float = 1) -> None:
    """The order's parcel delivered `days_ago` days ago, as the carrier would report it."""
    at = utc_now() - timedelta(days=days_ago)
    db.session.add(Shipment(order_id=order.id, warehouse_id=order.warehouse_id, status="delivered",
                            shipped_at=at - timedelta(days=1), delivered_at=at))
    db.session.commit()


@pytest.fixture
def delivered(create_order):
    """A paid order of 2 × SKU-1 at 59.90, shipped and delivered yesterday."""
    def make(quantity: int = 2, days_ago: float = 1, **overrides):
        order = create_order(status="shipped", lines=[{"sku": "SKU-1", "quantity": quantity, "unit_price": "59.90"}],
                             **overrides)
        deliver(order, days_ago)
        return order
    return make


def line(quantity: int = 1, sku: str = "SKU-1", reason: str = "damaged") -> dict:
    return {"sku": sku, "quantity": quantity, "reason": reason}


def refused(code: str, call, *args, **kwargs) -> ServiceError:
    with pytest.raises(ServiceError) as caught:
        call(*args, **kwargs)
    assert caught.value.code == code, caught.value.message
    db.session.rollback()
    return caught.value


def count(model, *where) -> int:
    return db.session.execute(select(func.count()).select_from(model).where(*where)).scalar_one()


# --- the state machine as data ----------------------------------------------------------------------------------

# Every move each type takes: anything else, for that type, is refused.
EXPECTED = {
    "refund_only": {("requested", "approved"), ("requested", "declined"), ("approved", "refunded"),
                    ("refunded", "closed"), ("requested", "cancelled"), ("approved", "cancelled")},
    "return_refund": {("requested", "approved"), ("requested", "declined"), ("approved", "awaiting_return"),
                      ("awaiting_return", "received"), ("received", "inspected"), ("inspected", "refunded"),
                      ("inspected", "closed"), ("refunded", "closed"), ("requested", "cancelled"),
                      ("approved", "cancelled"), ("awaiting_return", "cancelled")},
    "exchange": {("requested", "approved"), ("requested", "declined"), ("approved", "awaiting_return"),
                 ("awaiting_return", "received"), ("received", "inspected"), ("inspected", "replaced"),
                 ("inspected", "closed"), ("replaced", "closed"), ("requested", "cancelled"),
                 ("approved", "cancelled"), ("awaiting_return", "cancelled")},
    "resend": {("requested", "approved"), ("requested", "declined"), ("approved", "resent"), ("resent", "closed"),
               ("requested", "cancelled"), ("approved", "cancelled")},
}


@pytest.mark.parametrize("kind", lifecycle.TYPES)
def test_every_pair_of_states_is_allowed_exactly_as_the_table_says(kind):
    for source, target in itertools.product(lifecycle.STATES, repeat=2):
        assert (lifecycle.find_move(kind, source, target) is not None) == ((source, target) in EXPECTED[kind]), (
            kind, source, target)


def test_refund_only_and_resend_skip_the_return_and_final_states_lead_nowhere():
    for kind in ("refund_only", "resend"):
        assert not {"awaiting_return", "received", "inspected"} & set(lifecycle.path(kind))
    for kind, final in itertools.product(lifecycle.TYPES, lifecycle.FINAL):
        assert lifecycle.moves_from(kind, final) == []


def test_the_customer_may_only_cancel_and_book_the_return():
    moves = {(m.source, m.target) for m in lifecycle.MOVES if lifecycle.may_fire(m, "customer")}
    assert moves == {("requested", "cancelled"), ("approved", "cancelled"), ("awaiting_return", "cancelled"),
                     ("approved", "awaiting_return")}


def test_roles_fire_their_moves_from_the_permission_table(session):
    decide = lifecycle.find_move("return_refund", "requested", "approved")
    receive = lifecycle.find_move("return_refund", "awaiting_return", "received")
    assert lifecycle.may_fire(decide, "customer_service") and not lifecycle.may_fire(decide, "warehouse")
    assert lifecycle.may_fire(receive, "warehouse") and not lifecycle.may_fire(receive, "customer_service")
    assert not lifecycle.may_fire(decide, "finance") and not lifecycle.may_fire(decide, "auditor")
    assert lifecycle.may_fire(decide, "system") and not lifecycle.may_fire(decide, "customer")


# --- walking a request ------------------------------------------------------------------------------------------

def test_a_return_walks_to_a_refund_restocking_what_passed_and_every_move_is_audited(delivered):
    order = delivered()
    level = lambda: db.session.execute(select(StockLevel.on_hand).where(  # noqa: E731
        StockLevel.sku_id == stock.get_sku("SKU-1").id)).scalar_one()
    on_hand = level()
    case = after_sales.request_after_sale(order, "return_refund", [line(2)], customer_of(order), photos=[JPEG])
    db.session.commit()
    after_sales.transition(case, "approved", CS)
    after_sales.transition(case, "awaiting_return", customer_of(order), return_method="drop_off")
    assert case.return_address and "杭州仓" in case.return_address
    after_sales.transition(case, "received", FLOOR)
    db.session.commit()
    refused("forbidden", after_sales.transition, case, "inspected", CS, inspection=[{"sku": "SKU-1", "passed": True}])
    case = after_sales.get_after_sale(case.id)
    refused("required", after_sales.transition, case, "inspected", FLOOR,
            inspection=[{"sku": "SKU-1", "passed": False}])  # not restocked: say why
    case = after_sales.get_after_sale(case.id)
    after_sales.transition(case, "inspected", FLOOR, inspection=[{"sku": "SKU-1", "passed": True, "restock": True}])
    db.session.commit()
    assert level() == on_hand + 2
    returned = db.session.execute(select(StockMovement).where(StockMovement.kind == "return")).scalar_one()
    assert (returned.delta, returned.order_id) == (2, order.id)
    after_sales.transition(case, "refunded", CS)
    after_sales.transition(case, "closed", CS)
    db.session.commit()
    assert case.refund_amount == Decimal("119.80") and case.status == "closed"
    assert orders.get_order(order.order_no).refund_status == "partially_refunded"  # shipping 8.00 not refunded
    actions = db.session.execute(select(AuditEvent.action).where(AuditEvent.entity_type == "after_sale",
                                                                 AuditEvent.entity_id == str(case.id))
                                 .order_by(AuditEvent.id)).scalars().all()
    assert actions == ["after_sale.requested", "after_sale.approved", "after_sale.awaiting_return",
                       "after_sale.received", "after_sale.inspected", "after_sale.refund", "after_sale.refunded",
                       "after_sale.closed"]
    inspected = db.session.execute(select(AuditEvent).where(AuditEvent.action == "after_sale.inspected")).scalar_one()
    assert inspected.before["status"] == "received" and inspected.after["status"] == "inspected"


def test_a_failed_inspection_writes_off_restocks_nothing_and_closes_without_a_refund(delivered):
    order = delivered()
    case = after_sales.request_after_sale(order, "return_refund", [line(1)], CS)
    for target, actor in (("approved", CS), ("awaiting_return", CS), ("received", FLOOR)):
        after_sales.transition(case, target, actor)
    after_sales.transition(case, "inspected", FLOOR, inspection=[{"sku": "SKU-1", "passed": False,
                                                                 "note": "人为损坏"}])
    db.session.commit()
    assert case.lines[0].passed is False and case.lines[0].restocked is False
    assert count(StockMovement, StockMovement.kind == "return") == 0
    assert count(AuditEvent, AuditEvent.action == "stock.return_inspected") == 1
    refused("guard_failed", after_sales.transition, after_sales.get_after_sale(case.id), "refunded", CS)
    case = after_sales.get_after_sale(case.id)
    refused("required", after_sales.transition, case, "closed", CS)
    case = after_sales.get_after_sale(case.id)
    after_sales.transition(case, "closed", CS, reason="验货未通过，商品退回客户")
    assert case.refund_amount is None


def test_a_failed_line_cannot_be_restocked(delivered):
    order = delivered()
    case = after_sales.request_after_sale(order, "exchange", [line(1)], CS)
    for target, actor in (("approved", CS), ("awaiting_return", CS), ("received", FLOOR)):
        after_sales.transition(case, target, actor)
    db.session.commit()
    refused("restock_failed", after_sales.transition, case, "inspected", FLOOR,
            inspection=[{"sku": "SKU-1", "passed": False, "restock": True, "note": "x"}])
    refused("inspection_incomplete", after_sales.transition, after_sales.get_after_sale(case.id), "inspected",
            FLOOR, inspection=[])
    assert after_sales.get_after_sale(case.id).status == "received"


def test_refused_moves_change_nothing(delivered):
    order = delivered()
    case = after_sales.request_after_sale(order, "refund_only", [line(1)], CS)
    db.session.commit()
    refused("invalid_transition", after_sales.transition, case, "received", FLOOR)
    refused("invalid_transition", after_sales.transition, after_sales.get_after_sale(case.id), "awaiting_return", CS)
    refused("invalid_transition", after_sales.transition, after_sales.get_after_sale(case.id), "nonsense", CS)
    refused("required", after_sales.transition, after_sales.get_after_sale(case.id), "declined", CS)
    refused("forbidden", after_sales.transition, after_sales.get_after_sale(case.id), "approved", FLOOR)
    refused("forbidden", after_sales.transition, after_sales.get_after_sale(case.id), "approved", customer_of(order))
    case = after_sales.get_after_sale(case.id)
    assert case.status == "requested"
    after_sales.transition(case, "declined", CS, reason="商品已超过质保期")
    db.session.commit()
    assert case.decline_reason == "商品已超过质保期"
    refused("invalid_transition", after_sales.transition, case, "cancelled", customer_of(order))


def test_the_customer_cancels_before_received_but_not_after(delivered):
    order = delivered(quantity=2)
    first = after_sales.request_after_sale(order, "return_refund", [line(1)], customer_of(order))
    after_sales.transition(first, "approved", CS)
    after_sales.transition(first, "awaiting_return", customer_of(order), return_method="none")
    after_sales.transition(first, "cancelled", customer_of(order), reason="不想退了")
    assert first.cancel_reason == "不想退了"
    second = after_sales.request_after_sale(order, "return_refund", [line(1)], customer_of(order))
    for target, actor in (("approved", CS), ("awaiting_return", CS), ("received", FLOOR)):
        after_sales.transition(second, target, actor)
    db.session.commit()
    refused("invalid_transition", after_sales.transition, second, "cancelled", customer_of(order))


def test_a_pickup_in_the_past_is_refused(delivered):
    order = delivered()
    past = (utc_now() - timedelta(hours=1)).isoformat()
    refused("pickup_in_past", after_sales.request_after_sale, order, "return_refund", [line(1)], CS,
            pickup={"at": past})
    case = after_sales.request_after_sale(order, "return_refund", [line(1)], CS)
    after_sales.transition(case, "approved", CS)
    db.session.commit()
    refused("pickup_in_past", after_sales.transition, case, "awaiting_return", CS, return_method="pickup",
            pickup_at=past)
    case = after_sales.get_after_sale(case.id)
    soon = utc_now() + timedelta(days=1)
    after_sales.transition(case, "awaiting_return", CS, return_method="pickup", pickup_at=soon.isoformat())
    assert case.return_method == "pickup" and case.pickup_at == soon


# --- eligibility ------------------------------------------------------------------------------------------------

def test_not_delivered_orders_are_refused_except_a_refund_for_a_parcel_in_transit(create_order):
    shipped = create_order(status="shipped")
    for kind in ("return_refund", "exchange", "resend"):
        refused("not_delivered", after_sales.request_after_sale, shipped, kind, [line(1)], CS)
    case = after_sales.request_after_sale(shipped, "refund_only", [line(1, reason="not_received")], CS)
    assert case.status == "requested"
    confirmed = create_order()
    refused("not_delivered", after_sales.request_after_sale, confirmed, "refund_only", [line(1)], CS)


def test_unpaid_orders_are_refused(create_order):
    order = create_order(paid=False)
    refused("not_paid", after_sales.request_after_sale, order, "refund_only", [line(1)], CS)


def test_outside_the_return_window_per_channel_and_sku(delivered):
    order = delivered(days_ago=8)
    error = refused("outside_return_window", after_sales.request_after_sale, order, "return_refund", [line(1)], CS)
    assert error.field == "lines[0].sku"
    after_sales.set_policy("OS", "SKU-1", 15, False, ADMIN)  # this SKU on this channel: 15 days
    db.session.commit()
    assert after_sales.request_after_sale(order, "return_refund", [line(1)], CS).status == "requested"
    after_sales.set_policy(None, None, 3, False, ADMIN)  # the default shrinks: the specific row still wins
    db.session.commit()
    assert after_sales.policies_for(order, [order.lines[0].sku_id])[order.lines[0].sku_id].return_days == 15


def test_final_sale_skus_are_excluded_but_a_missing_item_is_still_sent(delivered):
    order = delivered()
    after_sales.set_policy(None, "SKU-1", 7, True, ADMIN)
    db.session.commit()
    for kind in ("return_refund", "exchange", "refund_only"):
        refused("final_sale", after_sales.request_after_sale, order, kind, [line(1)], CS)
    assert after_sales.request_after_sale(order, "resend", [line(1, reason="missing_item")], CS).type == "resend"


def test_quantities_across_two_requests_and_released_by_a_decline(delivered):
    order = delivered(quantity=3)
    first = after_sales.request_after_sale(order, "return_refund", [line(2)], CS)
    db.session.commit()
    error = refused("quantity_exceeds_returnable", after_sales.request_after_sale, order, "exchange", [line(2)], CS)
    assert error.field == "lines[0].quantity"
    second = after_sales.request_after_sale(order, "exchange", [line(1)], CS)
    db.session.commit()
    refused("quantity_exceeds_returnable", after_sales.request_after_sale, order, "refund_only", [line(1)], CS)
    assert after_sales.returnable(order) == {order.lines[0].sku_id: 0}
    after_sales.transition(after_sales.get_after_sale(first.id), "declined", CS, reason="照片显示商品完好")
    db.session.commit()
    assert after_sales.returnable(order) == {order.lines[0].sku_id: 2}
    assert after_sales.request_after_sale(order, "refund_only", [line(2)], CS).id > second.id


def test_more_than_bought_and_bad_lines_are_refused(delivered):
    order = delivered(quantity=1)
    refused("quantity_exceeds_returnable", after_sales.request_after_sale, order, "return_refund", [line(2)], CS)
    refused("unknown_sku", after_sales.request_after_sale, order, "return_refund", [line(1, sku="NOPE")], CS)
    refused("invalid_reason", after_sales.request_after_sale, order, "return_refund", [line(1, reason="x")], CS)
    refused("invalid_quantity", after_sales.request_after_sale, order, "return_refund", [line(0)], CS)
    refused("duplicate_line", after_sales.request_after_sale, order, "return_refund", [line(1), line(1)], CS)
    refused("required", after_sales.request_after_sale, order, "return_refund", [], CS)
    refused("invalid_type", after_sales.request_after_sale, order, "steal", [line(1)], CS)
    refused("forbidden", after_sales.request_after_sale, order, "return_refund", [line(1)], FIN)
    assert count(AfterSale) == 0


def test_a_switched_off_reason_is_no_longer_offered(delivered):
    order = delivered()
    after_sales.save_reason("damaged", "商品破损", "Arrived damaged", False, ADMIN)
    after_sales.save_reason("late", "物流太慢", "Too slow", True, ADMIN)
    db.session.commit()
    assert "damaged" not in {r.code for r in after_sales.reasons()} and "late" in {r.code for r in after_sales.reasons()}
    refused("invalid_reason", after_sales.request_after_sale, order, "return_refund", [line(1)], CS)
    refused("invalid_code", after_sales.save_reason, "Bad Code", "x", "x", True, ADMIN)


# --- photos -----------------------------------------------------------------------------------------------------

def test_photos_are_checked_by_their_bytes_and_size(delivered):
    order = delivered()
    assert [after_sales.photo_type(data) for data in (JPEG, PNG, WEBP)] == ["image/jpeg", "image/png", "image/webp"]
    refused("photo_not_image", after_sales.request_after_sale, order, "return_refund", [line(1)], CS,
            photos=[b"<svg xmlns='http://www.w3.org/2000/svg'/>"])
    refused("photo_not_image", after_sales.request_after_sale, order, "return_refund", [line(1)], CS,
            photos=[b"GIF89a" + b"\x00" * 20])
    refused("photo_too_large", after_sales.request_after_sale, order, "return_refund", [line(1)], CS,
            photos=[JPEG + b"\x00" * after_sales.MAX_PHOTO_BYTES])
    refused("too_many_photos", after_sales.request_after_sale, order, "return_refund", [line(1)], CS,
            photos=[JPEG, PNG, WEBP, JPEG])
    assert count(AfterSale) == 0
    case = after_sales.request_after_sale(order, "return_refund", [line(1)], CS, photos=[JPEG, PNG, WEBP])
    db.session.commit()
    assert [(p.content_type, p.size) for p in case.photos] == [("image/jpeg", len(JPEG)), ("image/png", len(PNG)),
                                                               ("image/webp", len(WEBP))]
    assert after_sales.photo_of(case, case.photos[0].id).data == JPEG


# --- the refund seam --------------------------------------------------------------------------------------------

def test_the_refund_shares_the_discount_pro_rata_and_is_issued_once(create_order, create_sku):
    create_sku("SKU-2", "碧螺春")
    stock.adjust_stock("SKU-2", "HZ1", 10, "opening", ADMIN, kind="receipt")
    order = create_order(status="shipped", discount="10.00",
                         lines=[{"sku": "SKU-1", "quantity": 3, "unit_price": "10.00"},
                                {"sku": "SKU-2", "quantity": 1, "unit_price": "70.00"}])
    deliver(order)
    # discount 10.00 over 30.00 and 70.00: 3.00 and 7.00; one tea of three: 27.00 / 3 = 9.00
    case = after_sales.request_after_sale(order, "refund_only", [line(1), line(1, sku="SKU-2")], CS)
    assert after_sales.refund_amount(case) == Decimal("72.00")
    after_sales.transition(case, "approved", CS)
    after_sales.transition(case, "refunded", CS)
    db.session.commit()
    assert case.refund_amount == Decimal("72.00") and case.refunded_at is not None
    refused("already_refunded", after_sales.issue_refund, case, CS)
    rest = after_sales.request_after_sale(order, "refund_only", [line(2)], CS)
    after_sales.transition(rest, "approved", CS)
    after_sales.transition(rest, "refunded", CS)
    db.session.commit()
    assert rest.refund_amount == Decimal("18.00")  # 27.00 − 9.00: never more than the line
    assert orders.get_order(order.order_no).refund_status == "partially_refunded"  # shipping stays
    # through the one refund service: the own shop's order was paid at no provider here, so each refund is paid
    # back by hand and made when recorded, linked to its request, and counted in the order's refunded total
    from shared.models.payments import OrderRefund
    from shared.services import refunds

    made = db.session.execute(select(OrderRefund).where(OrderRefund.order_id == order.id)
                              .order_by(OrderRefund.id)).scalars().all()
    assert [(r.after_sale_id, r.amount, r.provider, r.status) for r in made] == [
        (case.id, Decimal("72.00"), "manual", "succeeded"), (rest.id, Decimal("18.00"), "manual", "succeeded")]
    assert refunds.refunded_total(orders.get_order(order.order_no)) == Decimal("90.00")


# --- the SLA ----------------------------------------------------------------------------------------------------

def test_a_request_past_its_due_time_raises_one_exception_per_state(delivered):
    from jobs.exceptions import check_exception_slas  # noqa: F401  (the exception center's own clock runs beside)
    from jobs.after_sales import check_after_sales_slas

    order = delivered()
    case = after_sales.request_after_sale(order, "refund_only", [line(1)], CS)
    db.session.commit()
    assert case.due_at is not None
    assert check_after_sales_slas(now=(utc_now() + timedelta(hours=1)).isoformat())["raised"] == 0
    later = utc_now() + timedelta(hours=25)
    assert check_after_sales_slas(now=later.isoformat())["raised"] == 1
    assert check_after_sales_slas(now=later.isoformat())["raised"] == 0  # once per state
    raised = db.session.execute(select(ExceptionCase).where(ExceptionCase.kind == "after_sales_overdue")).scalar_one()
    assert (raised.category, raised.order_id, raised.details["after_sale_id"]) == ("after_sales", order.id, case.id)
    assert raised.team is None or raised.team.code == "customer_service"
    assert (raised.first_response_minutes, raised.resolve_minutes) == (60, 480)  # the category's seeded targets
    case = after_sales.get_after_sale(case.id)
    after_sales.transition(case, "approved", CS, now=later)
    db.session.commit()
    assert check_after_sales_slas(now=(later + timedelta(hours=25)).isoformat())["raised"] == 1  # approved, late
    assert count(ExceptionCase, ExceptionCase.kind == "after_sales_overdue") == 2


def test_the_sla_job_is_scheduled():
    from jobs.schedule import SCHEDULE

    assert ("check_after_sales_slas", "jobs.after_sales.check_after_sales_slas") in {
        (name, path) for name, path, _interval, _queue in SCHEDULE}


def test_a_declined_request_is_no_longer_due(delivered):
    order = delivered()
    case = after_sales.request_after_sale(order, "return_refund", [line(1)], CS)
    after_sales.transition(case, "declined", CS, reason="no")
    db.session.commit()
    assert case.due_at is None
    assert after_sales.check_slas(utc_now() + timedelta(days=3)) == []


def test_queue_filters_and_sorts(delivered):
    order = delivered(quantity=3)
    first = after_sales.request_after_sale(order, "return_refund", [line(1)], CS)
    second = after_sales.request_after_sale(order, "refund_only", [line(1)], CS)
    after_sales.transition(second, "approved", CS)
    db.session.commit()
    ids = lambda **args: [c.id for c in after_sales.queue(after_sales.parse_filters(args))]  # noqa: E731
    assert ids() == [second.id, first.id]
    assert ids(sort="oldest") == [first.id, second.id]
    assert ids(type="refund_only") == [second.id]
    assert ids(state="requested") == [first.id]
    assert ids(order_no=order.order_no.lower()) == [second.id, first.id]
    assert ids(overdue="1") == []
    for bad in ({"type": "x"}, {"state": "x"}, {"sort": "x"}):
        with pytest.raises(ValidationFailed):
            after_sales.parse_filters(bad)
    with pytest.raises((Conflict, Forbidden, ValidationFailed)):
        after_sales.transition(first, "refunded", CS)
