"""The customer self-service site: sign-in and lockout, CSRF, owner-scoped orders, guest look-up, timeline."""
import re
from datetime import date, timedelta
from html import unescape

import pytest
import sqlalchemy as sa
from flask_babel import force_locale, gettext
from sqlalchemy import select

from customer_site import access
from shared import order_numbers
from shared.extensions import db, limiter
from shared.models import AuditEvent, Customer
from shared.paging import encode_cursor
from shared.services import customers, orders
from shared.timekeeping import utc_now
from tests.factories import ADMIN, order_payload

PASSWORD = "correct-horse-battery"
OWN_PHONE = "13900001111"
OTHER_PHONE = "13700002222"
TOKEN = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
STEP = re.compile(r'<li class="step step-(\w+)" data-step="(\w+)" data-state="\w+"[^>]*>\s*'
                  r'<span class="step-label">[^<]*</span>\s*(?:<time datetime="([^"]+)")?')
NOT_FOUND_TEXT = "We found no order with this number and phone."


@pytest.fixture(autouse=True)
def fresh_limits(customer_app):
    """Every test starts with empty rate-limit counters."""
    limiter.reset()
    yield
    limiter.reset()


@pytest.fixture
def client(customer_app):
    """A browser that prefers English, so that assertions can read the English msgids."""
    browser = customer_app.test_client()
    browser.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    return browser


@pytest.fixture
def account(session):
    customer = customers.create_account("李雷", OWN_PHONE, "li.lei@example.com", PASSWORD, ADMIN)
    db.session.commit()
    return customer


@pytest.fixture
def other_account(session):
    customer = customers.create_account("韩梅梅", OTHER_PHONE, "han@example.com", PASSWORD, ADMIN)
    db.session.commit()
    return customer


def csrf_token(client, url: str = "/sign-in") -> str:
    page = client.get(url)
    match = TOKEN.search(page.text)
    assert match, page.text[:2000]
    return match.group(1)


def sign_in(client, email: str = "li.lei@example.com", password: str = PASSWORD, next_url: str | None = None):
    token = csrf_token(client)
    url = "/sign-in" + (f"?next={next_url}" if next_url else "")
    return client.post(url, data={"email": email, "password": password, "csrf_token": token})


def look_up(client, order_no: str, last4: str):
    token = csrf_token(client, "/track/")
    return client.post("/track/", data={"order_no": order_no, "phone_last4": last4, "csrf_token": token})


def audit_actions(entity_id) -> list[str]:
    return db.session.execute(select(AuditEvent.action).where(AuditEvent.entity_type == "customer",
                                                             AuditEvent.entity_id == str(entity_id))
                              .order_by(AuditEvent.id)).scalars().all()


def reload(customer: Customer) -> Customer:
    db.session.expire_all()
    return db.session.get(Customer, customer.id)


# Sign-in, lockout, sign-out


def test_sign_in_with_email_and_password(client, account):
    response = sign_in(client, email="  LI.LEI@example.com ")
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/orders/")
    assert client.get("/orders/").status_code == 200
    assert client.get("/").headers["Location"].endswith("/orders/")
    assert "customer.sign_in" in audit_actions(account.id)
    assert "orderloom_customer" in response.headers.get("Set-Cookie", "")


def test_wrong_password_is_refused_and_counted(client, account):
    response = sign_in(client, password="wrong-password-123")
    assert response.status_code == 401
    assert "Wrong email or password" in response.text
    assert reload(account).failed_logins == 1
    assert "customer.sign_in_failed" in audit_actions(account.id)
    follow = client.get("/orders/")
    assert follow.status_code == 302 and "/sign-in" in follow.headers["Location"]


def test_unknown_email_gets_the_same_answer_as_a_wrong_password(client, account):
    unknown = sign_in(client, email="nobody@example.com")
    wrong = sign_in(client, password="wrong-password-123")
    assert unknown.status_code == wrong.status_code == 401
    assert "Wrong email or password" in unknown.text and "Wrong email or password" in wrong.text


def test_five_failures_lock_the_account_for_a_while(client, account, customer_app):
    assert customer_app.config["LOGIN_MAX_FAILURES"] == 5
    for _ in range(5):
        assert sign_in(client, password="wrong-password-123").status_code == 401
    locked = reload(account)
    assert locked.locked_until is not None
    assert timedelta(minutes=14) < locked.locked_until - utc_now() <= timedelta(minutes=15)

    refused = sign_in(client)  # the right password does not open a locked account
    assert refused.status_code == 401
    assert "locked after repeated failures" in refused.text
    assert client.get("/orders/").status_code == 302
    assert "customer.sign_in_refused" in audit_actions(account.id)

    locked.locked_until = utc_now() - timedelta(seconds=1)  # the lock has run out
    db.session.commit()
    assert sign_in(client).status_code == 302
    assert reload(account).failed_logins == 0


def test_four_failures_do_not_lock(client, account):
    for _ in range(4):
        sign_in(client, password="wrong-password-123")
    assert reload(account).locked_until is None
    assert sign_in(client).status_code == 302


def test_sign_out_is_a_post_and_ends_the_session(client, account):
    sign_in(client)
    assert client.get("/sign-out").status_code == 405
    assert client.get("/orders/").status_code == 200
    response = client.post("/sign-out", data={"csrf_token": csrf_token(client, "/orders/")})
    assert response.status_code == 302
    assert client.get("/orders/").status_code == 302


def test_next_is_followed_only_within_the_site(client, account, create_order):
    order = create_order(phone=OWN_PHONE)
    assert sign_in(client, next_url=f"/orders/{order.order_no}").headers["Location"].endswith(
        f"/orders/{order.order_no}")
    client.post("/sign-out", data={"csrf_token": csrf_token(client, "/orders/")})
    assert sign_in(client, next_url="//evil.example/x").headers["Location"].endswith("/orders/")


# CSRF


def test_csrf_is_enforced_on_every_form(client, account, customer_app):
    assert customer_app.config["TESTING"] is True
    refused = client.post("/sign-in", data={"email": "li.lei@example.com", "password": PASSWORD})
    assert refused.status_code == 400
    assert "This form has expired" in refused.text
    assert client.get("/orders/").status_code == 302  # not signed in
    assert reload(account).failed_logins == 0

    assert client.post("/track/", data={"order_no": "X", "phone_last4": "1111"}).status_code == 400
    assert client.post("/language", data={"lang": "en"}).status_code == 400

    assert sign_in(client).status_code == 302  # with the token from the rendered form it works
    assert client.post("/sign-out").status_code == 400
    assert client.get("/orders/").status_code == 200  # still signed in


# My orders and owner scoping


def test_my_orders_lists_only_own_orders_newest_first(client, account, other_account, create_order):
    now = utc_now()
    older = create_order(phone=OWN_PHONE, placed_at=(now - timedelta(days=2)).isoformat())
    newer = create_order(phone=OWN_PHONE, placed_at=(now - timedelta(hours=1)).isoformat())
    foreign = create_order(phone=OTHER_PHONE)
    sign_in(client)
    page = client.get("/orders/")
    assert page.status_code == 200
    listed = re.findall(r'data-order="([^"]+)"', page.text)
    assert listed == [newer.order_no, older.order_no]
    assert foreign.order_no not in page.text
    assert "官网商城" in page.text  # channel name
    assert "CNY 67.90" in page.text
    assert "Order confirmed" in page.text  # customer-facing status label


def test_my_orders_time_is_shown_in_shanghai(client, account, create_order):
    create_order(phone=OWN_PHONE, placed_at="2026-01-10T23:30:00+00:00")
    sign_in(client)
    page = client.get("/orders/").text
    assert "2026-01-11 07:30" in page


def test_my_orders_pages_by_cursor_without_gaps_or_repeats(client, account, create_order, monkeypatch):
    same_moment = (utc_now() - timedelta(hours=3)).isoformat()  # equal times: the id breaks the tie
    made = {create_order(phone=OWN_PHONE, placed_at=same_moment).order_no for _ in range(3)}
    made.add(create_order(phone=OWN_PHONE).order_no)
    monkeypatch.setattr(access, "PAGE_SIZE", 3)
    sign_in(client)
    first = client.get("/orders/").text
    seen = re.findall(r'data-order="([^"]+)"', first)
    assert len(seen) == 3
    cursor = unescape(re.search(r'href="/orders/\?cursor=([^"]+)" rel="next"', first).group(1))
    second = client.get("/orders/", query_string={"cursor": cursor}).text
    rest = re.findall(r'data-order="([^"]+)"', second)
    assert 'rel="next"' not in second
    assert set(seen) | set(rest) == made and len(seen) + len(rest) == 4


def test_a_broken_cursor_is_a_clear_error(client, account):
    sign_in(client)
    assert client.get("/orders/?cursor=not-a-cursor").status_code == 422
    forged = encode_cursor(12345, 1)  # well-formed, but not a time
    assert client.get(f"/orders/?cursor={forged}").status_code == 422


def test_another_customers_order_is_404_when_signed_in(client, account, other_account, create_order):
    own = create_order(phone=OWN_PHONE)
    foreign = create_order(phone=OTHER_PHONE)
    sign_in(client)
    assert client.get(f"/orders/{own.order_no}").status_code == 200
    for url in (f"/orders/{foreign.order_no}", f"/orders/{foreign.order_no.lower()}", f"/track/{foreign.order_no}",
                f"/track/{own.order_no}", "/orders/not-a-number", f"/orders/{foreign.id}"):
        response = client.get(url)
        assert response.status_code == 404, url
        assert foreign.order_no not in response.text


def test_another_customers_order_is_404_for_a_guest(client, account, create_order):
    own = create_order(phone=OWN_PHONE)
    foreign = create_order(phone=OTHER_PHONE)
    assert client.get(f"/track/{foreign.order_no}").status_code == 404  # nothing looked up yet
    assert look_up(client, own.order_no, OWN_PHONE[-4:]).status_code == 302
    assert client.get(f"/track/{own.order_no}").status_code == 200
    assert client.get(f"/track/{foreign.order_no}").status_code == 404
    assert client.get(f"/orders/{own.order_no}").status_code == 302  # the account pages need a sign-in


def test_scoped_queries_filter_in_sql(customer_app, account, other_account, create_order):
    own = create_order(phone=OWN_PHONE)
    foreign = create_order(phone=OTHER_PHONE)
    with customer_app.test_request_context():
        assert access.order_for_customer_or_404(account, own.order_no).id == own.id
        with pytest.raises(Exception) as refused:
            access.order_for_customer_or_404(account, foreign.order_no)
        assert getattr(refused.value, "code", None) == 404
        assert access.order_for_guest_or_404([foreign.id], foreign.order_no).id == foreign.id
        for ids in ([own.id], [], None, ["1"]):
            with pytest.raises(Exception) as refused:
                access.order_for_guest_or_404(ids, foreign.order_no)
            assert getattr(refused.value, "code", None) == 404


# Guest look-up


def test_guest_lookup_finds_the_order_and_masks_personal_data(client, create_order):
    order = create_order(phone=OWN_PHONE)
    response = look_up(client, f"  {order.order_no.lower()} ", OWN_PHONE[-4:])
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/track/{order.order_no}")
    page = client.get(f"/track/{order.order_no}")
    assert page.status_code == 200
    assert order.order_no in page.text
    assert "139****1111" in page.text and OWN_PHONE not in page.text
    assert "文三路" not in page.text and "张伟" not in page.text  # a guest sees district and initial only
    assert "西湖区" in page.text and "张*" in page.text
    with client.session_transaction() as state:
        assert state[access.GUEST_ORDERS_KEY] == [order.id]


def test_signed_in_customer_sees_own_address_but_a_masked_phone(client, account, create_order):
    order = create_order(phone=OWN_PHONE)
    sign_in(client)
    page = client.get(f"/orders/{order.order_no}").text
    assert "文三路 90 号 3 幢 501" in page and "张伟" in page
    assert "139****1111" in page and OWN_PHONE not in page


def test_wrong_last_four_and_unknown_order_give_the_same_answer(client, create_order):
    order = create_order(phone=OWN_PHONE)
    body = order.order_no[:-1]
    sequence = int(body[-6:])
    unknown = order_numbers.compose(body[:2], date(2020, 1, 1), sequence)
    wrong = look_up(client, order.order_no, "0000")
    missing = look_up(client, unknown, OWN_PHONE[-4:])
    assert wrong.status_code == missing.status_code == 404
    assert NOT_FOUND_TEXT in wrong.text and NOT_FOUND_TEXT in missing.text

    def error_of(page):
        return re.search(r'data-testid="lookup-error">([^<]+)<', page.text).group(1)

    assert error_of(wrong) == error_of(missing)
    assert client.get(f"/track/{order.order_no}").status_code == 404
    with client.session_transaction() as state:
        assert not state.get(access.GUEST_ORDERS_KEY)


@pytest.fixture
def order_queries(apps):
    """The SQL statements that touch the orders table while the block runs."""
    seen: list[str] = []

    def listen(_conn, _cursor, statement, *_args):
        if re.search(r"\bFROM orders\b", statement):
            seen.append(statement)

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", listen)
    yield seen
    sa.event.remove(sa.engine.Engine, "before_cursor_execute", listen)


def test_malformed_order_number_is_a_clear_error_without_lookup(client, create_order, order_queries):
    order = create_order(phone=OWN_PHONE)
    token = csrf_token(client, "/track/")
    order_queries.clear()
    response = client.post("/track/", data={"order_no": "OS2026-12", "phone_last4": "1111", "csrf_token": token})
    assert response.status_code == 422
    assert "This is not an order number." in response.text
    assert NOT_FOUND_TEXT not in response.text
    assert order_queries == []
    assert order.order_no not in response.text


def test_mistyped_order_number_fails_its_check_without_lookup(client, create_order, order_queries):
    order = create_order(phone=OWN_PHONE)
    check = order.order_no[-1]
    mistyped = order.order_no[:-1] + ("A" if check != "A" else "B")
    assert order_numbers.PATTERN.match(mistyped)  # well-formed, only the check character is off
    token = csrf_token(client, "/track/")
    order_queries.clear()
    response = client.post("/track/", data={"order_no": mistyped, "phone_last4": "1111", "csrf_token": token})
    assert response.status_code == 422
    assert "does not add up" in response.text
    assert order_queries == []


def test_last_four_must_be_four_digits(client, create_order, order_queries):
    order_no = create_order(phone=OWN_PHONE).order_no
    token = csrf_token(client, "/track/")
    order_queries.clear()
    response = client.post("/track/", data={"order_no": order_no, "phone_last4": "11a1", "csrf_token": token})
    assert response.status_code == 422
    assert "Enter exactly four digits." in response.text
    assert order_queries == []


def test_guest_lookup_is_rate_limited(client, create_order, customer_app):
    assert customer_app.config["GUEST_LOOKUP_LIMIT"] == "5 per 10 minutes"
    order = create_order(phone=OWN_PHONE)
    for _ in range(5):
        assert look_up(client, order.order_no, "0000").status_code == 404
    limited = look_up(client, order.order_no, OWN_PHONE[-4:])  # even the right answer waits now
    assert limited.status_code == 429
    assert "Too many attempts" in limited.text
    assert client.get(f"/track/{order.order_no}").status_code == 404
    assert client.get("/track/").status_code == 200  # only look-ups count, not showing the form


def test_rate_limit_counts_per_remote_address(client, create_order):
    order, decoy = create_order(phone=OWN_PHONE), create_order(phone=OTHER_PHONE)
    for _ in range(5):  # wrong tries at another order: this order's own count (5 lock it) stays at zero
        look_up(client, decoy.order_no, "0000")
    assert look_up(client, decoy.order_no, "0000").status_code == 429
    token = csrf_token(client, "/track/")
    other = client.post("/track/", data={"order_no": order.order_no, "phone_last4": OWN_PHONE[-4:],
                                         "csrf_token": token}, environ_base={"REMOTE_ADDR": "10.0.0.9"})
    assert other.status_code == 302


# Timeline


def steps_of(page: str) -> list[tuple[str, str, str | None]]:
    return [(code, state, at or None) for state, code, at in STEP.findall(page)]


def test_timeline_shows_the_reached_steps_in_order(client, account, create_order):
    order = create_order(phone=OWN_PHONE, status="shipped")
    sign_in(client)
    page = client.get(f"/orders/{order.order_no}").text
    steps = steps_of(page)
    assert [(code, state) for code, state, _ in steps] == [
        ("pending_review", "done"), ("confirmed", "done"), ("allocated", "done"), ("packed", "done"),
        ("shipped", "current"), ("completed", "todo")]
    times = [at for _, state, at in steps if state in ("done", "current")]
    assert all(times) and times == sorted(times)
    assert steps[-1][2] is None
    assert 'aria-current="step"' in page and "On its way" in page


def test_timeline_marks_a_paused_order(client, account, create_order):
    order = create_order(phone=OWN_PHONE, status="on_hold")  # paid orders are confirmed, then held
    sign_in(client)
    page = client.get(f"/orders/{order.order_no}").text
    assert 'data-testid="interruption"' in page and "Paused: we will contact you" in page
    states = {code: state for code, state, _ in steps_of(page)}
    assert states["confirmed"] == "current" and states["packed"] == "todo"


def test_timeline_marks_a_cancelled_order(client, account, create_order):
    order = create_order(phone=OWN_PHONE, status="cancelled")
    sign_in(client)
    page = client.get(f"/orders/{order.order_no}").text
    assert "This order was cancelled." in page
    states = {code: state for code, state, _ in steps_of(page)}
    assert states["pending_review"] == states["confirmed"] == "done"
    assert states["shipped"] == "stopped" and "current" not in states.values()


# Escaping, language


def test_stored_markup_is_rendered_escaped(client, account, stocked):
    payload = order_payload(phone=OWN_PHONE)
    payload["shipping_address"].update(street="<script>alert(1)</script>", receiver="<img src=x onerror=alert(2)>")
    order = orders.create_order(payload, ADMIN)
    db.session.commit()
    sign_in(client)
    page = client.get(f"/orders/{order.order_no}").text
    assert "<script>alert(1)</script>" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(2)&gt;" in page


def test_language_switch_is_kept_in_the_session(client, customer_app):
    token = csrf_token(client, "/")
    for chosen, kept in (("zh_CN", "zh_CN"), ("xx", "zh_CN"), ("en", "en")):
        response = client.post("/language", data={"lang": chosen, "csrf_token": token},
                               headers={"Referer": "https://evil.example/"})
        assert response.status_code == 302 and response.headers["Location"] == "/"  # no open redirect
        with client.session_transaction() as state:
            assert state["lang"] == kept
    page = client.get("/").text
    assert "Where is my order?" in page and '<html lang="en">' in page
    client.post("/language", data={"lang": "zh_CN", "csrf_token": token})
    with customer_app.test_request_context("/"), force_locale("zh_CN"):
        chinese = gettext("Where is my order?")
    page = client.get("/").text
    assert chinese in page  # the session's choice beats the browser's Accept-Language: en
    assert '<html lang="zh-CN">' in page


def test_pages_render_for_visitors(client):
    for url in ("/", "/sign-in", "/track/", "/healthz"):
        response = client.get(url)
        assert response.status_code == 200, url
        assert response.headers["X-Frame-Options"] == "DENY"
    assert client.get("/no-such-page").status_code == 404


def test_each_kind_of_caller_is_told_to_sign_in_its_own_way(client):
    assert client.get("/orders/", headers={"HX-Request": "true"}).headers["HX-Redirect"].startswith("/sign-in")
    answer = client.get("/orders/", headers={"Accept": "application/json"})
    assert answer.status_code == 401 and answer.json["error"]["code"] == "unauthenticated"
    missing = client.get("/track/OS20200101000001X", headers={"Accept": "application/json"})
    assert missing.status_code == 404 and missing.json["error"]["code"] == "not_found"


def test_a_staff_session_id_never_loads_a_customer(customer_app, account):
    from flask import session as browser_session

    from shared.security import sessions

    with customer_app.test_request_context():
        sessions.start(browser_session, account)
        assert access.load_customer(f"customer:{account.id}").id == account.id
        assert access.load_customer(f"staff:{account.id}") is None
        assert access.load_customer("customer:x") is None


def test_customer_site_refuses_large_bodies_and_names_its_cookie(client, account):
    signed = sign_in(client)
    assert signed.headers["Set-Cookie"].startswith("orderloom_customer=")
    assert client.post("/sign-in", data={"email": "x" * (64 * 1024 + 10), "password": "y"}).status_code == 413
