"""Actions that explain themselves, in headless Chromium: the cancel's confirmation states what it does (a dismissed one
changes nothing, an accepted one cancels), and the stock-take's bulk count sheet is typed with the keyboard, its
totals follow every key and one save records the whole sheet."""
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait
from sqlalchemy import select

from shared.extensions import db
from shared.models import Order, StockTake
from shared.services import catalog, orders, staff, stock, stock_ops
from tests.factories import ADMIN, PASSWORD, open_shop, order_payload
from tests.live_servers import browser, portal_server  # noqa: F401  (fixtures)
from tests.test_browser import _sign_in as sign_in

pytestmark = [pytest.mark.browser, pytest.mark.live,
              pytest.mark.parametrize("live_apps", ["postgresql"], indirect=True)]


def status_of(live_apps, order_no: str) -> str:
    with live_apps.core.app_context():
        return db.session.execute(select(Order.status).where(Order.order_no == order_no)).scalar_one()


def console_errors(driver) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


@pytest.fixture
def confirmed_order(live_apps) -> str:
    """A confirmed, unpaid order of 3 units for a customer with a mail address, and customer service cs1."""
    with live_apps.core.app_context():
        open_shop()
        order = orders.create_order(order_payload(
            channel_order_id="C-1", paid=False, lines=[{"sku": "SKU-1", "quantity": 3, "unit_price": "10.00"}],
            customer={"name": "张伟", "phone": "13812345678", "email": "zw@example.com"}), ADMIN)
        if order.status != "confirmed":
            orders.transition_order(order, "confirmed", ADMIN)
        staff.create_user("cs1", PASSWORD, "customer_service", ADMIN, locale="en")
        db.session.commit()
        return order.order_no


def test_cancel_asks_with_its_consequence_and_a_dismissed_confirm_changes_nothing(live_apps, confirmed_order,
                                                                                  portal_server, browser):
    driver, order_no = browser, confirmed_order
    sign_in(driver, portal_server, "cs1")
    driver.get(f"{portal_server}/orders/{order_no}")
    button = driver.find_element(By.CSS_SELECTOR, "[data-testid=move-cancelled]")
    assert button.text == "Cancel order"
    driver.find_element(By.CSS_SELECTOR, "[data-testid=reason-cancelled]").send_keys("客户不要了")
    button.click()
    alert = WebDriverWait(driver, 10).until(expected_conditions.alert_is_present())
    assert "Cancelling releases 3 units of reserved stock." in alert.text
    assert "The customer is told by mail." in alert.text
    alert.dismiss()
    assert driver.current_url == f"{portal_server}/orders/{order_no}"  # no request was made
    assert driver.find_element(By.CSS_SELECTOR, "[data-testid=order-status]").text == "Confirmed"
    assert status_of(live_apps, order_no) == "confirmed"

    driver.find_element(By.CSS_SELECTOR, "[data-testid=move-cancelled]").click()
    WebDriverWait(driver, 10).until(expected_conditions.alert_is_present()).accept()
    WebDriverWait(driver, 10).until(
        lambda d: d.find_element(By.CSS_SELECTOR, "[data-testid=order-status]").text == "Cancelled")
    assert "Cancel order: done." in driver.page_source
    assert status_of(live_apps, order_no) == "cancelled"
    # Shown as done, a cancelled order offers no cancel and no hold any more.
    assert driver.find_elements(By.CSS_SELECTOR, "[data-testid=move-cancelled], [data-testid=move-on_hold]") == []
    assert console_errors(driver) == []


@pytest.fixture
def counting(live_apps) -> int:
    """Two SKUs in HZ1 and a stock-take started there; warehouse user wh1 counts."""
    with live_apps.core.app_context():
        open_shop(units=10)
        catalog.create_sku({"sku": "SKU-2", "name": "碧螺春 100g"}, ADMIN)
        stock.adjust_stock("SKU-2", "HZ1", 4, "opening stock", ADMIN, kind="receipt")
        take = stock_ops.start_stock_take("HZ1", ADMIN)
        staff.create_user("wh1", PASSWORD, "warehouse", ADMIN, locale="en")
        db.session.commit()
        return take.id


def test_the_count_sheet_is_typed_with_the_keyboard_and_saved_at_once(live_apps, counting, portal_server, browser):
    driver = browser
    sign_in(driver, portal_server, "wh1")
    driver.get(f"{portal_server}/stock-ops/takes/{counting}")
    first = driver.find_element(By.CSS_SELECTOR, "[data-testid=counted-SKU-1]")
    second = driver.find_element(By.CSS_SELECTOR, "[data-testid=counted-SKU-2]")
    total = lambda name: driver.find_element(By.CSS_SELECTOR, f"[data-testid=total-{name}]").text  # noqa: E731
    assert (total("lines"), total("units")) == ("0 / 2", "0")
    first.click()
    first.send_keys("9")
    assert (total("lines"), total("units")) == ("1 / 2", "9")  # before any save
    first.send_keys(Keys.ENTER)
    assert driver.switch_to.active_element == second  # Enter moved on, and saved nothing
    assert driver.current_url.endswith(f"/stock-ops/takes/{counting}")
    second.send_keys("4")
    assert (total("lines"), total("units")) == ("2 / 2", "13")
    second.send_keys(Keys.ENTER)
    assert driver.switch_to.active_element == driver.find_element(By.CSS_SELECTOR, "[data-testid=save-counts]")

    scan = driver.find_element(By.CSS_SELECTOR, "[data-testid=count-scan]")
    scan.send_keys("SKU-1", Keys.ENTER)  # a scan adds one to its line
    assert first.get_attribute("value") == "10" and total("units") == "14"
    scan.send_keys("SKU-2*3", Keys.ENTER)  # "code*n" sets it
    assert second.get_attribute("value") == "3" and total("units") == "13"
    scan.send_keys("NOPE", Keys.ENTER)
    assert "NOPE is not on this sheet" in driver.find_element(By.CSS_SELECTOR, "[data-testid=count-scan-answer]").text
    with live_apps.core.app_context():
        take = db.session.get(StockTake, counting)
        assert [line.counted for line in take.lines] == [None, None]  # nothing saved while typing

    driver.find_element(By.CSS_SELECTOR, "[data-testid=save-counts]").click()
    WebDriverWait(driver, 10).until(lambda d: "2 counts saved." in d.page_source)
    with live_apps.core.app_context():
        take = db.session.get(StockTake, counting)
        assert {line.sku.code: line.counted for line in take.lines} == {"SKU-1": 10, "SKU-2": 3}
    assert console_errors(driver) == []


def test_a_long_list_filters_and_sorts_in_the_browser(live_apps, portal_server, browser):
    with live_apps.core.app_context():
        for name in ("zhang_san", "li_si", "wang_wu"):
            staff.create_user(name, PASSWORD, "warehouse", ADMIN, locale="en")
        staff.create_user("boss1", PASSWORD, "admin", ADMIN, locale="en")
        db.session.commit()
    driver = browser
    sign_in(driver, portal_server, "boss1")
    driver.get(f"{portal_server}/users/")
    names = lambda: [row.find_element(By.TAG_NAME, "td").text for row in driver.find_elements(  # noqa: E731
        By.CSS_SELECTOR, "[data-testid=users-table] tbody tr") if row.is_displayed()]
    assert names() == ["boss1", "li_si", "wang_wu", "zhang_san"]
    driver.find_element(By.CSS_SELECTOR, "[data-testid=filter-users-table]").send_keys("wa")
    assert names() == ["wang_wu"]
    driver.find_element(By.CSS_SELECTOR, "[data-testid=filter-users-table]").clear()
    driver.find_element(By.CSS_SELECTOR, "[data-testid=filter-users-table]").send_keys(" ")
    header = driver.find_element(By.CSS_SELECTOR, "[data-testid=users-table] thead th")
    header.click()
    header.click()  # the second click sorts descending
    assert names() == ["zhang_san", "wang_wu", "li_si", "boss1"]
    assert console_errors(driver) == []
