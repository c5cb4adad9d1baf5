"""A merchant's first day without the demo (issue 8, item 5) in headless Chromium, on a fresh database: an admin
follows the getting-started page link by link and fixes every missing thing through the pages only; bad input
(a bin code with markup, a duplicate channel code, a mapping file with one bad row) is refused in the form and
changes nothing; customer service cannot reach the set-up pages; a connection secret is never shown in full.
Every page has a clean console and a CSRF token in every form that posts."""
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.expected_conditions import staleness_of
from selenium.webdriver.support.ui import Select
from sqlalchemy import func, select

from shared.extensions import db
from shared.models import AuditEvent, Bin, Channel, SkuMapping, StaffUser
from shared.services import catalog, staff
from tests.factories import ADMIN, PASSWORD
from tests.live_servers import browser, portal_server  # noqa: F401  (fixtures)
from tests.test_browser import _console_errors, _explain, _sign_in, _step_up, _text, _wait

pytestmark = [pytest.mark.browser, pytest.mark.live,
              pytest.mark.parametrize("live_apps", ["postgresql"], indirect=True)]

STEPS = ("warehouse", "bins", "sku", "stock", "channel", "connection", "mappings", "staff", "handhelds", "worker")
APP_SECRET = "tb-app-secret-0123456789abcdef-9xYz"
ACCESS_TOKEN = "6201a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9tok1"
SCREENSHOTS = {"en": "/tmp/orderloom-getting-started-en.png", "zh_CN": "/tmp/orderloom-getting-started-zh.png"}


# --- helpers --------------------------------------------------------------------------------------------------

def _page_is_clean(driver, refused: int | None = None) -> None:
    """No console error, and every form that posts carries a non-empty CSRF token. A form re-rendered with its
    errors answers 422 (or a refused page 403): Chromium logs that status of the page itself, and nothing else
    may appear."""
    problems = _console_errors(driver)
    if refused:
        own = f"{driver.current_url.split('#')[0]} - Failed to load resource: the server responded with a status of "
        assert [m for m in problems if m.startswith(own + str(refused))], f"no {refused} at {driver.current_url}"
        problems = [m for m in problems if not m.startswith(own + str(refused))]
    assert problems == [], f"console errors at {driver.current_url}: {problems}"
    forms = driver.find_elements(By.CSS_SELECTOR, "form")
    for form in forms:
        if (form.get_attribute("method") or "get").lower() != "post":
            continue
        tokens = form.find_elements(By.CSS_SELECTOR, "input[name$=csrf_token]")  # prefixed forms: u1-csrf_token
        assert len(tokens) == 1 and len(tokens[0].get_attribute("value") or "") > 20, \
            f"a form without a CSRF token at {driver.current_url}: {form.get_attribute('action')}"


def _open(driver, url: str) -> None:
    driver.get(url)
    _page_is_clean(driver)


def _steps(driver) -> dict[str, bool]:
    rows = driver.find_elements(By.CSS_SELECTOR, "[data-testid=steps] tbody tr")
    return {row.get_attribute("data-testid").removeprefix("step-"): row.get_attribute("data-done") == "yes"
            for row in rows}


def _detail(driver, key: str) -> str:
    """The "what we found" cell of a step."""
    return driver.find_elements(By.CSS_SELECTOR, f"[data-testid=step-{key}] td")[2].text.strip()


def _getting_started(driver, base: str) -> dict[str, bool]:
    _open(driver, f"{base}/setup/")
    return _steps(driver)


def _follow_fix(driver, base: str, key: str, expect_path: str) -> None:
    """Open the getting-started page, check `key` is missing, and follow its link to the page that fixes it."""
    steps = _getting_started(driver, base)
    assert steps[key] is False, f"{key} is already done: {steps}"
    row = driver.find_element(By.CSS_SELECTOR, f"[data-testid=step-{key}]")
    assert "Missing" in row.text
    row.find_element(By.TAG_NAME, "a").click()
    _wait(driver, lambda d: d.current_url.split("#")[0].endswith(expect_path), f"the page that fixes {key}")
    _page_is_clean(driver)


def _fill(form, values: dict) -> None:
    for name, value in values.items():
        field = form.find_element(By.NAME, name)
        if field.tag_name == "select":
            Select(field).select_by_visible_text(value)
        else:
            field.clear()
            field.send_keys(value)


def _submit(driver, form, what: str, refused: bool = False) -> None:
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    _wait(driver, staleness_of(form), f"{what} (a new page)")
    _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, ".flash"), what)
    _page_is_clean(driver, refused=422 if refused else None)


def _flash(driver) -> str:
    return " ".join(e.text for e in driver.find_elements(By.CSS_SELECTOR, ".flash"))


def _switch_language(driver, code: str) -> None:
    driver.find_element(By.CSS_SELECTOR, f".language-switch button[value={code}]").click()
    _wait(driver, lambda d: d.find_element(By.CSS_SELECTOR, "html").get_attribute("lang").replace("-", "_")
          .startswith(code[:2]), f"the page in {code}")


def _screenshot(driver, path: str) -> None:
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, max(800, min(height + 120, 3000)))
    driver.save_screenshot(path)
    driver.set_window_size(1280, 1000)


def _no_horizontal_overflow(driver) -> None:
    """The checklist fits the window: no cell pushes the page sideways."""
    wide = driver.execute_script("return document.documentElement.scrollWidth > window.innerWidth + 1")
    assert not wide, f"the page scrolls sideways {_explain(driver)}"


def _csv(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def _count(model, *where) -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


# --- fixtures -------------------------------------------------------------------------------------------------

@pytest.fixture
def first_admin(live_apps) -> None:
    """Only what `orderloom users create` makes on day one: one admin, nothing else in the database."""
    with live_apps.core.app_context():
        staff.create_user("admin1", PASSWORD, "admin", ADMIN, locale="en")
        db.session.commit()
        assert _count(Channel) == 0 and _count(Bin) == 0


@pytest.fixture
def shop_started(live_apps) -> None:
    """An admin and a customer-service user, a warehouse and a Taobao channel with a connection."""
    from shared.services import channel_settings

    with live_apps.core.app_context():
        staff.create_user("admin1", PASSWORD, "admin", ADMIN, locale="en")
        staff.create_user("cs1", PASSWORD, "customer_service", ADMIN, locale="en")
        catalog.create_warehouse({"code": "HZ1", "name": "杭州仓", "province": "浙江省", "city": "杭州市"}, ADMIN)
        channel = catalog.create_channel("TM", "天猫旗舰店", "taobao", ADMIN)
        channel_settings.connect(channel, ADMIN, base_url="https://eco.taobao.com/router/rest", app_key="3456789",
                                 app_secret=APP_SECRET, access_token=ACCESS_TOKEN)
        db.session.commit()


# --- 1. the whole first day through the pages -----------------------------------------------------------------

def test_an_admin_fixes_every_missing_step_through_the_pages(live_apps, first_admin, portal_server,  # noqa: F811
                                                              browser, tmp_path):  # noqa: F811
    driver, base = browser, portal_server
    _sign_in(driver, base, "admin1")
    _page_is_clean(driver)
    driver.find_element(By.LINK_TEXT, "Getting started").click()
    _wait(driver, lambda d: d.current_url.endswith("/setup/"), "the getting-started page")
    _page_is_clean(driver)
    assert _steps(driver) == dict.fromkeys(STEPS, False)
    assert _text(driver, "remaining") == "10 things are still missing before the first order can flow."
    assert "No warehouse yet" in _text(driver, "step-warehouse")
    # With nothing there, a step never reads as if it were fine ("Every warehouse has bins" while missing).
    for key, nothing in (("bins", "No warehouse yet"), ("handhelds", "No warehouse yet"),
                         ("connection", "No channel yet"), ("mappings", "No channel yet")):
        assert _detail(driver, key) == nothing, key
    # Roles by their names, not their codes.
    assert "Operations manager, Customer service, Warehouse staff, Finance, Auditor" in _text(driver, "step-staff")
    assert "ops_manager" not in _text(driver, "step-staff")
    _no_horizontal_overflow(driver)
    _screenshot(driver, SCREENSHOTS["en"])

    # The same page in Chinese, then back.
    _switch_language(driver, "zh_CN")
    assert driver.current_url.endswith("/setup/")
    assert driver.find_element(By.TAG_NAME, "h1").text == "开始使用"
    assert _text(driver, "remaining") == "第一笔订单流转之前，还缺 10 项。"
    warehouse_row = _text(driver, "step-warehouse")
    assert "一个仓库" in warehouse_row and "还没有仓库" in warehouse_row and "缺少" in warehouse_row
    assert driver.find_element(By.CSS_SELECTOR, "[data-testid=step-warehouse] a").text == "创建仓库"
    assert "运营经理" in _text(driver, "step-staff") and "customer_service" not in _text(driver, "step-staff")
    assert _detail(driver, "connection") == "还没有渠道"
    assert _steps(driver) == dict.fromkeys(STEPS, False)
    _page_is_clean(driver)
    _no_horizontal_overflow(driver)
    _screenshot(driver, SCREENSHOTS["zh_CN"])
    _switch_language(driver, "en")
    assert driver.find_element(By.TAG_NAME, "h1").text == "Getting started"

    # A warehouse, then its carriers: the usual one first, a backup after it.
    _follow_fix(driver, base, "warehouse", "/catalog/")
    form = driver.find_element(By.CSS_SELECTOR, "form[action$='/catalog/warehouses']")
    _fill(form, {"code": "HZ1", "name": "杭州仓", "province": "浙江省", "city": "杭州市"})
    _submit(driver, form, "the warehouse to be saved")
    assert "Saved." in _flash(driver)
    driver.find_element(By.LINK_TEXT, "HZ1").click()
    _wait(driver, lambda d: d.current_url.endswith("/setup/warehouses/HZ1"), "the warehouse page")
    _page_is_clean(driver)
    form = driver.find_element(By.CSS_SELECTOR, "[data-testid=warehouse-form]")
    _fill(form, {"carriers": "SF, ZTO"})
    _submit(driver, form, "the carriers to be saved")
    assert "Saved." in _flash(driver) and "Carriers: SF,ZTO" in driver.page_source
    with live_apps.core.app_context():
        from shared.services import stock as stock_service

        assert stock_service.get_warehouse("HZ1").carriers == "SF,ZTO"
    assert _getting_started(driver, base)["warehouse"] is True

    # A bin.
    _follow_fix(driver, base, "bins", "/setup/warehouses/HZ1")
    form = driver.find_element(By.CSS_SELECTOR, "[data-testid=bin-form]")
    _fill(form, {"code": "A-01-01", "walk_order": "1", "capacity": "500"})
    _submit(driver, form, "the bin to be added")
    assert "Bin A-01-01 was added." in _flash(driver)
    assert "A-01-01" in _text(driver, "bins")

    # A handheld: its token is shown once.
    _follow_fix(driver, base, "handhelds", "/setup/warehouses/HZ1")
    form = driver.find_element(By.CSS_SELECTOR, "[data-testid=device-form]")
    _fill(form, {"name": "PDA-01"})
    _submit(driver, form, "the handheld to be registered")
    token = driver.find_element(By.CSS_SELECTOR, "[data-testid=device-token] code").text
    assert len(token) >= 20
    _open(driver, f"{base}/setup/warehouses/HZ1")
    assert token not in driver.page_source

    # A SKU.
    _follow_fix(driver, base, "sku", "/catalog/")
    form = driver.find_element(By.CSS_SELECTOR, "form[action$='/catalog/skus']")
    _fill(form, {"sku": "TEA-LJ-250", "name": "龙井茶 250g"})
    _submit(driver, form, "the SKU to be saved")
    assert "Saved." in _flash(driver)

    # Stock, received into the bin.
    _follow_fix(driver, base, "stock", "/stock-ops/receipts")
    form = driver.find_element(By.CSS_SELECTOR, "[data-testid=receipt-form]")
    _fill(form, {"sku": "TEA-LJ-250", "bin": "A-01-01", "quantity": "120"})
    Select(form.find_element(By.NAME, "warehouse")).select_by_value("HZ1")
    _submit(driver, form, "the receipt to be saved")
    steps = _getting_started(driver, base)
    assert all(steps[key] for key in ("warehouse", "bins", "handhelds", "sku", "stock")), steps

    # The bin is edited in place: a capacity below what it holds is refused, then a new walk order is saved.
    _open(driver, f"{base}/setup/warehouses/HZ1")
    _no_horizontal_overflow(driver)
    _screenshot(driver, "/tmp/orderloom-warehouse.png")
    row = driver.find_element(By.CSS_SELECTOR, "[data-testid=bin-A-01-01]")
    _fill(row, {"capacity": "50"})
    _submit(driver, row, "the capacity to be refused", refused=True)
    assert "Bin A-01-01 holds 120 units" in _flash(driver)
    row = driver.find_element(By.CSS_SELECTOR, "[data-testid=bin-A-01-01]")
    assert row.find_element(By.NAME, "capacity").get_attribute("value") == "500"  # the stored value, unchanged
    _fill(row, {"walk_order": "7", "capacity": "800"})
    _submit(driver, row, "the bin to be saved")
    assert "Bin A-01-01 was saved." in _flash(driver)
    with live_apps.core.app_context():
        assert [(b.code, b.walk_order, b.capacity) for b in db.session.execute(select(Bin)).scalars()] == \
            [("A-01-01", 7, 800)]

    # A channel: the platform is chosen by its name, not its code.
    _follow_fix(driver, base, "channel", "/setup/channels/new")
    form = driver.find_element(By.CSS_SELECTOR, "[data-testid=channel-form]")
    kinds = [option.text for option in Select(form.find_element(By.NAME, "kind")).options]
    assert "Taobao / Tmall" in kinds and "own_shop" not in kinds and "Own web shop" in kinds
    _fill(form, {"code": "tm", "name": "天猫旗舰店", "kind": "Taobao / Tmall"})
    _submit(driver, form, "the channel to be created")
    assert driver.current_url.endswith("/channels/TM#connection")
    assert "Channel TM was created; set its connection next." in _flash(driver)
    assert "Taobao / Tmall" in driver.find_element(By.CSS_SELECTOR, "main").text

    # Its connection, secrets included.
    _follow_fix(driver, base, "connection", "/channels/TM")
    form = driver.find_element(By.CSS_SELECTOR, "[data-testid=connection-form]")
    assert _text(driver, "secret-app_secret") == "Not set"
    _fill(form, {"base_url": "https://eco.taobao.com/router/rest", "app_key": "3456789", "app_secret": APP_SECRET,
                 "access_token": ACCESS_TOKEN})
    _submit(driver, form, "the connection to be saved")
    assert "The connection of 天猫旗舰店 was saved." in _flash(driver)
    assert APP_SECRET not in driver.page_source and ACCESS_TOKEN not in driver.page_source
    assert _text(driver, "secret-app_secret") == f"Set, ends with …{APP_SECRET[-4:]}"
    assert _text(driver, "secret-webhook_secret") == "Not set"

    # SKU mappings from a file: one bad row refuses the whole file, with its line number.
    _follow_fix(driver, base, "mappings", "/setup/channels/TM")
    with live_apps.core.app_context():
        audited = _count(AuditEvent)
    form = driver.find_element(By.CSS_SELECTOR, "[data-testid=import-form]")
    form.find_element(By.NAME, "file").send_keys(_csv(tmp_path, "bad.csv", "channel_sku,sku\n"
                                                      "5566001,TEA-LJ-250\n5566002,NO-SUCH-SKU\n"))
    _submit(driver, form, "the bad file to be refused", refused=True)
    assert "Nothing was imported: 1 rows are wrong" in _flash(driver)
    refused = driver.find_elements(By.CSS_SELECTOR, "[data-testid=refused-rows] tbody tr")
    assert len(refused) == 1
    line, problem = (cell.text for cell in refused[0].find_elements(By.TAG_NAME, "td"))
    assert line == "3" and "NO-SUCH-SKU" in problem
    with live_apps.core.app_context():
        assert _count(SkuMapping) == 0 and _count(AuditEvent) == audited  # nothing applied, nothing audited
    form = driver.find_element(By.CSS_SELECTOR, "[data-testid=import-form]")
    form.find_element(By.NAME, "file").send_keys(_csv(tmp_path, "good.csv", "channel_sku,sku\n5566001,TEA-LJ-250\n"))
    _submit(driver, form, "the good file to be imported")
    assert "1 mappings were imported." in _flash(driver)
    with live_apps.core.app_context():
        assert [(m.channel_sku, m.sku.code) for m in db.session.execute(select(SkuMapping)).scalars()] == \
            [("5566001", "TEA-LJ-250")]

    # A staff user for every other role.
    _follow_fix(driver, base, "staff", "/users/")
    _step_up(driver, base, "admin1", "/users/")  # accounts come with a role: a sensitive operation
    for username, role in (("ops1", "Operations manager"), ("cs1", "Customer service"),
                           ("wh1", "Warehouse staff"), ("fin1", "Finance"), ("audit1", "Auditor")):
        form = driver.find_element(By.CSS_SELECTOR, "form[action$='/users/']")
        _fill(form, {"username": username, "display_name": username, "role": role, "password": PASSWORD})
        _submit(driver, form, f"user {username} to be created")
    with live_apps.core.app_context():
        assert _count(StaffUser) == 6

    # Everything is done but the worker, which only a running `orderloom worker` can fix.
    steps = _getting_started(driver, base)
    assert steps == dict.fromkeys(STEPS, True) | {"worker": False}, steps
    assert _text(driver, "remaining") == "1 things are still missing before the first order can flow."
    worker = driver.find_element(By.CSS_SELECTOR, "[data-testid=step-worker]")
    assert worker.find_elements(By.TAG_NAME, "a") == []
    assert "worker" in worker.text.lower()
    for key in STEPS[:-1]:
        assert "Finished" in _text(driver, f"step-{key}"), key


# --- 2. bad input refused in the form -------------------------------------------------------------------------

def test_a_bin_code_with_markup_and_a_duplicate_channel_code_are_refused_in_the_form(live_apps, shop_started,
                                                                                      portal_server, browser):  # noqa: F811
    driver, base = browser, portal_server
    _sign_in(driver, base, "admin1")
    _open(driver, f"{base}/setup/warehouses/HZ1")
    driver.execute_script("window.xssFired = false; window.alert = () => { window.xssFired = true; };")
    form = driver.find_element(By.CSS_SELECTOR, "[data-testid=bin-form]")
    markup = "<b>x</b>"
    _fill(form, {"code": markup, "walk_order": "1", "capacity": "100"})
    _submit(driver, form, "the refusal", refused=True)
    assert "A bin code uses letters A-Z, digits" in _flash(driver)
    assert _text(driver, "bin-errors").startswith("Bin code: A bin code uses letters A-Z, digits")  # in the form
    assert driver.find_elements(By.CSS_SELECTOR, "main b") == [], "the bin code was rendered as markup"
    assert driver.find_element(By.CSS_SELECTOR, "[data-testid=bin-form] input[name=code]").get_attribute(
        "value") == markup  # kept in the form to correct, as text
    assert "<b>x</b>" not in driver.page_source.split("<main", 1)[1]
    assert "No bins yet" in _text(driver, "bins")
    with live_apps.core.app_context():
        assert _count(Bin) == 0

    _open(driver, f"{base}/setup/channels/new")
    form = driver.find_element(By.CSS_SELECTOR, "[data-testid=channel-form]")
    _fill(form, {"code": "tm", "name": "<i>二号店</i>", "kind": "JD.com"})
    _submit(driver, form, "the refusal", refused=True)
    assert driver.current_url.endswith("/setup/channels/new")
    assert "Channel TM exists" in _flash(driver)
    assert _text(driver, "channel-errors") == "Code (two letters): Channel TM exists"
    assert driver.find_elements(By.CSS_SELECTOR, "main i") == []
    form = driver.find_element(By.CSS_SELECTOR, "[data-testid=channel-form]")
    assert form.find_element(By.NAME, "name").get_attribute("value") == "<i>二号店</i>"
    assert Select(form.find_element(By.NAME, "kind")).first_selected_option.text == "JD.com"
    _fill(form, {"code": "T"})  # the browser itself refuses a one-letter code (minlength), before any request
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    code = form.find_element(By.NAME, "code")
    assert code.get_attribute("minlength") == "2" and code.get_attribute("validationMessage")
    with live_apps.core.app_context():
        assert [(c.code, c.name, c.kind) for c in db.session.execute(select(Channel)).scalars()] == \
            [("TM", "天猫旗舰店", "taobao")]
    assert driver.execute_script("return window.xssFired") in (False, None)

    # The platforms by their names in Chinese too, never by their stored codes.
    _open(driver, f"{base}/setup/channels/new")
    _switch_language(driver, "zh_CN")
    kinds = [o.text for o in Select(driver.find_element(By.CSS_SELECTOR, "[data-testid=channel-form] select[name=kind]"))
             .options]
    assert kinds[:4] == ["淘宝 / 天猫", "京东", "拼多多", "抖店"] and "自营网店" in kinds and "own_shop" not in kinds
    _page_is_clean(driver)


# --- 3. customer service, and secrets -------------------------------------------------------------------------

def test_customer_service_cannot_reach_set_up_and_no_page_shows_a_secret(live_apps, shop_started,
                                                                         portal_server, browser):  # noqa: F811
    driver, base = browser, portal_server
    _sign_in(driver, base, "cs1")
    assert driver.find_elements(By.LINK_TEXT, "Getting started") == []
    for path in ("/setup/", "/setup/channels/new", "/setup/channels/TM", "/setup/warehouses/HZ1"):
        driver.get(f"{base}{path}")
        assert "403" in driver.title or "403" in driver.find_element(By.TAG_NAME, "main").text, path
        assert driver.find_elements(By.CSS_SELECTOR, "main form") == [], path
        _page_is_clean(driver, refused=403)
    driver.get(f"{base}/channels/TM")  # customer service may look at a channel, never at its secrets
    _page_is_clean(driver)
    assert driver.find_elements(By.CSS_SELECTOR, "[data-testid=connection-form]") == []
    assert APP_SECRET not in driver.page_source and ACCESS_TOKEN not in driver.page_source
    driver.find_element(By.CSS_SELECTOR, "header form[action$='/sign-out'] button[type=submit]").click()
    _wait(driver, lambda d: d.find_elements(By.ID, "username"), "the sign-in page")

    _sign_in(driver, base, "admin1")
    for path in ("/channels/TM", "/setup/channels/TM", "/setup/"):
        _open(driver, f"{base}{path}")
        assert APP_SECRET not in driver.page_source and ACCESS_TOKEN not in driver.page_source, path
        assert APP_SECRET[:-4] not in driver.page_source, path
    _open(driver, f"{base}/channels/TM")
    assert _text(driver, "secret-app_secret") == f"Set, ends with …{APP_SECRET[-4:]}"
    assert _text(driver, "secret-access_token") == f"Set, ends with …{ACCESS_TOKEN[-4:]}"
    secret_field = driver.find_element(By.CSS_SELECTOR, "[data-testid=connection-form] input[name=app_secret]")
    assert secret_field.get_attribute("type") == "password" and secret_field.get_attribute("value") == ""
