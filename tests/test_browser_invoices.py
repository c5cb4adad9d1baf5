"""Invoices end to end in headless Chromium (issue 12 "Done when"): a customer signs in on the customer site, adds an
invoice profile, requests an invoice for a completed order; the invoice is issued through the invoicing simulator
(submit and poll driven directly, as a worker's job would); the customer downloads its PDF with the browser's own
session; then finance signs in on the portal (password and TOTP), asks for the ZIP of issued invoices from the
invoice queue, the export job runs (inline: no Redis in tests) and finance downloads the ZIP from My exports."""
import base64
import csv
import io
import re
import zipfile

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select
from sqlalchemy import select

from devtools.simulators.invoicing import InvoicingSimulator
from shared.extensions import db
from shared.finance.providers.nuonuo import NuonuoProvider
from shared.models.invoices import InvoiceRequest
from shared.services import customers, invoices, orders, staff
from tests.factories import ADMIN, PASSWORD, open_shop, order_payload
from tests.live_servers import LiveServer, browser, portal_server  # noqa: F401  (fixtures)
from tests.test_browser import _console_errors, _sign_in, _wait
from tests.test_invoices import VALID_USCC, taxed

pytestmark = [pytest.mark.browser, pytest.mark.live,
              pytest.mark.parametrize("live_apps", ["postgresql"], indirect=True)]
PHONE = "13900001111"
XIAOMI = "91110108551385082Q"
EXPORT_LINK = re.compile(r"/exports/(EX[0-9A-F]{16})/download")

# The bytes at a same-origin URL, fetched by the page itself (its cookies, its session), as base64.
FETCH = """
const done = arguments[arguments.length - 1];
fetch(arguments[0], {credentials: 'same-origin'})
  .then(r => r.ok ? r.arrayBuffer() : Promise.reject('HTTP ' + r.status))
  .then(b => { const u = new Uint8Array(b); let s = '';
               for (let i = 0; i < u.length; i += 8192) s += String.fromCharCode.apply(null, u.subarray(i, i + 8192));
               done(btoa(s)); })
  .catch(e => done('ERROR ' + e));
"""


@pytest.fixture
def customer_server(live_apps):
    server = LiveServer(live_apps.customer)
    yield server.url
    server.stop()


def fetched(driver, url: str) -> bytes:
    driver.set_script_timeout(20)
    answer = driver.execute_async_script(FETCH, url)
    assert not answer.startswith("ERROR"), f"{url}: {answer}"
    return base64.b64decode(answer)


def test_a_customer_downloads_an_invoice_and_finance_downloads_the_zip(live_apps, customer_server, portal_server,
                                                                       browser):  # noqa: F811
    with live_apps.core.app_context():
        open_shop()
        taxed()
        customers.create_account("李雷", PHONE, "li.lei@example.com", PASSWORD, ADMIN)
        order = orders.create_order(order_payload(channel_order_id="INV-1", phone=PHONE), ADMIN)
        path = ["confirmed", "allocated", "picking", "packed", "shipped", "completed"]
        for step in path[path.index(order.status) + 1 if order.status in path else 0:]:
            orders.transition_order(order, step, ADMIN, reason="test")
        staff.create_user("fin1", PASSWORD, "finance", ADMIN, locale="en")
        db.session.commit()
        order_no = order.order_no
        assert order.status == "completed"
    driver = browser

    # The customer: sign in, add a profile, request the order's invoice.
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
    driver.find_element(By.NAME, "tax_id").send_keys(XIAOMI)
    driver.find_element(By.CSS_SELECTOR, "main form button[type=submit]").click()
    _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "tr[data-profile]"), "the profile in the list")
    driver.get(f"{customer_server}/orders/{order_no}")
    form = _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "[data-testid=request-invoice-form]"),
                 "the request-an-invoice form")[0]
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "[data-testid=invoice-in-progress]"),
          "the invoice being issued")

    # The provider issues it (the simulator on loopback; submit and poll as the job does).
    with live_apps.core.app_context(), InvoicingSimulator(issue_after_polls=1) as sim:
        provider = NuonuoProvider(sim.base_url, sim.app_key, sim.app_secret, VALID_USCC, timeout=2)
        (request,) = db.session.scalars(select(InvoiceRequest)).all()
        invoices.submit(request, provider)
        db.session.commit()
        invoices.poll(request, provider)
        db.session.commit()
        (part,) = request.parts
        assert request.status == "issued" and part.provider_pdf
        number, pdf = part.number, bytes(part.provider_pdf)

    # The customer downloads it with the browser's session.
    driver.get(f"{customer_server}/orders/{order_no}")
    link = _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "[data-testid=download-invoice]"),
                 "the invoice's download link")[0]
    assert number in driver.find_element(By.CSS_SELECTOR, "[data-testid=my-invoices]").text
    downloaded = fetched(driver, link.get_attribute("href"))
    assert downloaded == pdf and downloaded.startswith(b"%PDF")
    assert not _console_errors(driver)

    # Finance: sign in with the second factor, ask for the ZIP from the queue, download it from My exports.
    _sign_in(driver, portal_server, "fin1")
    driver.get(f"{portal_server}/finance/invoices/?status=issued")
    assert number in driver.find_element(By.CSS_SELECTOR, "[data-testid=invoice-queue]").text
    driver.find_element(By.CSS_SELECTOR, "[data-testid=invoices-zip]").click()
    _wait(driver, lambda d: EXPORT_LINK.search(d.page_source), "the ZIP's download link on My exports")
    public_id = EXPORT_LINK.search(driver.page_source).group(1)
    content = fetched(driver, f"{portal_server}/exports/{public_id}/download")
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        assert sorted(archive.namelist()) == [f"invoice-{number}.pdf", "manifest.csv"]
        assert archive.read(f"invoice-{number}.pdf") == pdf
        lines = list(csv.reader(io.StringIO(archive.read("manifest.csv").decode("utf-8-sig"), newline="")))
    assert lines[0][0].startswith(f"# orderloom export {public_id} by fin1")
    assert [row[0] for row in lines[2:]] == [number] and lines[2][2] == "小米科技有限责任公司"
    assert not _console_errors(driver)
