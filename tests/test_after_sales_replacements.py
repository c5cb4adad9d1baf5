"""Replacements of after-sales requests (issue 13): an exchange moved to `replaced` and a re-send moved to `resent`
send the goods out again as a replacement order of the after-sales channel (same customer and address, zero price,
paid), its stock reserved and allocated through the order and allocation services so the floor ships it like any
order; refused with nothing changed when the stock is short, the second time, or for a platform-held address; audited
on the request and on the order; shown to staff, to the customer and in the API."""
import re

import pytest
from sqlalchemy import func, select

from shared.extensions import db
from shared.models import AfterSale, AuditEvent, Channel, Order, Reservation, Shipment, StockLevel
from shared.services import after_sales, customers, stock
from shared.services.errors import ServiceError
from tests.factories import ADMIN
from tests.test_after_sales import CS, FLOOR, customer_of, deliver, line
from tests.test_fulfilment import floor  # noqa: F401  (a fixture)
from tests.test_shipping import carriers, portal_with_carriers  # noqa: F401  (fixtures)

PASSWORD = "correct-horse-battery"
OWN_PHONE = "13900001111"
TOKEN = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


@pytest.fixture
def delivered(create_order):
    """A paid order of 2 × SKU-1 (of 20 on hand at HZ1) at 59.90, shipped and delivered yesterday."""
    def make(quantity: int = 2, phone: str = "13812345678"):
        order = create_order(status="shipped", phone=phone,
                             lines=[{"sku": "SKU-1", "quantity": quantity, "unit_price": "59.90"}])
        deliver(order)
        return order
    return make


def count(model, *where) -> int:
    return db.session.execute(select(func.count()).select_from(model).where(*where)).scalar_one()


def level() -> StockLevel:
    return db.session.execute(select(StockLevel).where(StockLevel.sku_id == stock.get_sku("SKU-1").id)).scalar_one()


def inspected_exchange(order, quantity: int = 1, passed: bool = True) -> AfterSale:
    case = after_sales.request_after_sale(order, "exchange", [line(quantity)], customer_of(order))
    after_sales.transition(case, "approved", CS)
    after_sales.transition(case, "awaiting_return", customer_of(order), return_method="drop_off")
    after_sales.transition(case, "received", FLOOR)
    after_sales.transition(case, "inspected", FLOOR, inspection=[
        {"sku": "SKU-1", "passed": passed, "restock": passed, "note": None if passed else "已使用"}])
    db.session.commit()
    return case


def approved_resend(order, quantity: int = 2) -> AfterSale:
    case = after_sales.request_after_sale(order, "resend", [line(quantity, reason="missing_item")], CS)
    after_sales.transition(case, "approved", CS)
    db.session.commit()
    return case


def refused(code: str, call, *args, **kwargs) -> ServiceError:
    with pytest.raises(ServiceError) as caught:
        call(*args, **kwargs)
    assert caught.value.code == code, caught.value.message
    db.session.rollback()
    return caught.value


def test_an_exchange_replaced_sends_a_zero_price_replacement_order_with_its_stock_reserved_and_allocated(delivered):
    order = delivered()
    case = inspected_exchange(order)
    before = level()
    on_hand, reserved = before.on_hand, before.reserved
    after_sales.transition(case, "replaced", CS)
    db.session.commit()
    case = after_sales.get_after_sale(case.id)
    replacement = case.replacement
    assert case.status == "replaced" and replacement is not None and replacement.id != order.id
    assert replacement.channel.code == "AS" and replacement.channel.kind == "offline"
    assert replacement.channel_order_id == f"AS{case.id}"
    assert [(line.sku.code, line.quantity, str(line.unit_price)) for line in replacement.lines] == [
        ("SKU-1", 1, "0.00")]
    assert (str(replacement.total), replacement.payment_status, replacement.currency) == ("0.00", "paid", "CNY")
    assert replacement.customer_id == order.customer_id
    assert (replacement.receiver_name, replacement.receiver_phone, replacement.street, replacement.district) == (
        order.receiver_name, order.receiver_phone, order.street, order.district)
    assert replacement.status == "allocated"  # the floor's work: a shipment waiting for a wave
    [shipment] = db.session.execute(select(Shipment).where(Shipment.order_id == replacement.id)).scalars().all()
    assert (shipment.status, shipment.warehouse_id) == ("allocated", order.warehouse_id)
    [held] = db.session.execute(select(Reservation).where(Reservation.order_id == replacement.id)).scalars().all()
    assert (held.status, held.quantity) == ("active", 1)
    db.session.expire_all()
    after = level()
    assert (after.on_hand, after.reserved) == (on_hand, reserved + 1)  # reserved, not yet gone
    actions = db.session.execute(select(AuditEvent.action).where(AuditEvent.entity_type == "after_sale",
                                                                 AuditEvent.entity_id == str(case.id))
                                 .order_by(AuditEvent.id)).scalars().all()
    assert actions[-2:] == ["after_sale.replacement", "after_sale.replaced"]
    linked = db.session.execute(select(AuditEvent).where(AuditEvent.action == "order.replacement")).scalar_one()
    assert linked.entity_id == replacement.order_no
    assert linked.after["original_order_no"] == order.order_no and linked.after["after_sale_id"] == case.id
    shown = after_sales.case_json(case)["replacement"]
    assert shown["order_no"] == replacement.order_no and shown["lines"] == [{"sku": "SKU-1", "quantity": 1}]
    assert [parcel["status"] for parcel in shown["parcels"]] == ["allocated"]


def test_a_resend_sends_every_line_again(delivered):
    order = delivered()
    case = approved_resend(order, quantity=2)
    reserved = level().reserved
    after_sales.transition(case, "resent", CS)
    db.session.commit()
    case = after_sales.get_after_sale(case.id)
    assert case.status == "resent"
    assert [(line.sku.code, line.quantity) for line in case.replacement.lines] == [("SKU-1", 2)]
    assert count(Shipment, Shipment.order_id == case.replacement_order_id) == 1
    db.session.expire_all()
    assert level().reserved == reserved + 2
    assert count(Order, Order.channel_order_id == f"AS{case.id}") == 1


def test_an_exchange_replaces_only_what_passed_inspection(delivered):
    order = delivered(quantity=3)
    case = after_sales.request_after_sale(order, "exchange", [line(2)], CS)
    for target, actor in (("approved", CS), ("awaiting_return", CS), ("received", FLOOR)):
        after_sales.transition(case, target, actor)
    after_sales.transition(case, "inspected", FLOOR, inspection=[{"sku": "SKU-1", "passed": True}])
    after_sales.transition(case, "replaced", CS)
    db.session.commit()
    assert [(line.sku.code, line.quantity) for line in after_sales.get_after_sale(case.id).replacement.lines] == [
        ("SKU-1", 2)]
    assert after_sales.replacement_lines(case) == list(case.lines)


def test_too_little_stock_for_the_replacement_is_refused_and_changes_nothing(delivered):
    order = delivered()
    case = approved_resend(order, quantity=2)
    free = level().on_hand - level().reserved
    stock.adjust_stock("SKU-1", "HZ1", -(free - 1), "breakage", ADMIN)  # one unit left, two to send
    db.session.commit()
    before = level()
    on_hand, reserved = before.on_hand, before.reserved
    audits, orders_count, channels = count(AuditEvent), count(Order), count(Channel)
    error = refused("insufficient_stock", after_sales.transition, case, "resent", CS)
    assert "SKU-1" in error.message and "2" in error.message and "nothing was changed" in error.message
    case = after_sales.get_after_sale(case.id)
    assert (case.status, case.replacement_order_id) == ("approved", None)
    assert (count(AuditEvent), count(Order), count(Channel)) == (audits, orders_count, channels)  # no AS channel
    db.session.expire_all()
    assert (level().on_hand, level().reserved) == (on_hand, reserved)
    stock.adjust_stock("SKU-1", "HZ1", 1, "found one", ADMIN)  # enough again: the same move now goes through
    db.session.commit()
    assert after_sales.transition(after_sales.get_after_sale(case.id), "resent", CS).replacement is not None


def test_a_second_replacement_for_the_same_request_is_refused(delivered):
    order = delivered()
    case = approved_resend(order, quantity=1)
    after_sales.transition(case, "resent", CS)
    db.session.commit()
    first = after_sales.get_after_sale(case.id).replacement_order_id
    orders_count, reserved = count(Order), level().reserved
    error = refused("already_replaced", after_sales.send_replacement, after_sales.get_after_sale(case.id), CS)
    assert str(case.id) in error.message
    refused("invalid_transition", after_sales.transition, after_sales.get_after_sale(case.id), "resent", CS)
    case = after_sales.get_after_sale(case.id)
    assert (case.replacement_order_id, count(Order)) == (first, orders_count)
    db.session.expire_all()
    assert level().reserved == reserved


def test_an_exchange_where_nothing_passed_cannot_be_replaced(delivered):
    order = delivered()
    case = inspected_exchange(order, passed=False)
    orders_count = count(Order)
    refused("guard_failed", after_sales.transition, case, "replaced", CS)
    assert count(Order) == orders_count and after_sales.get_after_sale(case.id).status == "inspected"


def test_the_replacement_uses_one_after_sales_channel_for_every_request(delivered):
    first, second = delivered(), delivered()
    for order in (first, second):
        after_sales.transition(approved_resend(order, quantity=1), "resent", CS)
    db.session.commit()
    assert count(Channel, Channel.code == "AS") == 1
    assert count(Order, Order.channel_id == after_sales.replacement_channel().id) == 2


# --- what people see ----------------------------------------------------------------------------------------------

def sign_in(app, email: str):
    web = app.test_client()
    web.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    token = TOKEN.search(web.get("/sign-in").text).group(1)
    assert web.post("/sign-in", data={"email": email, "password": PASSWORD, "csrf_token": token}).status_code == 302
    return web


def test_the_customer_and_staff_pages_show_the_replacement(delivered, apps, client_for):
    customers.create_account("李雷", OWN_PHONE, "li.lei@example.com", PASSWORD, ADMIN)
    db.session.commit()
    order = delivered(phone=OWN_PHONE)
    case = approved_resend(order, quantity=1)
    web = sign_in(apps.customer, "li.lei@example.com")
    page = f"/orders/{order.order_no}/after-sales/{case.id}"
    assert 'data-testid="replacement"' not in web.get(page).text
    after_sales.transition(case, "resent", CS)
    db.session.commit()
    replacement = after_sales.get_after_sale(case.id).replacement
    shown = web.get(page).text
    assert 'data-testid="replacement"' in shown and replacement.order_no in shown
    assert "Given once the parcel is packed" in shown
    own = web.get(f"/orders/{replacement.order_no}")  # the customer's own order, trackable like any
    assert own.status_code == 200 and 'data-testid="replaces"' in own.text and order.order_no in own.text
    assert f"Replacement: order {replacement.order_no}" in web.get(f"/orders/{order.order_no}").text
    staff = client_for("customer_service").get(f"/after-sales/{case.id}").text
    assert replacement.order_no in staff and 'data-testid="replacement-status">Allocated' in staff


# --- the floor ships it ---------------------------------------------------------------------------------------------

def test_the_floor_picks_packs_and_loads_the_replacement_like_any_order(floor, portal_with_carriers, apps,  # noqa: F811
                                                                        client_for):
    from shared.services import orders, waves
    from tests.test_fulfilment import SHENZHEN, TODAY, order_to, put
    from tests.test_shipping import scan

    customers.create_account("张伟", "13812345678", "zhang.wei@example.com", PASSWORD, ADMIN)
    put("TEA", "SZ1", "A-01", 10, lot="T-9")
    order = order_to(SHENZHEN, [{"sku": "TEA", "quantity": 2, "unit_price": "50.00"}])
    for step in ("allocated", "picking", "packed", "shipped"):
        orders.transition_order(order, step, ADMIN)
    deliver(order)
    case = after_sales.request_after_sale(order, "resend", [line(1, sku="TEA", reason="missing_item")], CS)
    after_sales.transition(case, "approved", CS)
    after_sales.transition(case, "resent", CS)
    db.session.commit()
    replacement = after_sales.get_after_sale(case.id).replacement
    [wave] = waves.plan_waves("SZ1", ADMIN)
    waves.start_release(wave.id, ADMIN)
    waves.release_chunk(wave.id, TODAY)
    db.session.commit()
    [task] = waves.pick_list(wave.id)
    client, token = portal_with_carriers.test_client(), floor["token"]
    assert scan(client, token, "pick", task=task.id, bin="A-01", sku="TEA", lot="T-9", quantity=1).status_code == 200
    packed = scan(client, token, "pack", order=replacement.order_no, box="BOX-S")
    assert packed.status_code == 200, packed.get_json()
    waybill = packed.get_json()["waybill"]
    assert scan(client, token, "load", parcel=waybill, truck="粤B-12345").status_code == 200
    db.session.expire_all()
    shown = after_sales.case_json(after_sales.get_after_sale(case.id))["replacement"]
    assert shown["status"] == "shipped"
    assert [(p["waybill_no"], p["status"]) for p in shown["parcels"]] == [(waybill, "shipped")]
    web = sign_in(apps.customer, "zhang.wei@example.com")
    page = web.get(f"/orders/{order.order_no}/after-sales/{case.id}").text
    assert re.search(rf'data-testid="replacement-waybill">\s*SF {waybill}', page) and replacement.order_no in page
    staff = client_for("customer_service").get(f"/after-sales/{case.id}").text
    assert f"SF {waybill}" in staff and 'data-testid="replacement-status">Shipped' in staff


def test_four_clerks_sending_the_same_re_send_at_once_make_one_replacement(live_apps):
    from datetime import timedelta

    from shared.services import orders
    from shared.timekeeping import utc_now
    from tests.factories import open_shop, order_payload, race

    app = live_apps.core
    with app.app_context():
        open_shop("SKU-1", 20)
        order = orders.create_order(order_payload(lines=[{"sku": "SKU-1", "quantity": 2, "unit_price": "59.90"}]),
                                    ADMIN)
        for step in ("allocated", "picking", "packed", "shipped"):
            orders.transition_order(order, step, ADMIN)
        db.session.add(Shipment(order_id=order.id, warehouse_id=order.warehouse_id, status="delivered",
                                shipped_at=utc_now() - timedelta(days=2), delivered_at=utc_now() - timedelta(days=1)))
        case = after_sales.request_after_sale(order, "resend", [line(1, reason="missing_item")], CS)
        after_sales.transition(case, "approved", CS)
        db.session.commit()
        case_id = case.id
        db.session.remove()

    def attempt(_number: int):
        after_sales.transition(after_sales.get_after_sale(case_id, for_update=True), "resent", CS)

    outcomes = race(app, 4, attempt, "sent")
    assert outcomes.count("sent") == 1 and set(outcomes) <= {"sent", "invalid_transition", "duplicate_order"}, outcomes
    with app.app_context():
        assert count(Order, Order.channel_order_id == f"AS{case_id}") == 1
        assert count(Channel, Channel.code == "AS") == 1
        level_row = level()
        assert level_row.reserved == count(Reservation, Reservation.status == "active") == 1
