"""The payments page end to end in headless Chromium: finance signs in on the portal (password and TOTP), uploads a
WeChat Pay trade bill with one payment not recorded here and one whose amount differs, sees the run with its counts
and its rows, downloads the CSV report with the browser's own session; a role without the finance permission is
refused the page (403, in the audit chain) and sees no run."""
import csv
import io
from datetime import date

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select
from sqlalchemy import select

from devtools.simulators.payments import PaymentSimulator
from shared.extensions import db
from shared.models import AuditEvent, Channel
from shared.payments import bills
from shared.services import orders, payments, staff
from tests.factories import ADMIN, PASSWORD, open_shop, order_payload
from tests.live_servers import browser, portal_server  # noqa: F401  (fixtures)
from tests.test_browser import _console_errors, _sign_in, _wait
from tests.test_browser_invoices import fetched

pytestmark = [pytest.mark.browser, pytest.mark.live,
              pytest.mark.parametrize("live_apps", ["postgresql"], indirect=True)]
BILL_DAY = date(2026, 12, 2)
STATUS = """
const done = arguments[arguments.length - 1];
fetch(arguments[0], {credentials: 'same-origin'}).then(r => done(r.status)).catch(e => done('ERROR ' + e));
"""


def test_finance_imports_a_bill_sees_the_run_and_downloads_its_report_and_others_are_refused(
        live_apps, portal_server, browser, tmp_path):  # noqa: F811
    sim = PaymentSimulator()
    with live_apps.core.app_context():
        open_shop()
        channel = db.session.execute(select(Channel).where(Channel.code == "OS")).scalar_one()
        account_id = payments.configure_account(channel, "wechatpay", ADMIN, **sim.wechatpay_settings()).id
        not_recorded = orders.create_order(order_payload(channel_order_id="BR-1", paid=False), ADMIN).order_no
        differs = orders.create_order(order_payload(channel_order_id="BR-2", paid=False), ADMIN).order_no
        staff.create_user("fin2", PASSWORD, "finance", ADMIN, locale="en")
        staff.create_user("store1", PASSWORD, "warehouse", ADMIN, locale="en")
        db.session.commit()
    bill = tmp_path / "wechatpay-2026-12-02.csv"
    bill.write_text(bills.write_wechat_trade_bill([
        ("2026-12-02 10:00:00", "payment", "BR-1", "4200000000000000000001", "67.90"),  # unpaid here
        ("2026-12-02 10:05:00", "payment", "BR-2", "4200000000000000000002", "50.00"),  # the order says 67.90
    ]), encoding="utf-8")
    driver = browser

    _sign_in(driver, portal_server, "fin2")
    driver.get(f"{portal_server}/finance/payments/")
    form = driver.find_element(By.CSS_SELECTOR, "[data-testid=bill-form]")
    Select(form.find_element(By.NAME, "account_id")).select_by_value(str(account_id))
    driver.execute_script("arguments[0].value = arguments[1]", form.find_element(By.NAME, "bill_date"),
                          BILL_DAY.isoformat())
    form.find_element(By.NAME, "file").send_keys(str(bill))
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    rows = _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "[data-testid=payment-mismatches] tr[data-kind]"),
                 "the run's differences")
    found = {(row.get_attribute("data-kind"), row.find_elements(By.TAG_NAME, "td")[2].text) for row in rows}
    assert found == {("paid_not_recorded", not_recorded), ("amount_mismatch", differs)}
    assert "2 bill lines, 0 matched." in driver.find_element(By.CSS_SELECTOR, "[data-testid=run-summary]").text
    report_url = driver.find_element(By.CSS_SELECTOR, "[data-testid=report-csv]").get_attribute("href")
    report = list(csv.reader(io.StringIO(fetched(driver, report_url).decode("utf-8-sig"), newline="")))
    assert report[0][:3] == ["kind", "line_no", "out_trade_no"]
    assert sorted((row[0], row[2], row[5], row[6]) for row in report[1:]) == [
        ("amount_mismatch", "BR-2", "50.00", "67.90"), ("paid_not_recorded", "BR-1", "67.90", "67.90")]

    driver.get(f"{portal_server}/finance/payments/")
    (run,) = driver.find_elements(By.CSS_SELECTOR, "[data-testid=payment-runs] tr[data-run]")
    cells = [cell.text for cell in run.find_elements(By.TAG_NAME, "td")]
    assert cells[0] == BILL_DAY.isoformat() and cells[3:8] == ["2", "0", "1", "0", "1"]
    assert not _console_errors(driver)

    # A role without the finance permission: the page and the report are refused, the refusal audited.
    driver.delete_all_cookies()
    _sign_in(driver, portal_server, "store1")
    driver.set_script_timeout(20)
    assert driver.execute_async_script(STATUS, f"{portal_server}/finance/payments/") == 403
    assert driver.execute_async_script(STATUS, report_url) == 403
    driver.get(f"{portal_server}/finance/payments/")
    assert not driver.find_elements(By.CSS_SELECTOR, "[data-testid=payment-runs]")
    assert not driver.find_elements(By.CSS_SELECTOR, "[data-testid=bill-form]")
    with live_apps.core.app_context():
        refused = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "access.forbidden",
                                                              AuditEvent.actor_label == "store1")).all()
        assert {event.after["path"] for event in refused} >= {"/finance/payments/"}
