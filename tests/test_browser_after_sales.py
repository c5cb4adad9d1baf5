"""The customer site in headless Chromium: from a delivered order one click to an after-sales request, quantity,
reason and a photo sent; staff approve it; the customer sees it approved, books a drop-off and finds the address."""
from datetime import timedelta

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from shared.actors import Actor
from shared.extensions import db
from shared.models import Shipment
from shared.services import after_sales, customers, orders
from shared.timekeeping import utc_now
from tests.factories import ADMIN, PASSWORD, open_shop, order_payload
from tests.live_servers import LiveServer, browser  # noqa: F401  (fixture)
from tests.test_after_sales import JPEG
from tests.test_browser import _console_errors, _wait

pytestmark = [pytest.mark.browser, pytest.mark.live,
              pytest.mark.parametrize("live_apps", ["postgresql"], indirect=True)]
PHONE = "13900001111"


@pytest.fixture
def customer_server(live_apps):
    server = LiveServer(live_apps.customer)
    yield server.url
    server.stop()


def test_a_customer_requests_a_return_with_a_photo_and_sees_it_approved(live_apps, customer_server, browser,  # noqa: F811
                                                                       tmp_path):
    with live_apps.core.app_context():
        customers.create_account("李雷", PHONE, "li.lei@example.com", PASSWORD, ADMIN)
        open_shop()
        order = orders.create_order(order_payload(phone=PHONE, lines=[{"sku": "SKU-1", "quantity": 2,
                                                                       "unit_price": "59.90"}]), ADMIN)
        for step in ("allocated", "picking", "packed", "shipped"):
            orders.transition_order(order, step, ADMIN, reason="test")
        db.session.add(Shipment(order_id=order.id, warehouse_id=order.warehouse_id, status="delivered",
                                shipped_at=utc_now() - timedelta(days=2), delivered_at=utc_now() - timedelta(days=1)))
        order_no, order_id = order.order_no, order.id
        db.session.commit()
    photo = tmp_path / "damaged.jpg"
    photo.write_bytes(JPEG)
    driver = browser
    driver.get(f"{customer_server}/sign-in")
    driver.find_element(By.NAME, "email").send_keys("li.lei@example.com")
    driver.find_element(By.NAME, "password").send_keys(PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "main form button[type=submit]").click()
    _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "[data-testid=sign-out]"), "signed in")
    driver.get(f"{customer_server}/orders/{order_no}")
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
        assert len(case.photos) == 1 and case.lines[0].quantity == 1
        after_sales.transition(case, "approved", Actor(None, "cs1", "customer_service"))
        db.session.commit()
    driver.refresh()
    assert driver.find_element(By.CSS_SELECTOR, "[data-testid=after-sale-state]").text == "Approved"
    driver.find_element(By.CSS_SELECTOR, "[data-testid=book-return] button[type=submit]").click()
    booked = _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "[data-testid=return-booked]"), "the return")[0]
    assert "杭州仓" in booked.text
    assert driver.find_element(By.CSS_SELECTOR, "[data-testid=after-sale-state]").text == "Awaiting return"
    assert not _console_errors(driver)
