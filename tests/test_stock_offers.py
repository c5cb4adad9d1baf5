"""Out-of-stock choices (issue 15 item 5): a priority customer's order that cannot be reserved waits with a
transfer, a pre-order and a substitute offered; accepting one acts through the stock, order, price and exception
services; the bad inputs are refused and change nothing."""
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from shared.extensions import db
from shared.models import (AuditEvent, CustomerNotification, ExceptionCase, ExpectedReceipt, Order, Reservation,
                           StockLevel, StockOffer)
from shared.services import catalog, customers, orders, stock, stock_offers
from shared.services.errors import Conflict, InsufficientStock
from shared.timekeeping import utc_now
from tests.factories import ADMIN, order_payload

VIP_PHONE, PLAIN_PHONE = "13812345678", "13900001111"


def customer(phone: str, email: str) -> dict:
    return {"name": "张伟", "phone": phone, "email": email}


@pytest.fixture
def shop(session):
    """OS; HZ1 (Hangzhou) with 3 of SKU-1 and 10 of SKU-2, SH1 (Shanghai) with 4 of SKU-1; SKU-2 stands in for SKU-1
    at 69.90; 50 of SKU-1 expected in HZ1 in 5 days; a VIP customer (with an email) and a standard one."""
    catalog.create_channel("OS", "官网商城", "own_shop", ADMIN)
    catalog.create_warehouse({"code": "HZ1", "name": "杭州仓", "province": "浙江省", "city": "杭州市"}, ADMIN)
    catalog.create_warehouse({"code": "SH1", "name": "上海仓", "province": "上海市", "city": "上海市"}, ADMIN)
    for code in ("HZ1", "SH1"):  # a transfer is received into a bin
        catalog.create_bin(stock.get_warehouse(code), {"code": "A-01"}, ADMIN)
    catalog.create_sku({"sku": "SKU-1", "name": "龙井茶 250g"}, ADMIN)
    catalog.create_sku({"sku": "SKU-2", "name": "龙井茶 250g 礼盒"}, ADMIN)
    catalog.create_sku({"sku": "SKU-3", "name": "茶杯"}, ADMIN)
    stock.adjust_stock("SKU-1", "HZ1", 3, "opening stock", ADMIN, kind="receipt")
    stock.adjust_stock("SKU-1", "SH1", 4, "opening stock", ADMIN, kind="receipt")
    stock.adjust_stock("SKU-2", "HZ1", 10, "opening stock", ADMIN, kind="receipt")
    stock.adjust_stock("SKU-3", "HZ1", 10, "opening stock", ADMIN, kind="receipt")
    stock_offers.mark_substitute("SKU-1", "SKU-2", "69.90", ADMIN)
    receipt = stock_offers.expect_receipt("SKU-1", "HZ1", (utc_now() + timedelta(days=5)).date().isoformat(), 50,
                                          ADMIN, reference="ASN-1")
    vip = customers.find_or_create("张伟", VIP_PHONE, "vip@example.com", ADMIN)
    customers.set_tier(vip, "vip", ADMIN)
    db.session.commit()
    return {"vip": vip, "receipt": receipt}


def vip_order(paid: bool = True, quantity: int = 5, phone: str = VIP_PHONE, email: str = "vip@example.com"):
    return order_payload(phone=phone, paid=paid, customer=customer(phone, email),
                         lines=[{"sku": "SKU-1", "quantity": quantity, "unit_price": "59.90"},
                                {"sku": "SKU-3", "quantity": 1, "unit_price": "20.00"}])


def levels() -> dict:
    return {(row.sku_id, row.warehouse_id): (row.on_hand, row.reserved)
            for row in db.session.execute(select(StockLevel)).scalars()}


def offer(order, kind: str) -> StockOffer:
    return next(o for o in stock_offers.offers_of(order.id) if o.kind == kind)


def waiting(shop) -> Order:
    order = orders.create_order(vip_order(), ADMIN)
    db.session.commit()
    return order


def test_a_priority_customer_waits_with_three_offers(shop):
    order = waiting(shop)
    assert order.status == "on_hold" and order.status_before_hold == "confirmed"
    by_kind = {o.kind: o for o in stock_offers.offers_of(order.id)}
    assert set(by_kind) == {"transfer", "pre_order", "substitute"}
    transfer = by_kind["transfer"]
    assert (transfer.quantity, transfer.from_warehouse.code, transfer.to_warehouse.code) == (2, "SH1", "HZ1")
    assert transfer.extra_days == 2  # one handling day + one day per 500 km started (Shanghai–Hangzhou)
    pre = by_kind["pre_order"]
    assert pre.receipt_id == shop["receipt"].id and pre.expected_on == shop["receipt"].expected_on
    assert pre.coupon == Decimal("14.98")  # the seeded rule: 5% of 5 × 59.90
    sub = by_kind["substitute"]
    assert sub.sku.code == "SKU-2" and sub.price_difference == Decimal("10.00")
    problem = db.session.get(ExceptionCase, transfer.exception_id)
    assert (problem.kind, problem.status, problem.order_id) == ("out_of_stock", "open", order.id)
    # the line with stock is reserved meanwhile; the short one holds nothing
    reserved = {r.sku_id: r.quantity for r in stock.active_reservations([order.id])}
    assert reserved == {stock.get_sku("SKU-3").id: 1}
    assert db.session.scalar(select(func.count()).select_from(CustomerNotification).where(
        CustomerNotification.order_id == order.id, CustomerNotification.event == "stock_offers")) == 1
    assert db.session.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "stock_offer.made", AuditEvent.entity_id == order.order_no)) == 1


def test_a_customer_who_is_not_priority_is_refused_as_before(shop):
    before = (levels(), db.session.scalar(select(func.count()).select_from(Order)))
    with pytest.raises(InsufficientStock) as refused:
        orders.create_order(vip_order(phone=PLAIN_PHONE, email="plain@example.com"), ADMIN)
    assert refused.value.code == "insufficient_stock"
    db.session.rollback()
    assert (levels(), db.session.scalar(select(func.count()).select_from(Order))) == before
    assert db.session.scalar(select(func.count()).select_from(StockOffer)) == 0
    assert db.session.scalar(select(func.count()).select_from(ExceptionCase)) == 0


def test_accepting_the_transfer_moves_the_units_and_the_order_goes_on(shop):
    order = waiting(shop)
    outcome = stock_offers.accept(offer(order, "transfer"), ADMIN)
    db.session.commit()
    assert outcome.status == "accepted" and outcome.released
    sku, hz, sh = stock.get_sku("SKU-1"), stock.get_warehouse("HZ1"), stock.get_warehouse("SH1")
    assert levels()[(sku.id, hz.id)] == (5, 5) and levels()[(sku.id, sh.id)] == (2, 0)
    db.session.refresh(order)
    assert order.status == "confirmed"
    statuses = {o.kind: o.status for o in stock_offers.offers_of(order.id)}
    assert statuses == {"transfer": "accepted", "pre_order": "withdrawn", "substitute": "withdrawn"}
    problem = db.session.get(ExceptionCase, offer(order, "transfer").exception_id)
    assert problem.status == "resolved"
    assert db.session.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "stock_offer.accept", AuditEvent.entity_id == order.order_no)) == 1


def test_accepting_twice_is_refused_and_changes_nothing(shop):
    order = waiting(shop)
    stock_offers.accept(offer(order, "substitute"), ADMIN)
    db.session.commit()
    before = (levels(), [(o.id, o.status) for o in stock_offers.offers_of(order.id)])
    for kind in ("substitute", "transfer"):  # the same offer again, or another of the settled line
        with pytest.raises(Conflict) as refused:
            stock_offers.accept(offer(order, kind), ADMIN)
        assert refused.value.code in ("offer_closed", "order_not_waiting")
        db.session.rollback()
    assert (levels(), [(o.id, o.status) for o in stock_offers.offers_of(order.id)]) == before


def test_an_offer_accepted_after_the_stock_arrived_is_stale_and_the_order_reserves_normally(shop):
    order = waiting(shop)
    stock.adjust_stock("SKU-1", "HZ1", 10, "the supplier came early", ADMIN, kind="receipt")
    db.session.commit()
    outcome = stock_offers.accept(offer(order, "substitute"), ADMIN)
    db.session.commit()
    assert outcome.status == "stale" and outcome.released
    db.session.refresh(order)
    assert order.status == "confirmed"
    assert [line.sku.code for line in order.lines] == ["SKU-1", "SKU-3"]  # not swapped for the substitute
    sku, hz = stock.get_sku("SKU-1"), stock.get_warehouse("HZ1")
    assert levels()[(sku.id, hz.id)] == (13, 5)
    assert {o.status for o in stock_offers.offers_of(order.id)} == {"stale"}
    assert db.session.scalar(select(func.count()).select_from(CustomerNotification).where(
        CustomerNotification.order_id == order.id, CustomerNotification.event == "stock_arrived")) == 1
    assert db.session.get(ExceptionCase, offer(order, "transfer").exception_id).status == "resolved"


def test_a_substitute_whose_stock_went_meanwhile_is_refused_and_nothing_changes(shop):
    order = waiting(shop)
    stock.adjust_stock("SKU-2", "HZ1", -10, "sold in the store", ADMIN)
    db.session.commit()
    before = (levels(), [(o.id, o.status) for o in stock_offers.offers_of(order.id)],
              db.session.scalar(select(func.count()).select_from(Reservation)))
    with pytest.raises(Conflict) as refused:
        stock_offers.accept(offer(order, "substitute"), ADMIN)
    assert refused.value.code == "substitute_gone"
    db.session.rollback()
    db.session.expire_all()
    assert (levels(), [(o.id, o.status) for o in stock_offers.offers_of(order.id)],
            db.session.scalar(select(func.count()).select_from(Reservation))) == before
    assert [line.sku.code for line in db.session.get(Order, order.id).lines] == ["SKU-1", "SKU-3"]
    assert db.session.get(Order, order.id).status == "on_hold"


def test_a_pre_order_takes_the_coupon_off_the_price_and_waits_for_the_receipt(shop):
    order = orders.create_order(vip_order(paid=False), ADMIN)
    db.session.commit()
    total = order.total
    stock_offers.accept(offer(order, "pre_order"), ADMIN)
    db.session.commit()
    db.session.refresh(order)
    assert order.discount == Decimal("14.98") and order.total == total - Decimal("14.98")
    assert order.status == "on_hold"  # waits for the receipt, the customer has chosen
    assert db.session.get(ExpectedReceipt, shop["receipt"].id).promised == 5
    assert db.session.get(ExceptionCase, offer(order, "pre_order").exception_id).status == "resolved"
    assert stock_offers.check_stock_again(order, ADMIN) is None  # nothing arrived yet
    stock.adjust_stock("SKU-1", "HZ1", 50, "receipt ASN-1", ADMIN, kind="receipt")
    outcome = stock_offers.check_stock_again(order, ADMIN)
    db.session.commit()
    assert outcome.released
    db.session.refresh(order)
    assert order.status == "pending_review"  # unpaid: back where it was before the hold


def test_the_receipt_already_promised_is_refused(shop):
    order = waiting(shop)
    db.session.get(ExpectedReceipt, shop["receipt"].id).promised = 48
    db.session.commit()
    with pytest.raises(Conflict) as refused:
        stock_offers.accept(offer(order, "pre_order"), ADMIN)
    assert refused.value.code == "receipt_full"
    db.session.rollback()
    assert db.session.get(ExpectedReceipt, shop["receipt"].id).promised == 48
    assert offer(order, "pre_order").status == "open"


# --- through the API, the portal and the customer site --------------------------------------------------------

def test_the_api_answers_201_on_hold_for_a_priority_customer_and_409_for_others(shop, portal, create_user):
    from shared.services import staff

    token = staff.issue_token(create_user("api-admin", "admin"), ADMIN)
    db.session.commit()
    client = portal.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    waited = client.post("/api/v1/orders", json=vip_order(), headers=headers)
    assert waited.status_code == 201, waited.text
    assert waited.json["status"] == "on_hold"
    count = db.session.scalar(select(func.count()).select_from(Order))
    refused = client.post("/api/v1/orders", json=vip_order(phone=PLAIN_PHONE, email="plain@example.com"),
                          headers=headers)
    assert refused.status_code == 409 and refused.json["error"]["code"] == "insufficient_stock"
    assert db.session.scalar(select(func.count()).select_from(Order)) == count


def test_customer_service_sees_the_offers_and_accepts_one_on_the_exception_page(shop, client_for):
    from tests.portal_client import csrf_token

    order = waiting(shop)
    problem_id = offer(order, "transfer").exception_id
    client = client_for("customer_service")
    page = client.get(f"/exceptions/{problem_id}")
    assert page.status_code == 200
    for kind in ("transfer", "pre_order", "substitute"):
        assert f'data-testid="accept-{kind}"' in page.text
    assert "SH1" in page.text or "上海仓" in page.text
    token = csrf_token(client, f"/exceptions/{problem_id}")
    missing = client.post(f"/exceptions/{problem_id}/offers/accept", data={"csrf_token": token, "offer": "999999"})
    assert missing.status_code == 404
    done = client.post(f"/exceptions/{problem_id}/offers/accept",
                       data={"csrf_token": token, "offer": str(offer(order, "substitute").id)})
    assert done.status_code == 303
    db.session.expire_all()
    assert db.session.get(Order, order.id).status == "confirmed"
    assert [line.sku.code for line in db.session.get(Order, order.id).lines] == ["SKU-2", "SKU-3"]
    again = client.post(f"/exceptions/{problem_id}/offers/accept",
                        data={"csrf_token": token, "offer": str(offer(order, "substitute").id)}, follow_redirects=True)
    assert "accepted already" in again.text  # accepting twice: said, nothing changed
    detail = client.get(f"/orders/{order.order_no}")  # the order's history says it in a sentence
    assert "accepted for order" in detail.text


def test_the_customer_chooses_on_their_own_order_only(shop, customer_app):
    from tests.test_customer_site import PASSWORD, csrf_token, sign_in

    vip = shop["vip"]
    customers.set_password(vip, PASSWORD, ADMIN)
    other = customers.create_account("韩梅梅", "13700002222", "han@example.com", PASSWORD, ADMIN)
    order = waiting(shop)
    theirs = orders.create_order(order_payload(phone="13700002222", customer=customer("13700002222",
                                                                                      "han@example.com")), ADMIN)
    db.session.commit()
    client = customer_app.test_client()
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    assert sign_in(client, email="vip@example.com").status_code == 302
    page = client.get(f"/orders/{order.order_no}")
    assert 'data-testid="customer-offer-pre_order"' in page.text
    token = csrf_token(client, f"/orders/{order.order_no}")
    chosen = offer(order, "pre_order").id
    assert client.post(f"/orders/{theirs.order_no}/offers/accept",
                       data={"csrf_token": token, "offer": str(chosen)}).status_code == 404
    other_order = waiting_for_other(other)
    assert client.post(f"/orders/{order.order_no}/offers/accept",
                       data={"csrf_token": token, "offer": str(offer(other_order, "pre_order").id)}).status_code == 404
    db.session.expire_all()
    assert {o.status for o in stock_offers.offers_of(order.id)} == {"open"}
    done = client.post(f"/orders/{order.order_no}/offers/accept", data={"csrf_token": token, "offer": str(chosen)})
    assert done.status_code == 303
    db.session.expire_all()
    assert offer(order, "pre_order").status == "accepted"
    assert offer(order, "pre_order").decided_by == f"customer:{vip.id}"


def waiting_for_other(other) -> Order:
    """Another VIP's waiting order (the offers of someone else)."""
    customers.set_tier(other, "vip", ADMIN)
    order = orders.create_order(vip_order(phone="13700002222", email="han@example.com"), ADMIN)
    db.session.commit()
    return order


def test_a_tier_without_offers_on_the_site_shows_none_to_the_customer(shop):
    order = waiting(shop)
    assert stock_offers.shown_to_customer(order)
    stock_offers.set_tier_rule("vip", True, False, ADMIN)
    assert stock_offers.shown_to_customer(order) == []


@pytest.mark.live
@pytest.mark.parametrize("live_apps", ["postgresql", "sqlite"], indirect=True)
def test_the_job_reserves_a_pre_order_once_its_receipt_arrived_through_a_worker(live_apps):
    from rq import Queue
    from rq.job import Job

    from jobs import queues
    from tests.test_worker import _redis, _run_worker

    _redis().flushdb()  # only this test's Redis database (TEST_REDIS_URL)
    with live_apps.core.app_context():
        catalog.create_channel("OS", "官网商城", "own_shop", ADMIN)
        catalog.create_warehouse({"code": "HZ1", "name": "杭州仓", "province": "浙江省", "city": "杭州市"}, ADMIN)
        for code in ("SKU-1", "SKU-3"):
            catalog.create_sku({"sku": code, "name": code}, ADMIN)
        stock.adjust_stock("SKU-3", "HZ1", 5, "opening stock", ADMIN, kind="receipt")
        stock_offers.expect_receipt("SKU-1", "HZ1", (utc_now() + timedelta(days=3)).date(), 20, ADMIN)
        vip = customers.find_or_create("张伟", VIP_PHONE, "vip@example.com", ADMIN)
        customers.set_tier(vip, "vip", ADMIN)
        order = orders.create_order(vip_order(), ADMIN)
        stock_offers.accept(offer(order, "pre_order"), ADMIN)
        db.session.commit()
        order_no = order.order_no
    redis = _redis()
    queue = Queue(queues.DEFAULT, connection=redis)
    first = queue.enqueue("jobs.stock_offers.reserve_arrived_stock")
    assert _run_worker(live_apps.url, "--simple").returncode == 0
    assert Job.fetch(first.id, connection=redis).return_value() == {"reserved": [], "released": []}
    with live_apps.core.app_context():
        stock.adjust_stock("SKU-1", "HZ1", 20, "receipt arrived", ADMIN, kind="receipt")
        db.session.commit()
    second = queue.enqueue("jobs.stock_offers.reserve_arrived_stock")
    again = queue.enqueue("jobs.stock_offers.reserve_arrived_stock")
    finished = _run_worker(live_apps.url, "--simple")
    assert finished.returncode == 0, finished.stderr
    assert Job.fetch(second.id, connection=redis).return_value() == {"reserved": [order_no], "released": [order_no]}
    assert Job.fetch(again.id, connection=redis).return_value() == {"reserved": [], "released": []}
    with live_apps.core.app_context():
        row = orders.get_order(order_no)
        assert row.status == "confirmed"
        assert sum(r.quantity for r in stock.active_reservations([row.id])) == 6


def test_staff_move_a_customer_to_a_tier_that_exists_only(shop, client_for):
    from tests.portal_client import csrf_token

    plain = customers.find_or_create("李四", PLAIN_PHONE, None, ADMIN)
    db.session.commit()
    client = client_for("admin")
    page = client.get(f"/customers/{plain.id}")
    assert 'data-testid="set-tier"' in page.text
    token = csrf_token(client, f"/customers/{plain.id}")
    refused = client.post(f"/customers/{plain.id}/tier", data={"csrf_token": token, "tier": "platinum"},
                          follow_redirects=True)
    assert "No customer tier platinum" in refused.text
    db.session.expire_all()
    assert db.session.get(type(plain), plain.id).tier == "standard"
    assert client.post(f"/customers/{plain.id}/tier", data={"csrf_token": token, "tier": "vip"}).status_code == 303
    db.session.expire_all()
    assert db.session.get(type(plain), plain.id).tier == "vip"
    assert db.session.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "customer.tier", AuditEvent.entity_id == str(plain.id))) == 1
    waited = orders.create_order(vip_order(phone=PLAIN_PHONE, email="plain@example.com"), ADMIN)
    assert waited.status == "on_hold"  # the new tier counts from the next order on
