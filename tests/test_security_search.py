"""Order search is no oracle for masked data: masked roles cannot search by a full phone, every personal-value
search is access-logged by kind, searches are limited per user with an alarm for the auditor, and phone numbers
never travel in (or get logged from) addresses. Portal and API, on SQLite and PostgreSQL."""
import logging

import pytest
from sqlalchemy import select

from shared import order_search
from shared.extensions import db
from shared.models import AccessLogEntry, AuditEvent, FulfilmentAlarm
from shared.services import staff
from tests.factories import ADMIN
from tests.portal_client import csrf_token, english_client, sign_in

PHONE, MASKED, LAST4 = "17355555372", "173****5372", "5372"


@pytest.fixture
def target(create_order):
    return create_order(channel_order_id="TM-778", phone=PHONE)


@pytest.fixture
def browser(portal, create_user):
    def make(role: str):
        user = create_user(f"s_{role}", role)
        client = english_client(portal)
        assert sign_in(client, user.username).status_code == 302
        return client
    return make


@pytest.fixture
def api(portal, create_user):
    def make(role: str):
        token = staff.issue_token(create_user(f"a_{role}", role), ADMIN)
        db.session.commit()
        headers = {"Authorization": f"Bearer {token}"}
        client = portal.test_client()

        class Api:
            def search(self, **body):
                return client.post("/api/v1/orders/search", json=body, headers=headers)

            def get(self, query: str):
                return client.get(f"/api/v1/orders?{query}", headers=headers)
        return Api()
    return make


def post_search(client, **form):
    return client.post("/orders/", data={**form, "csrf_token": csrf_token(client, "/orders/")})


def listed(page, order) -> bool:
    return f'href="/orders/{order.order_no}"' in page.text


def access_log() -> list[AccessLogEntry]:
    return db.session.scalars(select(AccessLogEntry).where(AccessLogEntry.entity_type == "orders")
                              .order_by(AccessLogEntry.id)).all()


def assert_value_never_logged(entries) -> None:
    for entry in entries:
        text = " ".join(str(getattr(entry, c)) for c in ("action", "entity_id", "fields", "channel", "actor_label"))
        assert PHONE not in text and MASKED not in text and LAST4 not in text, text


# --- the oracle --------------------------------------------------------------------------------------------

def test_customer_service_cannot_search_by_a_full_phone(browser, target):
    client = browser("customer_service")
    refused = post_search(client, q=PHONE)
    assert refused.status_code == 403 and not listed(refused, target)
    assert "masked form" in refused.text
    entries = access_log()
    assert [(e.action, e.entity_id, e.fields) for e in entries] == [("search_refused", "by:phone", "phone")]
    assert_value_never_logged(entries)


def test_guessing_the_middle_digits_tells_nothing(browser, target):
    """The attack of the finding: try candidates for ****; the right one must read like every wrong one."""
    client = browser("customer_service")
    answers = {}
    for middle in ("5554", "5555", "5556"):  # 5555 is the real one
        response = post_search(client, q=f"173{middle}5372")
        answers[middle] = (response.status_code, listed(response, target))
    assert set(answers.values()) == {(403, False)}


def test_the_api_refuses_a_full_phone_to_a_masked_role(api, target):
    response = api("customer_service").search(q=PHONE)
    assert response.status_code == 403 and response.get_json()["error"]["code"] == "search_not_allowed"
    assert [e.channel for e in access_log()] == ["api"]


def test_a_masked_role_finds_orders_by_the_masked_form(browser, api, target, create_order):
    create_order(channel_order_id="OTHER", phone="17355550000")
    page = post_search(browser("customer_service"), q=MASKED)
    assert page.status_code == 200 and listed(page, target) and "OTHER" not in page.text
    found = api("finance").search(q=MASKED)
    assert [item["order_no"] for item in found.get_json()["items"]] == [target.order_no]
    entries = access_log()
    assert [(e.action, e.entity_id, e.channel) for e in entries] == [
        ("search", "by:phone_masked; found:1", "portal"), ("search", "by:phone_masked; found:1", "api")]
    assert_value_never_logged(entries)


def test_last_four_digits_alone_or_with_an_order_key(browser, api, target, create_order):
    """The mask shows the last four digits, so a masked role searches by them alone (through their blind index);
    with an order key they narrow to that order."""
    other = create_order(channel_order_id="TM-779", phone="13900001111")
    client = browser("customer_service")
    assert listed(post_search(client, q=target.order_no, phone_last4=LAST4), target)
    assert not listed(post_search(client, q=target.order_no, phone_last4="0000"), target)
    assert listed(post_search(client, q="TM-778", phone_last4=LAST4), target)
    alone = post_search(client, phone_last4=LAST4)
    assert alone.status_code == 200 and listed(alone, target) and not listed(alone, other)
    with_masked = api("customer_service").search(q=MASKED, phone_last4=LAST4)
    assert [item["order_no"] for item in with_masked.get_json()["items"]] == [target.order_no]
    assert [e.entity_id for e in access_log()] == ["by:phone_last4; found:1", "by:phone_last4; found:0",
                                                   "by:phone_last4; found:1", "by:phone_last4; found:1",
                                                   "by:phone_masked; found:1"]
    assert_value_never_logged(access_log())


def test_a_role_that_sees_phones_may_search_by_them_and_is_logged(api, target):
    found = api("ops_manager").search(q=PHONE)
    assert [item["order_no"] for item in found.get_json()["items"]] == [target.order_no]
    assert [(e.action, e.entity_id) for e in access_log()] == [("search", "by:phone; found:1")]


def test_a_role_that_sees_no_phones_cannot_search_by_any_form(api, target):
    response = api("auditor").search(q=MASKED)
    assert response.status_code == 403
    assert [e.action for e in access_log()] == ["search_refused"]


def test_searches_without_personal_values_are_not_logged(api, target):
    searcher = api("customer_service")
    assert searcher.search(q="TM-778").status_code == 200
    assert searcher.get("q=TM-778").status_code == 200
    assert access_log() == []


# --- personal values never in an address -------------------------------------------------------------------

@pytest.mark.parametrize("query", [f"q={PHONE}", "q=173%2A%2A%2A%2A5372", f"q=TM-778&phone_last4={LAST4}"])
def test_personal_values_in_a_query_string_are_refused(browser, api, target, query):
    page = browser("ops_manager").get(f"/orders/?{query}")
    assert page.status_code == 422 and not listed(page, target)
    answer = api("ops_manager").get(query)
    assert answer.status_code == 422 and answer.get_json()["error"]["code"] == "personal_value_in_url"
    assert access_log() == []


def test_the_search_form_posts_and_a_plain_filter_gets_an_address(browser, target):
    client = browser("ops_manager")
    form = client.get("/orders/").text
    assert 'method="post"' in form and 'name="phone_last4"' in form
    plain = post_search(client, q="TM-778", status="confirmed")
    assert plain.status_code == 303 and "q=TM-778" in plain.headers["Location"]


def test_request_log_lines_are_redacted(portal, caplog):
    logger = logging.getLogger("werkzeug")
    with caplog.at_level(logging.INFO, logger="werkzeug"):
        logger.info('%s - - [%s] "%s" %s -', "127.0.0.1", "02/Dec/2026 06:00:00",
                    f"GET /orders/?q={PHONE}&status=shipped HTTP/1.1", 200)
        logger.info("%s", f"POST /track/ phone 86{PHONE} masked 173%2A%2A%2A%2A5372")
    text = caplog.text
    assert PHONE not in text and "5372" not in text
    assert "q=[redacted]&status=shipped" in text


# --- the rate -----------------------------------------------------------------------------------------------

def test_unusual_search_rates_are_refused_and_raise_one_alarm_for_the_auditor(browser, api, target, monkeypatch):
    monkeypatch.setattr(order_search, "PERSONAL_SEARCH_LIMIT", 3)
    searcher = api("customer_service")
    assert [searcher.search(q=MASKED).status_code for _ in range(5)] == [200, 200, 200, 429, 429]
    assert searcher.search(q="TM-778").status_code == 200  # a search by order key is not throttled
    alarms = db.session.scalars(select(FulfilmentAlarm).where(FulfilmentAlarm.kind == "search_rate")).all()
    assert len(alarms) == 1 and alarms[0].role == "auditor" and "a_customer_service" in alarms[0].message
    assert "search.rate_exceeded" in db.session.scalars(select(AuditEvent.action)).all()
    assert [e.action for e in access_log()] == ["search"] * 3 + ["search_refused"] * 2
    board = browser("auditor").get("/fulfilment/")
    assert board.status_code == 200 and "searched orders by personal values" in board.text
    other = api("finance")  # the limit is per user
    assert other.search(q=MASKED).status_code == 200


def test_the_portal_answers_an_unusual_rate_with_429(browser, target, monkeypatch):
    monkeypatch.setattr(order_search, "PERSONAL_SEARCH_LIMIT", 2)
    client = browser("customer_service")
    assert [post_search(client, q=MASKED).status_code for _ in range(3)] == [200, 200, 429]
