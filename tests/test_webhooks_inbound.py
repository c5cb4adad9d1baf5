"""POST /hooks/<channel>: the platform's signature, size, content type and channel are checked before storage;
a refused request is logged and stores nothing; a signed payload is kept even when it cannot be read."""
import threading
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select

from jobs.sync import process_inbox
from shared.extensions import db
from shared.models import InboxItem, Order, WebhookRejection
from shared.services import inbox
from tests import channel_payloads as p
from tests.factories import connect_channels
from tests.live_servers import portal_server  # noqa: F401  (fixture)


def count(model) -> int:
    return db.session.execute(select(func.count()).select_from(model)).scalar()


def post(client, code: str, raw: bytes, headers: dict):
    return client.post(f"/hooks/{code}", data=raw, headers=headers)


@pytest.mark.parametrize("platform, code, order", [("shopify", "SH", p.shopify()),
                                                   ("woocommerce", "WC", p.woocommerce())])
def test_a_signed_webhook_is_stored_then_becomes_an_order(portal, sync_channels, platform, code, order):
    raw = p.body(order)
    response = post(portal.test_client(), code, raw, p.signed_headers(platform, raw))
    assert response.status_code == 202, response.get_json()
    item = db.session.get(InboxItem, response.get_json()["received"])
    assert item.source == "webhook" and item.status == "done" and item.body == raw.decode()
    assert db.session.get(Order, item.order_id).channel_order_id == str(order["id"])


@pytest.mark.parametrize("change, status, reason", [
    (lambda raw, h: (raw, h | {"X-Shopify-Hmac-Sha256": p.body_hmac_base64("wrong-secret", raw)}), 401,
     "bad_signature"),
    (lambda raw, h: (raw + b" ", h), 401, "bad_signature"),  # the body changed after signing
    (lambda raw, h: (raw, {k: v for k, v in h.items() if k != "X-Shopify-Hmac-Sha256"}), 401,
     "missing_signature"),
    (lambda raw, h: (raw, h | {"Content-Type": "text/plain"}), 415, "unsupported_media_type"),
    (lambda raw, h: (raw + b" " * 600_000, h), 413, "too_large"),
])
def test_refused_webhooks_are_logged_and_store_nothing(portal, sync_channels, change, status, reason):
    raw, headers = change(p.body(p.shopify()), p.signed_headers("shopify", p.body(p.shopify())))
    response = post(portal.test_client(), "SH", raw, headers)
    assert response.status_code == status
    assert response.get_json()["error"]["code"] == reason
    rejection = db.session.execute(select(WebhookRejection)).scalar_one()
    assert rejection.reason == reason and rejection.channel_code == "SH"
    assert count(InboxItem) == 0 and count(Order) == 0


@pytest.mark.parametrize("code, status, reason", [("ZZ", 404, "unknown_channel"), ("TB", 404, "no_webhooks"),
                                                  ("shopify", 404, "unknown_channel")])
def test_unknown_channels_and_polling_channels_refuse_webhooks(portal, sync_channels, code, status, reason):
    raw = p.body(p.shopify())
    response = post(portal.test_client(), code, raw, p.signed_headers("shopify", raw))
    assert response.status_code == status and response.get_json()["error"]["code"] == reason
    assert count(InboxItem) == 0


def test_truncated_json_with_a_good_signature_is_kept_for_review(portal, sync_channels):
    raw = p.body(p.shopify())[:80]
    response = post(portal.test_client(), "SH", raw, p.signed_headers("shopify", raw))
    assert response.status_code == 400 and response.get_json()["error"]["code"] == "invalid_json"
    item = db.session.get(InboxItem, response.get_json()["error"]["inbox_id"])
    assert item.status == "review" and item.error_code == "invalid_json" and item.body == raw.decode()
    assert count(Order) == 0


def test_the_same_webhook_five_times_is_one_row_and_one_order(portal, sync_channels):
    raw = p.body(p.woocommerce())
    client = portal.test_client()
    ids = {post(client, "WC", raw, p.signed_headers("woocommerce", raw)).get_json()["received"] for _ in range(5)}
    assert len(ids) == 1 and db.session.get(InboxItem, ids.pop()).times_received == 5
    assert count(Order) == 1


@pytest.mark.live
@pytest.mark.parametrize("variant", ["identical", "five_updates"])
def test_the_same_order_sent_five_times_in_parallel_makes_one_order(live_apps, portal_server, variant):  # noqa: F811
    with live_apps.core.app_context():
        connect_channels()
        db.session.commit()
    base = datetime(2026, 11, 20, 14, 30, tzinfo=UTC)
    bodies = []
    for number in range(5):
        updated = base + timedelta(minutes=number if variant == "five_updates" else 0)
        bodies.append(p.body(p.shopify(updated=updated.isoformat(), financial="paid")))
    barrier = threading.Barrier(5)
    answers = []

    def send(raw: bytes):
        barrier.wait()
        answers.append(httpx.post(f"{portal_server}/hooks/SH", content=raw,
                                  headers=p.signed_headers("shopify", raw), timeout=30).status_code)

    threads = [threading.Thread(target=send, args=(raw,)) for raw in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [202] * 5
    with live_apps.core.app_context():
        # Losers of the creation race wait for a retry; the sweeper hands them back (here: at once).
        for _ in range(3):
            ids = inbox.sweep(datetime.now(UTC) + timedelta(minutes=10))
            db.session.commit()
            if not ids:
                break
            process_inbox(ids)
        orders = db.session.execute(select(Order)).scalars().all()
        items = db.session.execute(select(InboxItem)).scalars().all()
        assert len(orders) == 1 and orders[0].reservations and len(orders[0].reservations) == 1
        assert len(items) == (1 if variant == "identical" else 5)
        assert {item.status for item in items} == {"done"}
        assert sum(item.times_received for item in items) == 5
        assert orders[0].platform_modified_at == base + timedelta(minutes=4 if variant == "five_updates" else 0)
