"""Markup and SQL typed into any text field are stored as typed and shown escaped on every page."""
import pytest
from sqlalchemy import func, select

from shared.extensions import db
from shared.models import Order, Sku
from shared.services import catalog, orders, stock
from tests.factories import ADMIN, order_payload
from tests.portal_client import csrf_token, english_client, sign_in

MARKUP = '<script>alert("x")</script>'
SQL = "'); DROP TABLE orders; --"

ORDER_FIELDS = {
    "channel_order_id": lambda p, v: p.update(channel_order_id=v),
    "customer.name": lambda p, v: p["customer"].update(name=v),
    "shipping_address.receiver": lambda p, v: p["shipping_address"].update(receiver=v),
    "shipping_address.province": lambda p, v: p["shipping_address"].update(province=v),
    "shipping_address.city": lambda p, v: p["shipping_address"].update(city=v),
    "shipping_address.district": lambda p, v: p["shipping_address"].update(district=v),
    "shipping_address.street": lambda p, v: p["shipping_address"].update(street=v),
}


@pytest.fixture
def ops(portal, create_user):
    create_user("ops_x", "ops_manager")
    client = english_client(portal)
    assert sign_in(client, "ops_x").status_code == 302
    return client


@pytest.mark.parametrize("field", list(ORDER_FIELDS))
@pytest.mark.parametrize("text", [MARKUP, SQL])
def test_order_text_fields(ops, stocked, field, text):
    payload = order_payload()
    ORDER_FIELDS[field](payload, text[:40])
    order = orders.create_order(payload, ADMIN)
    db.session.commit()
    detail = f"/orders/{order.order_no}"
    pages = [ops.get("/orders/").text, ops.get(detail).text,
             ops.post(f"{detail}/reveal", data={"csrf_token": csrf_token(ops, detail)}).text]
    for page in pages:
        assert "<script>alert" not in page
    shown = "".join(pages)
    if text == MARKUP and field in ("channel_order_id", "shipping_address.street", "shipping_address.district"):
        assert "&lt;script&gt;alert(" in shown
    if text == SQL and field == "shipping_address.street":
        assert "DROP TABLE orders" in shown
    assert db.session.scalar(select(func.count()).select_from(Order)) == 1  # the table is still there


def test_sku_warehouse_reason_and_hold_texts(ops, stocked):
    catalog.create_sku({"sku": "X-1", "name": MARKUP}, ADMIN)
    catalog.create_warehouse({"code": "W-X", "name": MARKUP, "province": SQL[:40], "city": "杭州市"}, ADMIN)
    stock.adjust_stock("X-1", "W-X", 3, MARKUP, ADMIN)
    order = orders.create_order(order_payload(lines=[{"sku": "X-1", "quantity": 1, "unit_price": "1.00"}]), ADMIN)
    orders.transition_order(order, "on_hold", ADMIN, reason=MARKUP)
    db.session.commit()
    for url in ("/stock/", "/stock/X-1", "/catalog/", f"/orders/{order.order_no}", "/audit/", "/"):
        page = ops.get(url)
        assert page.status_code == 200, url
        assert "<script>alert" not in page.text, url
    assert db.session.execute(select(Sku.name).where(Sku.code == "X-1")).scalar_one() == MARKUP
