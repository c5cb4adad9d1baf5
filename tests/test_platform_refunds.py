"""Refunds of platform orders pushed to the platform's refund API (issue 13 item 4), over real HTTP to the channel
simulator: Shopify `POST .../orders/{id}/refunds.json`, WooCommerce `POST /wp-json/wc/v3/orders/{id}/refunds`.

A pushed refund completes once through refunds.settle under the platform's refund id, so the webhooks the shop sends
afterwards (Shopify refunds/create + orders/updated, WooCommerce order.updated) count nothing more; the platform's
refusal fails it with nothing recorded; no answer leaves it processing until the refund job asks and resolves it
once. The Chinese platforms have no refund push: their refunds wait for the platform's report."""
import json
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from flask import current_app
from sqlalchemy import func, select

from devtools.simulators.channels import ChannelSimulator
from devtools.simulators.channels.refunds import refunds_of
from devtools.simulators.channels.webhooks import signed_headers
from jobs import refunds as refund_jobs
from shared.channels import adapter_for, refund_push
from shared.channels.base import Credentials
from shared.extensions import db
from shared.models import AuditEvent, Order, PlatformRefund
from shared.models.payments import OrderRefund
from shared.services import channel_orders, channel_settings, polling, refunds
from shared.services.channel_orders import ChannelContext
from shared.channels.topics import PlatformRefundNotice
from tests import channel_payloads as p
from tests.factories import ADMIN
from tests.test_channel_sync import ingest
from tests.test_polling import use_simulator

FIXTURES = Path(__file__).parent / "fixtures" / "channels" / "refunds"
CODES = {"shopify": "SH", "woocommerce": "WC"}
TARGET = "http://orderloom.test/hooks"  # the simulator's cursor for the deliveries this test hands to the portal
LINES = [{"sku": "SKU-0001", "quantity": 2, "unit_price": "30.00"}]


@pytest.fixture
def shops(sync_channels):
    secret = {"webhook_secret": p.WEBHOOK_SECRET}
    sim = ChannelSimulator(credentials={"shopify": secret, "woocommerce": secret}, seed=5, encrypted=False)
    sim.start()
    use_simulator(sync_channels, sim)
    db.session.commit()
    yield sim
    sim.stop()


def deliver(portal, sim, platform: str) -> list[tuple[str, int]]:
    """Hand the shop's pending webhooks to /hooks/<code>, signed as the shop signs them: [(topic, HTTP status)]."""
    with sim.lock:
        deliveries = sim.outbox.take_pending(platform, TARGET)
    client, answers = portal.test_client(), []
    for delivery in deliveries:
        headers = signed_headers(delivery, p.WEBHOOK_SECRET, "orderloom-sim.myshopify.com", f"{sim.url(platform)}/")
        answers.append((delivery.topic, client.post(f"/hooks/{CODES[platform]}", data=delivery.body,
                                                    headers=headers).status_code))
    return answers


def placed(portal, sim, platform: str) -> Order:
    """A paid order in the simulated shop, arrived here by its orders/create (order.created) webhook."""
    sim_order = sim.add_order(platform, state="paid", lines=LINES, discount="0.00", tax="0.00", fees=Decimal("0.00"))
    assert [status for _topic, status in deliver(portal, sim, platform)] == [202]
    db.session.expire_all()
    order = db.session.execute(select(Order).where(Order.channel_order_id == sim_order.id)).scalar_one()
    assert (order.status, order.payment_status) == ("confirmed", "paid")
    return order


def count(model, *where) -> int:
    return db.session.execute(select(func.count()).select_from(model).where(*where)).scalar()


def fresh(model, ident):
    db.session.expire_all()
    return db.session.get(model, ident)


@pytest.mark.parametrize("platform", ["shopify", "woocommerce"])
def test_a_refund_is_pushed_completed_once_and_the_shops_webhooks_afterwards_count_nothing_more(portal, shops,
                                                                                               platform):
    order = placed(portal, shops, platform)
    row = refunds.refund(order.order_no, "10.00", "one item arrived broken", ADMIN)
    db.session.commit()
    [made] = refunds_of(shops, platform, order.channel_order_id)  # the platform got exactly one refund
    row = fresh(OrderRefund, row.id)
    assert (row.status, row.provider, row.provider_refund_id) == ("succeeded", platform, str(made["id"]))
    if platform == "shopify":
        assert row.out_refund_no in made["note"] and made["transactions"][0]["kind"] == "refund"
        assert made["transactions"][0]["amount"] == "10.00" and made["transactions"][0]["parent_id"]
    else:
        assert made["amount"] == "10.00" and row.out_refund_no in made["reason"]
        assert {"key": refund_push.META_KEY, "value": row.out_refund_no} in [
            {"key": item["key"], "value": item["value"]} for item in made["meta_data"]]
    [recorded] = db.session.scalars(select(PlatformRefund).where(PlatformRefund.order_id == order.id)).all()
    assert (recorded.platform_refund_id, recorded.amount, row.platform_refund_id) == (str(made["id"]),
                                                                                      Decimal("10.00"), recorded.id)
    assert fresh(Order, order.id).refund_status == "partially_refunded"

    # What a real shop sends next: Shopify refunds/create (the same refund id) and orders/updated; Woo order.updated.
    topics = deliver(portal, shops, platform)
    expected = ["refunds/create", "orders/updated"] if platform == "shopify" else ["order.updated"]
    assert [topic for topic, _status in topics] == expected and all(status in (200, 202) for _t, status in topics)
    db.session.expire_all()
    assert count(PlatformRefund, PlatformRefund.order_id == order.id) == 1
    assert refunds.refunded_total(fresh(Order, order.id)) == Decimal("10.00")
    assert fresh(Order, order.id).refund_status == "partially_refunded"
    assert count(AuditEvent, AuditEvent.action == "refund.succeeded", AuditEvent.entity_id == order.order_no) == 1


@pytest.mark.parametrize("platform", ["shopify", "woocommerce"])
def test_a_refund_over_what_the_platform_can_still_refund_is_refused_and_nothing_is_recorded(portal, shops,
                                                                                             platform):
    order = placed(portal, shops, platform)
    # The merchant refunded 20.00 in the shop's own admin; its report has not reached us, so we think all is left.
    pusher = refund_push.push_for(platform)
    creds = polling.credentials(channel_settings.connection_for(order.channel))
    with httpx.Client(timeout=5) as client:
        by_hand = pusher.create(client, creds, refund_push.PushRequest(order.channel_order_id, "RFBYHAND0001",
                                                                       Decimal("20.00"), order.currency, "by hand"))
    assert by_hand.status == refund_push.SUCCEEDED
    row = refunds.refund(order.order_no, str(order.total), "cancelled by the buyer", ADMIN)
    db.session.commit()
    row = fresh(OrderRefund, row.id)
    assert row.status == "failed" and row.provider == platform
    if platform == "shopify":
        assert row.error_code == "http_422" and "exceeds the refundable amount" in row.last_error
    else:
        assert (row.error_code, row.last_error) == ("woocommerce_rest_cannot_create_order_refund",
                                                    "Invalid refund amount.")
    assert len(refunds_of(shops, platform, order.channel_order_id)) == 1  # only the one made by hand
    assert count(PlatformRefund, PlatformRefund.order_id == order.id) == 0
    order = fresh(Order, order.id)
    assert (order.status, order.refund_status) == ("confirmed", "none")  # not cancelled, nothing refunded
    assert refunds.refundable(order) == Decimal(order.total)  # the failed refund holds nothing
    assert count(AuditEvent, AuditEvent.action == "refund.failed", AuditEvent.entity_id == order.order_no) == 1


def test_shopify_unreachable_leaves_the_refund_processing_and_the_job_resolves_it_once(portal, shops):
    order = placed(portal, shops, "shopify")
    shops.fail_next("shopify", kind="http500")
    row = refunds.refund(order.order_no, "15.00", "late delivery", ADMIN)
    db.session.commit()
    row = fresh(OrderRefund, row.id)
    assert (row.status, row.provider, row.error_code) == ("processing", "shopify", "platform_unreachable")
    assert refunds_of(shops, "shopify", order.channel_order_id) == []
    assert count(PlatformRefund, PlatformRefund.order_id == order.id) == 0
    assert row.id in refunds.processing_ids()

    assert refund_jobs.resolve_refund(row.id) == "succeeded"  # asked first (none there), then sent again
    assert refund_jobs.resolve_refund(row.id) == "succeeded"  # asking again changes nothing
    assert refund_jobs.resolve_processing_refunds() == {}
    [made] = refunds_of(shops, "shopify", order.channel_order_id)
    row = fresh(OrderRefund, row.id)
    assert (row.status, row.provider_refund_id, row.attempts) == ("succeeded", str(made["id"]), 2)
    deliver(portal, shops, "shopify")
    assert count(PlatformRefund, PlatformRefund.order_id == order.id) == 1
    assert refunds.refunded_total(fresh(Order, order.id)) == Decimal("15.00")


def test_a_woocommerce_answer_lost_after_the_refund_was_made_is_found_and_never_sent_twice(portal, shops):
    order = placed(portal, shops, "woocommerce")
    shops.fail_next("woocommerce", kind="timeout", delay=1.5)  # the shop refunds, but answers after we gave up
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(current_app.config, "PLATFORM_REFUND_TIMEOUT", 0.3)
        row = refunds.refund(order.order_no, "12.50", "wrong colour", ADMIN)
    db.session.commit()
    row = fresh(OrderRefund, row.id)
    assert (row.status, row.error_code) == ("processing", "platform_unreachable")
    deadline = datetime.now(UTC) + timedelta(seconds=15)
    while not refunds_of(shops, "woocommerce", order.channel_order_id) and datetime.now(UTC) < deadline:
        time.sleep(0.1)  # the held request reaches the shop
    [made] = refunds_of(shops, "woocommerce", order.channel_order_id)
    assert refund_jobs.resolve_refund(row.id) == "succeeded"  # found by our out_refund_no: not sent again
    assert len(refunds_of(shops, "woocommerce", order.channel_order_id)) == 1
    row = fresh(OrderRefund, row.id)
    assert (row.provider_refund_id, row.attempts) == (str(made["id"]), 1)
    deliver(portal, shops, "woocommerce")
    assert count(PlatformRefund, PlatformRefund.order_id == order.id) == 1
    assert refunds.refunded_total(fresh(Order, order.id)) == Decimal("12.50")


def test_a_full_shopify_refund_before_shipping_cancels_the_order_once(portal, shops):
    order = placed(portal, shops, "shopify")
    row = refunds.refund(order.order_no, str(order.total), "out of stock", ADMIN)
    db.session.commit()
    assert fresh(OrderRefund, row.id).status == "succeeded"
    order = fresh(Order, order.id)
    assert (order.status, order.refund_status) == ("cancelled", "refunded")
    deliver(portal, shops, "shopify")  # refunds/create and orders/updated ("refunded"): already so here
    order = fresh(Order, order.id)
    assert (order.status, order.refund_status) == ("cancelled", "refunded")
    assert count(PlatformRefund, PlatformRefund.order_id == order.id) == 1


def test_a_chinese_platform_order_waits_for_the_platforms_own_report(shops, sync_channels):
    channel = sync_channels["taobao"]
    [item] = ingest(channel, p.taobao(tid="3809990000000001"))
    order = db.session.execute(select(Order).where(Order.channel_order_id == "3809990000000001")).scalar_one()
    row = refunds.refund(order.order_no, "20.00", "buyer asked on Taobao", ADMIN)
    db.session.commit()
    row = fresh(OrderRefund, row.id)
    assert (row.status, row.provider, row.attempts) == ("awaiting_platform", None, 0)  # nothing sent anywhere
    context = ChannelContext.load(channel, adapter_for(channel.kind))
    notice = PlatformRefundNotice("TB-REFUND-1", order.channel_order_id, Decimal("20.00"), "CNY",
                                  datetime.now(UTC), None, (), False)
    assert channel_orders.apply_refund(context, notice)[0] == "refunded"
    db.session.commit()
    assert fresh(OrderRefund, row.id).status == "succeeded"
    assert channel_orders.apply_refund(context, notice)[0] == "unchanged"  # the same report again


@pytest.mark.parametrize("name", ["shopify/refund_created.json", "woocommerce/refund_created.json"])
def test_the_published_refund_answers_read_into_a_succeeded_refund(name):
    body = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    if name.startswith("shopify"):
        answer = refund_push.ShopifyRefunds.read_refund(body["refund"])
    else:
        answer = refund_push.WooCommerceRefunds.read_refund(body)
    assert answer.status == refund_push.SUCCEEDED and answer.refund_id and answer.amount > 0
    assert answer.refunded_at is not None and answer.refunded_at.tzinfo is not None


def answered(status: int, name: str) -> httpx.Client:
    body = (FIXTURES / name).read_bytes()
    return httpx.Client(transport=httpx.MockTransport(lambda request: httpx.Response(status, content=body)))


def test_the_platforms_refusals_in_their_published_shapes_are_refusals_and_a_5xx_is_no_answer():
    request = refund_push.PushRequest("1001", "RF1", Decimal("99.00"), "USD", "too much")
    creds = Credentials("http://shop.test", "ck", "cs", "token")
    with answered(500, "woocommerce/refund_invalid_amount.json") as client:
        refused = refund_push.WooCommerceRefunds().create(client, creds, request)
    assert (refused.status, refused.code, refused.message) == (
        refund_push.REFUSED, "woocommerce_rest_cannot_create_order_refund", "Invalid refund amount.")
    with answered(500, "woocommerce/critical_error.json") as client, pytest.raises(refund_push.PlatformUnreachable):
        refund_push.WooCommerceRefunds().create(client, creds, request)
    sale = {"transactions": [{"id": 5, "kind": "sale", "status": "success", "amount": "50.00", "gateway": "bogus"}]}

    def shop(http_request: httpx.Request) -> httpx.Response:
        if http_request.url.path.endswith("transactions.json"):
            return httpx.Response(200, json=sale)
        return httpx.Response(422, content=(FIXTURES / "shopify/refund_refused.json").read_bytes())

    with httpx.Client(transport=httpx.MockTransport(shop)) as client:
        refused = refund_push.ShopifyRefunds().create(client, creds, request)
    assert refused.status == refund_push.REFUSED and refused.code == "http_422" and "base:" in refused.message
