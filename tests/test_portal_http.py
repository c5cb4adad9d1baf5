"""The staff portal over HTTP: sign-in and lockout, CSRF, escaping, filters, paging, actions, masking."""
import pytest
from sqlalchemy import func, select

from shared.extensions import db
from shared.models import AccessLogEntry, AuditEvent, Order, StaffUser
from tests.factories import ADMIN, PASSWORD
from tests.portal_client import csrf_token, english_client, sign_in, step_up


@pytest.fixture
def signed_in(portal, create_user):
    def make(role: str = "admin", username: str | None = None):
        user = create_user(username or f"u_{role}", role)
        client = english_client(portal)
        assert sign_in(client, user.username).status_code == 302
        return client
    return make


def test_sign_in_failures_lock_the_account(portal, create_user):
    user = create_user("locky", "ops_manager")
    client = english_client(portal)
    for _ in range(5):
        assert sign_in(client, "locky", "wrong-password!").status_code == 401
    locked = sign_in(client, "locky", PASSWORD)
    assert locked.status_code == 401 and "locked" in locked.text
    db.session.refresh(user)
    assert user.locked_until is not None
    actions = db.session.execute(select(AuditEvent.action).where(AuditEvent.entity_id == "locky")).scalars().all()
    assert actions.count("user.sign_in_failed") == 5 and "user.sign_in_refused" in actions


def test_unknown_user_and_wrong_password_read_the_same(portal, create_user):
    create_user("known", "admin")
    client = english_client(portal)
    unknown, wrong = sign_in(client, "nobody", "whatever-123"), sign_in(client, "known", "whatever-123")
    assert unknown.status_code == wrong.status_code == 401
    assert "Wrong username or password" in unknown.text and "Wrong username or password" in wrong.text


def test_form_post_without_csrf_token_is_refused_and_changes_nothing(signed_in, create_order):
    order = create_order()
    client = signed_in("ops_manager")
    response = client.post(f"/orders/{order.order_no}/transitions", data={"to": "cancelled", "reason": "csrf"})
    assert response.status_code == 400 and "form expired" in response.text
    db.session.refresh(order)
    assert order.status == "confirmed"
    assert client.post("/sign-in", data={"username": "u_ops_manager", "password": PASSWORD}).status_code == 400


def test_security_headers_and_cookie_flags(portal, create_user):
    create_user("hdr", "admin")
    client = english_client(portal)
    response = sign_in(client, "hdr")
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    page = client.get("/")
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Frame-Options"] == "DENY" and page.headers["X-Content-Type-Options"] == "nosniff"


def test_markup_in_stored_text_is_shown_escaped(signed_in, create_order):
    order = create_order(channel_order_id="<img src=x onerror=alert(1)>",
                         shipping_address={"receiver": "<b>王</b>", "phone": "13812345678", "province": "浙江省",
                                           "city": "杭州市", "district": "<script>alert(1)</script>",
                                           "street": "'; DROP TABLE orders; --"})
    client = signed_in("ops_manager")
    for url in ("/orders/", f"/orders/{order.order_no}"):
        page = client.get(url).text
        assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
        assert "<script>alert(1)</script>" not in page
    assert db.session.scalar(select(func.count()).select_from(Order)) == 1


def test_order_list_filters_and_search(signed_in, create_order, create_channel):
    create_channel("WX", "微信小程序", "wechat")
    a = create_order(channel_order_id="A-1", phone="13900000001")
    b = create_order(channel_order_id="B-2", phone="13900000002", channel="WX", status="shipped")
    client = signed_in("customer_service")

    def listed(query):
        page = client.get(f"/orders/?{query}")
        assert page.status_code == 200, page.text[:500]
        return {o.order_no for o in (a, b) if o.order_no in page.text}

    assert listed("") == {a.order_no, b.order_no}
    assert listed("status=shipped") == {b.order_no}
    assert listed("channel=WX") == {b.order_no}
    def searched(**form):  # personal values travel in the body; customer service sees phones masked
        page = client.post("/orders/", data={**form, "csrf_token": csrf_token(client, "/orders/")})
        assert page.status_code == 200, page.text[:500]
        return {o.order_no for o in (a, b) if o.order_no in page.text}

    assert searched(q="139****0001") == {a.order_no}  # the masked form, found through the blind index
    assert searched(q="B-2", phone_last4="0002") == {b.order_no}
    assert searched(q="B-2", phone_last4="0001") == set()
    assert listed(f"q={a.order_no.lower()}") == {a.order_no}
    assert listed("q=B-2") == {b.order_no}
    assert listed("date_from=2000-01-01&date_to=2000-01-02") == set()


@pytest.mark.parametrize("query, message", [
    ("status=teleported", "Unknown order status"), ("date_from=21/11/2026", "must be a date"),
    ("cursor=not-a-cursor", "cursor is not valid"), ("q=OS20261121000001Z", "check character"),
])
def test_bad_filters_get_a_clear_message(signed_in, create_order, query, message):
    create_order()
    page = signed_in("admin").get(f"/orders/?{query}")
    assert page.status_code == 422 and message in page.text


def test_keyset_pages_cover_every_order_once(signed_in, create_order, portal, monkeypatch):
    import portal.orders as order_views

    monkeypatch.setattr(order_views, "PAGE_SIZE", 3)
    made = {create_order(channel_order_id=f"P-{i}").order_no for i in range(8)}
    client = signed_in("admin")
    seen, url = [], "/orders/"
    while url:
        page = client.get(url).text
        seen += [no for no in made if no in page]
        marker = 'data-testid="next-page" href="'
        url = page.split(marker, 1)[1].split('"', 1)[0].replace("&amp;", "&") if marker in page else None
    assert sorted(seen) == sorted(made) and len(seen) == 8


def test_customer_service_sees_masked_phone_and_cannot_reveal(signed_in, create_order):
    order = create_order(phone="13812345678")
    client = signed_in("customer_service")
    page = client.get(f"/orders/{order.order_no}").text
    assert "138****5678" in page and "13812345678" not in page and "文三路" not in page
    assert 'data-testid="reveal"' not in page
    form = csrf_token(client, f"/orders/{order.order_no}")
    assert client.post(f"/orders/{order.order_no}/reveal", data={"csrf_token": form}).status_code == 403
    assert db.session.scalar(select(func.count()).select_from(AccessLogEntry)) == 0


def test_ops_manager_reveal_is_logged(signed_in, create_order):
    order = create_order(phone="13812345678")
    client = signed_in("ops_manager")
    page = client.get(f"/orders/{order.order_no}").text
    assert "138****5678" in page and "13812345678" not in page
    revealed = client.post(f"/orders/{order.order_no}/reveal",
                           data={"csrf_token": csrf_token(client, f"/orders/{order.order_no}")})
    assert "13812345678" in revealed.text and "文三路 90 号" in revealed.text
    entry = db.session.execute(select(AccessLogEntry)).scalar_one()
    assert (entry.actor_label, entry.action, entry.entity_id, entry.channel) == (
        "u_ops_manager", "reveal", order.order_no, "portal")


def test_auditor_sees_no_personal_data(signed_in, create_order):
    order = create_order(phone="13812345678")
    page = signed_in("auditor").get(f"/orders/{order.order_no}").text
    assert "5678" not in page and "张" not in page and "西湖区" not in page


def test_transition_through_the_form_and_refusal_changes_nothing(signed_in, create_order):
    order = create_order(status="allocated")
    client = signed_in("warehouse")
    detail = f"/orders/{order.order_no}"
    page = client.get(detail).text
    assert 'data-testid="move-picking"' in page and 'data-testid="move-cancelled"' not in page
    moved = client.post(f"{detail}/transitions", data={"to": "picking", "csrf_token": csrf_token(client, detail)})
    assert moved.status_code == 303
    db.session.expire_all()
    assert db.session.get(Order, order.id).status == "picking"
    refused = client.post(f"{detail}/transitions", data={"to": "completed", "csrf_token": csrf_token(client, detail)},
                          follow_redirects=True)
    assert "cannot become Completed" in refused.text
    db.session.expire_all()
    assert db.session.get(Order, order.id).status == "picking"


def test_unknown_and_mistyped_order_numbers_are_404(signed_in, create_order):
    order = create_order()
    client = signed_in("admin")
    typo = order.order_no[:-1] + ("A" if order.order_no[-1] != "A" else "B")
    assert client.get(f"/orders/{typo}").status_code == 404
    assert client.get("/orders/nonsense").status_code == 404


def test_language_follows_the_user_and_can_be_switched(signed_in):
    client = signed_in("admin")
    assert "Orders" in client.get("/").text
    switched = client.post("/language", data={"lang": "zh_CN", "csrf_token": csrf_token(client, "/")})
    assert switched.status_code == 302
    assert db.session.execute(select(StaffUser.locale).where(StaffUser.username == "u_admin")).scalar_one() == "zh_CN"
    assert "订单" in client.get("/").text


def test_users_admin_creates_a_user_and_refuses_a_weak_password(signed_in):
    client = signed_in("admin")
    step_up(client, "u_admin")  # creating an account gives a role: a sensitive operation
    token = csrf_token(client, "/users/")
    weak = client.post("/users/", data={"username": "newbie", "role": "finance", "locale": "en", "password": "short",
                                        "csrf_token": token})
    assert weak.status_code == 422
    assert db.session.scalar(select(func.count()).select_from(StaffUser).where(StaffUser.username == "newbie")) == 0
    created = client.post("/users/", data={"username": "newbie", "role": "finance", "locale": "en",
                                           "password": "a-long-enough-pass", "csrf_token": token})
    assert created.status_code == 303
    assert db.session.execute(select(StaffUser.role).where(StaffUser.username == "newbie")).scalar_one() == "finance"


def test_stock_adjustment_form_refuses_going_below_zero(signed_in, stocked):
    client = signed_in("warehouse")
    token = csrf_token(client, "/stock/")
    response = client.post("/stock/adjust", data={"sku": "SKU-1", "warehouse": "HZ1", "delta": "-50",
                                                  "reason": "lost", "csrf_token": token}, follow_redirects=True)
    assert "cannot go below" in response.text
    assert "20" in client.get("/stock/SKU-1").text


def test_access_log_export_is_csv_and_is_itself_logged(signed_in, create_order):
    from shared.models import AccessLogEntry
    from tests.portal_client import exported_file

    client = signed_in("auditor")
    first_id, _first = exported_file(client, "access_log")
    export_id, response = exported_file(client, "access_log")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    lines = response.data.decode("utf-8-sig").splitlines()
    assert lines[0].startswith(f"# orderloom export {export_id} by ")
    assert lines[1].startswith("id,occurred_at_utc,actor")
    # The first export's making and download are rows of the second export's file.
    assert sum(first_id in line for line in lines[2:]) == 2
    logged = db.session.execute(select(AccessLogEntry.action).where(AccessLogEntry.entity_id == export_id)).scalars()
    assert sorted(logged) == ["download", "export"]


def test_audit_page_verifies_the_chain(signed_in, create_order):
    create_order()
    client = signed_in("auditor")
    result = client.post("/audit/verify", data={"csrf_token": csrf_token(client, "/audit/")})
    assert 'data-testid="chain-ok"' in result.text


def test_portal_refuses_bodies_over_one_mebibyte_and_names_its_cookie(portal, create_user):
    create_user("big", "admin")
    client = english_client(portal)
    response = sign_in(client, "big")
    assert response.headers["Set-Cookie"].startswith("orderloom_portal=")
    huge = client.post("/sign-in", data={"username": "x" * (1024 * 1024 + 10), "password": "y"})
    assert huge.status_code == 413


def test_anonymous_visitors_get_chinese_unless_they_ask_for_english(portal):
    chinese = portal.test_client().get("/sign-in")
    assert '<html lang="zh-CN">' in chinese.text and "登录" in chinese.text
    english = english_client(portal).get("/sign-in")
    assert '<html lang="en">' in english.text and "Staff sign-in" in english.text


def test_sign_in_attempts_per_address_are_limited(portal, create_user, monkeypatch):
    monkeypatch.setitem(portal.config, "SIGN_IN_LIMIT", "3 per 10 minutes")
    create_user("limited", "admin")
    client = english_client(portal)
    statuses = [sign_in(client, f"guess{i}", "not-the-password").status_code for i in range(4)]
    assert statuses == [401, 401, 401, 429]
    assert sign_in(client, "limited").status_code == 429  # even the right password waits


def test_order_list_and_detail_query_counts_do_not_grow_with_rows(signed_in, create_order, backend):
    from sqlalchemy import event

    client = signed_in("ops_manager")
    counted: list[str] = []

    def count(*_args):
        counted.append("q")

    def queries(url: str) -> int:
        counted.clear()
        engine = db.session.get_bind().engine
        event.listen(engine, "before_cursor_execute", count)
        try:
            assert client.get(url).status_code == 200
        finally:
            event.remove(engine, "before_cursor_execute", count)
        return len(counted)

    from shared.services import catalog, stock as stock_service

    first = create_order(lines=[{"sku": "SKU-1", "quantity": 1, "unit_price": "1.00"}])
    few_orders, one_line = queries("/orders/"), queries(f"/orders/{first.order_no}")
    catalog.create_warehouse({"code": "GZ1", "name": "广州仓", "province": "广东省", "city": "广州市"}, ADMIN)
    for n in range(2, 7):
        catalog.create_sku({"sku": f"SKU-{n}", "name": f"商品{n}"}, ADMIN)
        stock_service.adjust_stock(f"SKU-{n}", "GZ1" if n % 2 else "HZ1", 5, "receipt", ADMIN)
    many = create_order(lines=[{"sku": f"SKU-{n}", "quantity": 1, "unit_price": "1.00"} for n in range(1, 7)])
    for i in range(12):
        create_order(channel_order_id=f"N-{i}", lines=[{"sku": f"SKU-{2 + i % 5}", "quantity": 1,
                                                         "unit_price": "1.00"}])
    assert queries("/orders/") == few_orders
    assert queries(f"/orders/{many.order_no}") == one_line
