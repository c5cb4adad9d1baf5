"""After-sales over HTTP: the API (201, 422 with the eligibility codes, transitions and who may fire them, the list),
the portal's queue and request page (filters, photos, decisions, inspection), and the customer site (the entry on a
delivered order, a request with photos, owner scoping, cancel before received, the decline reason shown)."""
import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from shared.actors import Actor
from shared.extensions import db
from shared.models import AfterSale, StockMovement
from shared.services import after_sales, customers
from shared.timekeeping import utc_now
from tests.factories import ADMIN
from tests.portal_client import csrf_token as portal_csrf
from tests.test_after_sales import JPEG, PNG, deliver
from tests.test_api import ApiClient, api_as, token_for  # noqa: F401  (fixtures)

PASSWORD = "correct-horse-battery"
OWN_PHONE, OTHER_PHONE = "13900001111", "13700002222"
TOKEN = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
CS = Actor(id=None, label="cs1", role="customer_service", ip="127.0.0.1")


@pytest.fixture
def delivered(create_order):
    def make(quantity: int = 2, days_ago: float = 1, phone: str = "13812345678"):
        order = create_order(status="shipped", phone=phone,
                             lines=[{"sku": "SKU-1", "quantity": quantity, "unit_price": "59.90"}])
        deliver(order, days_ago)
        return order
    return make


def body(order, kind="return_refund", quantity=1, reason="damaged", **extra) -> dict:
    return {"order_no": order.order_no, "type": kind, "lines": [{"sku": "SKU-1", "quantity": quantity,
                                                                "reason": reason}], **extra}


def error_of(response) -> tuple[int, str, str | None]:
    error = response.get_json()["error"]
    return response.status_code, error["code"], error.get("field")


# --- the API ----------------------------------------------------------------------------------------------------

def test_api_creates_lists_and_moves_a_request(api_as, delivered):
    order = delivered()
    cs, floor, fin = api_as("customer_service"), api_as("warehouse"), api_as("finance")
    created = cs.post("/after-sales", body(order))  # with a pickup: tests/test_after_sales_api_pickups.py
    assert created.status_code == 201, created.get_json()
    case = created.get_json()
    assert (case["state"], case["type"], case["via"], case["return_method"]) == ("requested", "return_refund",
                                                                                "staff", None)
    assert (case["pickup"], case["replacement"]) == (None, None)
    assert case["lines"] == [{"sku": "SKU-1", "quantity": 1, "reason": "damaged", "passed": None, "restocked": None}]
    url = f"/after-sales/{case['id']}/transitions"
    assert error_of(floor.post(url, {"to": "approved"}))[:2] == (403, "forbidden")
    assert error_of(cs.post(url, {"to": "received"}))[:2] == (409, "invalid_transition")
    assert error_of(cs.post(url, {"to": "declined"}))[:2] == (422, "required")
    assert cs.post(url, {"to": "approved"}).get_json()["state"] == "approved"
    assert cs.post(url, {"to": "awaiting_return", "return_method": "drop_off"}).get_json()["return_method"] == (
        "drop_off")
    assert floor.post(url, {"to": "received"}).get_json()["state"] == "received"
    inspected = floor.post(url, {"to": "inspected", "inspection": [{"sku": "SKU-1", "passed": True}]})
    assert inspected.status_code == 200 and inspected.get_json()["lines"][0]["restocked"] is True
    refunded = cs.post(url, {"to": "refunded"}).get_json()
    assert (refunded["state"], refunded["refund_amount"]) == ("refunded", "59.90")
    listed = fin.get(f"/after-sales?order_no={order.order_no}&state=refunded").get_json()
    assert [item["id"] for item in listed["items"]] == [case["id"]] and listed["next_cursor"] is None
    assert fin.get("/after-sales?state=requested").get_json()["items"] == []
    assert error_of(fin.get("/after-sales?state=nope"))[:2] == (422, "unknown_state")
    assert error_of(fin.post("/after-sales", body(order)))[:2] == (403, "forbidden")
    assert error_of(cs.post("/after-sales/999999/transitions", {"to": "approved"}))[:2] == (404,
                                                                                         "after_sale_not_found")


@pytest.mark.parametrize("setup, code", [
    ("not_delivered", "not_delivered"), ("window", "outside_return_window"), ("final_sale", "final_sale"),
    ("quantity", "quantity_exceeds_returnable"),
])
def test_api_refuses_ineligible_requests_with_422_and_the_code(api_as, create_order, delivered, setup, code):
    cs = api_as("customer_service")
    if setup == "not_delivered":
        order = create_order(status="shipped")
    elif setup == "window":
        order = delivered(days_ago=10)
    else:
        order = delivered()
    if setup == "final_sale":
        after_sales.set_policy(None, "SKU-1", 7, True, ADMIN)
        db.session.commit()
    quantity = 3 if setup == "quantity" else 1
    response = cs.post("/after-sales", body(order, quantity=quantity))
    assert error_of(response)[:2] == (422, code)
    assert db.session.execute(select(AfterSale)).first() is None


def test_api_refuses_bad_bodies(api_as, delivered):
    cs, order = api_as("customer_service"), delivered()
    assert error_of(cs.post("/after-sales", {"type": "return_refund"}))[:2] == (422, "required")
    assert error_of(cs.post("/after-sales", {**body(order), "lines": [{"sku": "SKU-1", "quantity": "x",
                                                                      "reason": "damaged"}]}))[:2] == (
        422, "invalid_quantity")
    assert error_of(cs.post("/after-sales", body(order, pickup={"at": "2020-01-01T00:00:00+08:00"})))[:2] == (
        422, "pickup_in_past")
    assert cs.post("/after-sales", body(order, kind="exchange", quantity=3)).status_code == 422
    assert error_of(cs.post("/after-sales", {**body(order), "order_no": "OS20260101000001X"}))[0] in (404, 422)


# --- the portal -----------------------------------------------------------------------------------------------

def post_form(client, url, data, page):
    return client.post(url, data={"csrf_token": portal_csrf(client, page), **data})


def test_the_queue_filters_by_type_state_and_sla_and_sorts(client_for, delivered):
    order = delivered(quantity=3)
    first = after_sales.request_after_sale(order, "return_refund", [{"sku": "SKU-1", "quantity": 1,
                                                                    "reason": "damaged"}], CS)
    second = after_sales.request_after_sale(order, "refund_only", [{"sku": "SKU-1", "quantity": 1,
                                                                   "reason": "quality"}], CS)
    first.due_at = utc_now() - timedelta(hours=1)  # past its SLA
    db.session.commit()
    client = client_for("customer_service")
    rows = lambda text: [int(n) for n in re.findall(r'data-after-sale="(\d+)"', text)]  # noqa: E731
    page = client.get("/after-sales/")
    assert page.status_code == 200 and rows(page.text) == [second.id, first.id]
    assert "<title>After-sales" in page.text
    assert rows(client.get("/after-sales/?sort=oldest").text) == [first.id, second.id]
    assert rows(client.get("/after-sales/?type=refund_only").text) == [second.id]
    assert rows(client.get("/after-sales/?overdue=1").text) == [first.id]
    assert rows(client.get("/after-sales/?sort=due").text) == [first.id, second.id]
    assert rows(client.get("/after-sales/?state=approved").text) == []
    bad = client.get("/after-sales/?state=<b>x</b>")
    assert bad.status_code == 422 and "<b>x</b>" not in bad.text
    assert client_for("auditor").get("/after-sales/").status_code == 200
    zh = client_for("customer_service", locale="zh_CN").get("/after-sales/")
    assert zh.status_code == 200


def test_the_request_page_shows_photos_and_takes_decisions_by_role(client_for, delivered):
    order = delivered()
    case = after_sales.request_after_sale(order, "return_refund", [{"sku": "SKU-1", "quantity": 1,
                                                                   "reason": "damaged"}],
                                          Actor(None, f"customer:{order.customer_id}", "customer"), photos=[JPEG, PNG])
    db.session.commit()
    cs, floor = client_for("customer_service"), client_for("warehouse")
    url = f"/after-sales/{case.id}"
    page = cs.get(url)
    assert page.status_code == 200 and page.text.count('data-testid="photo"') == 2
    assert 'data-testid="move-approved"' in page.text and 'data-testid="move-declined"' in page.text
    assert 'data-testid="move-approved"' not in floor.get(url).text
    photo = cs.get(f"{url}/photos/{case.photos[0].id}")
    assert photo.status_code == 200 and photo.mimetype == "image/jpeg" and photo.data == JPEG
    assert photo.headers["X-Content-Type-Options"] == "nosniff"
    from shared.models import AccessLogEntry
    assert db.session.execute(select(AccessLogEntry.entity_id).where(
        AccessLogEntry.entity_type == "after_sale_photo")).scalars().all() == [str(case.photos[0].id)]
    assert cs.get(f"{url}/photos/999999").status_code == 404
    refused = post_form(cs, f"{url}/transitions", {"to": "declined"}, url)  # no reason
    assert refused.status_code == 422 and after_sales.get_after_sale(case.id).status == "requested"
    assert post_form(floor, f"{url}/transitions", {"to": "approved"}, url).status_code == 422  # not theirs
    db.session.expire_all()
    assert after_sales.get_after_sale(case.id).status == "requested"
    assert post_form(cs, f"{url}/transitions", {"to": "approved"}, url).status_code == 303
    assert post_form(cs, f"{url}/transitions", {"to": "awaiting_return", "return_method": "drop_off"},
                     url).status_code == 303
    assert post_form(floor, f"{url}/transitions", {"to": "received"}, url).status_code == 303
    line_id = case.lines[0].id
    inspected = post_form(floor, f"{url}/transitions", {"to": "inspected", f"passed_{line_id}": "yes",
                                                        f"restock_{line_id}": "yes"}, url)
    assert inspected.status_code == 303
    assert db.session.execute(select(StockMovement).where(StockMovement.kind == "return")).scalar_one().delta == 1
    assert post_form(cs, f"{url}/transitions", {"to": "refunded"}, url).status_code == 303
    db.session.expire_all()
    shown = cs.get(url).text
    assert 'data-testid="refund-amount"' in shown and "59.90" in shown
    assert 'data-event="after_sale.refunded"' in shown
    order_page = cs.get(f"/orders/{order.order_no}").text
    assert f'/after-sales/?order_no={order.order_no}' in order_page


def test_markup_in_a_decline_reason_is_escaped(client_for, delivered):
    order = delivered()
    case = after_sales.request_after_sale(order, "refund_only", [{"sku": "SKU-1", "quantity": 1,
                                                                 "reason": "damaged"}], CS)
    db.session.commit()
    cs = client_for("customer_service")
    url = f"/after-sales/{case.id}"
    post_form(cs, f"{url}/transitions", {"to": "declined", "reason": "<script>alert(1)</script>"}, url)
    page = cs.get(url).text
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page


# --- the customer site ----------------------------------------------------------------------------------------

@pytest.fixture
def shopper(customer_app, session):
    customers.create_account("李雷", OWN_PHONE, "li.lei@example.com", PASSWORD, ADMIN)
    customers.create_account("韩梅梅", OTHER_PHONE, "han@example.com", PASSWORD, ADMIN)
    db.session.commit()
    client = customer_app.test_client()
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    token = TOKEN.search(client.get("/sign-in").text).group(1)
    assert client.post("/sign-in", data={"email": "li.lei@example.com", "password": PASSWORD,
                                         "csrf_token": token}).status_code == 302
    return client


def customer_post(client, url, data, page, **kwargs):
    token = TOKEN.search(client.get(page).text).group(1)
    return client.post(url, data={"csrf_token": token, **data}, **kwargs)


def test_a_delivered_order_offers_after_sales_one_click_away_and_takes_a_request_with_photos(shopper, delivered):
    from io import BytesIO

    order = delivered(quantity=2, phone=OWN_PHONE)
    page = shopper.get(f"/orders/{order.order_no}")
    assert 'data-testid="request-after-sales"' in page.text
    form_url = f"/orders/{order.order_no}/after-sales/new"
    assert form_url in page.text and shopper.get(form_url).status_code == 200
    sent = customer_post(shopper, f"/orders/{order.order_no}/after-sales",
                         {"type": "return_refund", "quantity_SKU-1": "1", "reason_SKU-1": "damaged",
                          "photos": [(BytesIO(JPEG), "a.jpg"), (BytesIO(PNG), "b.png")]}, form_url,
                         content_type="multipart/form-data")
    assert sent.status_code == 303, sent.text[:500]
    case = db.session.execute(select(AfterSale)).scalar_one()
    assert (case.via, len(case.photos), case.lines[0].quantity) == ("customer", 2, 1)
    detail = shopper.get(sent.headers["Location"])
    assert detail.status_code == 200 and "Requested" in detail.text
    assert shopper.get(f"/orders/{order.order_no}/after-sales/{case.id}/photos/{case.photos[0].id}").data == JPEG
    assert f'data-after-sale="{case.id}"' in shopper.get(f"/orders/{order.order_no}").text


def test_a_photo_that_is_not_an_image_or_too_large_is_refused_and_nothing_saved(shopper, delivered):
    from io import BytesIO

    order = delivered(phone=OWN_PHONE)
    form_url = f"/orders/{order.order_no}/after-sales/new"
    for upload in ((BytesIO(b"%PDF-1.4 not a photo"), "photo.jpg"),
                   (BytesIO(JPEG + b"\x00" * after_sales.MAX_PHOTO_BYTES), "big.jpg")):
        sent = customer_post(shopper, f"/orders/{order.order_no}/after-sales",
                             {"type": "return_refund", "quantity_SKU-1": "1", "reason_SKU-1": "damaged",
                              "photos": [upload]}, form_url, content_type="multipart/form-data")
        assert sent.status_code == 422 and "Your request was not sent" in sent.text
    assert db.session.execute(select(AfterSale)).first() is None


def test_another_customers_request_is_404_by_url(shopper, delivered):
    own, foreign = delivered(phone=OWN_PHONE), delivered(phone=OTHER_PHONE)
    theirs = after_sales.request_after_sale(foreign, "refund_only", [{"sku": "SKU-1", "quantity": 1,
                                                                     "reason": "damaged"}], CS, photos=[JPEG])
    mine = after_sales.request_after_sale(own, "refund_only", [{"sku": "SKU-1", "quantity": 1,
                                                              "reason": "damaged"}], CS)
    db.session.commit()
    for url in (f"/orders/{foreign.order_no}/after-sales/{theirs.id}",
                f"/orders/{own.order_no}/after-sales/{theirs.id}",
                f"/orders/{own.order_no}/after-sales/{theirs.id}/photos/{theirs.photos[0].id}",
                f"/orders/{foreign.order_no}/after-sales/new"):
        assert shopper.get(url).status_code == 404, url
    page = f"/orders/{own.order_no}/after-sales/{mine.id}"
    assert customer_post(shopper, f"/orders/{own.order_no}/after-sales/{theirs.id}/cancel", {},
                         page).status_code == 404
    db.session.expire_all()
    assert after_sales.get_after_sale(theirs.id).status == "requested"


def test_the_customer_sees_the_decline_reason_and_cancels_only_before_received(shopper, delivered):
    order = delivered(quantity=2, phone=OWN_PHONE)
    declined = after_sales.request_after_sale(order, "return_refund", [{"sku": "SKU-1", "quantity": 1,
                                                                       "reason": "damaged"}], CS)
    after_sales.transition(declined, "declined", CS, reason="照片显示商品完好")
    live = after_sales.request_after_sale(order, "return_refund", [{"sku": "SKU-1", "quantity": 1,
                                                                   "reason": "damaged"}], CS)
    after_sales.transition(live, "approved", CS)
    db.session.commit()
    assert "照片显示商品完好" in shopper.get(f"/orders/{order.order_no}/after-sales/{declined.id}").text
    assert "照片显示商品完好" in shopper.get(f"/orders/{order.order_no}").text
    page = f"/orders/{order.order_no}/after-sales/{live.id}"
    shown = shopper.get(page).text
    assert 'data-testid="cancel-after-sale"' in shown and 'data-testid="book-return"' in shown
    booked = customer_post(shopper, f"{page}/return", {"return_method": "drop_off"}, page)
    assert booked.status_code == 303
    db.session.expire_all()
    assert after_sales.get_after_sale(live.id).status == "awaiting_return"
    assert "杭州仓" in shopper.get(page).text
    after_sales.transition(after_sales.get_after_sale(live.id), "received",
                           Actor(None, "wh1", "warehouse"))
    db.session.commit()
    assert 'data-testid="cancel-after-sale"' not in shopper.get(page).text
    assert customer_post(shopper, f"{page}/cancel", {}, page).status_code == 303
    db.session.expire_all()
    assert after_sales.get_after_sale(live.id).status == "received"


def test_an_undelivered_order_offers_no_request_and_a_guest_is_asked_to_sign_in(shopper, customer_app, create_order):
    order = create_order(phone=OWN_PHONE)  # confirmed, not shipped
    page = shopper.get(f"/orders/{order.order_no}").text
    assert 'data-testid="request-after-sales"' not in page and "once the order is delivered" in page
    guest = customer_app.test_client()
    guest.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    assert guest.get(f"/orders/{order.order_no}/after-sales/new").status_code == 302  # sign in first


def test_the_merchant_edits_reasons_and_return_windows_and_others_only_read_them(client_for, delivered):
    delivered()
    cs, floor = client_for("customer_service"), client_for("warehouse")
    page = "/after-sales/settings"
    assert 'data-reason="no_reason_7_days"' in cs.get(page).text and 'data-testid="save-reason"' in cs.get(page).text
    assert floor.get(page).status_code == 200 and 'data-testid="save-reason"' not in floor.get(page).text
    assert post_form(floor, "/after-sales/settings/reasons", {"code": "late", "label_zh": "物流慢",
                                                              "label_en": "Slow"}, page).status_code == 403
    saved = post_form(cs, "/after-sales/settings/reasons", {"code": "late", "label_zh": "物流慢", "label_en": "Slow",
                                                           "active": "yes"}, page)
    assert saved.status_code == 303 and "late" in {r.code for r in after_sales.reasons()}
    bad = post_form(cs, "/after-sales/settings/reasons", {"code": "Bad Code", "label_zh": "x", "label_en": "x"}, page)
    assert bad.status_code == 422 and "Bad Code" not in {r.code for r in after_sales.reasons(False)}
    assert post_form(cs, "/after-sales/settings/policies", {"channel": "OS", "sku": "SKU-1", "return_days": "15",
                                                           "final_sale": "no"}, page).status_code == 303
    assert post_form(cs, "/after-sales/settings/policies", {"return_days": "-3"}, page).status_code == 422
    shown = cs.get(page).text
    assert "SKU-1" in shown and ">15<" in shown
