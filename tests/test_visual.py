"""The portal as its staff see it, in headless Chromium at 1366×768: every demo staff role and anonymous visitors,
both languages, every page of the navigation and of each section's own navigation (with the first detail page of
each list, a 404 and a 403), on the seeded demo database. No page may log a console error, show an English msgid of the catalog on a Chinese page, scroll
sideways, or let two items of its header overlap (devtools/visual.py does the looking; scripts/screenshots.py takes
the same walk and saves screenshots)."""
import pytest
from flask_babel import force_locale, gettext
from selenium.webdriver.common.by import By

from devtools import visual
from devtools.demo.seed import STAFF
from shared.security.permissions import Role

pytestmark = [pytest.mark.browser, pytest.mark.live]

# Pages left out of the walk until they can pass, each with the reason (and the report that names it):
EXCLUDED = {
    # The access log shows each entry's raw action code ("view", "reveal"), entity type and field list, not words:
    # the readable history is issue 14 item 2, built apart from this check.
    "/audit/access-log",
}


@pytest.fixture(scope="module")
def demo_portal(tmp_path_factory):
    """The demo database (seeded as `orderloom demo` seeds it, fewer orders) served by the portal over HTTP."""
    from portal import create_app
    from shared.extensions import db

    url = f"sqlite:///{tmp_path_factory.mktemp('visual') / 'demo.sqlite3'}"
    visual.seed_database(url, order_count=60, report=lambda _line: None)
    app = create_app(visual.demo_config(url))
    server = visual.PortalServer(app)
    yield app, server.url
    server.stop()
    with app.app_context():
        db.engine.dispose()


@pytest.fixture(scope="module")
def walker(demo_portal):
    """One browser for the whole module, walking the demo portal."""
    _app, url = demo_portal
    driver, profile = visual.start_browser()
    try:
        yield visual.Walker(driver, url, visual.english_msgids())
    finally:
        visual.stop_browser(driver, profile)


def accounts_by_role(app) -> dict:
    return {account.role: account for account in visual.staff_sign_ins(app)}


def _problems_since(walker, start: int) -> list[str]:
    return [str(problem) for problem in walker.report.problems[start:]]


# The six built-in roles and the approver roles the demo seeds (cs_lead, warehouse_manager, finance_director).
@pytest.mark.parametrize("role", [role for role, *_rest in STAFF])
def test_every_page_of_a_role_is_clean_in_both_languages(demo_portal, walker, role):
    app, _url = demo_portal
    account = accounts_by_role(app)[role]
    visits, problems = len(walker.report.visits), len(walker.report.problems)
    walker.walk_role(account, exclude=EXCLUDED)
    walked = walker.report.visits[visits:]
    pages = {visit.page for visit in walked}
    assert {"/", "404"} <= pages and len(pages) >= 4, sorted(pages)  # the navigation was found and followed
    assert {visit.language for visit in walked} == set(visual.LANGUAGES)
    found = _problems_since(walker, problems)
    assert not found, f"{len(found)} problem(s) for {role}:\n" + "\n".join(found)


def test_anonymous_pages_are_clean_in_both_languages(walker):
    problems = len(walker.report.problems)
    walker.walk_anonymous()
    found = _problems_since(walker, problems)
    assert not found, "\n".join(found)


def test_the_checks_see_english_overflow_and_overlap_when_a_page_has_them(demo_portal, walker):
    """The walk's eyes work: a Chinese page given an English msgid, a too-wide box and a header item moved onto
    another is reported on each count."""
    msgid = next(iter(sorted(walker.msgids)))
    walker.open("/sign-in?lang=zh_CN")
    walker.driver.execute_script("""
        const p = document.createElement("p"); p.textContent = arguments[0]; document.querySelector("main").append(p);
        const wide = document.createElement("div"); wide.style.width = "3000px"; wide.textContent = "宽";
        document.querySelector("main").append(wide);
        const brand = document.querySelector("header .brand"), right = document.querySelector(".topbar-right");
        brand.style.position = "absolute"; brand.style.left = right.getBoundingClientRect().left + "px";
        brand.style.top = right.getBoundingClientRect().top + "px";
    """, msgid)
    facts = walker.driver.execute_script(visual.PAGE_FACTS)
    assert msgid in facts["texts"]
    assert facts["scrollWidth"] > facts["innerWidth"] == visual.WIDTH
    assert visual.overlaps(facts["items"]), facts["items"]


def test_overlap_is_a_shared_area_not_a_shared_edge():
    a = {"name": "a", "left": 0, "top": 0, "right": 100, "bottom": 20}
    touching = {"name": "b", "left": 100, "top": 0, "right": 150, "bottom": 20}
    below = {"name": "c", "left": 0, "top": 20, "right": 100, "bottom": 40}
    across = {"name": "d", "left": 90, "top": 10, "right": 120, "bottom": 30}
    assert visual.overlaps([a, touching, below]) == []
    assert visual.overlaps([a, touching, below, across]) == [("a", "d"), ("b", "d"), ("c", "d")]


def test_the_english_msgids_come_from_the_catalog_and_leave_out_what_chinese_keeps_as_is():
    msgids = visual.english_msgids()
    assert "Orders" in msgids and "Sign out" in msgids
    assert not any("%" in msgid for msgid in msgids)


def test_error_pages_are_in_the_frame_with_navigation_in_both_languages(demo_portal, walker):
    app, _url = demo_portal
    account = accounts_by_role(app)[Role.CUSTOMER_SERVICE.value]
    walker.sign_in(account)
    try:
        for language in visual.LANGUAGES:
            with app.test_request_context(), force_locale(language):
                heading = gettext("You may not do this")
            walker.switch_language(language)
            walker.open("/users/")
            error = walker.driver.find_element(By.CSS_SELECTOR, "[data-testid=error]")
            assert error.get_attribute("data-status") == "403"
            assert walker.driver.find_elements(By.CSS_SELECTOR, "header nav a[href='/orders/']")
            assert heading in error.text
            assert walker.driver.find_element(By.CSS_SELECTOR, "[data-testid=error-permission]").text
            walker.open("/no-such-page")
            assert walker.driver.find_element(By.CSS_SELECTOR, "[data-testid=error]").get_attribute(
                "data-status") == "404"
            assert walker.driver.find_elements(By.CSS_SELECTOR, "header nav a")
    finally:
        walker.sign_out()
