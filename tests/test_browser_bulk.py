"""Bulk work on the order list in headless Chromium: tick orders (one by one, or the whole page), hold them with a
reason, watch the job's progress finish and read each order's result."""
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from shared.extensions import db
from shared.services import orders, staff
from tests.factories import ADMIN, PASSWORD, open_shop, order_payload
from tests.live_servers import browser, portal_server  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.live,
              pytest.mark.parametrize("live_apps", ["postgresql"], indirect=True)]
REASON = "客户要求改期"


@pytest.fixture
def some_orders(live_apps) -> dict:
    """Two confirmed orders and a shipped one, and an operations manager (no second factor) who reads English."""
    with live_apps.core.app_context():
        open_shop()
        made = {}
        for key in ("first", "second", "shipped"):
            order = orders.create_order(order_payload(channel_order_id=f"B-{key}"), ADMIN)
            path = ["confirmed"] + (["allocated", "picking", "packed", "shipped"] if key == "shipped" else [])
            for step in path[path.index(order.status) + 1 if order.status in path else 0:]:
                orders.transition_order(order, step, ADMIN, reason="test")
            made[key] = order.order_no
        staff.create_user("ops_en", PASSWORD, "ops_manager", ADMIN, locale="en")
        db.session.commit()
        return made


def _sign_in(driver, wait, base):
    driver.get(f"{base}/sign-in")
    driver.find_element(By.ID, "username").send_keys("ops_en")
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "main form button[type=submit]").click()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "[data-testid=signed-in-as]"))


def test_select_the_page_hold_with_a_reason_and_read_each_orders_result(some_orders, portal_server, browser):
    driver, wait = browser, WebDriverWait(browser, 15)
    _sign_in(driver, wait, portal_server)
    driver.get(f"{portal_server}/orders/")
    count = driver.find_element(By.CSS_SELECTOR, "[data-testid=bulk-selected-count]")
    driver.find_element(By.CSS_SELECTOR, f"[data-testid=bulk-pick-{some_orders['first']}]").click()
    wait.until(lambda d: count.text == "1")
    driver.find_element(By.CSS_SELECTOR, "[data-testid=bulk-select-page]").click()  # every row of the page
    wait.until(lambda d: count.text == "3")
    assert all(box.is_selected() for box in driver.find_elements(By.CSS_SELECTOR, "input[data-bulk-row]"))
    Select(driver.find_element(By.CSS_SELECTOR, "[data-testid=bulk-action]")).select_by_value("hold")
    driver.find_element(By.CSS_SELECTOR, "[data-testid=bulk-reason]").send_keys(REASON)
    driver.find_element(By.CSS_SELECTOR, "[data-testid=bulk-submit]").click()

    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "[data-testid=bulk-progress][data-status=done]"))
    assert driver.find_element(By.CSS_SELECTOR, "[data-testid=bulk-handled]").text == "3"
    assert driver.find_element(By.CSS_SELECTOR, "[data-testid=bulk-done]").text == "2"
    assert driver.find_element(By.CSS_SELECTOR, "[data-testid=bulk-refused]").text == "1"
    assert driver.find_element(By.CSS_SELECTOR, "[data-testid=bulk-reason-shown]").text == REASON
    for key in ("first", "second"):
        row = driver.find_element(By.CSS_SELECTOR, f"[data-testid=bulk-result-{some_orders[key]}]")
        assert row.get_attribute("data-outcome") == "done" and "On hold" in row.text
    refused = driver.find_element(By.CSS_SELECTOR, f"[data-testid=bulk-result-{some_orders['shipped']}]")
    assert refused.get_attribute("data-outcome") == "refused"
    assert driver.find_element(By.CSS_SELECTOR, f"[data-testid=bulk-why-{some_orders['shipped']}]").text == \
        "an order that is Shipped cannot be put on hold"
    assert driver.find_element(By.CSS_SELECTOR, "[data-testid=bulk-csv]").is_displayed()


def test_the_progress_page_refreshes_itself_until_the_job_is_done(some_orders, live_apps, portal_server, browser):
    """A job still queued when the page opens (a worker has it): htmx polls the progress and swaps in the results
    once the job has run."""
    from jobs.bulk import run_bulk_job
    from shared.actors import Actor
    from shared.models import StaffUser
    from shared.services import bulk_actions

    with live_apps.core.app_context():
        user = db.session.query(StaffUser).filter_by(username="ops_en").one()
        job = bulk_actions.start("hold", Actor.for_staff(user), order_nos=[some_orders["first"]], reason=REASON)
        db.session.commit()
        public_id, job_id = job.public_id, job.id
    driver, wait = browser, WebDriverWait(browser, 15)
    _sign_in(driver, wait, portal_server)
    driver.get(f"{portal_server}/bulk/{public_id}")
    assert driver.find_element(By.CSS_SELECTOR, "[data-testid=bulk-progress]").get_attribute("data-status") == "queued"
    with live_apps.core.app_context():
        assert run_bulk_job(job_id) == "done"
        db.session.commit()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "[data-testid=bulk-progress][data-status=done]"))
    row = driver.find_element(By.CSS_SELECTOR, f"[data-testid=bulk-result-{some_orders['first']}]")
    assert row.get_attribute("data-outcome") == "done"
