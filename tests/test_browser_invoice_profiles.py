"""The customer site in headless Chromium: a customer adds an invoice profile, sees a refused tax id next to its
field, corrects it and finds the profile (the default) in the list."""
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from shared.extensions import db
from shared.services import customers, invoice_profiles
from tests.factories import ADMIN, PASSWORD
from tests.live_servers import LiveServer, browser  # noqa: F401  (fixture)
from tests.test_browser import _console_errors, _wait

pytestmark = [pytest.mark.browser, pytest.mark.live,
              pytest.mark.parametrize("live_apps", ["postgresql"], indirect=True)]
XIAOMI = "91110108551385082Q"


@pytest.fixture
def customer_server(live_apps):
    server = LiveServer(live_apps.customer)
    yield server.url
    server.stop()


def test_a_customer_adds_an_invoice_profile_in_the_browser(live_apps, customer_server, browser):  # noqa: F811
    with live_apps.core.app_context():
        customer_id = customers.create_account("李雷", "13900001111", "li.lei@example.com", PASSWORD, ADMIN).id
        db.session.commit()
    driver = browser
    driver.get(f"{customer_server}/sign-in")
    driver.find_element(By.NAME, "email").send_keys("li.lei@example.com")
    driver.find_element(By.NAME, "password").send_keys(PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "main form button[type=submit]").click()
    _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "[data-testid=sign-out]"), "signed in")
    driver.get(f"{customer_server}/invoice-profiles/")
    driver.find_element(By.CSS_SELECTOR, "[data-testid=new-profile]").click()
    _wait(driver, lambda d: d.find_elements(By.NAME, "tax_id"), "the profile form")
    Select(driver.find_element(By.NAME, "kind")).select_by_value("enterprise")
    driver.find_element(By.NAME, "name").send_keys("小米科技有限责任公司")
    driver.find_element(By.NAME, "tax_id").send_keys(XIAOMI[:17] + "R")
    driver.find_element(By.CSS_SELECTOR, "main form button[type=submit]").click()
    error = _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "p.error[data-field=tax_id]"),
                  "the tax id error next to its field")[0]
    assert "does not match" in error.text
    assert all("422" in message for message in _console_errors(driver))  # the refused form's status, nothing else
    field = driver.find_element(By.NAME, "tax_id")
    field.clear()
    field.send_keys(XIAOMI.lower()[:9] + " " + XIAOMI.lower()[9:])
    driver.find_element(By.CSS_SELECTOR, "main form button[type=submit]").click()
    _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "tr[data-profile]"), "the profile in the list")
    assert XIAOMI in driver.find_element(By.CSS_SELECTOR, "tr[data-profile]").text
    assert not _console_errors(driver)
    with live_apps.core.app_context():
        [profile] = invoice_profiles.profiles_for_customer(customer_id)
        assert profile.tax_id == XIAOMI and profile.is_default
