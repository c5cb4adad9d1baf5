"""Channel sync in headless Chromium: a webhook with an unmapped SKU waits in the inbox; an ops manager maps the
SKU on the channel's page, replays the item from the inbox, and the order exists. Clean console throughout."""
import httpx
import pytest
from selenium.webdriver.common.by import By
from sqlalchemy import select

from shared.extensions import db
from shared.models import InboxItem, Order
from shared.services import staff
from tests import channel_payloads as p
from tests.factories import ADMIN, connect_channels
from tests.live_servers import browser, portal_server  # noqa: F401  (fixtures)
from tests.test_browser import _console_errors, _sign_in, _text, _wait

pytestmark = [pytest.mark.browser, pytest.mark.live,
              pytest.mark.parametrize("live_apps", ["postgresql"], indirect=True)]


def test_ops_maps_an_unknown_sku_and_replays_the_waiting_webhook(live_apps, portal_server, browser):
    with live_apps.core.app_context():
        connect_channels()
        staff.create_user("ops1", "correct-horse-battery", "ops_manager", ADMIN, locale="en")
        db.session.commit()
    raw = p.body(p.shopify(order_id=880001, sku="GIFT-BOX-XL"))
    answer = httpx.post(f"{portal_server}/hooks/SH", content=raw, headers=p.signed_headers("shopify", raw))
    assert answer.status_code == 202
    item_id = answer.json()["received"]

    driver = browser
    _sign_in(driver, portal_server, "ops1")
    driver.get(f"{portal_server}/channels/inbox")
    row = driver.find_element(By.CSS_SELECTOR, f"[data-testid=inbox-row-{item_id}]")
    assert "Channel SKU not mapped" in row.text and "GIFT-BOX-XL" in row.text

    driver.get(f"{portal_server}/channels/SH")
    form = driver.find_element(By.CSS_SELECTOR, "[data-testid=add-sku-form]")
    form.find_element(By.NAME, "channel_sku").send_keys("GIFT-BOX-XL")
    form.find_element(By.NAME, "sku").send_keys("SKU-0004")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "[data-testid=sku-GIFT-BOX-XL]"), "the new mapping")

    driver.get(f"{portal_server}/channels/inbox")
    driver.find_element(By.CSS_SELECTOR, f"[data-testid=replay-{item_id}]").click()
    _wait(driver, lambda d: not d.find_elements(By.CSS_SELECTOR, f"[data-testid=inbox-row-{item_id}]"),
          "the replayed item to leave the failed list")
    assert "Done: 1" in _text(driver, "inbox-counts")
    with live_apps.core.app_context():
        order = db.session.execute(select(Order).where(Order.channel_order_id == "880001")).scalar_one()
        assert order.lines[0].sku.code == "SKU-0004" and order.status == "confirmed"
        assert db.session.get(InboxItem, item_id).status == "done"
    assert _console_errors(driver) == []
