"""A return walked through in headless Chromium, every step a click on a page: a customer opens a delivered order on
the customer site and asks for a return with a photo (a real PNG file uploaded); customer service finds it in the
portal's after-sales queue and approves it; the customer books a courier pickup slot (the carrier simulator over
loopback); the carrier collects the parcel and carries it back, its own callbacks and tracking pushes reaching the
portal's hooks over HTTP; the warehouse marks the goods received in the portal and the customer sees the refund
countdown; the warehouse records the inspection (passed, restocked); customer service refunds, confirming the
dialog; the customer sees the refund. Only the starting point (a delivered order, its customer, the staff) is made
through the services; the end is checked in the database: the request refunded, one refund row, the unit back on
the shelf through the movement ledger, and each step's audit event by the person who clicked."""
import struct
import zlib
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import Select
from sqlalchemy import select

from devtools.simulators.carriers import DEFAULT_CREDENTIALS, CarrierSimulator
from shared.extensions import db
from shared.models import AfterSale, AuditEvent, CustomerNotification, Shipment, Sku, StockLevel, StockMovement
from shared.models.payments import OrderRefund
from shared.services import customers, orders, return_pickups, staff
from shared.timekeeping import utc_now
from tests.factories import ADMIN, PASSWORD, open_shop, order_payload
from tests.live_servers import LiveServer, browser  # noqa: F401  (fixture)
from tests.test_browser import _console_errors, _sign_in, _sign_out, _text, _wait

pytestmark = [pytest.mark.browser, pytest.mark.live,
              pytest.mark.parametrize("live_apps", ["postgresql"], indirect=True)]
PHONE = "13900001111"


def png(width: int = 4, height: int = 4) -> bytes:
    """A real (tiny, grey) PNG: signature, IHDR, IDAT, IEND with their CRCs."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


@pytest.fixture
def simulator():
    sim = CarrierSimulator(seed=3, realtime=True)  # its clock is the wall clock: the slots it accepts are ours
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture
def sites(live_apps, simulator):
    """The portal and the customer site served over HTTP, both speaking to the carrier simulator; the simulator's
    pickup callbacks go to the portal's hook (the callBackUrl sent with each booking)."""
    credentials = DEFAULT_CREDENTIALS["kuaidi100"]
    portal = LiveServer(live_apps.portal)
    customer = LiveServer(live_apps.customer)
    with pytest.MonkeyPatch.context() as patch:
        for app in (live_apps.customer, live_apps.core, live_apps.portal):
            patch.setitem(app.config, "KUAIDI100_API_URL", simulator.base_url)
            patch.setitem(app.config, "KUAIDI100_KEY", credentials["key"])
            patch.setitem(app.config, "KUAIDI100_SECRET", credentials["secret"])
            patch.setitem(app.config, "KUAIDI100_SALT", credentials["salt"])
            patch.setitem(app.config, "PICKUP_SALT", "browser-salt")
            patch.setitem(app.config, "PICKUP_CALLBACK_URL", f"{portal.url}/hooks/pickups/kuaidi100")
        yield portal.url, customer.url
        customer.stop()
        portal.stop()


@pytest.fixture
def delivered(live_apps) -> str:
    """A customer (li.lei) with an order of 2 × SKU-1 delivered yesterday from HZ1 (which has a return address);
    customer service cs1 and warehouse staff wh1. Returns the order number."""
    with live_apps.core.app_context():
        customers.create_account("李雷", PHONE, "li.lei@example.com", PASSWORD, ADMIN)
        open_shop()
        return_pickups.set_return_address("HZ1", {"receiver": "杭州仓退货组", "phone": "0571-88886666",
                                                  "province": "浙江省", "city": "杭州市", "district": "余杭区",
                                                  "street": "仓前街道文一西路 1 号"}, ADMIN)
        staff.create_user("cs1", PASSWORD, "customer_service", ADMIN, locale="en")
        staff.create_user("wh1", PASSWORD, "warehouse", ADMIN, locale="en")
        order = orders.create_order(order_payload(phone=PHONE, lines=[{"sku": "SKU-1", "quantity": 2,
                                                                       "unit_price": "59.90"}]), ADMIN)
        for step in ("allocated", "picking", "packed", "shipped"):
            orders.transition_order(order, step, ADMIN, reason="test")
        db.session.add(Shipment(order_id=order.id, warehouse_id=order.warehouse_id, status="delivered",
                                shipped_at=utc_now() - timedelta(days=2), delivered_at=utc_now() - timedelta(days=1)))
        db.session.commit()
        return order.order_no


def _on_hand(live_apps) -> int:
    with live_apps.core.app_context():
        return db.session.execute(select(StockLevel.on_hand).join(Sku, Sku.id == StockLevel.sku_id)
                                  .where(Sku.code == "SKU-1")).scalar_one()


def _state(driver) -> str:
    return _text(driver, "after-sale-state")


def _flash(driver, text: str) -> None:
    _wait(driver, lambda d: any(text in item.text for item in d.find_elements(By.CSS_SELECTOR, ".flash-success,"
                                                                                                ".flash-info")),
          f"the message {text!r}")


def _open_from_queue(driver, order_no: str, state: str) -> None:
    """Through the portal's menu to the after-sales queue, filtered by state and order number, into the request."""
    driver.find_element(By.LINK_TEXT, "After-sales").click()
    _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "[data-testid=after-sales-queue]"), "the queue")
    Select(driver.find_element(By.NAME, "state")).select_by_value(state)
    driver.find_element(By.NAME, "order_no").send_keys(order_no)
    driver.find_element(By.CSS_SELECTOR, "form.filters button[type=submit]").click()
    _wait(driver, lambda d: f"order_no={order_no}" in d.current_url, "the filtered queue")
    rows = driver.find_elements(By.CSS_SELECTOR, "[data-testid=after-sales-queue] tbody tr[data-after-sale]")
    assert len(rows) == 1 and order_no in rows[0].text
    rows[0].find_element(By.CSS_SELECTOR, "td:first-child a").click()
    _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "[data-testid=after-sale-lines]"), "the request's page")


def _click_move(driver, target: str) -> None:
    driver.find_element(By.CSS_SELECTOR, f"[data-testid=move-{target}] button[type=submit]").click()


def test_a_customer_returns_a_parcel_and_every_staff_step_is_a_click(  # noqa: F811  (browser)
        live_apps, sites, delivered, browser, simulator, tmp_path):
    portal, shop = sites
    order_no, driver = delivered, browser
    on_hand_before = _on_hand(live_apps)
    photo = tmp_path / "damaged.png"
    photo.write_bytes(png())

    # The customer signs in, opens the delivered order from the list and asks for a return with a photo.
    driver.get(f"{shop}/sign-in")
    driver.find_element(By.NAME, "email").send_keys("li.lei@example.com")
    driver.find_element(By.NAME, "password").send_keys(PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "main form button[type=submit]").click()
    _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "[data-testid=sign-out]"), "signed in")
    driver.get(f"{shop}/orders/")
    driver.find_element(By.LINK_TEXT, order_no).click()
    package = _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "[data-testid=return-package]"),
                    "the order's return package")[0].text
    assert "仓前街道文一西路 1 号" in package and "7 days" in package
    driver.find_element(By.CSS_SELECTOR, "[data-testid=request-after-sales]").click()
    _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "[data-testid=after-sale-form]"), "the request form")
    driver.find_element(By.CSS_SELECTOR, "[data-testid=type-return_refund]").click()
    Select(driver.find_element(By.CSS_SELECTOR, "[data-testid=quantity-SKU-1]")).select_by_value("1")
    Select(driver.find_element(By.CSS_SELECTOR, "[data-testid=reason-SKU-1]")).select_by_value("damaged")
    driver.find_element(By.CSS_SELECTOR, "[data-testid=photos]").send_keys(str(photo))
    driver.find_element(By.CSS_SELECTOR, "[data-testid=send-after-sale]").click()
    _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "[data-testid=after-sale-state]"), "the request's page")
    _flash(driver, "Your after-sales request is sent.")
    assert _state(driver) == "Requested"
    request_page = driver.current_url
    thumb = driver.find_element(By.CSS_SELECTOR, "img.thumb")
    _wait(driver, lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", thumb) == 4,
          "the customer's own photo shown")
    assert not driver.find_elements(By.CSS_SELECTOR, "[data-testid=book-pickup]")  # not before it is approved

    # Customer service finds it in the after-sales queue, sees the photo and approves it with a reason.
    _sign_in(driver, portal, "cs1")
    _open_from_queue(driver, order_no, "requested")
    assert _state(driver) == "Requested"
    staff_photo = driver.find_element(By.CSS_SELECTOR, "[data-testid=photo]")
    _wait(driver, lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth",
                                             staff_photo) == 4, "the photo shown to staff")
    assert "SKU-1" in _text(driver, "after-sale-lines") and "Arrived damaged" in _text(driver, "after-sale-lines")
    assert not driver.find_elements(By.CSS_SELECTOR, "[data-testid=move-received]")  # the warehouse's, not cs1's
    driver.find_element(By.CSS_SELECTOR, "[data-testid=reason-approved]").send_keys("请寄回，我们验货后退款")
    _click_move(driver, "approved")
    _flash(driver, "Approved")
    assert _state(driver) == "Approved"
    case_id = int(driver.current_url.rstrip("/").rsplit("/", 1)[1])
    assert "请寄回，我们验货后退款" in _text(driver, "history")

    # The customer sees it approved and books a courier pickup in one of the offered slots.
    driver.get(request_page)
    assert _state(driver) == "Approved"
    slots = driver.find_elements(By.CSS_SELECTOR, "[data-testid=slot]")
    assert slots
    slots[min(1, len(slots) - 1)].click()
    driver.find_element(By.CSS_SELECTOR, "[data-testid=book-pickup] button[type=submit]").click()
    waybill = _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "[data-testid=pickup-waybill]"),
                    "the booked pickup")[0].text
    _flash(driver, "The courier is booked.")
    assert _state(driver) == "Awaiting return"
    [task_id] = simulator.pickups
    waybill_no = simulator.pickups[task_id].waybill_no
    assert waybill_no in waybill and waybill_no in simulator.parcels
    assert _text(driver, "pickup-state").startswith("Courier booked")

    # The carrier names the courier, collects the parcel and carries it towards the warehouse: its callbacks and
    # tracking pushes reach the portal over HTTP, as a real carrier's would.
    assert [status for _task, status in simulator.push_pickup_callbacks()] == [200]
    driver.refresh()
    courier = simulator.pickups[task_id].courier_name
    assert courier in _text(driver, "pickup-courier")
    collected = utc_now().replace(microsecond=0) - timedelta(minutes=50)
    simulator.collect_pickup(task_id, at=collected)
    simulator.advance_parcel(waybill_no, "in_transit", at=collected + timedelta(minutes=20))
    assert [status for _task, status in simulator.push_pickup_callbacks()] == [200]
    pushed = simulator.push_kuaidi100(f"{portal}/hooks/tracking/kuaidi100", waybill_no=waybill_no)
    assert [p.accepted for p in pushed] == [True]
    driver.refresh()
    assert _text(driver, "pickup-state").startswith("On its way to our warehouse")
    assert _state(driver) == "Awaiting return"

    # The warehouse takes the parcel in: wh1 finds the request and marks the goods received.
    driver.get(f"{portal}/")
    _sign_out(driver)
    _sign_in(driver, portal, "wh1")
    _open_from_queue(driver, order_no, "awaiting_return")
    assert waybill_no in _text(driver, "pickup")
    assert not driver.find_elements(By.CSS_SELECTOR, "[data-testid=move-refunded]")
    _click_move(driver, "received")
    _flash(driver, "Received")
    assert _state(driver) == "Received"
    assert _text(driver, "refund-deadline")

    # The customer sees the refund countdown start (48 hours from the warehouse receiving it).
    driver.get(request_page)
    assert _state(driver) == "Received"
    countdown = driver.find_element(By.CSS_SELECTOR, "[data-testid=refund-countdown]")
    assert "within 48 hours" in countdown.text
    assert int(countdown.find_element(By.CSS_SELECTOR, "[data-part=hours]").text) in (47, 48)
    deadline_shown = countdown.get_attribute("data-deadline")

    # The carrier's own delivered scan arrives after the warehouse took it in: the parcel shows delivered, the
    # request stays received (the refund clock does not restart).
    simulator.advance_parcel(waybill_no, "delivered", at=utc_now())
    assert [p.accepted for p in simulator.push_kuaidi100(f"{portal}/hooks/tracking/kuaidi100",
                                                         waybill_no=waybill_no)] == [True]
    driver.refresh()
    assert "Delivered to our warehouse" in _text(driver, "pickup-state")
    assert _state(driver) == "Received"
    assert driver.find_element(By.CSS_SELECTOR, "[data-testid=refund-countdown]").get_attribute(
        "data-deadline") == deadline_shown

    # wh1 inspects: passed, back on the shelf.
    driver.get(f"{portal}/after-sales/{case_id}")
    inspection = driver.find_element(By.CSS_SELECTOR, "[data-testid=move-inspected]")
    Select(inspection.find_element(By.CSS_SELECTOR, "select[name^=passed_]")).select_by_value("yes")
    Select(inspection.find_element(By.CSS_SELECTOR, "select[name^=restock_]")).select_by_value("yes")
    _click_move(driver, "inspected")
    _flash(driver, "Inspected")
    assert _state(driver) == "Inspected"
    line = driver.find_element(By.CSS_SELECTOR, "[data-testid=after-sale-lines] tr[data-line=SKU-1]").text
    assert "passed · restocked" in line
    assert _on_hand(live_apps) == on_hand_before + 1

    # Customer service refunds, confirming the dialog that names the amount.
    _sign_out(driver)
    _sign_in(driver, portal, "cs1")
    _open_from_queue(driver, order_no, "inspected")
    _click_move(driver, "refunded")
    dialog = _wait(driver, expected_conditions.alert_is_present(), "the refund's confirmation dialog")
    assert "59.90" in dialog.text and "cannot be recalled" in dialog.text
    dialog.accept()
    _flash(driver, "Refunded")
    assert _state(driver) == "Refunded"
    assert "59.90" in _text(driver, "refund-amount")
    assert not driver.find_elements(By.CSS_SELECTOR, "[data-testid=move-refunded]")  # not twice

    # The customer sees the refund, its amount and its state; the countdown has done its work and is gone.
    driver.get(request_page)
    assert _state(driver) == "Refunded"
    refund = _text(driver, "refund-amount")
    assert "59.90" in refund and "Refund paid" in refund
    assert not driver.find_elements(By.CSS_SELECTOR, "[data-testid=refund-countdown]")
    assert [step.get_attribute("data-step") for step in driver.find_elements(
        By.CSS_SELECTOR, "[data-testid=after-sale-steps] .step-done")] == ["requested", "approved", "awaiting_return",
                                                                             "received", "inspected"]
    assert not _console_errors(driver)

    with live_apps.core.app_context():
        case = db.session.get(AfterSale, case_id)
        assert case.status == "refunded" and case.refund_amount == Decimal("59.90")
        # the countdown the customer saw ran from the warehouse's receipt, 48 hours
        assert datetime.fromisoformat(deadline_shown) == case.received_at + timedelta(hours=48)
        assert [(p.content_type, p.data) for p in case.photos] == [("image/png", png())]
        assert [(line.sku.code, line.quantity, line.passed, line.restocked) for line in case.lines] == \
            [("SKU-1", 1, True, True)]
        refunds = db.session.execute(select(OrderRefund).where(OrderRefund.order_id == case.order_id)).scalars().all()
        assert [(r.after_sale_id, r.amount, r.status, r.goods_returned) for r in refunds] == \
            [(case_id, Decimal("59.90"), "succeeded", True)]
        [movement] = db.session.execute(select(StockMovement).where(StockMovement.order_id == case.order_id,
                                                                    StockMovement.kind == "return")).scalars().all()
        assert (movement.delta, movement.on_hand_after) == (1, on_hand_before + 1)
        moves = db.session.execute(select(AuditEvent.action, AuditEvent.actor_label).where(
            AuditEvent.entity_type == "after_sale", AuditEvent.entity_id == str(case_id),
            AuditEvent.action.in_(("after_sale.approved", "after_sale.received", "after_sale.inspected",
                                   "after_sale.refunded"))).order_by(AuditEvent.id)).all()
        assert [tuple(row) for row in moves] == [("after_sale.approved", "cs1"), ("after_sale.received", "wh1"),
                                                 ("after_sale.inspected", "wh1"), ("after_sale.refunded", "cs1")]
        events = db.session.execute(select(CustomerNotification.event).where(
            CustomerNotification.order_id == case.order_id).order_by(CustomerNotification.id)).scalars().all()
        assert events == ["after_sales_approved", "pickup_booked", "return_received", "refunded"]
