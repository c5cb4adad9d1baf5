"""The portal's error pages (403, 404, 429, 500) in its frame: navigation for signed-in staff, the plain bar for
anyone else, texts from the catalog in the viewer's language, the missing permission named in words."""
import re

import pytest
from flask_babel import force_locale, gettext
from flask_login import login_user

from shared import labels
from shared.web import edge_error, error_response
from tests.portal_client import english_client, sign_in

HEADINGS = {403: "You may not do this", 404: "Page not found", 429: "Too many attempts", 500: "Something went wrong"}


def heading(app, status: int, language: str) -> str:
    with app.test_request_context(), force_locale(language):
        return gettext(HEADINGS[status])


def body_of(response) -> str:
    page, _status = response
    return page


def test_a_404_for_signed_in_staff_is_in_the_frame_with_navigation(portal, create_user):
    create_user("err1", "customer_service", locale="zh_CN")
    client = english_client(portal)
    sign_in(client, "err1")
    page = client.get("/no-such-page")
    assert page.status_code == 404
    assert heading(portal, 404, "zh_CN") in page.text and '<html lang="zh-CN">' in page.text
    assert 'href="/orders/"' in page.text and 'data-testid="signed-in-as"' in page.text
    assert re.search(r"<title>[^<>]+</title>", page.text)


def test_a_404_for_anonymous_visitors_has_the_plain_frame(portal):
    page = english_client(portal).get("/no-such-page?lang=en")
    assert page.status_code == 404 and heading(portal, 404, "en") in page.text
    assert "<nav" not in page.text and "/sign-in" in page.text


@pytest.mark.parametrize("language", ["zh_CN", "en"])
def test_a_403_names_the_missing_permission_in_words_not_the_services_english(portal, create_user, language):
    create_user("err2", "warehouse", locale=language)
    client = english_client(portal)
    sign_in(client, "err2")
    page = client.get("/users/")
    assert page.status_code == 403
    with portal.test_request_context(), force_locale(language):
        words = f"{labels.label(labels.RESOURCE, 'users')} · {labels.label(labels.ACTION, 'view')}"
        role = labels.role_name("warehouse")
    assert heading(portal, 403, language) in page.text and words in page.text and role in page.text
    assert "may not view users" not in page.text  # the refusal's message for logs and the API, not for people
    assert 'href="/fulfilment/"' in page.text


@pytest.mark.parametrize("status", [429, 500])
@pytest.mark.parametrize("language", ["zh_CN", "en"])
def test_429_and_500_are_framed_for_staff_and_plain_for_anonymous(portal, create_user, status, language):
    user = create_user(f"err-{status}-{language}", "ops_manager", locale=language)
    with portal.test_request_context("/somewhere", headers={"Accept": "text/html"}), force_locale(language):
        anonymous = body_of(error_response(edge_error(status)))
        login_user(user)
        staff = body_of(error_response(edge_error(status)))
    for page in (anonymous, staff):
        assert heading(portal, status, language) in page and f'data-status="{status}"' in page
    assert "<nav" not in anonymous and 'href="/orders/"' in staff


def test_a_page_that_cannot_be_drawn_in_the_frame_still_answers_plainly(portal):
    with portal.test_request_context("/somewhere"), force_locale("en"):
        with pytest.MonkeyPatch.context() as patch:
            patch.setitem(portal.config, "ERROR_TEMPLATE", "portal/no-such-template.html")
            page, status = error_response(edge_error(500))
    assert status == 500 and "<h1>500</h1>" in page


def test_the_customer_site_keeps_its_own_error_page(customer_app):
    with customer_app.test_request_context("/somewhere"), force_locale("en"):
        page, status = error_response(edge_error(500))
    assert status == 500 and "Something went wrong on our side" in page and "/orders/" not in page
