"""The portal as its users see it: every demo staff role, both languages, headless Chromium at 1366×768.

`walk()` signs in as each role, visits every page its navigation leads to (and the first detail page each list
links to, plus a 404 and a 403 page), checks each page and can save a screenshot of it. scripts/screenshots.py runs
it on a freshly seeded demo database; tests/test_visual.py asserts that it finds no problem. The checks:

- console: no browser log entry of level SEVERE (a failed script, a refused asset, a CSP violation);
- untranslated: on a Chinese page, no visible text node that is an English msgid of the catalog
  (translations/messages.pot), unless the catalog translates it to itself ("SKU");
- overflow: no horizontal scrolling (document.documentElement.scrollWidth <= innerWidth);
- header overlap: no two of the header's items (brand, navigation links, the right-hand items) overlap.
"""
import re
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from shared.config import PROJECT_ROOT

WIDTH, HEIGHT = 1366, 768
LANGUAGES = ("zh_CN", "en")
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
POT = PROJECT_ROOT / "translations" / "messages.pot"
PO = PROJECT_ROOT / "translations" / "zh_Hans_CN" / "LC_MESSAGES" / "messages.po"
SCREENSHOT_DIR = PROJECT_ROOT / "screenshots"
SEEDED_ORDERS = 120
# Links a walk never follows: leaving the session, files, and the machine-readable description.
SKIPPED = re.compile(r"/sign-out|/download|\.(csv|xlsx|pdf|zip|json)$|/pdf\b|/export")
MAX_SHOT_HEIGHT = 6000


@dataclass
class Problem:
    role: str
    language: str
    page: str
    kind: str  # console, untranslated, overflow, header_overlap, unreachable
    detail: str

    def __str__(self) -> str:
        return f"{self.role:<18} {self.language:<6} {self.page:<40} {self.kind:<15} {self.detail}"


@dataclass
class Visit:
    role: str
    language: str
    page: str
    url: str
    seconds: float = 0.0
    screenshot: Path | None = None


@dataclass
class WalkReport:
    visits: list[Visit] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


# ---------------------------------------------------------------- the demo database

def demo_config(url: str) -> dict:
    """The demo's configuration on `url`: jobs inline, no Redis, rate limits counted in memory; the browser keeps
    the static files for the walk instead of asking again on every page (three requests fewer per page)."""
    return {"SQLALCHEMY_DATABASE_URI": url, "JOBS_INLINE": True, "REDIS_URL": "", "RATELIMIT_STORAGE_URI": "memory://",
            "SEND_FILE_MAX_AGE_DEFAULT": 3600}


def seed_database(url: str, order_count: int = SEEDED_ORDERS, report=print) -> None:
    """Migrate `url` and seed it as `orderloom demo` does (through the services), with fewer orders."""
    from devtools.demo.seed import seed_demo_data
    from shared.appcore import create_core_app
    from shared.database import upgrade
    from shared.extensions import db

    upgrade(url)
    app = create_core_app("orderloom.visual", demo_config(url))
    with app.app_context():
        seed_demo_data(order_count, report=report)
        db.session.remove()
        db.engine.dispose()


@dataclass
class StaffSignIn:
    role: str
    username: str
    password: str
    totp_secret: str | None
    last_step: int | None = None

    def code(self) -> str:
        import pyotp

        totp = pyotp.TOTP(self.totp_secret)
        now = totp.timecode(datetime.now(UTC))
        step = now if self.last_step is None or now > self.last_step else self.last_step + 1
        self.last_step = step
        return totp.generate_otp(step)


def staff_sign_ins(app) -> list[StaffSignIn]:
    """Every demo staff account (devtools.demo.seed.STAFF) present in the app's database, with its TOTP secret."""
    from sqlalchemy import select

    from devtools.demo.seed import STAFF
    from shared.extensions import db
    from shared.models import SecondFactor, StaffUser

    with app.app_context():
        present = dict(db.session.execute(select(StaffUser.username, StaffUser.role)).all())
        secrets = dict(db.session.execute(
            select(StaffUser.username, SecondFactor.secret).join(SecondFactor, SecondFactor.user_id == StaffUser.id)
            .where(SecondFactor.confirmed.is_(True))).all())
        db.session.remove()
    return [StaffSignIn(role, username, password, secrets.get(username))
            for role, username, password, _name in STAFF if present.get(username) == role]


# ---------------------------------------------------------------- what counts as English left in a Chinese page

def english_msgids() -> frozenset[str]:
    """The catalog's English msgids (messages.pot) that Chinese pages must not show as they are: without the
    placeholders' messages (they never appear verbatim) and those the catalog translates to themselves."""
    from babel.messages.pofile import read_po

    with POT.open("rb") as f:
        template = read_po(f)
    same = set()
    if PO.is_file():
        with PO.open("rb") as f:
            for message in read_po(f, locale="zh_Hans_CN"):
                first = message.string[0] if isinstance(message.string, (list, tuple)) else message.string
                ident = message.id[0] if isinstance(message.id, (list, tuple)) else message.id
                if ident and first and first.strip() == ident.strip():
                    same.add(ident)
    found = set()
    for message in template:
        for ident in (message.id if isinstance(message.id, (list, tuple)) else (message.id,)):
            if ident and "%" not in ident and re.search(r"[A-Za-z]{2}", ident) and ident not in same:
                found.add(" ".join(ident.split()))
    return frozenset(found)


# ---------------------------------------------------------------- the browser

def start_browser(width: int = WIDTH, height: int = HEIGHT, language: str = "en-US"):
    """Headless Chromium (Debian's chromium and chromedriver) with a throw-away profile; the page area is exactly
    width × height. Returns (driver, profile folder to delete after quit)."""
    import os

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium = os.environ.get("TEST_CHROMIUM", CHROMIUM)
    chromedriver = os.environ.get("TEST_CHROMEDRIVER", CHROMEDRIVER)
    for path in (chromium, chromedriver):
        if not Path(path).is_file():
            raise SystemExit(f"{path} not found: install chromium and chromium-driver (scripts/ensure-system.sh)")
    profile = tempfile.mkdtemp(prefix="orderloom-visual-")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--hide-scrollbars", f"--window-size={width},{height}", f"--lang={language}",
                     f"--user-data-dir={profile}"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(chromedriver), options=options)
    driver.set_page_load_timeout(30)
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
    return driver, profile


def stop_browser(driver, profile: str) -> None:
    try:
        driver.quit()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


class PortalServer:
    """The portal app served on a free local port by a daemon thread, until stop()."""

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0):
        from werkzeug.serving import make_server

        self.server = make_server(host, port, app, threaded=True)
        self.url = f"http://{host}:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="visual-portal", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


# The page's side of the checks, in one script: visible text nodes, overflow, the header's items.
PAGE_FACTS = r"""
const skip = new Set(["SCRIPT", "STYLE", "NOSCRIPT", "CODE", "PRE", "TEXTAREA", "KBD", "SAMP"]);
const texts = [];
const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
for (let node = walker.nextNode(); node; node = walker.nextNode()) {
  const text = node.nodeValue.replace(/\s+/g, " ").trim();
  const parent = node.parentElement;
  if (!text || !parent || parent.closest("[lang=en], [translate=no]")) continue;
  let hidden = false;
  for (let el = parent; el; el = el.parentElement) {
    if (skip.has(el.tagName)) { hidden = true; break; }
  }
  if (hidden || !parent.checkVisibility({visibilityProperty: true, opacityProperty: true})) continue;
  texts.push(text);
}
for (const input of document.querySelectorAll("input[type=submit], input[type=button], [placeholder], [title]")) {
  if (!input.getClientRects().length || input.closest("[lang=en]")) continue;
  for (const value of [input.value && input.type.match(/submit|button/) ? input.value : "",
                       input.getAttribute("placeholder") || "", input.getAttribute("title") || ""]) {
    if (value.trim()) texts.push(value.replace(/\s+/g, " ").trim());
  }
}
const header = document.querySelector("body > header");
const items = [];
if (header) {
  const leaves = [];
  for (const child of header.children) {
    if (child.tagName === "NAV" || child.classList.contains("topbar-right")) { leaves.push(...child.children); }
    else { leaves.push(child); }
  }
  for (const el of leaves) {
    const r = el.getBoundingClientRect();
    if (r.width < 1 || r.height < 1) continue;
    items.push({name: (el.innerText || el.tagName).replace(/\s+/g, " ").trim().slice(0, 40) || el.tagName,
                left: r.left, top: r.top, right: r.right, bottom: r.bottom});
  }
}
const hrefs = (selector) => Array.from(document.querySelectorAll(selector), (a) => a.href);
return {texts: texts, scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth,
        items: items, title: document.title, headerLinks: hrefs("body > header a[href]"),
        sectionLinks: hrefs("main nav.actions a[href]"), tableLinks: hrefs("main table tbody a[href]")};
"""


def overlaps(items: list[dict], tolerance: float = 1.0) -> list[tuple[str, str]]:
    """The pairs of header items whose boxes intersect by more than `tolerance` pixels both ways."""
    found = []
    for index, a in enumerate(items):
        for b in items[index + 1:]:
            width = min(a["right"], b["right"]) - max(a["left"], b["left"])
            height = min(a["bottom"], b["bottom"]) - max(a["top"], b["top"])
            if width > tolerance and height > tolerance:
                found.append((a["name"], b["name"]))
    return found


class Walker:
    """One browser walking one portal; collects visits and problems."""

    def __init__(self, driver, base_url: str, msgids: frozenset[str], screenshots: Path | None = None):
        self.driver, self.base, self.msgids, self.shots = driver, base_url, msgids, screenshots
        self.report = WalkReport()

    # -- navigation

    def open(self, url: str) -> None:
        self.driver.get(url if url.startswith("http") else self.base + url)

    def wait_for(self, selector: str, seconds: float = 15):
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait

        return WebDriverWait(self.driver, seconds).until(lambda d: d.find_elements(By.CSS_SELECTOR, selector))

    def console_errors(self) -> list[str]:
        return [entry["message"] for entry in self.driver.get_log("browser") if entry["level"] == "SEVERE"]

    def sign_in(self, account: StaffSignIn) -> None:
        from selenium.webdriver.common.by import By

        self.open("/sign-in")
        self.driver.find_element(By.ID, "username").send_keys(account.username)
        self.driver.find_element(By.ID, "password").send_keys(account.password)
        self.driver.find_element(By.CSS_SELECTOR, "main form button[type=submit]").click()
        self.wait_for("[data-testid=signed-in-as], [data-testid=code-form], [data-testid=totp-secret]")
        d = self.driver
        if d.find_elements(By.CSS_SELECTOR, "[data-testid=totp-secret]"):  # enrolment asked at first sign-in
            account.totp_secret = d.find_element(By.CSS_SELECTOR, "[data-testid=totp-secret]").text.strip()
            self._type_code(account.code())
            self.wait_for("[data-testid=continue]")
            d.find_element(By.CSS_SELECTOR, "[data-testid=continue]").click()
        elif not d.find_elements(By.CSS_SELECTOR, "[data-testid=signed-in-as]"):
            if not account.totp_secret:
                raise RuntimeError(f"{account.username} is asked for a code but has no TOTP secret")
            self._type_code(account.code())
        self.wait_for("[data-testid=signed-in-as]")
        self.console_errors()  # the sign-in pages are walked on their own (anonymous)

    def _type_code(self, code: str) -> None:
        from selenium.webdriver.common.by import By

        field_ = self.driver.find_element(By.CSS_SELECTOR, "[data-testid=code-form] input[name=code]")
        field_.clear()
        field_.send_keys(code)
        self.driver.find_element(By.CSS_SELECTOR, "[data-testid=code-form] button[type=submit]").click()

    def sign_out(self) -> None:
        from selenium.webdriver.common.by import By

        buttons = self.driver.find_elements(By.CSS_SELECTOR, "header form[action$='/sign-out'] button[type=submit]")
        if buttons:
            buttons[0].click()
            self.wait_for("#username")
        self.driver.delete_all_cookies()

    def switch_language(self, language: str) -> None:
        from selenium.webdriver.common.by import By

        self.open("/")
        self.driver.find_element(By.CSS_SELECTOR, f"form.language-switch button[value={language}]").click()
        self.wait_for(f"html[lang={'zh-CN' if language == 'zh_CN' else 'en'}]")
        self.console_errors()

    def navigation(self) -> list[str]:
        """The paths the header leads to (navigation and the right-hand links), in order, once each."""
        hrefs = self.driver.execute_script('return Array.from(document.querySelectorAll("body > header a[href]"), '
                                           '(a) => a.href);')
        return self._pages(hrefs)

    def _pages(self, hrefs: list[str], queries: bool = True) -> list[str]:
        found = []
        for href in hrefs:
            path = self._same_site_path(href)
            if path and (queries or "?" not in path) and path not in found and not SKIPPED.search(path):
                found.append(path)
        return found

    def section_pages(self, facts: dict) -> list[str]:
        """The pages a section's own navigation (e.g. fulfilment: board, waves, scan log...) leads to; filters
        (links with a query) are not pages of their own."""
        return self._pages(facts["sectionLinks"], queries=False)

    def first_detail(self, list_path: str, facts: dict) -> str | None:
        """The first link of the page's main table that leads below `list_path` (e.g. /orders/ → /orders/OS2026...)."""
        if list_path.rstrip("/") == "":
            return None  # the dashboard's links lead to other lists, which the navigation reaches anyway
        prefix = list_path.rstrip("/") + "/"
        for path in self._pages(facts["tableLinks"], queries=False):
            if path.startswith(prefix) and path.rstrip("/") != list_path.rstrip("/"):
                return path
        return None

    def _same_site_path(self, href: str | None) -> str | None:
        if not href:
            return None
        parts = urlsplit(href)
        if f"{parts.scheme}://{parts.netloc}" != self.base or parts.fragment and not parts.path:
            return None
        return parts.path + (f"?{parts.query}" if parts.query else "")

    # -- one page

    def check(self, role: str, language: str, page: str, path: str, expected_status: bool = False) -> dict:
        """Open `path`, run every check, save a screenshot when asked; returns what the page said of itself."""
        started = time.perf_counter()
        self.open(path)
        facts = self.driver.execute_script(PAGE_FACTS)
        visit = Visit(role, language, page, path)
        problems = self.report.problems
        own_status = re.compile(re.escape(self.base + path) + r" - Failed to load resource: the server responded "
                                r"with a status of (403|404)\b")
        for message in self.console_errors():
            if expected_status and own_status.match(message):
                continue  # an error page asked for: the browser logs the document's own status
            problems.append(Problem(role, language, page, "console", message[:300]))
        if language == "zh_CN":
            leaked = sorted({text for text in facts["texts"] if text in self.msgids})
            if leaked:
                problems.append(Problem(role, language, page, "untranslated", " | ".join(leaked)[:600]))
        if facts["scrollWidth"] > facts["innerWidth"]:
            problems.append(Problem(role, language, page, "overflow",
                                    f"scrollWidth {facts['scrollWidth']} > innerWidth {facts['innerWidth']}"))
        for a, b in overlaps(facts["items"]):
            problems.append(Problem(role, language, page, "header_overlap", f"{a!r} overlaps {b!r}"))
        if self.shots is not None:
            visit.screenshot = self.screenshot(self.shots / language / role / f"{slug(page)}.png")
        visit.seconds = time.perf_counter() - started
        self.report.visits.append(visit)
        return facts

    def screenshot(self, target: Path) -> Path:
        """The whole page (up to MAX_SHOT_HEIGHT pixels tall) at the viewport's width."""
        import base64

        target.parent.mkdir(parents=True, exist_ok=True)
        height = min(self.driver.execute_script("return document.documentElement.scrollHeight"), MAX_SHOT_HEIGHT)
        shot = self.driver.execute_cdp_cmd("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": WIDTH, "height": max(height, HEIGHT), "scale": 1}})
        target.write_bytes(base64.b64decode(shot["data"]))
        return target

    # -- a role's walk

    def walk_role(self, account: StaffSignIn, languages=LANGUAGES, forbidden_path: str = "/users/",
                  exclude=()) -> None:
        """Every page of the role's navigation (but those in `exclude`), the first detail page of each list, a 404
        and (when the role may not see it) a 403, in each language."""
        self.sign_in(account)
        for language in languages:
            self.switch_language(language)
            navigation = self.navigation()
            paths = [path for path in navigation if path not in exclude]
            for path in paths:  # grows while walking: a section's own navigation adds its pages
                facts = self.check(account.role, language, path, path)
                paths += [more for more in self.section_pages(facts) if more not in paths and more not in exclude]
                detail = self.first_detail(path, facts)
                if detail:
                    self.check(account.role, language, f"{path} → detail", detail)
            self.check(account.role, language, "404", "/no-such-page", expected_status=True)
            if forbidden_path not in navigation:
                self.check(account.role, language, "403", forbidden_path, expected_status=True)
        self.sign_out()

    def walk_anonymous(self, languages=LANGUAGES) -> None:
        for language in languages:
            for page in ("/sign-in", "/api-docs", "/no-such-page"):
                self.check("anonymous", language, page, f"{page}?lang={language}", expected_status=page == "/no-such-page")


def slug(page: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", page).strip("-") or "home"


def walk(base_url: str, accounts: list[StaffSignIn], screenshots: Path | None = None, driver=None,
         report=print) -> WalkReport:
    """Walk the portal at `base_url` as each account (and anonymously) in both languages."""
    own = driver is None
    profile = None
    if own:
        driver, profile = start_browser()
    try:
        walker = Walker(driver, base_url, english_msgids(), screenshots)
        walker.walk_anonymous()
        for account in accounts:
            before = len(walker.report.visits)
            walker.walk_role(account)
            report(f"  {account.role:<18} {len(walker.report.visits) - before:3d} pages")
        return walker.report
    finally:
        if own:
            stop_browser(driver, profile)
