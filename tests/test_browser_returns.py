"""A return in headless Chromium, end to end: a customer opens a delivered order, asks for a return with a photo (a
real PNG file uploaded), staff approve it, the customer chooses a pickup slot and the courier is booked with the
carrier simulator over loopback, the carrier carries the parcel back (its pushes reach the portal's tracking hook,
which marks the request received), the countdown shows, the warehouse inspects, customer service refunds, and the
customer sees the refund; the mails of each step sit in the outbox."""
import struct
import zlib
from datetime import timedelta
from urllib.parse import urlencode

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select
from sqlalchemy import select

from devtools.simulators.carriers import DEFAULT_CREDENTIALS, CarrierSimulator
from devtools.simulators.carriers.formats import kuaidi100_push_param
from shared.actors import Actor
from shared.extensions import db
from shared.models import CustomerNotification, Shipment
from shared.services import after_sales, customers, orders, return_pickups
from shared.timekeeping import utc_now
from tests.factories import ADMIN, PASSWORD, open_shop, order_payload
from tests.live_servers import LiveServer, browser  # noqa: F401  (fixture)
from tests.test_browser import _console_errors, _wait

pytestmark = [pytest.mark.browser, pytest.mark.live,
              pytest.mark.parametrize("live_apps", ["postgresql"], indirect=True)]
PHONE = "13900001111"
CS = Actor(None, "cs1", "customer_service")
FLOOR = Actor(None, "wh1", "warehouse")


def png(width: int = 4, height: int = 4) -> bytes:
    """A real (tiny, grey) PNG: signature, IHDR, IDAT, IEND with their CRCs."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


@pytest.fixture
def simulator():
    sim = CarrierSimulator(seed=3, start=utc_now())
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture
def customer_server(live_apps, simulator):
    credentials = DEFAULT_CREDENTIALS["kuaidi100"]
    with pytest.MonkeyPatch.context() as patch:
        for app in (live_apps.customer, live_apps.core, live_apps.portal):
            patch.setitem(app.config, "KUAIDI100_API_URL", simulator.base_url)
            patch.setitem(app.config, "KUAIDI100_KEY", credentials["key"])
            patch.setitem(app.config, "KUAIDI100_SECRET", credentials["secret"])
            patch.setitem(app.config, "KUAIDI100_SALT", credentials["salt"])
            patch.setitem(app.config, "PICKUP_SALT", "browser-salt")
            patch.setitem(app.config, "PICKUP_CALLBACK_URL", "http://127.0.0.1:9/hooks/pickups/kuaidi100")
        server = LiveServer(live_apps.customer)
        yield server.url
        server.stop()


def test_a_customer_returns_a_parcel_through_a_booked_pickup_and_sees_the_refund(  # noqa: F811  (browser)
        live_apps, customer_server, browser, simulator, tmp_path):
    with live_apps.core.app_context():
        customers.create_account("李雷", PHONE, "li.lei@example.com", PASSWORD, ADMIN)
        open_shop()
        return_pickups.set_return_address("HZ1", {"receiver": "杭州仓退货组", "phone": "0571-88886666",
                                                  "province": "浙江省", "city": "杭州市", "district": "余杭区",
                                                  "street": "仓前街道文一西路 1 号"}, ADMIN)
        order = orders.create_order(order_payload(phone=PHONE, lines=[{"sku": "SKU-1", "quantity": 2,
                                                                       "unit_price": "59.90"}]), ADMIN)
        for step in ("allocated", "picking", "packed", "shipped"):
            orders.transition_order(order, step, ADMIN, reason="test")
        db.session.add(Shipment(order_id=order.id, warehouse_id=order.warehouse_id, status="delivered",
                                shipped_at=utc_now() - timedelta(days=2), delivered_at=utc_now() - timedelta(days=1)))
        order_no, order_id = order.order_no, order.id
        db.session.commit()
    photo = tmp_path / "damaged.png"
    photo.write_bytes(png())
    driver = browser
    driver.get(f"{customer_server}/sign-in")
    driver.find_element(By.NAME, "email").send_keys("li.lei@example.com")
    driver.find_element(By.NAME, "password").send_keys(PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "main form button[type=submit]").click()
    _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "[data-testid=sign-out]"), "signed in")
    driver.get(f"{customer_server}/orders/{order_no}")
    package = driver.find_element(By.CSS_SELECTOR, "[data-testid=return-package]").text
    assert "仓前街道文一西路 1 号" in package and "7 days" in package
    driver.find_element(By.CSS_SELECTOR, "[data-testid=request-after-sales]").click()
    _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "[data-testid=after-sale-form]"), "the request form")
    driver.find_element(By.CSS_SELECTOR, "[data-testid=type-return_refund]").click()
    Select(driver.find_element(By.CSS_SELECTOR, "[data-testid=quantity-SKU-1]")).select_by_value("1")
    Select(driver.find_element(By.CSS_SELECTOR, "[data-testid=reason-SKU-1]")).select_by_value("damaged")
    driver.find_element(By.CSS_SELECTOR, "[data-testid=photos]").send_keys(str(photo))
    driver.find_element(By.CSS_SELECTOR, "[data-testid=send-after-sale]").click()
    state = _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "[data-testid=after-sale-state]"),
                  "the request's page")[0]
    assert state.text == "Requested"
    with live_apps.core.app_context():
        [case] = after_sales.for_order(order_id)
        assert [p.content_type for p in case.photos] == ["image/png"]
        after_sales.transition(case, "approved", CS, reason="请寄回")  # customer service decides
        db.session.commit()
        case_id = case.id
    driver.refresh()
    assert driver.find_element(By.CSS_SELECTOR, "[data-testid=after-sale-state]").text == "Approved"
    slots = driver.find_elements(By.CSS_SELECTOR, "[data-testid=slot]")
    assert slots
    slots[min(1, len(slots) - 1)].click()
    driver.find_element(By.CSS_SELECTOR, "[data-testid=book-pickup] button[type=submit]").click()
    waybill = _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "[data-testid=pickup-waybill]"),
                    "the booked pickup")[0].text
    assert driver.find_element(By.CSS_SELECTOR, "[data-testid=after-sale-state]").text == "Awaiting return"
    with live_apps.core.app_context():
        booking = after_sales.pickup_of(after_sales.get_after_sale(case_id))
        assert booking.waybill_no in waybill and booking.waybill_no in simulator.parcels
        task_id, waybill_no, carrier = booking.task_id, booking.waybill_no, booking.carrier_code
    # The courier comes, and the carrier carries the parcel back to the warehouse; its pushes reach the portal.
    start = utc_now().replace(microsecond=0) - timedelta(hours=6)
    simulator.collect_pickup(task_id, at=start)
    for hour in range(1, 6):
        simulator.advance_parcel(waybill_no, at=start + timedelta(hours=hour))
    form = simulator.signed_kuaidi100(kuaidi100_push_param(waybill_no, carrier, simulator.events_of(waybill_no),
                                                           True))
    answer = live_apps.portal.test_client().post("/hooks/tracking/kuaidi100", data=urlencode(form),
                                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert answer.status_code == 200 and answer.get_json()["result"] is True
    driver.refresh()
    assert driver.find_element(By.CSS_SELECTOR, "[data-testid=after-sale-state]").text == "Received"
    assert "Delivered to our warehouse" in driver.find_element(By.CSS_SELECTOR, "[data-testid=pickup-state]").text
    countdown = driver.find_element(By.CSS_SELECTOR, "[data-testid=refund-countdown]")
    assert int(countdown.find_element(By.CSS_SELECTOR, "[data-part=hours]").text) in (46, 47)  # delivered 1 h ago
    with live_apps.core.app_context():
        case = after_sales.get_after_sale(case_id)
        after_sales.transition(case, "inspected", FLOOR, inspection=[{"sku": "SKU-1", "passed": True}])
        after_sales.transition(case, "refunded", CS)
        db.session.commit()
        events = db.session.execute(select(CustomerNotification.event).where(
            CustomerNotification.order_id == order_id).order_by(CustomerNotification.id)).scalars().all()
        assert events == ["after_sales_approved", "pickup_booked", "return_received", "refunded"]
    driver.refresh()
    assert driver.find_element(By.CSS_SELECTOR, "[data-testid=after-sale-state]").text == "Refunded"
    refund = driver.find_element(By.CSS_SELECTOR, "[data-testid=refund-amount]").text
    assert "59.90" in refund and "Refund paid" in refund
    assert not driver.find_elements(By.CSS_SELECTOR, "[data-testid=refund-countdown]")
    assert not _console_errors(driver)
