"""The portal's long lists at any size: the orders list counts up to a cap and then says "more than", loads only
the columns it shows and pages by keyset forward and back; the fulfilment board serves its counts from a
short-lived snapshot whose age it shows. Both backends (the `portal` fixture runs on SQLite and PostgreSQL)."""
import html
import re
from datetime import timedelta

import pytest
from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from shared import snapshots
from shared.extensions import db
from shared.models import Shipment, Warehouse
from shared.services.errors import ValidationFailed
from shared.timekeeping import utc_now
from tests.factories import count_queries
from tests.portal_client import english_client, sign_in

MATCHED = re.compile(r'data-testid="orders-matched"[^>]*>([^<]+)<')


@pytest.fixture
def signed_in(portal, create_user):
    def make(role: str = "ops_manager", locale: str = "en"):
        user = create_user(f"lists_{role}_{locale}", role, locale=locale)
        client = english_client(portal)
        assert sign_in(client, user.username).status_code == 302
        return client
    return make


def matched(page) -> str:
    assert page.status_code == 200, page.text[:500]
    found = MATCHED.search(page.text)
    assert found, "no match count on the page"
    return html.unescape(found.group(1)).strip()


def listed(page, orders) -> list[str]:
    """The order numbers of `orders` on the page, in the order the page shows them."""
    assert page.status_code == 200, page.text[:500]
    return sorted((o.order_no for o in orders if o.order_no in page.text), key=page.text.index)


@pytest.mark.parametrize("page_size", [2, 50])  # 2: counted by a query; 50: one page holds every match
def test_count_is_exact_up_to_the_cap_and_says_more_than_above_it(portal, signed_in, create_order, monkeypatch,
                                                                  page_size):
    import portal.orders as order_views

    monkeypatch.setattr(order_views, "PAGE_SIZE", page_size)
    monkeypatch.setitem(portal.config, "ORDER_LIST_COUNT_CAP", 3)
    made = [create_order(channel_order_id=f"C-{i}") for i in range(3)]
    client, chinese = signed_in(), signed_in(locale="zh_CN")
    assert matched(client.get("/orders/")) == "Matching orders: 3"
    assert matched(chinese.get("/orders/")) == "符合条件的订单：3 个"
    made.append(create_order(channel_order_id="C-3", status="shipped"))
    page = client.get("/orders/")
    assert matched(page) == "More than 3 orders match (not counted further)"
    assert 'data-capped="1"' in page.text and len(listed(page, made)) == min(4, page_size)  # rows shown all the same
    assert matched(chinese.get("/orders/")) == "超过 3 个订单符合条件（未继续计数）"
    # The count follows the filters: under the cap it is exact again.
    assert matched(client.get("/orders/?status=shipped")) == "Matching orders: 1"
    assert matched(client.get("/orders/?status=confirmed")) == "Matching orders: 3"
    assert matched(client.get("/orders/?date_from=2000-01-01&date_to=2000-01-02")) == "Matching orders: 0"
    monkeypatch.setitem(portal.config, "ORDER_LIST_COUNT_CAP", 10_000)
    assert matched(client.get("/orders/")) == "Matching orders: 4"
    second = client.get(_link(client.get("/orders/"), "next-page")) if page_size == 2 else None
    if second is not None:  # a later page counts every match too, not only those after its cursor
        assert matched(second) == "Matching orders: 4"


def test_count_stops_at_the_cap(session, create_order):
    from shared.order_search import count_orders, parse_filters

    for i in range(5):
        create_order(channel_order_id=f"K-{i}")
    filters = parse_filters({}, "Asia/Shanghai")
    assert count_orders(filters, "Asia/Shanghai", 5) == (5, False)
    assert count_orders(filters, "Asia/Shanghai", 4) == (4, True)
    shipped = parse_filters(MultiDict({"status": "shipped"}), "Asia/Shanghai")
    assert count_orders(shipped, "Asia/Shanghai", 4) == (0, False)
    with pytest.raises(ValidationFailed):
        count_orders(filters, "Asia/Shanghai", 0)


def test_bad_filter_shows_the_error_and_no_count(signed_in, create_order):
    create_order()
    page = signed_in().get("/orders/?status=teleported")
    assert page.status_code == 422 and "Unknown order status" in page.text
    assert 'data-testid="orders-matched"' not in page.text


def test_the_list_shows_its_columns_reads_no_street_and_filters_still_work(signed_in, create_order, create_channel,
                                                                         create_warehouse, stocked):
    from shared.services import orders as order_service
    from tests.factories import ADMIN

    create_channel("WX", "微信小程序", "wechat")
    a = create_order(channel_order_id="A-1", phone="13900000001")
    b = create_order(channel_order_id="B-2", phone="13900000002", channel="WX", status="shipped")
    sz = create_warehouse("SZ1", "深圳仓", "广东省", "深圳市")
    c = create_order(channel_order_id="C-3", phone="13900000003")
    order_service.transition_order(c, "on_hold", ADMIN, reason="address")
    c.warehouse_id = sz.id  # set as fixture data: which warehouse it ships from is what the filter reads
    db.session.commit()
    client = signed_in("customer_service")
    with count_queries() as statements:
        page = client.get("/orders/")
    row = page.text.split(a.order_no, 1)[1].split("</tr>", 1)[0]
    assert "官网商城" in row and "A-1" in row and "139****0001" in row and "13900000001" not in page.text
    assert "HZ1" in row and "67.90" in row and "张*" in row  # warehouse code, total, masked receiver
    assert "文三路" not in page.text
    listing = [s for s in statements if "FROM orders" in s and "LIMIT" in s and "count(" not in s.lower()]
    assert listing and all("street" not in s and "platform_ciphertext," not in s for s in listing), listing
    assert not any("JOIN channels" in s or "FROM warehouses WHERE" in s for s in listing)
    assert set(listed(client.get("/orders/?channel=WX"), [a, b, c])) == {b.order_no}
    assert set(listed(client.get("/orders/?status=shipped"), [a, b, c])) == {b.order_no}
    assert set(listed(client.get("/orders/?status=on_hold&status=confirmed"), [a, b, c])) == {a.order_no, c.order_no}
    assert set(listed(client.get("/orders/?warehouse=SZ1"), [a, b, c])) == {c.order_no}
    assert matched(client.get("/orders/?warehouse=SZ1")) == "Matching orders: 1"
    from decimal import Decimal
    b.total, c.total = Decimal("10.00"), Decimal("500.00")  # fixture data: three different totals to sort by
    db.session.commit()
    assert listed(client.get("/orders/?sort=total_asc"), [a, b, c]) == [b.order_no, a.order_no, c.order_no]
    assert listed(client.get("/orders/?sort=total_desc"), [a, b, c]) == [c.order_no, a.order_no, b.order_no]


def _link(page, testid: str) -> str | None:
    found = re.search(rf'data-testid="{testid}" href="([^"]+)"', page.text)
    return html.unescape(found.group(1)) if found else None


@pytest.mark.parametrize("sort", ["placed_desc", "total_asc"])
def test_paging_forward_then_back_shows_the_same_pages(signed_in, create_order, monkeypatch, sort):
    import portal.orders as order_views

    monkeypatch.setattr(order_views, "PAGE_SIZE", 3)
    same_moment = (utc_now() - timedelta(hours=1)).isoformat()  # ties on the sort column: the id decides
    made = [create_order(channel_order_id=f"P-{i}", placed_at=same_moment,
                         lines=[{"sku": "SKU-1", "quantity": 1, "unit_price": f"{10 + i % 3}.00"}])
            for i in range(8)]
    client = signed_in()
    forward, url = [], f"/orders/?sort={sort}"
    assert _link(client.get(url), "prev-page") is None  # the first page has nothing before it
    while url:
        page = client.get(url)
        forward.append(listed(page, made))
        url = _link(page, "next-page")
    assert [len(p) for p in forward] == [3, 3, 2]
    assert sorted(no for p in forward for no in p) == sorted(o.order_no for o in made)  # each exactly once
    backward, url = [forward[-1]], _link(page, "prev-page")
    while url:
        page = client.get(url)
        backward.append(listed(page, made))
        url = _link(page, "prev-page")
    assert backward[::-1] == forward
    assert _link(page, "next-page") is not None  # back on the first page, "next" leads on again
    assert listed(client.get(_link(page, "next-page")), made) == forward[1]


def test_bad_back_cursor_is_refused_clearly(signed_in, create_order):
    create_order()
    page = signed_in().get("/orders/?before=not-a-cursor")
    assert page.status_code == 422 and "cursor is not valid" in page.text


def _open_shipment(order, warehouse_id: int, status: str = "allocated", hours: int = 1) -> None:
    """Fixture data: an open shipment of `order` (the board only reads them)."""
    db.session.add(Shipment(order_id=order.id, warehouse_id=warehouse_id, status=status, priority=0,
                            allocated_at=utc_now() - timedelta(hours=hours),
                            ship_by=utc_now() + timedelta(hours=20)))
    db.session.commit()


def _board_count(page) -> int:
    assert page.status_code == 200, page.text[:500]
    return int(re.search(r'data-testid="in-warehouse">(\d+)<', page.text).group(1))


def test_board_counts_now_when_the_snapshot_max_age_is_zero(portal, signed_in, create_order, stocked):
    assert portal.config["BOARD_COUNTS_MAX_AGE"] == 0  # tests/conftest.py
    warehouse = db.session.execute(select(Warehouse)).scalar_one()
    _open_shipment(create_order(channel_order_id="S-1"), warehouse.id)
    client, chinese = signed_in(), signed_in(locale="zh_CN")
    page = client.get("/fulfilment/")
    assert _board_count(page) == 1 and "Counted just now." in page.text and 'data-age="0"' in page.text
    _open_shipment(create_order(channel_order_id="S-2"), warehouse.id, status="picking")
    assert _board_count(client.get("/fulfilment/")) == 2  # no snapshot kept: counted again
    zh = chinese.get("/fulfilment/")
    assert _board_count(zh) == 2 and "刚刚计数。" in zh.text and "Counted just now." not in zh.text


def test_board_serves_counts_from_a_snapshot_and_shows_its_age(portal, signed_in, create_order, stocked,
                                                                monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(snapshots, "clock", lambda: now[0])
    monkeypatch.setitem(portal.extensions, "orderloom_snapshots", {})  # none from another test's database
    monkeypatch.setitem(portal.config, "BOARD_COUNTS_MAX_AGE", 5)
    warehouse = db.session.execute(select(Warehouse)).scalar_one()
    first = create_order(channel_order_id="S-1")
    _open_shipment(first, warehouse.id)
    client, chinese = signed_in(), signed_in(locale="zh_CN")
    assert _board_count(client.get("/fulfilment/")) == 1
    second = create_order(channel_order_id="S-2")
    _open_shipment(second, warehouse.id)
    now[0] += 3
    page = client.get("/fulfilment/")
    assert _board_count(page) == 1  # the snapshot, 3 s old
    assert "Counts as of 3 s ago (recounted at most every 5 s)." in page.text and 'data-age="3"' in page.text
    assert "计数为 3 秒前的快照（至多每 5 秒重新计数）。" in chinese.get("/fulfilment/").text
    assert first.order_no in page.text and second.order_no in page.text  # the shipment list itself is live
    now[0] += 3
    page = client.get("/fulfilment/")
    assert _board_count(page) == 2 and 'data-age="0"' in page.text  # older than 5 s: counted again
