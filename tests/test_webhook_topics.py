"""POST /hooks/<channel> reads the platform's topic header: each Shopify and WooCommerce topic does what it means,
a refund applies to its order (or waits for it), topics that change no order are recorded as ignored, and a topic
nobody knows is acknowledged and recorded with nothing changed. Deliveries come from tests/fixtures/channels/webhooks
(the platforms' published topic list and example payloads), signed as the platforms sign them."""
import copy
import json
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from shared.extensions import db
from shared.models import AuditEvent, InboxItem, Order, PlatformRefund, StockLevel, WebhookRejection
from shared.services import inbox
from tests import channel_payloads as p
from tests.portal_client import csrf_token

FIXTURES = Path(__file__).parent / "fixtures" / "channels"
SIGNATURE_HEADERS = {"shopify": "X-Shopify-Hmac-Sha256", "woocommerce": "X-WC-Webhook-Signature"}
CODES = {"shopify": "SH", "woocommerce": "WC"}


def spec(name: str) -> dict:
    return json.loads((FIXTURES / "webhooks" / name).read_text(encoding="utf-8"))


def body_of(name: str) -> dict:
    delivery = spec(name)
    if "body_file" in delivery:
        return json.loads((FIXTURES / delivery["body_file"]).read_text(encoding="utf-8"))
    return copy.deepcopy(delivery["body"])


def send(client, name: str, body: dict | None = None, **header_changes):
    """POST a fixture delivery (or another body under its headers), signed with the channel's webhook secret."""
    platform = name.split("/")[0]
    raw = json.dumps(body if body is not None else body_of(name), ensure_ascii=False).encode()
    headers = spec(name)["headers"] | {SIGNATURE_HEADERS[platform]: p.body_hmac_base64(p.WEBHOOK_SECRET, raw)}
    headers.update({key.replace("_", "-"): value for key, value in header_changes.items()})
    return client.post(f"/hooks/{CODES[platform]}", data=raw, headers={k: v for k, v in headers.items() if v})


def item_of(response) -> InboxItem:
    db.session.expire_all()
    return db.session.get(InboxItem, response.get_json()["received"])


def order_of(platform: str, channel_order_id) -> Order | None:
    db.session.expire_all()
    return db.session.execute(select(Order).where(Order.channel_order_id == str(channel_order_id),
                                                  Order.channel.has(code=CODES[platform]))).scalar_one_or_none()


def reserved(sku: str) -> int:
    from shared.models import Sku
    return db.session.execute(select(func.sum(StockLevel.reserved)).join(Sku, Sku.id == StockLevel.sku_id)
                              .where(Sku.code == sku)).scalar_one()


def count(model) -> int:
    return db.session.execute(select(func.count()).select_from(model)).scalar()


def open_version(body: dict, platform: str) -> dict:
    """The same order a little earlier, still open and unshipped (what orders/create said before the change)."""
    earlier = copy.deepcopy(body)
    if platform == "shopify":
        earlier.update(cancelled_at=None, fulfillment_status=None, updated_at=earlier["created_at"])
        if earlier["financial_status"] in ("voided", "refunded"):
            earlier["financial_status"] = "pending" if earlier["financial_status"] == "voided" else "paid"
    return earlier


# --- order topics -----------------------------------------------------------------------------------------

def test_orders_create_then_orders_updated(portal, sync_channels):
    client = portal.test_client()
    created = send(client, "shopify/orders_create.json")
    assert created.status_code == 202
    item = item_of(created)
    assert (item.topic, item.status, item.outcome) == ("orders/create", "done", "created")
    order = order_of("shopify", body_of("shopify/orders_create.json")["id"])
    assert (order.status, order.payment_status) == ("confirmed", "paid")
    updated = item_of(send(client, "shopify/orders_updated.json"))
    assert (updated.topic, updated.outcome) == ("orders/updated", "updated")
    after = order_of("shopify", order.channel_order_id)
    assert after.street == body_of("shopify/orders_updated.json")["shipping_address"]["address1"]


def test_orders_paid_records_the_payment(portal, sync_channels):
    client = portal.test_client()
    unpaid = json.loads((FIXTURES / "shopify" / "unpaid.json").read_text(encoding="utf-8"))
    send(client, "shopify/orders_create.json", body=unpaid)
    assert order_of("shopify", unpaid["id"]).payment_status == "unpaid"
    item = item_of(send(client, "shopify/orders_paid.json"))
    assert (item.topic, item.outcome) == ("orders/paid", "updated")
    order = order_of("shopify", unpaid["id"])
    assert (order.payment_status, order.status) == ("paid", "confirmed")


def test_orders_cancelled_cancels_and_releases_the_stock(portal, sync_channels):
    client = portal.test_client()
    cancelled = body_of("shopify/orders_cancelled.json")
    send(client, "shopify/orders_create.json", body=open_version(cancelled, "shopify"))
    sku = cancelled["line_items"][0]["sku"]
    assert reserved(sku) == cancelled["line_items"][0]["quantity"]
    item = item_of(send(client, "shopify/orders_cancelled.json"))
    assert (item.topic, item.outcome) == ("orders/cancelled", "updated")
    assert order_of("shopify", cancelled["id"]).status == "cancelled" and reserved(sku) == 0


def test_orders_fulfilled_does_not_move_the_warehouse_steps(portal, sync_channels):
    client = portal.test_client()
    shipped = body_of("shopify/orders_fulfilled.json")
    send(client, "shopify/orders_create.json", body=open_version(shipped, "shopify"))
    item = item_of(send(client, "shopify/orders_fulfilled.json"))
    assert (item.topic, item.status) == ("orders/fulfilled", "done")
    order = order_of("shopify", shipped["id"])
    assert (order.status, order.platform_status) == ("confirmed", "paid/fulfilled")  # we ship, not the platform


def test_woocommerce_order_created_and_updated(portal, sync_channels):
    client = portal.test_client()
    created = item_of(send(client, "woocommerce/order_created.json"))
    assert (created.topic, created.outcome) == ("order.created", "created")
    updated = item_of(send(client, "woocommerce/order_updated.json"))
    assert (updated.topic, updated.outcome) == ("order.updated", "updated")


def test_a_webhook_without_a_topic_header_is_read_as_an_order(portal, sync_channels):
    item = item_of(send(portal.test_client(), "shopify/orders_create.json", X_Shopify_Topic=""))
    assert (item.topic, item.outcome) == (None, "created")


# --- deleted and restored ---------------------------------------------------------------------------------

def test_order_deleted_cancels_an_unshipped_order_and_restored_after_that_goes_to_review(portal, sync_channels):
    client = portal.test_client()
    send(client, "woocommerce/order_created.json")
    order_id = body_of("woocommerce/order_created.json")["id"]
    assert reserved("SKU-0001") > 0
    deleted = send(client, "woocommerce/order_deleted.json")
    assert deleted.status_code == 202
    item = item_of(deleted)
    assert (item.topic, item.status, item.outcome, item.external_id) == ("order.deleted", "done", "cancelled",
                                                                         str(order_id))
    order = order_of("woocommerce", order_id)
    assert order.status == "cancelled" and order.cancel_reason.startswith("platform: deleted on WooCommerce Shop")
    assert reserved("SKU-0001") == 0
    restored = item_of(send(client, "woocommerce/order_restored.json"))
    assert (restored.status, restored.error_code) == ("review", "restored_after_cancel")
    assert order.order_no in restored.last_error and order_of("woocommerce", order_id).status == "cancelled"


def test_order_restored_of_an_order_never_cancelled_here_is_applied_as_an_update(portal, sync_channels):
    client = portal.test_client()
    send(client, "woocommerce/order_created.json")
    restored = item_of(send(client, "woocommerce/order_restored.json"))
    assert (restored.topic, restored.status, restored.outcome) == ("order.restored", "done", "unchanged")
    assert order_of("woocommerce", body_of("woocommerce/order_restored.json")["id"]).status == "confirmed"


def test_a_second_deletion_after_a_restore_is_a_delivery_of_its_own(portal, sync_channels):
    client = portal.test_client()
    first = send(client, "woocommerce/order_deleted.json")
    again = send(client, "woocommerce/order_deleted.json", X_WC_Webhook_Delivery_ID="another-delivery")
    retry = send(client, "woocommerce/order_deleted.json")  # the platform retrying the first delivery
    assert first.get_json()["received"] != again.get_json()["received"]
    assert retry.get_json()["received"] == first.get_json()["received"]
    assert item_of(first).outcome == "not_here"  # an order we never had: nothing to do


def test_orders_delete_of_a_shipped_order_is_only_recorded(portal, sync_channels):
    client = portal.test_client()
    shipped = body_of("shopify/orders_fulfilled.json")
    send(client, "shopify/orders_create.json", body=shipped)  # first seen shipped: recorded as shipped
    order = order_of("shopify", shipped["id"])
    assert order.status == "shipped"
    item = item_of(send(client, "shopify/orders_delete.json", body={"id": shipped["id"]}))
    assert (item.topic, item.outcome) == ("orders/delete", "recorded")
    assert order_of("shopify", shipped["id"]).status == "shipped"
    recorded = db.session.execute(select(AuditEvent).where(AuditEvent.action == "order.platform_deleted")).scalar_one()
    assert recorded.entity_id == order.order_no and "orders/delete" in recorded.reason


# --- refunds ----------------------------------------------------------------------------------------------

def test_a_full_refund_before_shipping_cancels_the_order_and_releases_its_stock(portal, sync_channels):
    client = portal.test_client()
    send(client, "shopify/orders_create.json")
    order_id = body_of("shopify/orders_create.json")["id"]
    assert reserved("SKU-0004") == 1
    item = item_of(send(client, "shopify/refunds_create_full.json"))
    assert (item.topic, item.status, item.outcome, item.external_id) == ("refunds/create", "done", "refunded",
                                                                         str(order_id))
    order = order_of("shopify", order_id)
    assert (order.status, order.refund_status) == ("cancelled", "refunded") and reserved("SKU-0004") == 0
    refund = db.session.execute(select(PlatformRefund)).scalar_one()
    assert (refund.amount, refund.order_id, refund.platform_refund_id) == (Decimal("63.63"), order.id, "918273645501")


def test_a_partial_refund_changes_the_refund_status_only_and_counts_once(portal, sync_channels):
    client = portal.test_client()
    send(client, "shopify/orders_create.json")
    order_id = body_of("shopify/orders_create.json")["id"]
    first = send(client, "shopify/refunds_create_partial.json")
    again = send(client, "shopify/refunds_create_partial.json", X_Shopify_Webhook_Id="a-retry-of-it")
    assert first.get_json()["received"] == again.get_json()["received"]  # the same refund bytes: one row
    order = order_of("shopify", order_id)
    assert (order.status, order.refund_status) == ("confirmed", "partially_refunded")
    # The same refund id in other bytes (Shopify re-sent it with a note edited) is applied only once.
    edited = body_of("shopify/refunds_create_partial.json") | {"note": "edited"}
    assert item_of(send(client, "shopify/refunds_create_partial.json", body=edited)).outcome == "unchanged"
    rest = body_of("shopify/refunds_create_full.json")
    rest["transactions"][0]["amount"] = "38.68"  # 24.95 + 38.68 = 63.63: the rest of it
    assert item_of(send(client, "shopify/refunds_create_full.json", body=rest)).outcome == "refunded"
    order = order_of("shopify", order_id)
    assert (order.status, order.refund_status) == ("cancelled", "refunded")
    assert count(PlatformRefund) == 2


def test_a_refund_webhook_never_moves_the_refund_status_back(portal, sync_channels):
    client = portal.test_client()
    send(client, "shopify/orders_create.json")
    refunded = body_of("shopify/orders_create.json") | {"financial_status": "refunded",
                                                         "updated_at": "2025-11-10T12:40:00-05:00"}
    send(client, "shopify/orders_updated.json", body=refunded)  # the platform's status says refunded in full
    order_id = refunded["id"]
    assert order_of("shopify", order_id).refund_status == "refunded"
    item = item_of(send(client, "shopify/refunds_create_partial.json"))  # one of its refunds, arriving late
    assert item.outcome == "refunded" and count(PlatformRefund) == 1
    assert order_of("shopify", order_id).refund_status == "refunded"


def test_a_refund_for_an_order_not_here_waits_and_is_applied_when_the_order_arrives(portal, sync_channels,
                                                                                     client_for):
    client = portal.test_client()
    waiting = send(client, "shopify/refunds_create_full.json")
    assert waiting.status_code == 202
    item = item_of(waiting)
    assert (item.status, item.error_code) == ("waiting", "order_not_here") and count(Order) == 0
    order_id = body_of("shopify/refunds_create_full.json")["order_id"]
    assert str(order_id) in item.last_error
    # By hand: replayed from the portal, it waits again (the order is still not here), audited.
    admin = client_for("admin")
    assert admin.post(f"/channels/inbox/{item.id}/replay", data={"csrf_token": csrf_token(admin)}).status_code == 303
    again = item_of(waiting)
    assert (again.status, again.attempts) == ("waiting", 1)
    assert db.session.execute(select(AuditEvent.action).where(AuditEvent.entity_type == "inbox_item",
                                                              AuditEvent.entity_id == str(item.id))).scalar_one() \
        == "inbox.replay"
    # The order arrives: the refund is applied by itself, in the same job.
    send(client, "shopify/orders_create.json")
    applied = item_of(waiting)
    assert (applied.status, applied.outcome) == ("done", "refunded")
    order = order_of("shopify", order_id)
    assert (order.status, order.refund_status) == ("cancelled", "refunded") and reserved("SKU-0004") == 0


def test_a_waiting_refund_whose_order_came_another_way_is_freed_by_the_sweeper(portal, sync_channels):
    from datetime import timedelta

    from jobs.sync import process_inbox
    from shared.services import orders
    from shared.timekeeping import utc_now
    from tests.factories import ADMIN, order_payload

    item_id = send(portal.test_client(), "shopify/refunds_create_full.json").get_json()["received"]
    order_id = str(body_of("shopify/refunds_create_full.json")["order_id"])
    lines = [{"sku": "SKU-0004", "quantity": 1, "unit_price": "63.63"}]
    orders.create_order(order_payload(channel="SH", channel_order_id=order_id, lines=lines, currency="USD"), ADMIN)
    db.session.commit()  # entered by hand (not through the inbox): nothing woke the refund
    assert db.session.get(InboxItem, item_id).status == "waiting"
    ids = inbox.sweep(utc_now() + timedelta(minutes=5))
    db.session.commit()
    assert item_id in ids
    process_inbox(ids)
    db.session.expire_all()
    order = order_of("shopify", order_id)
    assert db.session.get(InboxItem, item_id).outcome == "refunded"
    assert order.refund_status == ("refunded" if order.total <= Decimal("63.63") else "partially_refunded")


def test_a_refund_in_another_currency_goes_to_review_and_changes_nothing(portal, sync_channels):
    client = portal.test_client()
    send(client, "shopify/orders_create.json")
    odd = body_of("shopify/refunds_create_full.json")
    odd["transactions"][0]["currency"] = "EUR"
    item = item_of(send(client, "shopify/refunds_create_full.json", body=odd))
    assert (item.status, item.error_code) == ("review", "currency_mismatch")
    order = order_of("shopify", odd["order_id"])
    assert (order.status, order.refund_status) == ("confirmed", "none") and count(PlatformRefund) == 0


# --- topics that change no order, and topics nobody knows -------------------------------------------------

def test_fulfillments_create_is_acknowledged_and_ignored_and_the_order_is_unchanged(portal, sync_channels):
    client = portal.test_client()
    shipped = body_of("shopify/orders_fulfilled.json")
    send(client, "shopify/orders_create.json", body=open_version(shipped, "shopify"))
    before = order_of("shopify", shipped["id"])
    snapshot = (before.status, before.version, before.updated_at, before.platform_status, before.refund_status)
    audits = count(AuditEvent)
    answer = send(client, "shopify/fulfillments_create.json")
    assert answer.status_code == 200 and answer.get_json()["ignored"] is True
    item = item_of(answer)
    assert (item.topic, item.status, item.outcome, item.error_code) == ("fulfillments/create", "done", "ignored", None)
    assert item.external_id == str(shipped["id"])  # found under its order, not under the fulfilment's own id
    after = order_of("shopify", shipped["id"])
    assert (after.status, after.version, after.updated_at, after.platform_status, after.refund_status) == snapshot
    assert count(AuditEvent) == audits and count(Order) == 1


@pytest.mark.parametrize("name", ["shopify/app_uninstalled.json", "shopify/customers_update.json"])
def test_topics_that_carry_no_order_change_are_recorded_as_ignored(portal, sync_channels, name):
    answer = send(portal.test_client(), name)
    assert answer.status_code == 200 and answer.get_json() == {"received": answer.get_json()["received"],
                                                               "topic": spec(name)["topic"], "ignored": True}
    item = item_of(answer)
    assert (item.status, item.outcome) == ("done", "ignored") and count(Order) == 0
    assert inbox.counts_by_status().get("review", 0) == 0


@pytest.mark.parametrize("name, topic", [("shopify/bulk_operations_finish.json", "bulk_operations/finish"),
                                         ("woocommerce/order_created.json", "order.archived")])
def test_a_topic_nobody_knows_is_acknowledged_recorded_and_changes_nothing(portal, sync_channels, name, topic):
    platform = name.split("/")[0]
    header = "X_Shopify_Topic" if platform == "shopify" else "X_WC_Webhook_Topic"
    audits = count(AuditEvent)
    answer = send(portal.test_client(), name, **{header: topic})
    assert answer.status_code == 200 and answer.get_json()["ignored"] is True
    item = item_of(answer)
    assert (item.topic, item.status, item.outcome) == (topic, "done", "unknown_topic")
    assert count(Order) == 0 and count(PlatformRefund) == 0 and count(AuditEvent) == audits
    assert inbox.counts_by_status() == {"done": 1}


def test_the_woocommerce_ping_is_answered_200_and_stores_nothing(portal, sync_channels):
    ping = spec("woocommerce/ping.json")
    answer = portal.test_client().post("/hooks/WC", data=ping["raw_body"], headers=ping["headers"])
    assert answer.status_code == 200 and answer.get_json() == {"ping": True}
    assert count(InboxItem) == 0 and count(WebhookRejection) == 0


def test_a_ping_lookalike_with_a_topic_or_on_shopify_is_not_a_ping(portal, sync_channels):
    ping = spec("woocommerce/ping.json")
    with_topic = portal.test_client().post("/hooks/WC", data=ping["raw_body"],
                                           headers=ping["headers"] | {"X-WC-Webhook-Topic": "order.created"})
    on_shopify = portal.test_client().post("/hooks/SH", data=ping["raw_body"], headers=ping["headers"])
    assert with_topic.status_code == 415 and on_shopify.status_code == 415
    assert count(InboxItem) == 0


def test_every_fixture_topic_is_known_to_its_platform():
    from shared.channels.topics import UNKNOWN, topic_meaning

    for path in sorted((FIXTURES / "webhooks").glob("*/*.json")):
        delivery = json.loads(path.read_text(encoding="utf-8"))
        assert delivery["_source"], path
        if "topic" in delivery and path.stem != "bulk_operations_finish":
            assert topic_meaning(path.parent.name, delivery["topic"]) != UNKNOWN, path
