"""Amounts as the platforms state them today, through the real inbox and service on SQLite and PostgreSQL.

The `current_*.json` fixtures (tests/fixtures/channels/README.md names each one's source) carry item-level
promotions, coupons, fee lines, tax, tips, cash on delivery and lines without a merchant SKU code. Each is
stored raw, processed by the worker's job, and must become an order whose stored amounts are the platform's
own paid figure; amounts that truly disagree still go to review with the gap named.
"""
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from jobs.sync import process_inbox
from shared.extensions import db
from shared.models import AuditEvent, InboxItem, Order, SkuMapping, StockLevel
from shared.services import channel_settings, inbox
from shared.services.errors import ValidationFailed
from shared.services.orders import GUARDS
from tests import channel_payloads as p
from tests.factories import ADMIN
from tests.portal_client import csrf_token
from tests.test_fulfilment import floor  # noqa: F401  (a fixture)
from tests.test_shipping import carriers, portal_with_carriers  # noqa: F401  (fixtures)

FIXTURES = Path(__file__).parent / "fixtures" / "channels"
D = Decimal

# What a merchant maps for lines that carry no merchant code (or a code of their own): (kind, value, our SKU).
MAPPINGS = {
    "douyin/current_promotions": [("variant", "1700001966520002", "SKU-0004")],
    "jd/current_coupons": [("variant", "100012345602", "SKU-0005")],
    "pinduoduo/current_discount_parts": [("product", "312345678902", "SKU-0003")],
    "shopify/current_cash_on_delivery": [("variant", "40000000000201", "SKU-0002")],
    "shopify/current_paid_tax_tip": [("variant", "40000000000102", "SKU-0004")],
    "shopify/current_webhook_sample": [("code", "IPOD2008PINK", "SKU-0001")],
    "woocommerce/current_cash_on_delivery_fee": [("product", "44", "SKU-0003")],
    "woocommerce/current_docs_example": [("product", "93", "SKU-0004"), ("code", "Bar3", "SKU-0005")],
}
# The platform's own figures: (goods, discount, shipping, fees, tax, paid = the stored total, payment, status).
EXPECTED = {
    "douyin/current_cash_on_delivery": ("99.00", "0.00", "0.00", "0.00", "0.00", "99.00", "unpaid", "confirmed"),
    "douyin/current_promotions": ("258.80", "30.80", "6.00", "0.00", "0.00", "234.00", "paid", "confirmed"),
    "jd/current_cash_on_delivery": ("99.00", "0.00", "0.00", "0.00", "0.00", "99.00", "unpaid", "confirmed"),
    "jd/current_coupons": ("258.00", "39.00", "6.00", "0.00", "0.00", "225.00", "paid", "confirmed"),
    "pinduoduo/current_discount_parts": ("89.70", "12.30", "0.00", "0.00", "0.00", "77.40", "paid", "confirmed"),
    "shopify/current_cash_on_delivery": ("49.99", "0.00", "4.99", "0.00", "4.44", "59.42", "unpaid", "confirmed"),
    "shopify/current_paid_tax_tip": ("69.89", "11.98", "9.99", "5.00", "5.43", "78.33", "paid", "confirmed"),
    "shopify/current_webhook_sample": ("398.00", "5.00", "10.00", "0.00", "0.00", "403.00", "unpaid", "cancelled"),
    "taobao/current_tmall_item_without_sku": ("129.00", "14.50", "0.00", "0.00", "0.00", "114.50", "paid",
                                              "confirmed"),
    "taobao/current_two_items_promotions": ("188.80", "29.80", "8.00", "0.00", "0.00", "167.00", "paid",
                                            "confirmed"),
    "woocommerce/current_cash_on_delivery_fee": ("49.49", "5.00", "7.99", "10.00", "3.67", "66.15", "unpaid",
                                                 "confirmed"),
    "woocommerce/current_docs_example": ("18.00", "0.00", "10.00", "0.00", "1.35", "29.35", "paid", "confirmed"),
}
CURRENT = sorted(FIXTURES.glob("*/current_*.json"))
ID_KEYS = {"taobao": "tid_str", "jd": "orderId", "pinduoduo": "order_sn", "douyin": "order_id", "shopify": "id",
           "woocommerce": "id"}


def name_of(path: Path) -> str:
    return f"{path.parent.name}/{path.stem}"


def load(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


def ingest(channel, *payloads) -> list[InboxItem]:
    ids = inbox.store(channel, "poll", [p.body(payload) if isinstance(payload, dict) else payload
                                        for payload in payloads])
    db.session.commit()
    process_inbox(ids)
    return [db.session.get(InboxItem, item_id) for item_id in ids]


def order_of(channel, platform: str, raw: dict) -> Order | None:
    return db.session.execute(select(Order).where(Order.channel_id == channel.id,
                                                  Order.channel_order_id == str(raw[ID_KEYS[platform]]))
                              ).scalar_one_or_none()


def map_lines(channel, name: str) -> None:
    for kind, value, sku in MAPPINGS.get(name, []):
        channel_settings.map_sku(channel, value, sku, ADMIN, key_kind=kind)
    db.session.commit()


def state() -> tuple:
    """What a refused payload must leave as it was: orders, reservations and mappings."""
    return (db.session.execute(select(func.count()).select_from(Order)).scalar(),
            db.session.execute(select(func.coalesce(func.sum(StockLevel.reserved), 0))).scalar(),
            db.session.execute(select(func.count()).select_from(SkuMapping)).scalar())


def test_every_current_fixture_has_an_expectation():
    assert {name_of(path) for path in CURRENT} == set(EXPECTED)
    assert {path.parent.name for path in CURRENT} == set(ID_KEYS)


@pytest.mark.parametrize("path", CURRENT, ids=name_of)
def test_each_platform_order_is_created_with_the_platforms_own_paid_figure(sync_channels, path):
    name, platform = name_of(path), path.parent.name
    raw = json.loads(path.read_text(encoding="utf-8"))
    channel = sync_channels[platform]
    map_lines(channel, name)
    [item] = ingest(channel, raw)
    assert item.status == "done" and item.outcome == "created", item.last_error
    order = order_of(channel, platform, raw)
    goods, discount, shipping, fees, tax, paid, payment, status = EXPECTED[name]
    assert (order.goods_total, order.discount, order.shipping_fee, order.fees, order.tax, order.total) == (
        D(goods), D(discount), D(shipping), D(fees), D(tax), D(paid))
    assert order.goods_total - order.discount + order.shipping_fee + order.fees + order.tax == order.total
    assert (order.payment_status, order.status) == (payment, status)
    assert sum(line.line_total for line in order.lines) == order.goods_total


@pytest.mark.parametrize("name", ["woocommerce/current_cash_on_delivery_fee", "shopify/current_cash_on_delivery",
                                  "jd/current_cash_on_delivery", "douyin/current_cash_on_delivery"])
def test_cash_on_delivery_is_unpaid_yet_flows_to_the_warehouse(sync_channels, name):
    platform = name.split("/")[0]
    raw = load(name)
    channel = sync_channels[platform]
    map_lines(channel, name)
    ingest(channel, raw)
    order = order_of(channel, platform, raw)
    # WooCommerce "processing" with a date_paid it set itself, Douyin "2" mapped paid: still no cash taken.
    assert order.payment_status == "unpaid" and order.paid_at is None and order.cash_on_delivery
    assert order.status == "confirmed" and order.reservations  # stock held: it will be picked and shipped
    assert GUARDS["is_paid"](order) is None  # the allocation guard lets it through: the courier collects


def test_cash_on_delivery_becomes_paid_when_the_platform_says_the_cash_came_in(sync_channels):
    raw = load("woocommerce/current_cash_on_delivery_fee")
    channel = sync_channels["woocommerce"]
    map_lines(channel, "woocommerce/current_cash_on_delivery_fee")
    ingest(channel, raw)
    order = order_of(channel, "woocommerce", raw)
    assert order.payment_status == "unpaid"
    later = raw | {"status": "completed", "date_modified_gmt": "2025-11-12T17:00:00",
                   "date_completed_gmt": "2025-11-12T17:00:00"}
    [item] = ingest(channel, later)
    assert item.status == "done" and order.payment_status == "paid"
    assert db.session.execute(select(AuditEvent).where(AuditEvent.action == "order.payment",
                                                       AuditEvent.entity_id == order.order_no)).scalar_one()


def test_a_prepaid_woocommerce_order_stays_paid_by_its_paid_time(sync_channels):
    raw = load("woocommerce/current_docs_example")  # bacs, processing, date_paid_gmt set
    channel = sync_channels["woocommerce"]
    map_lines(channel, "woocommerce/current_docs_example")
    ingest(channel, raw)
    order = order_of(channel, "woocommerce", raw)
    assert order.payment_status == "paid" and not order.cash_on_delivery


# --- lines without a merchant SKU code -------------------------------------------------------------------

def test_a_line_with_only_platform_ids_waits_in_review_naming_them_until_mapped(sync_channels):
    raw = load("shopify/current_cash_on_delivery")
    channel = sync_channels["shopify"]
    before = state()
    [item] = ingest(channel, raw)
    assert item.status == "review" and item.error_code == "unmapped_sku"
    assert "variant 40000000000201" in item.last_error and "product 8000000000201" in item.last_error
    assert state() == before
    channel_settings.map_sku(channel, "8000000000201", "SKU-0002", ADMIN, key_kind="product")
    db.session.commit()
    inbox.replay(item.id, ADMIN)
    db.session.commit()
    process_inbox([item.id])
    assert db.session.get(InboxItem, item.id).status == "done"
    assert order_of(channel, "shopify", raw).lines[0].sku.code == "SKU-0002"


def test_the_merchant_code_wins_over_the_variant_and_the_variant_over_the_product(sync_channels):
    raw = load("shopify/current_paid_tax_tip")
    channel = sync_channels["shopify"]
    channel_settings.map_sku(channel, "8000000000102", "SKU-0003", ADMIN, key_kind="product")
    channel_settings.map_sku(channel, "40000000000102", "SKU-0004", ADMIN, key_kind="variant")
    channel_settings.map_sku(channel, "40000000000101", "SKU-0005", ADMIN, key_kind="variant")  # code SKU-0001 wins
    db.session.commit()
    ingest(channel, raw)
    order = order_of(channel, "shopify", raw)
    assert sorted(line.sku.code for line in order.lines) == ["SKU-0001", "SKU-0004"]


def test_tmall_item_without_sku_variants_maps_by_its_outer_iid(sync_channels):
    raw = load("taobao/current_tmall_item_without_sku")
    assert "outer_sku_id" not in raw["orders"]["order"][0]
    ingest(sync_channels["taobao"], raw)
    order = order_of(sync_channels["taobao"], "taobao", raw)
    assert order.lines[0].sku.code == "SKU-0003" and order.discount == D("14.50")


@pytest.mark.parametrize("kind, value, code", [("barcode", "6901234567890", "invalid_key_kind"),
                                               ("variant", "40000000000201; DROP", "invalid_platform_id"),
                                               ("product", "", "required")])
def test_a_bad_mapping_key_is_refused_and_changes_nothing(sync_channels, kind, value, code):
    before = state()
    with pytest.raises(ValidationFailed) as refused:
        channel_settings.map_sku(sync_channels["shopify"], value, "SKU-0001", ADMIN, key_kind=kind)
    db.session.rollback()
    assert refused.value.code == code and state() == before


def test_the_mapping_page_maps_by_variant_id_and_removes_it(client_for, sync_channels):
    client = client_for("ops_manager")
    token = csrf_token(client, "/channels/SH")
    mapped = client.post("/channels/SH/sku-mappings", data={"csrf_token": token, "key_kind": "variant",
                                                             "channel_sku": "40000000000201", "sku": "SKU-0002"})
    assert mapped.status_code == 303
    row = db.session.execute(select(SkuMapping).where(SkuMapping.key_kind == "variant",
                                                      SkuMapping.channel_sku == "40000000000201")).scalar_one()
    assert (row.channel_sku, row.sku.code) == ("40000000000201", "SKU-0002")
    page = client.get("/channels/SH").get_data(as_text=True)
    assert "Platform variant id" in page and "40000000000201" in page
    refused = client.post("/channels/SH/sku-mappings", data={"csrf_token": token, "key_kind": "variant",
                                                              "channel_sku": "not-an-id", "sku": "SKU-0002"})
    assert refused.status_code == 422 and "digits only" in refused.get_data(as_text=True)
    removed = client.post("/channels/SH/sku-mappings/remove", data={"csrf_token": token, "key_kind": "variant",
                                                                     "channel_sku": "40000000000201"})
    assert removed.status_code == 303
    assert db.session.execute(select(func.count()).select_from(SkuMapping)
                              .where(SkuMapping.channel_sku == "40000000000201")).scalar() == 0


# --- amounts that truly do not add up still go to review, the gap named ------------------------------------

def _tmall_paying(payment: str) -> dict:
    raw = load("taobao/current_tmall_item_without_sku")
    return raw | {"tid": 4123456790123459999, "tid_str": "4123456790123459999", "payment": payment}


def test_a_trade_that_does_not_add_up_goes_to_review_with_the_gap(sync_channels):
    before = state()
    [item] = ingest(sync_channels["taobao"], _tmall_paying("120.00"))
    assert item.status == "review" and item.error_code == "amounts_do_not_add_up"
    assert "goods 129.00 − discount 14.50" in item.last_error and "gap -5.50" in item.last_error
    assert state() == before


def test_line_figures_that_disagree_with_the_trade_go_to_review(sync_channels):
    raw = _tmall_paying("114.50")
    raw["orders"]["order"][0]["divide_order_fee"] = "110.00"  # the line claims a discount the trade lacks
    before = state()
    [item] = ingest(sync_channels["taobao"], raw)
    assert item.status == "review" and item.error_code == "amounts_do_not_add_up"
    assert "per line" in item.last_error and "paid 110.00" in item.last_error
    assert state() == before


def test_a_woocommerce_total_without_its_fee_line_is_a_10_gap(sync_channels):
    raw = load("woocommerce/current_cash_on_delivery_fee") | {"id": 7391, "fee_lines": []}
    map_lines(sync_channels["woocommerce"], "woocommerce/current_cash_on_delivery_fee")
    before = state()
    [item] = ingest(sync_channels["woocommerce"], raw)
    assert item.status == "review" and "gap -10.00" in item.last_error
    assert state() == before


def test_pinduoduo_float_noise_is_rounded_as_the_platform_rounds(sync_channels):
    raw = load("pinduoduo/current_discount_parts") | {"order_sn": "251111-012345678901298",
                                                      "pay_amount": 77.39999999999999}
    map_lines(sync_channels["pinduoduo"], "pinduoduo/current_discount_parts")
    [item] = ingest(sync_channels["pinduoduo"], raw)
    assert item.status == "done"
    assert order_of(sync_channels["pinduoduo"], "pinduoduo", raw).total == D("77.40")


# --- the order page shows what makes the total ------------------------------------------------------------

def test_the_order_page_shows_tax_and_fees_so_the_lines_make_the_total(client_for, sync_channels):
    raw = load("shopify/current_paid_tax_tip")
    map_lines(sync_channels["shopify"], "shopify/current_paid_tax_tip")
    ingest(sync_channels["shopify"], raw)
    order = order_of(sync_channels["shopify"], "shopify", raw)
    page = client_for("ops_manager").get(f"/orders/{order.order_no}").get_data(as_text=True)
    assert 'data-testid="order-tax"' in page and "5.43" in page
    assert 'data-testid="order-fees"' in page and "5.00" in page and "78.33" in page


def test_the_api_carries_fees_and_cash_on_delivery(sync_channels, portal, create_user):
    from shared.services import staff
    raw = load("woocommerce/current_cash_on_delivery_fee")
    map_lines(sync_channels["woocommerce"], "woocommerce/current_cash_on_delivery_fee")
    ingest(sync_channels["woocommerce"], raw)
    order = order_of(sync_channels["woocommerce"], "woocommerce", raw)
    user = create_user("api_amounts", "admin")
    token = staff.issue_token(user, ADMIN)
    db.session.commit()
    body = portal.test_client().get(f"/api/v1/orders/{order.order_no}",
                                    headers={"Authorization": f"Bearer {token}"}).get_json()
    assert (body["fees"], body["tax"], body["total"], body["cash_on_delivery"], body["payment_status"]) == (
        "10.00", "3.67", "66.15", True, "unpaid")


def test_the_carriers_delivery_is_the_payment_of_a_cash_on_delivery_order(floor, portal_with_carriers):  # noqa: F811
    from shared.carriers.tracking import TrackingEvent as Event
    from shared.services import allocation, orders, tracking, waves
    from tests.test_fulfilment import SHENZHEN, TODAY, put
    from tests.test_shipping import scan, status_of
    from tests.factories import order_payload

    put("TEA", "SZ1", "A-01", 10, lot="T-9")
    payload = order_payload(channel_order_id="COD-1", lines=[{"sku": "TEA", "quantity": 2, "unit_price": "50.00"}],
                            paid=False)
    payload["shipping_address"] |= dict(zip(("province", "city", "district"), SHENZHEN))
    payload["cash_on_delivery"] = True
    order = orders.create_order(payload, ADMIN)
    orders.transition_order(order, "confirmed", ADMIN, "COD: the courier collects")
    allocation.allocate(order, ADMIN)  # unpaid, and allocated all the same
    [wave] = waves.plan_waves("SZ1", ADMIN)
    waves.start_release(wave.id, ADMIN)
    waves.release_chunk(wave.id, TODAY)
    db.session.commit()
    task = waves.pick_list(wave.id)[0]
    client, token = portal_with_carriers.test_client(), floor["token"]
    scan(client, token, "pick", task=task.id, bin="A-01", sku="TEA", lot="T-9", quantity=2)
    waybill = scan(client, token, "pack", order=order.order_no, box="B").get_json()["waybill"]
    scan(client, token, "load", parcel=waybill, truck="T-1")
    db.session.expire_all()
    assert db.session.get(Order, order.id).payment_status == "unpaid"
    delivered_at = datetime.now(UTC).replace(microsecond=0)
    tracking.ingest([Event(waybill, "SF", delivered_at, "已签收", None, "kuaidi100", "3", "delivered", None)])
    db.session.commit()
    db.session.expire_all()
    settled = db.session.get(Order, order.id)
    assert settled.payment_status == "paid" and status_of(order) == "completed"
