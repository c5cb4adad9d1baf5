"""The staff portal in headless Chromium: masked personal data, and a logged reveal swapped in by htmx."""
from datetime import UTC, datetime

import pyotp
import pytest
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException, TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait
from sqlalchemy import select

from shared.extensions import db
from shared.models import AccessLogEntry
from shared.services import orders, staff
from tests.factories import ADMIN, PASSWORD, open_shop, order_payload
from tests.live_servers import browser, portal_server  # noqa: F401  (fixtures)

PHONE, MASKED_PHONE = "13812345678", "138****5678"
SCREENSHOT = "/tmp/orderloom-order.png"

# A reveal posted by hand with a valid CSRF token: the server, not the missing button, must refuse it.
FORGED_REVEAL = """
const done = arguments[arguments.length - 1];
const token = document.querySelector("input[name=csrf_token]").value;
fetch(arguments[0], {method: "POST", headers: {"X-CSRFToken": token}}).then(r => done(r.status), e => done(String(e)));
"""

pytestmark = [pytest.mark.browser, pytest.mark.live,
              pytest.mark.parametrize("live_apps", ["postgresql"], indirect=True)]


@pytest.fixture
def seeded(live_apps) -> str:
    """One stocked SKU, one paid order for receiver phone 13812345678, and staff cs1 and ops1; returns the order no."""
    with live_apps.core.app_context():
        open_shop()
        order = orders.create_order(order_payload(channel_order_id="B-1", phone=PHONE), ADMIN)
        staff.create_user("cs1", PASSWORD, "customer_service", ADMIN, locale="en")
        staff.create_user("ops1", PASSWORD, "ops_manager", ADMIN, locale="en")
        db.session.commit()
        return order.order_no


def _console_errors(driver) -> list[str]:
    """SEVERE console entries since the last call (reading the log empties it)."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def _explain(driver) -> str:
    """What the browser saw, for a failure message: address, console, and the start of the page."""
    console = "\n".join(f"  {entry['level']}: {entry['message']}" for entry in driver.get_log("browser"))
    return f"at {driver.current_url}\nconsole:\n{console or '  (empty)'}\npage:\n{driver.page_source[:3000]}"


def _wait(driver, condition, what: str, seconds: float = 10):
    try:
        # htmx swaps replace elements mid-poll: a vanished or stale element just means "not yet".
        ignored = (NoSuchElementException, StaleElementReferenceException)
        return WebDriverWait(driver, seconds, ignored_exceptions=ignored).until(condition)
    except TimeoutException:
        pytest.fail(f"timed out waiting for {what} {_explain(driver)}")


def _text(driver, test_id: str) -> str:
    return driver.find_element(By.CSS_SELECTOR, f"[data-testid={test_id}]").text.strip()


# What a person's phone (and drawer) holds after enrolling in the browser: (base, username) -> [secret, last step
# used, unused recovery codes]. A code is never accepted twice, so a second sign-in within 30 s takes the next one.
_AUTHENTICATOR: dict[tuple[str, str], list] = {}


def _type_code(driver, code: str) -> None:
    field = driver.find_element(By.CSS_SELECTOR, "[data-testid=code-form] input[name=code]")
    field.clear()
    field.send_keys(code)
    driver.find_element(By.CSS_SELECTOR, "[data-testid=code-form] button[type=submit]").click()


def _next_code(base: str, username: str) -> str:
    entry = _AUTHENTICATOR[(base, username)]
    totp = pyotp.TOTP(entry[0])
    now = totp.timecode(datetime.now(UTC))
    for step in (now, now + 1):
        if entry[1] is None or step > entry[1]:
            entry[1] = step
            return totp.generate_otp(step)
    return entry[2].pop()


def _sign_in(driver, base: str, username: str) -> None:
    """Sign in through the pages; an admin, auditor or finance user enrols the second factor on first sign-in
    (reading the key the page shows, as one would type it into an app) and types the current code after."""
    driver.get(f"{base}/sign-in")
    driver.find_element(By.ID, "username").send_keys(username)
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "main form button[type=submit]").click()
    selectors = "[data-testid=signed-in-as], [data-testid=totp-secret], [data-testid=code-form]"
    _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, selectors), f"{username} past the password")
    if driver.find_elements(By.CSS_SELECTOR, "[data-testid=totp-secret]"):
        secret = _text(driver, "totp-secret")
        _AUTHENTICATOR[(base, username)] = [secret, None, []]
        _type_code(driver, _next_code(base, username))
        _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "[data-testid=recovery-codes]"), "recovery codes")
        _AUTHENTICATOR[(base, username)][2] = [item.text.strip() for item in driver.find_elements(
            By.CSS_SELECTOR, "[data-testid=recovery-codes] li code")]
        driver.find_element(By.CSS_SELECTOR, "[data-testid=continue]").click()
    elif not driver.find_elements(By.CSS_SELECTOR, "[data-testid=signed-in-as]"):
        _type_code(driver, _next_code(base, username))
    _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "[data-testid=signed-in-as]"), f"{username} signed in")
    assert _text(driver, "signed-in-as").startswith(username)


def _step_up(driver, base: str, username: str, back: str) -> None:
    """Confirm with the second factor on the step-up page (sensitive operations: 5 minutes), then back to `back`."""
    driver.get(f"{base}/security/step-up?next={back}")
    _type_code(driver, _next_code(base, username))
    _wait(driver, lambda d: d.current_url.split("#")[0].endswith(back), f"back at {back} after the step-up")


def _sign_out(driver) -> None:
    driver.find_element(By.CSS_SELECTOR, "header form[action$='/sign-out'] button[type=submit]").click()
    _wait(driver, lambda d: d.find_elements(By.ID, "username") and not d.find_elements(
        By.CSS_SELECTOR, "[data-testid=signed-in-as]"), "the sign-in page after signing out")


def _reveals_by(live_apps, username: str) -> list[tuple]:
    with live_apps.core.app_context():
        rows = db.session.execute(select(AccessLogEntry).where(AccessLogEntry.actor_label == username)).scalars()
        return [(r.action, r.entity_type, r.entity_id, r.fields, r.channel) for r in rows]


def test_customer_service_sees_masked_phone_and_ops_reveal_is_logged(live_apps, seeded, portal_server, browser):
    """cs1 sees 138****5678 with no reveal; ops1 reveals in place through htmx and the reveal is access-logged."""
    order_no, driver = seeded, browser

    _sign_in(driver, portal_server, "cs1")
    driver.get(f"{portal_server}/orders/")
    row = driver.find_element(By.XPATH, f"//table[@data-testid='orders-table']//tr[td/a[text()='{order_no}']]")
    assert row.find_elements(By.TAG_NAME, "td")[8].text.strip() == MASKED_PHONE  # after the selection box
    assert PHONE not in driver.page_source
    driver.get(f"{portal_server}/orders/{order_no}")
    assert _text(driver, "order-no") == order_no
    assert _text(driver, "phone") == MASKED_PHONE
    assert _text(driver, "address") == "浙江省 杭州市 西湖区 ****"
    assert driver.find_elements(By.CSS_SELECTOR, "[data-testid=reveal]") == []
    assert PHONE not in driver.page_source
    status = driver.execute_async_script(FORGED_REVEAL, f"/orders/{order_no}/reveal")
    assert status == 403, "the server let customer service reveal by posting directly"
    assert [m for m in _console_errors(driver) if "/reveal" in m] == [f"{portal_server}/orders/{order_no}/reveal - "
                                                                     "Failed to load resource: the server responded "
                                                                     "with a status of 403 (FORBIDDEN)"]
    _sign_out(driver)

    _sign_in(driver, portal_server, "ops1")
    driver.get(f"{portal_server}/orders/{order_no}")
    assert _text(driver, "phone") == MASKED_PHONE
    assert PHONE not in driver.page_source
    _wait(driver, lambda d: d.execute_script("return typeof htmx") == "object", "htmx to load")
    driver.execute_script("window.orderloomPageMarker = 'same page';")
    assert _reveals_by(live_apps, "ops1") == []
    driver.find_element(By.CSS_SELECTOR, "[data-testid=reveal]").click()
    _wait(driver, lambda d: _text(d, "phone") == PHONE, "htmx to swap in the full phone")
    assert driver.execute_script("return window.orderloomPageMarker") == "same page", "the reveal reloaded the page"
    assert driver.current_url == f"{portal_server}/orders/{order_no}"
    box = driver.find_element(By.ID, "contact-box")
    assert box.find_element(By.CSS_SELECTOR, "[data-testid=receiver]").text == "张伟"
    assert "文三路 90 号 3 幢 501" in box.find_element(By.CSS_SELECTOR, "[data-testid=address]").text
    assert box.find_elements(By.CSS_SELECTOR, "[data-testid=reveal]") == []
    assert _text(driver, "order-no") == order_no  # the rest of the page is still there
    assert _reveals_by(live_apps, "ops1") == [("reveal", "order", order_no, "address,phone,receiver", "portal")]
    assert _reveals_by(live_apps, "cs1") == []

    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, max(1000, min(height + 120, 4000)))
    driver.save_screenshot(SCREENSHOT)
    problems = _console_errors(driver)
    assert problems == [], problems


def test_pages_load_without_console_errors(live_apps, seeded, portal_server, browser):
    """Signed-in pages load with a clean console: no CSP violations, no failed requests."""
    _sign_in(browser, portal_server, "ops1")
    browser.get(f"{portal_server}/orders/{seeded}")
    assert _console_errors(browser) == []
