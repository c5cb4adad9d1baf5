from shared.services import orders, stock
from shared.extensions import db
from tests.factories import ADMIN, order_payload


def test_create_ship(create_order, stocked):
    order = create_order(status="shipped")
    assert order.status == "shipped"
    summary = stock.stock_summary(stocked["sku"])
    assert summary["warehouses"][0]["on_hand"] == 19
    assert summary["warehouses"][0]["reserved"] == 0


def test_portal_pages_render(portal, create_order, create_user):
    order = create_order(status="confirmed")
    create_user("boss", "admin")
    client = portal.test_client()
    page = client.get("/sign-in")
    import re
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.text).group(1)
    response = client.post("/sign-in", data={"username": "boss", "password": "correct-horse-battery", "csrf_token": token})
    assert response.status_code == 302, response.text
    for url in ["/", "/orders/", f"/orders/{order.order_no}", "/stock/", "/stock/SKU-1", "/catalog/", "/users/", "/audit/", "/audit/access-log"]:
        r = client.get(url)
        assert r.status_code == 200, (url, r.text[:2000])
