"""Webhook deliveries as Shopify and WooCommerce send them: the order JSON as body, signed with
base64(HMAC-SHA256(secret, raw body)), with each platform's own headers.

Every change to a Shopify or WooCommerce order is recorded as a delivery (body frozen at the time of the
change). Each target URL keeps its own cursor into that log, so it receives every delivery once; failed
deliveries are retried on the next push, as the platforms retry. A duplicate event re-sends a delivery unchanged:
same body, same ids, as when a platform delivers a webhook twice.
"""
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

from shared.channels.signing import body_hmac_base64
from devtools.simulators.channels.formats import WEBHOOK_PLATFORMS

TOPICS = {"shopify": {"created": "orders/create", "updated": "orders/updated", "refund": "refunds/create"},
          "woocommerce": {"created": "order.created", "updated": "order.updated"}}
WOOCOMMERCE_WEBHOOK_IDS = {"order.created": "11", "order.updated": "12"}  # one configured webhook per topic
SHOPIFY_API_VERSION = "2024-10"
MAX_ATTEMPTS = 8  # Shopify gives up after 8 failed attempts
LOG_LIMIT = 100_000  # oldest deliveries are dropped beyond this, whether delivered or not


@dataclass(slots=True)
class Delivery:
    platform: str
    order_id: str
    topic: str
    body: bytes
    delivery_id: str  # X-Shopify-Webhook-Id / X-WC-Webhook-Delivery-ID
    event_id: str
    triggered_at: datetime
    attempts: int = 0


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    order_id: str
    topic: str
    status: int | None  # the receiver's HTTP status; None when it could not be reached
    error: str = ""

    def as_json(self) -> dict:
        return {"order_id": self.order_id, "topic": self.topic, "status": self.status, "error": self.error}


def new_delivery(platform: str, order_id: str, kind: str, body: bytes) -> Delivery:
    """A delivery for a change of `kind` ("created" or "updated"; Shopify's "refund": a Refund for refunds/create)."""
    return Delivery(platform, order_id, TOPICS[platform][kind], body, str(uuid.uuid4()), str(uuid.uuid4()),
                    datetime.now(UTC))


def signed_headers(delivery: Delivery, secret: str, shop_domain: str, site_url: str) -> dict[str, str]:
    """The platform's webhook headers, signature included."""
    signature = body_hmac_base64(secret, delivery.body)
    if delivery.platform == "shopify":
        return {"Content-Type": "application/json", "X-Shopify-Topic": delivery.topic,
                "X-Shopify-Hmac-Sha256": signature, "X-Shopify-Shop-Domain": shop_domain,
                "X-Shopify-API-Version": SHOPIFY_API_VERSION, "X-Shopify-Webhook-Id": delivery.delivery_id,
                "X-Shopify-Event-Id": delivery.event_id,
                "X-Shopify-Triggered-At": delivery.triggered_at.isoformat().replace("+00:00", "Z"),
                "User-Agent": "Shopify-Captain-Hook"}
    resource, _, event = delivery.topic.partition(".")
    return {"Content-Type": "application/json", "X-WC-Webhook-Source": site_url,
            "X-WC-Webhook-Topic": delivery.topic, "X-WC-Webhook-Resource": resource, "X-WC-Webhook-Event": event,
            "X-WC-Webhook-Signature": signature, "X-WC-Webhook-ID": WOOCOMMERCE_WEBHOOK_IDS[delivery.topic],
            "X-WC-Webhook-Delivery-ID": uuid.UUID(delivery.delivery_id).hex,
            "User-Agent": "WooCommerce/9.3.3 Hookshot (WordPress/6.6.2)"}


def send(client: httpx.Client, url: str, delivery: Delivery, headers: dict[str, str]) -> DeliveryResult:
    delivery.attempts += 1
    try:
        response = client.post(url, content=delivery.body, headers=headers)
    except httpx.HTTPError as exc:
        return DeliveryResult(delivery.order_id, delivery.topic, None, f"{type(exc).__name__}: {exc}")
    return DeliveryResult(delivery.order_id, delivery.topic, response.status_code)


class WebhookOutbox:
    """The deliveries of each webhook platform, and how far each target has received them."""

    def __init__(self):
        self._log: dict[str, list[Delivery]] = {platform: [] for platform in WEBHOOK_PLATFORMS}
        self._dropped: dict[str, int] = {platform: 0 for platform in WEBHOOK_PLATFORMS}  # log entries trimmed
        self._cursors: dict[tuple[str, str], int] = {}  # (platform, url) -> absolute position in the log
        self._retries: dict[tuple[str, str], list[Delivery]] = {}
        self._received: dict[tuple[str, str], set[str]] = {}  # order ids a target has had a delivery for
        self._last: dict[tuple[str, str], Delivery] = {}  # (platform, order id) -> latest delivery

    def record(self, delivery: Delivery) -> None:
        log = self._log[delivery.platform]
        log.append(delivery)
        self._last[(delivery.platform, delivery.order_id)] = delivery
        if len(log) > LOG_LIMIT:
            drop = len(log) - LOG_LIMIT
            del log[:drop]
            self._dropped[delivery.platform] += drop

    def redeliver(self, platform: str, order_id: str) -> bool:
        """Queue the order's latest delivery once more, byte for byte; False when it never had one."""
        last = self._last.get((platform, order_id))
        if last is None:
            return False
        self._log[platform].append(last)
        return True

    def take_pending(self, platform: str, url: str) -> list[Delivery]:
        """Deliveries this target has not had yet (failed ones first); they count as taken."""
        key = (platform, url)
        log = self._log[platform]
        end = self._dropped[platform] + len(log)
        start = max(self._cursors.get(key, 0), self._dropped[platform])
        self._cursors[key] = end
        retries = self._retries.pop(key, [])
        return retries + log[start - self._dropped[platform]:]

    def topic_for(self, platform: str, url: str, order_id: str) -> str:
        """create for the first delivery of an order to a target, updated after that."""
        received = self._received.get((platform, url), set())
        return TOPICS[platform]["updated" if order_id in received else "created"]

    def outcome(self, platform: str, url: str, delivery: Delivery, result: DeliveryResult) -> None:
        if result.status is not None and 200 <= result.status < 300:
            self._received.setdefault((platform, url), set()).add(delivery.order_id)
        elif delivery.attempts < MAX_ATTEMPTS:
            self._retries.setdefault((platform, url), []).append(delivery)
