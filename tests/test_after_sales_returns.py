"""Returns of after-sales requests (issue 13 item 2): a door pickup booked from the request through the return pickups
service (carrier simulator over loopback HTTP), the request received when the return parcel is delivered, cancelling
a request cancels its pickup, the drop-off's return address and QR code, the prepared return package from payment
on, the refund countdown from received_at and its SLA, the customer's mails (decisions, pickup, arrival, refund), the
guest's read-only entry, and the bad input: a pickup slot in the past, another customer's request, two refunds."""
import re
from datetime import timedelta
from decimal import Decimal
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from devtools.simulators.carriers import DEFAULT_CREDENTIALS, CarrierSimulator
from devtools.simulators.carriers.formats import kuaidi100_push_param
from shared.actors import SYSTEM, Actor
from shared.carriers.pickups import PickupClient
from shared.extensions import db
from shared.models import AuditEvent, CustomerNotification, ExceptionCase, ReturnPickup
from shared.services import after_sales, customers, notifications, return_pickups, stock
from shared.services.errors import ServiceError
from shared.timekeeping import as_utc, utc_now
from tests.factories import ADMIN
from tests.test_after_sales import deliver

PASSWORD = "correct-horse-battery"
OWN_PHONE, OTHER_PHONE = "13900001111", "13700002222"
TOKEN = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
CS = Actor(id=None, label="cs1", role="customer_service", ip="127.0.0.1")
FLOOR = Actor(id=None, label="wh1", role="warehouse", ip="127.0.0.1")
RETURN_TO = {"receiver": "杭州仓退货组", "phone": "0571-88886666", "province": "浙江省", "city": "杭州市",
             "district": "余杭区", "street": "仓前街道文一西路 1 号"}


def customer_of(order) -> Actor:
    return Actor(id=None, label=f"customer:{order.customer_id}", role="customer", ip="127.0.0.1")


@pytest.fixture
def simulator():
    sim = CarrierSimulator(seed=11, start=utc_now())
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture
def client(simulator):
    credentials = DEFAULT_CREDENTIALS["kuaidi100"]
    with PickupClient(simulator.base_url, credentials["key"], credentials["secret"],
                      callback_url="http://127.0.0.1:9/hooks/pickups", salt="s") as made:
        yield made


@pytest.fixture
def accounts(session):
    customers.create_account("李雷", OWN_PHONE, "li.lei@example.com", PASSWORD, ADMIN)
    customers.create_account("韩梅梅", OTHER_PHONE, "han@example.com", PASSWORD, ADMIN)
    db.session.commit()


@pytest.fixture
def approved_return(create_order, accounts):
    """A delivered order of 2 × SKU-1 of the signed-up customer, HZ1's return address set, and an approved
    return_refund request for one unit."""
    def make(phone: str = OWN_PHONE, kind: str = "return_refund"):
        order = create_order(status="shipped", phone=phone,
                             lines=[{"sku": "SKU-1", "quantity": 2, "unit_price": "59.90"}])
        deliver(order)
        if return_pickups.return_address(order.warehouse_id) is None:
            return_pickups.set_return_address("HZ1", RETURN_TO, ADMIN)
        case = after_sales.request_after_sale(order, kind, [{"sku": "SKU-1", "quantity": 1, "reason": "damaged"}],
                                              customer_of(order))
        after_sales.transition(case, "approved", CS, reason="请寄回")
        db.session.commit()
        return case
    return make


def mails(event: str) -> list[CustomerNotification]:
    return list(db.session.execute(select(CustomerNotification).where(CustomerNotification.event == event)
                                   .order_by(CustomerNotification.id)).scalars())


def count(model, *where) -> int:
    return db.session.execute(select(func.count()).select_from(model).where(*where)).scalar_one()


def deliver_return(simulator, hooks, booking) -> None:
    """The courier collects the parcel and the carrier carries it to the warehouse; its pushes reach our hook."""
    start = utc_now().replace(microsecond=0) - timedelta(hours=10)
    simulator.collect_pickup(booking.task_id, at=start)
    for hour in range(1, 6):  # in transit ×2, in the warehouse's city, out for delivery, delivered: 5 h ago
        simulator.advance_parcel(booking.waybill_no, at=start + timedelta(hours=hour))
    form = simulator.signed_kuaidi100(kuaidi100_push_param(booking.waybill_no, booking.carrier_code,
                                                           simulator.events_of(booking.waybill_no), True))
    answer = hooks.post("/hooks/tracking/kuaidi100", data=urlencode(form),
                        headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert answer.status_code == 200 and answer.get_json()["result"] is True
    db.session.expire_all()


@pytest.fixture
def hooks(apps, session):
    saved = apps.portal.config.get("KUAIDI100_SALT")
    apps.portal.config["KUAIDI100_SALT"] = DEFAULT_CREDENTIALS["kuaidi100"]["salt"]
    yield apps.portal.test_client()
    apps.portal.config["KUAIDI100_SALT"] = saved


# --- the pickup, through the request --------------------------------------------------------------------------------

def test_a_pickup_is_booked_for_the_request_and_the_delivered_parcel_marks_it_received(
        approved_return, simulator, client, hooks, client_for):
    case = approved_return()
    slot = after_sales.pickup_slots(case)[1]
    booking = after_sales.book_pickup(case, slot.key, customer_of(case.order), client=client)
    db.session.commit()
    assert (booking.after_sale_id, booking.status, booking.order_id) == (case.id, "booked", case.order_id)
    assert booking.waybill_no and booking.waybill_no in simulator.parcels  # the return e-waybill at the carrier
    case = after_sales.get_after_sale(case.id)
    assert (case.status, case.return_method, as_utc(case.pickup_at)) == ("awaiting_return", "pickup",
                                                                         slot.starts_at)
    assert after_sales.pickup_of(case).id == booking.id and after_sales.return_reference(case) == booking.waybill_no
    [booked] = mails("pickup_booked")
    subject, body = notifications.render(booked)
    assert booking.waybill_no in body and case.order.order_no in subject
    deliver_return(simulator, hooks, booking)
    case = after_sales.get_after_sale(case.id)
    booking = db.session.get(ReturnPickup, booking.id)
    assert (booking.status, case.status) == ("received", "received")
    assert as_utc(case.received_at) == as_utc(booking.received_at)  # the carrier's delivery time: the refund clock
    assert after_sales.refund_deadline(case) == as_utc(booking.received_at) + timedelta(hours=48)
    received = db.session.execute(select(AuditEvent).where(AuditEvent.action == "after_sale.received",
                                                           AuditEvent.entity_id == str(case.id))).scalar_one()
    assert received.actor_label == SYSTEM.label
    assert len(mails("return_received")) == 1
    deliver_return_again = simulator.signed_kuaidi100(kuaidi100_push_param(
        booking.waybill_no, booking.carrier_code, simulator.events_of(booking.waybill_no), True))
    hooks.post("/hooks/tracking/kuaidi100", data=urlencode(deliver_return_again),
               headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert count(AuditEvent, AuditEvent.action == "after_sale.received") == 1  # once
    staff_page = client_for("customer_service").get(f"/after-sales/{case.id}").text  # staff see the same return
    assert booking.waybill_no in staff_page and "Delivered to our warehouse" in staff_page
    assert 'data-testid="refund-deadline"' in staff_page


def test_a_slot_in_the_past_is_refused_and_nothing_changes(approved_return, simulator, client):
    case = approved_return()
    past = (utc_now() - timedelta(days=1)).astimezone(ZoneInfo("Asia/Shanghai"))
    key = f"{past:%Y-%m-%d} 09:00-10:00"  # SF's hourly slice, yesterday
    with pytest.raises(ServiceError) as caught:
        after_sales.book_pickup(case, key, customer_of(case.order), client=client)
    assert caught.value.code == "slot_not_bookable"
    db.session.rollback()
    case = after_sales.get_after_sale(case.id)
    assert (case.status, case.return_method, case.pickup_at) == ("approved", None, None)
    assert count(ReturnPickup) == 0 and mails("pickup_booked") == [] and simulator.pickups == {}


def test_a_pickup_is_only_booked_where_the_request_awaits_one(approved_return, simulator, client):
    case = approved_return()
    after_sales.transition(case, "cancelled", customer_of(case.order))
    db.session.commit()
    slot = after_sales.pickup_slots(case)[0].key
    with pytest.raises(ServiceError) as caught:
        after_sales.book_pickup(case, slot, customer_of(case.order), client=client)
    assert caught.value.code == "invalid_transition"
    db.session.rollback()
    assert count(ReturnPickup) == 0 and simulator.pickups == {}


def test_cancelling_the_request_cancels_the_pickup_and_not_once_the_courier_has_it(approved_return, simulator,
                                                                                   client):
    first, second = approved_return(), approved_return()
    slot = after_sales.pickup_slots(first)[0].key
    one = after_sales.book_pickup(first, slot, customer_of(first.order), client=client)
    two = after_sales.book_pickup(second, slot, customer_of(second.order), client=client)
    db.session.commit()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(return_pickups, "pickup_client", lambda: pickup_client_for(simulator))
        after_sales.transition(after_sales.get_after_sale(first.id), "cancelled", customer_of(first.order))
        db.session.commit()
        assert db.session.get(ReturnPickup, one.id).status == "cancelled"
        assert simulator.pickup(one.task_id).status == "9"
        simulator.collect_pickup(two.task_id)
        with pytest.raises(ServiceError) as caught:
            after_sales.transition(after_sales.get_after_sale(second.id), "cancelled", customer_of(second.order))
        assert caught.value.code == "pickup_refused"
        db.session.rollback()
    assert after_sales.get_after_sale(second.id).status == "awaiting_return"
    assert db.session.get(ReturnPickup, two.id).status == "booked"


def pickup_client_for(simulator) -> PickupClient:
    credentials = DEFAULT_CREDENTIALS["kuaidi100"]
    return PickupClient(simulator.base_url, credentials["key"], credentials["secret"], salt="s")


# --- the refund countdown and its SLA --------------------------------------------------------------------------------

def test_the_countdown_runs_from_received_at_for_the_configured_hours_and_its_breach_is_raised(approved_return, apps):
    case = approved_return()
    after_sales.transition(case, "awaiting_return", customer_of(case.order), return_method="drop_off")
    received = utc_now() - timedelta(hours=3, minutes=30)
    after_sales.transition(case, "received", FLOOR, now=received)
    db.session.commit()
    assert as_utc(case.received_at) == received
    assert after_sales.refund_deadline(case) == received + timedelta(hours=48)
    shown = after_sales.refund_countdown(case, now=received + timedelta(hours=3, minutes=30))
    assert (shown.hours, shown.minutes, shown.overdue) == (44, 30, False)
    late = after_sales.refund_countdown(case, now=received + timedelta(hours=49))
    assert (late.hours, late.minutes, late.overdue) == (0, 0, True)
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(apps.core.config, "AFTER_SALES_REFUND_HOURS", 24)
        assert after_sales.refund_deadline(case) == received + timedelta(hours=24)
    after_sales.transition(case, "inspected", FLOOR, inspection=[{"sku": "SKU-1", "passed": True}])
    db.session.commit()
    assert as_utc(case.due_at) == received + timedelta(hours=48)  # the refund's SLA is the same promise
    assert after_sales.check_slas(now=received + timedelta(hours=47)) == []
    assert after_sales.check_slas(now=received + timedelta(hours=48, minutes=1)) == [case.id]
    raised = db.session.execute(select(ExceptionCase).where(ExceptionCase.kind == "after_sales_overdue")).scalar_one()
    assert raised.details["state"] == "inspected"
    after_sales.transition(case, "refunded", CS)
    db.session.commit()
    assert after_sales.refund_countdown(case) is None  # refunded: nothing left to count down


def test_two_refunds_for_one_request_are_refused(approved_return):
    case = approved_return()
    after_sales.transition(case, "awaiting_return", customer_of(case.order), return_method="drop_off")
    after_sales.transition(case, "received", FLOOR)
    after_sales.transition(case, "inspected", FLOOR, inspection=[{"sku": "SKU-1", "passed": True}])
    after_sales.transition(case, "refunded", CS)
    db.session.commit()
    from shared.models.payments import OrderRefund

    for attempt in (lambda: after_sales.issue_refund(after_sales.get_after_sale(case.id), CS),
                    lambda: after_sales.transition(after_sales.get_after_sale(case.id), "refunded", CS)):
        with pytest.raises(ServiceError) as caught:
            attempt()
        assert caught.value.code in ("already_refunded", "invalid_transition")
        db.session.rollback()
    assert count(OrderRefund, OrderRefund.after_sale_id == case.id) == 1
    assert after_sales.get_after_sale(case.id).refund_amount == Decimal("59.90")
    [refunded] = mails("refunded")
    assert "59.90" in notifications.render(refunded)[1]


def test_the_decisions_are_mailed_with_their_reason(approved_return):
    case = approved_return()
    [approved] = mails("after_sales_approved")
    assert "请寄回" in notifications.render(approved)[1]
    order = case.order
    other = after_sales.request_after_sale(order, "return_refund", [{"sku": "SKU-1", "quantity": 1,
                                                                    "reason": "damaged"}], CS)
    after_sales.transition(other, "declined", CS, reason="已超过质保")
    db.session.commit()
    [declined] = mails("after_sales_declined")
    assert "已超过质保" in notifications.render(declined)[1]


# --- the customer site --------------------------------------------------------------------------------------------

def sign_in(app, email: str):
    web = app.test_client()
    web.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    token = TOKEN.search(web.get("/sign-in").text).group(1)
    assert web.post("/sign-in", data={"email": email, "password": PASSWORD, "csrf_token": token}).status_code == 302
    return web


def post(web, url, data, page):
    token = TOKEN.search(web.get(page).text).group(1)
    return web.post(url, data={"csrf_token": token, **data})


@pytest.fixture
def carrier_config(apps, simulator):
    credentials = DEFAULT_CREDENTIALS["kuaidi100"]
    with pytest.MonkeyPatch.context() as patch:
        for app in (apps.customer, apps.core):
            patch.setitem(app.config, "KUAIDI100_API_URL", simulator.base_url)
            patch.setitem(app.config, "KUAIDI100_KEY", credentials["key"])
            patch.setitem(app.config, "KUAIDI100_SECRET", credentials["secret"])
            patch.setitem(app.config, "PICKUP_SALT", "s")
            patch.setitem(app.config, "PICKUP_CALLBACK_URL", "http://127.0.0.1:9/hooks/pickups/kuaidi100")
        yield


def test_the_customer_chooses_a_slot_and_sees_the_waybill_courier_and_tracking(approved_return, apps, simulator,
                                                                              carrier_config):
    case = approved_return()
    web = sign_in(apps.customer, "li.lei@example.com")
    page = f"/orders/{case.order.order_no}/after-sales/{case.id}"
    shown = web.get(page).text
    keys = re.findall(r'name="slot" value="([^"]+)"', shown)
    assert keys and 'data-testid="book-pickup"' in shown
    answer = post(web, f"{page}/pickup", {"slot": keys[0]}, page)
    assert answer.status_code == 303, re.findall(r'class="flash[^"]*"[^>]*>([^<]+)', answer.text)
    db.session.expire_all()
    booking = after_sales.pickup_of(after_sales.get_after_sale(case.id))
    assert booking is not None and booking.status == "booked"
    simulator.collect_pickup(booking.task_id)
    return_pickups.apply_callback(simulator.pickup_callback_form(booking.task_id, 0), "s")
    db.session.commit()
    shown = web.get(page).text
    assert booking.waybill_no in shown and simulator.pickup(booking.task_id).courier_name in shown
    assert 'data-testid="pickup-state"' in shown and "Awaiting return" in shown


def test_booking_on_another_customers_request_is_a_404_and_changes_nothing(approved_return, apps, simulator,
                                                                           carrier_config):
    theirs = approved_return(phone=OTHER_PHONE)
    mine = approved_return()
    web = sign_in(apps.customer, "li.lei@example.com")
    own_page = f"/orders/{mine.order.order_no}/after-sales/{mine.id}"
    slot = after_sales.pickup_slots(theirs)[0].key
    for url in (f"/orders/{theirs.order.order_no}/after-sales/{theirs.id}/pickup",
                f"/orders/{mine.order.order_no}/after-sales/{theirs.id}/pickup"):
        assert post(web, url, {"slot": slot}, own_page).status_code == 404, url
    assert web.get(f"/orders/{theirs.order.order_no}/after-sales/{theirs.id}/return-code.svg").status_code == 404
    db.session.expire_all()
    assert after_sales.get_after_sale(theirs.id).status == "approved" and count(ReturnPickup) == 0


def test_a_past_slot_posted_by_the_customer_is_refused_on_the_page(approved_return, apps, simulator, carrier_config):
    case = approved_return()
    web = sign_in(apps.customer, "li.lei@example.com")
    page = f"/orders/{case.order.order_no}/after-sales/{case.id}"
    answer = post(web, f"{page}/pickup", {"slot": "2020-01-01 09:00-10:00"}, page)
    assert answer.status_code == 422 and "can no longer be booked" in answer.text
    db.session.expire_all()
    assert after_sales.get_after_sale(case.id).status == "approved" and count(ReturnPickup) == 0


def test_a_drop_off_shows_the_street_address_and_a_qr_code_of_the_request(approved_return, apps):
    case = approved_return()
    web = sign_in(apps.customer, "li.lei@example.com")
    page = f"/orders/{case.order.order_no}/after-sales/{case.id}"
    assert post(web, f"{page}/return", {"return_method": "drop_off"}, page).status_code == 303
    shown = web.get(page).text
    assert "仓前街道文一西路 1 号" in shown and "杭州仓退货组" in shown and 'data-testid="return-qr"' in shown
    code = web.get(f"{page}/return-code.svg")
    assert code.status_code == 200 and code.mimetype == "image/svg+xml"
    assert code.headers["X-Content-Type-Options"] == "nosniff"
    assert "<script" not in code.text and "<path" in code.text
    assert after_sales.return_code_payload(after_sales.get_after_sale(case.id)) == (
        f"ORDERLOOM-RETURN;AS={case.id};ORDER={case.order.order_no};REF=AS{case.id}-{case.order.order_no}")


def test_the_order_page_prepares_the_return_from_payment_on(create_order, accounts, create_sku, apps):
    create_sku("SKU-2", "限量礼盒")
    stock.adjust_stock("SKU-2", "HZ1", 5, "opening", ADMIN, kind="receipt")
    after_sales.set_policy(None, "SKU-2", 0, True, ADMIN)
    after_sales.set_policy(None, "SKU-1", 15, False, ADMIN)
    return_pickups.set_return_address("HZ1", RETURN_TO, ADMIN)
    order = create_order(status="allocated", phone=OWN_PHONE,
                         lines=[{"sku": "SKU-1", "quantity": 1, "unit_price": "59.90"},
                                {"sku": "SKU-2", "quantity": 1, "unit_price": "99.00"}])
    web = sign_in(apps.customer, "li.lei@example.com")
    shown = web.get(f"/orders/{order.order_no}").text
    assert 'data-testid="return-package"' in shown
    assert "仓前街道文一西路 1 号" in shown
    assert "returns within 15 days of delivery" in shown and "限量礼盒: final sale" in shown
    assert "within 48 hours" in shown
    assert 'data-testid="request-after-sales"' not in shown  # the entry comes once it is delivered
    unpaid = create_order(phone=OWN_PHONE, paid=False)
    assert 'data-testid="return-package"' not in web.get(f"/orders/{unpaid.order_no}").text


def test_the_request_page_counts_the_refund_down_and_then_shows_the_refund(approved_return, apps):
    case = approved_return()
    after_sales.transition(case, "awaiting_return", customer_of(case.order), return_method="drop_off")
    after_sales.transition(case, "received", FLOOR, now=utc_now() - timedelta(hours=2))
    db.session.commit()
    web = sign_in(apps.customer, "li.lei@example.com")
    page = f"/orders/{case.order.order_no}/after-sales/{case.id}"
    shown = web.get(page).text
    assert 'data-testid="refund-countdown"' in shown and 'data-part="hours">45<' in shown
    assert "js/countdown.js" in shown and "<script>" not in shown
    assert 'data-testid="refund-due"' in web.get(f"/orders/{case.order.order_no}").text
    after_sales.transition(case, "inspected", FLOOR, inspection=[{"sku": "SKU-1", "passed": True}])
    after_sales.transition(case, "refunded", CS)
    db.session.commit()
    shown = web.get(page).text
    assert 'data-testid="refund-countdown"' not in shown and 'data-testid="refund-amount"' in shown
    assert "Refund paid" in shown


def test_a_verified_guest_sees_the_requests_read_only(approved_return, apps):
    case = approved_return()
    guest = apps.customer.test_client()
    guest.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    with guest.session_transaction() as stored:
        from customer_site.access import GUEST_ORDERS_KEY

        stored[GUEST_ORDERS_KEY] = [case.order_id]
    page = f"/track/{case.order.order_no}"
    assert 'data-after-sale="' not in guest.get(page).text  # not before the one-time code
    with guest.session_transaction() as stored:
        import time

        from customer_site.self_service import GUEST_VERIFIED_KEY

        stored[GUEST_VERIFIED_KEY] = {str(case.order_id): int(time.time())}
    shown = guest.get(page).text
    assert f'data-after-sale="{case.id}"' in shown and 'data-testid="return-package"' in shown
    assert f"/after-sales/{case.id}\"" not in shown  # no link to the signed-in pages

