"""The audit trail as people read it, in headless Chromium: the sentence in the reader's language, the raw event
folded away until asked for (one click), and a reason with markup shown as text."""
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from shared.extensions import db
from shared.services import orders, staff
from tests.factories import ADMIN, PASSWORD, open_shop, order_payload
from tests.live_servers import browser, portal_server  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.live,
              pytest.mark.parametrize("live_apps", ["postgresql"], indirect=True)]
REASON = "客户要求改期 <b>急</b>"


@pytest.fixture
def held_order(live_apps) -> str:
    """A confirmed order put on hold with a reason, and an operations manager (audit view, no second factor) who
    reads Chinese."""
    with live_apps.core.app_context():
        open_shop()
        order = orders.create_order(order_payload(channel_order_id="H-1"), ADMIN)
        if order.status != "confirmed":
            orders.transition_order(order, "confirmed", ADMIN, reason="test")
        orders.transition_order(order, "on_hold", ADMIN, reason=REASON)
        staff.create_user("ops_zh", PASSWORD, "ops_manager", ADMIN, locale="zh_CN")
        db.session.commit()
        return order.order_no


def test_the_audit_viewer_tells_the_hold_as_a_sentence_with_the_raw_event_one_click_away(held_order, portal_server,
                                                                                        browser):
    driver, wait = browser, WebDriverWait(browser, 10)
    driver.get(f"{portal_server}/sign-in")
    driver.find_element(By.ID, "username").send_keys("ops_zh")
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "main form button[type=submit]").click()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "[data-testid=signed-in-as]"))
    driver.get(f"{portal_server}/audit/?entity={held_order}&action=order.transition")
    row = driver.find_element(By.XPATH, "//table[@data-testid='audit-table']/tbody/tr[1]")
    sentence = row.find_element(By.CSS_SELECTOR, "[data-testid=history-sentence]").text
    assert sentence == f"test-admin 把订单 {held_order} 从 已确认 改为 已挂起，原因：{REASON}"
    assert row.find_elements(By.CSS_SELECTOR, "b") == []  # the reason's markup is text, not an element
    raw = row.find_element(By.CSS_SELECTOR, "[data-testid=history-raw] pre")
    assert not raw.is_displayed()
    row.find_element(By.CSS_SELECTOR, "[data-testid=history-raw] summary").click()
    wait.until(lambda d: raw.is_displayed())
    assert '"action": "order.transition"' in raw.text and '"on_hold"' in raw.text
