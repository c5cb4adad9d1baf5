"""The portal's API page: made from docs/openapi.json, in the portal's frame and the viewer's language, and its
try-it token: the signed-in user's own, minutes long, one per session, revoked on request, CSRF-protected."""
import json
import re
from datetime import timedelta

import pytest
from flask_babel import force_locale
from sqlalchemy import func, select

from portal.api_docs import TRY_IT_MINUTES, code_spans, example_value, specification, tag_groups
from shared import labels
from shared.extensions import db
from shared.models import ApiToken, AuditEvent
from shared.services import staff
from shared.services.errors import ValidationFailed
from shared.timekeeping import utc_now
from tests.factories import ADMIN
from tests.live_servers import browser, portal_server  # noqa: F401  (fixtures)
from tests.portal_client import csrf_token, english_client, sign_in

TOKEN_PATH, END_PATH = "/api-docs/try-token", "/api-docs/try-token/end"


def signed_in(portal, create_user, role="ops_manager", username="docs1", locale="en"):
    create_user(username, role, locale=locale)
    client = english_client(portal)
    response = sign_in(client, username)
    assert response.status_code in (302, 303), response.text[:300]
    return client


def ask_token(client):
    return client.post(TOKEN_PATH, headers={"X-CSRFToken": csrf_token(client, "/api-docs"),
                                            "Accept": "application/json"})


def api_get(portal, token: str, path: str = "/api/v1/channels"):
    return portal.test_client().get(path, headers={"Authorization": f"Bearer {token}"})


def live_tokens(username: str) -> int:
    return staff.active_token_count(staff.get_user(username))


def test_code_spans_show_backticks_as_code_and_escape_everything():
    assert str(code_spans("send `Authorization: <b>` & <i>x</i>")) == \
        "send <code>Authorization: &lt;b&gt;</code> &amp; &lt;i&gt;x&lt;/i&gt;"
    assert str(code_spans("an unpaired ` stays")) == "an unpaired ` stays"
    assert str(code_spans(None)) == ""


def test_the_page_has_every_operation_grouped_by_tag_with_its_permission_in_words(portal, create_user):
    client = signed_in(portal, create_user)
    page = client.get("/api-docs").text
    spec = specification()
    grouped = [(op.method, op.path) for group in tag_groups() for op in group.operations]
    documented = [(m, p) for p, item in spec["paths"].items() for m in item]
    assert sorted(grouped) == sorted(documented)
    for group in tag_groups():
        assert f'id="tag-{group.name}"' in page
    article = page[page.index('data-operation="createWarehouse"'):]
    article = article[:article.index("</article>")]
    with portal.test_request_context(), force_locale("en"):
        words = f"{labels.label(labels.RESOURCE, 'catalog')} · {labels.label(labels.ACTION, 'edit')}"
    assert words in article and "catalog:edit" not in article
    assert "WarehouseInput" in article and 'data-testid="try-it"' in article
    assert "`" not in re.sub(r"<textarea.*?</textarea>", "", page, flags=re.S)  # backticks became <code>
    assert "<code>duplicate_warehouse</code>" in article
    # In the portal's frame: its navigation and the signed-in user.
    assert 'data-testid="signed-in-as"' in page and 'href="/orders/"' in page


def test_anonymous_visitors_get_the_plain_frame_and_no_try_it_forms(portal):
    page = english_client(portal).get("/api-docs").text
    assert 'data-testid="api-op"' in page and 'data-testid="try-it"' not in page
    assert 'data-testid="signed-in-as"' not in page and "<nav" not in page.split("<main", 1)[0]
    assert "/sign-in?next=" in page
    assert re.search(r"<title>[^<>]+</title>", page)


def test_the_page_follows_the_language(portal):
    chinese = portal.test_client().get("/api-docs?lang=zh_CN").text
    english = english_client(portal).get("/api-docs?lang=en").text
    assert '<html lang="zh-CN">' in chinese and '<html lang="en">' in english
    with portal.test_request_context(), force_locale("zh_CN"):
        from flask_babel import gettext

        assert f"<h1>{gettext('API documentation')}</h1>" in chinese


def test_try_body_starts_from_the_schema():
    spec = specification()
    body = example_value(spec, {"$ref": "#/components/schemas/WarehouseInput"})
    assert set(spec["components"]["schemas"]["WarehouseInput"].get("required", [])) <= set(body)


def test_a_try_it_token_is_the_users_own_lives_minutes_and_works_on_the_api(portal, create_user):
    client = signed_in(portal, create_user)
    response = ask_token(client)
    assert response.status_code == 200, response.text[:300]
    body = response.get_json()
    assert body["minutes"] == TRY_IT_MINUTES and body["expires_local"]
    record = db.session.execute(select(ApiToken).where(ApiToken.prefix == body["token"][:10])).scalar_one()
    assert record.user.username == "docs1"
    assert timedelta(0) < record.expires_at - utc_now() <= timedelta(minutes=TRY_IT_MINUTES)
    assert api_get(portal, body["token"]).status_code == 200
    event = db.session.execute(select(AuditEvent).where(AuditEvent.action == "user.token_issued")
                               .order_by(AuditEvent.id.desc())).scalars().first()
    assert event.after["purpose"] == "try_it"
    assert response.headers["Cache-Control"] == "no-store"


def test_a_session_holds_one_try_it_token_and_can_end_it(portal, create_user):
    client = signed_in(portal, create_user)
    first = ask_token(client).get_json()["token"]
    second = ask_token(client).get_json()["token"]
    assert api_get(portal, first).status_code == 401  # revoked when the next was issued
    assert api_get(portal, second).status_code == 200
    assert live_tokens("docs1") == 1
    ended = client.post(END_PATH, data={"csrf_token": csrf_token(client, "/api-docs")})
    assert ended.status_code == 204
    assert api_get(portal, second).status_code == 401 and live_tokens("docs1") == 0
    assert client.post(END_PATH, data={"csrf_token": csrf_token(client, "/api-docs")}).status_code == 204


def test_a_try_it_token_needs_a_signed_in_user_and_the_csrf_token(portal, create_user):
    before = db.session.scalar(select(func.count()).select_from(ApiToken))
    anonymous = english_client(portal).post(TOKEN_PATH, headers={"Accept": "application/json"})
    assert anonymous.status_code in (302, 400, 401)
    client = signed_in(portal, create_user)
    forged = client.post(TOKEN_PATH, headers={"Accept": "application/json"})
    assert forged.status_code == 400 and forged.get_json()["error"]["code"] == "csrf_failed"
    assert db.session.scalar(select(func.count()).select_from(ApiToken)) == before


def test_try_it_tokens_count_against_the_ceiling_of_live_tokens(portal, create_user):
    client = signed_in(portal, create_user)
    user = staff.get_user("docs1")
    for _ in range(portal.config.get("API_TOKENS_PER_USER", 5)):
        staff.issue_token(user, ADMIN)
    db.session.commit()
    refused = ask_token(client)
    assert refused.status_code == 409 and refused.get_json()["error"]["code"] == "too_many_tokens"


@pytest.mark.parametrize("minutes", [0, -1, 31, 60 * 24])
def test_a_try_it_token_never_lives_long(create_user, minutes):
    user = create_user("docs2", "ops_manager")
    with pytest.raises(ValidationFailed):
        staff.issue_try_it_token(user, ADMIN, minutes)
    assert staff.active_token_count(user) == 0


def test_only_ones_own_live_token_is_revoked(create_user):
    owner, other = create_user("docs3", "ops_manager"), create_user("docs4", "ops_manager")
    _token, record = staff.issue_try_it_token(owner, ADMIN, 5)
    db.session.commit()
    assert staff.revoke_token(other, ADMIN, record.id) is False
    assert staff.revoke_token(owner, ADMIN, record.id) is True
    assert staff.revoke_token(owner, ADMIN, record.id) is False


# ---------------------------------------------------------------- the try-it form in headless Chromium

XSS_NAME = '<img src=x onerror="document.title=1">茶'


def _operation(driver, operation_id: str):
    from selenium.webdriver.common.by import By

    article = driver.find_element(By.CSS_SELECTOR, f"[data-operation={operation_id}]")
    article.find_element(By.CSS_SELECTOR, "[data-testid=try-it-open]").click()
    return article


def _send_and_wait(walker, article) -> tuple[str, str]:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    article.find_element(By.CSS_SELECTOR, "[data-testid=try-send]").click()
    status = article.find_element(By.CSS_SELECTOR, "[data-testid=try-status]")
    WebDriverWait(walker.driver, 15).until(lambda _d: re.match(r"\d{3} ", status.text))
    return status.text, article.find_element(By.CSS_SELECTOR, "[data-testid=try-output]").text


def _tokens(live_apps, username: str) -> list[tuple]:
    with live_apps.core.app_context():
        user = staff.get_user(username)
        rows = db.session.execute(select(ApiToken).where(ApiToken.user_id == user.id)).scalars().all()
        result = [(row.expires_at - row.created_at, row.revoked_at is not None) for row in rows]
        db.session.remove()
        return result


@pytest.mark.browser
@pytest.mark.live
@pytest.mark.parametrize("live_apps", ["sqlite"], indirect=True)
def test_try_it_calls_the_api_as_the_user_shows_the_answer_as_text_and_revokes_the_token(live_apps, portal_server,
                                                                                         browser):
    from selenium.webdriver.common.by import By

    from devtools.visual import StaffSignIn, Walker
    from tests.factories import PASSWORD, open_shop

    with live_apps.core.app_context():
        open_shop()
        staff.create_user("tryit", PASSWORD, "ops_manager", ADMIN, locale="en")
        db.session.commit()
        db.session.remove()
    walker = Walker(browser, portal_server, frozenset())
    walker.sign_in(StaffSignIn("ops_manager", "tryit", PASSWORD, None))
    walker.open("/api-docs")
    assert browser.find_element(By.CSS_SELECTOR, "[data-testid=end-try-token]").is_displayed() is False

    create = _operation(browser, "createSku")
    body = create.find_element(By.CSS_SELECTOR, "[data-testid=try-body]")
    body.clear()
    body.send_keys('{"sku": "TRY-1", "name": ' + json.dumps(XSS_NAME) + "}")
    status, output = _send_and_wait(walker, create)
    assert status.startswith("201 ") and "POST /api/v1/skus" in status
    assert json.loads(output)["name"] == XSS_NAME  # shown as the text it is
    assert not browser.find_elements(By.CSS_SELECTOR, "[data-testid=try-output] img")
    assert "try-it token is valid until" in browser.find_element(By.CSS_SELECTOR, "[data-testid=try-token-state]").text

    read = _operation(browser, "getStock")
    read.find_element(By.CSS_SELECTOR, "input[name=sku_code]").send_keys("TRY-1")
    status, output = _send_and_wait(walker, read)
    assert status.startswith("200 ") and json.loads(output)["sku"] == "TRY-1"
    ((lifetime, revoked),) = _tokens(live_apps, "tryit")  # one token for both calls, minutes long
    assert lifetime <= timedelta(minutes=TRY_IT_MINUTES) and not revoked

    browser.find_element(By.CSS_SELECTOR, "[data-testid=end-try-token]").click()
    walker.wait_for("[data-testid=end-try-token][hidden]")
    assert [revoked for _lifetime, revoked in _tokens(live_apps, "tryit")] == [True]

    status, _output = _send_and_wait(walker, read)  # a new token is asked for; leaving the page revokes it
    assert status.startswith("200 ")
    walker.open("/")
    walker.wait_for("[data-testid=signed-in-as]")
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 10).until(lambda _d: all(r for _l, r in _tokens(live_apps, "tryit")))
    assert [revoked for _lifetime, revoked in _tokens(live_apps, "tryit")] == [True, True]
    assert walker.console_errors() == []
