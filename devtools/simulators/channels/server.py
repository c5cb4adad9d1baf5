"""The channel simulator: six platforms' order APIs served over real HTTP on one port, each under its own prefix
(`/taobao`, `/jd`, `/pinduoduo`, `/douyin`, `/shopify`, `/woocommerce`), plus `/_sim/...` control endpoints. Shopify
and WooCommerce also answer their refund APIs (refunds.py: `sim.platform_refunds` holds what they refunded).

    sim = ChannelSimulator(seed=7)
    base = sim.start()                     # http://127.0.0.1:PORT
    sim.advance(500)                       # the next 500 stream events, across platforms
    sim.url("taobao")                      # http://127.0.0.1:PORT/taobao: a channel's base URL
    sim.ids_and_statuses("taobao", since, until)
    sim.stop()

Every public method takes the simulator's lock, so tests, the HTTP threads and the run loop can share one.
"""
import json
import random
import threading
from collections import deque
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request

from devtools.simulators.loopback import LoopbackServing
from devtools.simulators.channels import control, endpoints, refunds
from devtools.simulators.channels.book import OrderBook
from devtools.simulators.channels.formats import (PLATFORMS, STATES, WEBHOOK_PLATFORMS, Address, OrderLine, SimOrder, build,
                                      order_id_of)
from devtools.simulators.channels.stream import (PAID_ON_ARRIVAL, Catalog, Event, OrderFactory, PlatformStream, StreamClock,
                                     historical_orders, settle_times)
from devtools.simulators.channels.webhooks import DeliveryResult, WebhookOutbox, new_delivery, send, signed_headers

# The credentials the simulated platforms accept unless told otherwise. Pinduoduo's client_id/client_secret are
# stored as app_key/app_secret, like the other open platforms'.
DEFAULT_CREDENTIALS = {
    "taobao": {"app_key": "23456789", "app_secret": "sim-taobao-app-secret",
               "access_token": "6201a5c3sim9ZZ8f0e7b2d4c1taobao"},
    "jd": {"app_key": "SIMJD2F8A61C0B4D9E7", "app_secret": "sim-jd-app-secret",
           "access_token": "sim-jd-access-token-7c4f"},
    "pinduoduo": {"app_key": "sim0c7e5b1a4d2f4e88a9b3", "app_secret": "sim-pdd-client-secret",
                  "access_token": "sim-pdd-access-token-51e2"},
    "douyin": {"app_key": "7151234567890123456", "app_secret": "sim-douyin-app-secret",
               "access_token": "sim-douyin-access-token-9a0d"},
    "shopify": {"access_token": "shpat_sim0f3b9c2d1e4a5b6c7d8e9f0a1b2c3",
                "webhook_secret": "sim-shopify-webhook-secret", "shop_domain": "orderloom-sim.myshopify.com"},
    "woocommerce": {"consumer_key": "ck_sim4f1e2d3c4b5a69788796a5b4c3d2e1f0a9b8c7",
                    "consumer_secret": "cs_sim0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a",
                    "webhook_secret": "sim-woocommerce-webhook-secret"},
}
FAILURE_KINDS = ("http500", "error_body", "timeout")
DEFAULT_HEADSTART = timedelta(hours=2)  # how far before now simulated time starts by default
DEFAULT_HISTORY = timedelta(hours=20)  # bulk_generate's default span, ending at the stream's current time
# Share of stream events per platform when advance() is not told which platform.
PLATFORM_WEIGHTS = {"taobao": 30, "jd": 20, "pinduoduo": 20, "douyin": 15, "shopify": 8, "woocommerce": 7}
# How long before "now" an order added in a given state was placed, so its later times fit before now.
ADDED_LOOKBACK = {"unpaid": 0, "paid": 1800, "refunding": 7200, "cancelled_unpaid": 86400, "refunded": 86400,
                  "shipped": 2 * 86400, "completed": 10 * 86400}
MONEY_FIELDS = frozenset({"shipping", "discount", "tax"})
TIME_FIELDS = frozenset({"created", "modified", "paid", "shipped", "closed"})

URL_MAP = Map([
    Rule("/taobao/router/rest", endpoint="taobao", methods=["GET", "POST"]),
    Rule("/jd/routerjson", endpoint="jd", methods=["GET", "POST"]),
    Rule("/pinduoduo/api/router", endpoint="pinduoduo", methods=["POST"]),
    Rule("/douyin/order/searchList", endpoint="douyin", methods=["GET", "POST"]),
    Rule("/douyin/order/batchDecrypt", endpoint="douyin", methods=["GET", "POST"]),
    Rule("/douyin/logistics/newCreateOrder", endpoint="douyin", methods=["GET", "POST"]),
    Rule("/shopify/admin/api/<version>/orders.json", endpoint="shopify", methods=["GET"]),
    Rule("/woocommerce/wp-json/wc/v3/orders", endpoint="woocommerce", methods=["GET"]),
    Rule("/shopify/admin/api/<version>/orders/<order_id>/transactions.json", endpoint="shopify_transactions",
         methods=["GET"]),
    Rule("/shopify/admin/api/<version>/orders/<order_id>/refunds.json", endpoint="shopify_refunds",
         methods=["GET", "POST"]),
    Rule("/woocommerce/wp-json/wc/v3/orders/<order_id>/refunds", endpoint="woocommerce_refunds",
         methods=["GET", "POST"]),
    *control.RULES,
])
PLATFORM_HANDLERS = {"taobao": endpoints.taobao, "jd": endpoints.jd, "pinduoduo": endpoints.pinduoduo,
                     "douyin": endpoints.douyin, "shopify": endpoints.shopify, "woocommerce": endpoints.woocommerce,
                     "shopify_transactions": refunds.shopify_transactions, "shopify_refunds": refunds.shopify_refunds,
                     "woocommerce_refunds": refunds.woocommerce_refunds}
ENDPOINT_PLATFORM = {"shopify_transactions": "shopify", "shopify_refunds": "shopify",
                     "woocommerce_refunds": "woocommerce"}  # other endpoints are named after their platform



def _check_platform(platform: str) -> None:
    if platform not in PLATFORMS:
        raise ValueError(f"unknown platform {platform!r}; one of {', '.join(PLATFORMS)}")


def _aware(moment: datetime, name: str) -> datetime:
    if not isinstance(moment, datetime) or moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime")
    return moment.astimezone(UTC).replace(microsecond=0)


class ChannelSimulator(LoopbackServing):
    """Fake Taobao, JD, Pinduoduo, Douyin, Shopify and WooCommerce order APIs, deterministic for a seed."""

    thread_name = "channel-simulator"

    def __init__(self, credentials: dict | None = None, seed=1, skus=None, *, start: datetime | None = None,
                 realtime: bool = False, unknown_sku_rate: float = 0.0, encrypted: bool = True):
        """`start` is where simulated time begins (default: two hours before now, so that history and stream
        both fall inside a poller's first 24-hour window); with `realtime` the stream reads the wall clock
        instead. `unknown_sku_rate` is the share of lines carrying a SKU code that is not in `skus`. With `encrypted`
        (the default) Taobao, JD, Pinduoduo and Douyin serve their buyer fields as platform ciphertext, as they do
        today, and answer their decrypt and e-waybill APIs; `encrypted=False` serves plain-text payloads."""
        self.credentials = {platform: {**DEFAULT_CREDENTIALS[platform], **(credentials or {}).get(platform, {})}
                            for platform in PLATFORMS}
        self.seed = seed
        self.lock = threading.RLock()
        self.catalog = Catalog(skus, seed)
        start = start or datetime.now(UTC) - DEFAULT_HEADSTART
        self.clock = StreamClock(datetime.now(UTC) if realtime else _aware(start, "start"), realtime)
        self.factories = {platform: OrderFactory(platform, self.catalog, unknown_sku_rate) for platform in PLATFORMS}
        self.streams = {platform: PlatformStream(platform, self.factories[platform], self.clock, seed)
                        for platform in PLATFORMS}
        self.encrypted = encrypted
        self.books = {platform: OrderBook(platform, encrypted) for platform in PLATFORMS}
        # Every decrypt / e-waybill request received, per platform: (api, business parameters), for tests.
        self.privacy_calls: dict[str, list[tuple[str, object]]] = {platform: [] for platform in PLATFORMS}
        self._decrypt_refusals: dict[str, deque] = {platform: deque() for platform in PLATFORMS}
        self.outbox = WebhookOutbox()
        # Refunds made through the shops' refund APIs, per platform and order id (devtools/.../refunds.py).
        self.platform_refunds: dict[str, dict[str, list[dict]]] = {platform: {} for platform in WEBHOOK_PLATFORMS}
        self.refund_counter = {platform: 0 for platform in WEBHOOK_PLATFORMS}
        self._failures: dict[str, deque] = {platform: deque() for platform in PLATFORMS}
        self._platform_rng = random.Random(f"{seed}:platforms")
        self._bulk_calls = 0
        self._init_serving()

    # ------------------------------------------------------------ serving

    def url(self, platform: str) -> str:
        """A channel's base URL, e.g. http://127.0.0.1:PORT/taobao."""
        _check_platform(platform)
        if self.base_url is None:
            raise RuntimeError("start() the simulator first")
        return f"{self.base_url}/{platform}"

    def wsgi_app(self, environ, start_response):
        request = Request(environ)
        try:
            endpoint, arguments = URL_MAP.bind_to_environ(environ).match()
            if endpoint in PLATFORM_HANDLERS:
                response = self._platform_response(endpoint, request, arguments)
            else:
                response = control.HANDLERS[endpoint](self, request, **arguments)
        except HTTPException as exc:
            response = exc.get_response(environ)
        return response(environ, start_response)

    def _platform_response(self, endpoint: str, request: Request, arguments: dict):
        platform = ENDPOINT_PLATFORM.get(endpoint, endpoint)
        failure = self._take_failure(platform)
        if failure is not None:
            kind, delay = failure
            if kind == "http500":
                return endpoints.Response("Internal Server Error", 500, content_type="text/plain")
            if kind == "error_body":
                return endpoints.transient_error(platform)
            self._stopping.wait(delay)  # timeout: hold the answer longer than a sane client waits
        return PLATFORM_HANDLERS[endpoint](self, request, **arguments)

    # ------------------------------------------------------------ failures
    def fail_next(self, platform: str, count: int = 1, kind: str = "http500", *, delay: float = 30.0) -> None:
        """The next `count` API requests to the platform fail: HTTP 500, the platform's error body for a
        throttled or failed call, or a timeout (the answer is held `delay` seconds)."""
        _check_platform(platform)
        if kind not in FAILURE_KINDS:
            raise ValueError(f"kind must be one of {', '.join(FAILURE_KINDS)}")
        with self.lock:
            self._failures[platform].extend([(kind, delay)] * count)

    def refuse_decrypt(self, platform: str, count: int = 1, reason: str = "") -> None:
        """The next `count` decrypt requests to the platform are refused with the platform's own refusal
        (quota used up, by default). Use fail_next(kind="timeout") for a decrypt that does not answer."""
        _check_platform(platform)
        with self.lock:
            self._decrypt_refusals[platform].extend([reason] * count)

    def take_decrypt_refusal(self, platform: str) -> str | None:
        with self.lock:
            queue = self._decrypt_refusals[platform]
            return queue.popleft() if queue else None

    def record_privacy_call(self, platform: str, api: str, business) -> None:
        with self.lock:
            self.privacy_calls[platform].append((api, business))

    def privacy_call_count(self, platform: str, api: str | None = None) -> int:
        with self.lock:
            return sum(1 for name, _ in self.privacy_calls[platform] if api is None or name == api)

    def plain_receiver(self, platform: str, order_id: str) -> dict | None:
        """The plain-text JSON of an order the simulator generated (what the decrypt APIs answer from)."""
        with self.lock:
            listing = self.books[platform].get(str(order_id))
            if listing is None or listing.order is None:
                return None
            return build(platform, listing.order, encrypted=False)

    def _take_failure(self, platform: str):
        with self.lock:
            queue = self._failures[platform]
            return queue.popleft() if queue else None

    # ------------------------------------------------------------ orders
    def now(self) -> datetime:
        """The stream's current (simulated) time."""
        with self.lock:
            return self.clock.current

    def advance(self, events: int, platform: str | None = None) -> list[Event]:
        """Apply the next `events` stream events, across all platforms or on one."""
        if platform is not None:
            _check_platform(platform)
        applied = []
        with self.lock:
            for _ in range(events):
                chosen = platform or self._platform_rng.choices(list(PLATFORM_WEIGHTS),
                                                                list(PLATFORM_WEIGHTS.values()))[0]
                event, order = self.streams[chosen].next_event()
                self.books[chosen].put_order(order)
                self._record_webhook(chosen, order, event.kind)
                applied.append(event)
        return applied

    def add_order(self, platform: str, **overrides) -> SimOrder:
        """Add one new order, generated like the stream's, with any SimOrder field overridden: state, created,
        paid, modified, lines (OrderLine or dicts with sku/quantity/unit_price), receiver (Address or a dict of
        its fields), shipping, discount, tax, buyer... Times are filled in to fit the state and must be aware."""
        _check_platform(platform)
        state = overrides.pop("state", "paid" if platform in PAID_ON_ARRIVAL else "unpaid")
        if state not in STATES:
            raise ValueError(f"state must be one of {', '.join(STATES)}")
        unknown = set(overrides) - {item.name for item in fields(SimOrder)}
        if unknown:
            raise TypeError(f"unknown order fields: {', '.join(sorted(unknown))}")
        with self.lock:
            stream, factory = self.streams[platform], self.factories[platform]
            now = self.clock.tick(stream.rng)
            created = _aware(overrides.pop("created"), "created") if "created" in overrides else (
                now - timedelta(seconds=ADDED_LOOKBACK[state]))
            order = factory.new_order(stream.rng, created)
            if "id" in overrides:
                overrides["id"] = str(overrides["id"])
            self._apply_overrides(order, overrides, factory)
            order.state = state
            settle_times(order, stream.rng, max(now, created), factory.english)
            if "modified" in overrides:
                order.modified = _aware(overrides["modified"], "modified")
            self.books[platform].put_order(order)
            stream.adopt(order)
            self._record_webhook(platform, order, "new")
            return order

    @staticmethod
    def _apply_overrides(order: SimOrder, overrides: dict, factory: OrderFactory) -> None:
        for name, value in overrides.items():
            if name == "lines":
                value = [line if isinstance(line, OrderLine) else OrderLine(
                    sku=line["sku"], title=line.get("title", line["sku"]), quantity=int(line["quantity"]),
                    unit_price=Decimal(str(line["unit_price"])), spec=line.get("spec", "")) for line in value]
                if "discount" not in overrides:
                    order.discount = min(order.discount, sum((line.total for line in value), Decimal("0.00")))
            elif name == "receiver" and isinstance(value, dict):
                value = Address(**{**{item.name: getattr(order.receiver, item.name)
                                      for item in fields(Address)}, **value})
            elif name in MONEY_FIELDS:
                value = Decimal(str(value))
            elif name in TIME_FIELDS and value is not None:
                value = _aware(value, name)
            setattr(order, name, value)

    def put_raw(self, platform: str, raw: dict) -> str:
        """Store a platform order exactly as given (malformed or odd ones too); returns the id it is listed
        under. Its modified time is read from the platform's field, or is the stream's current time."""
        _check_platform(platform)
        if not isinstance(raw, dict):
            raise TypeError("a raw order is a JSON object (dict)")
        with self.lock:
            is_new = self.books[platform].get(order_id_of(platform, raw) or "") is None
            listing = self.books[platform].put_raw(raw, self.clock.current)
            if platform in WEBHOOK_PLATFORMS:
                body = json.dumps(raw, ensure_ascii=False, separators=(",", ":")).encode()
                self.outbox.record(new_delivery(platform, listing.order_id, "created" if is_new else "updated", body))
            return listing.order_id

    def bulk_generate(self, platform: str, count: int, *, since: datetime | None = None,
                      until: datetime | None = None) -> int:
        """Add `count` historical orders whose last change (modified time) falls in [since, until] (default: the
        20 hours before the stream's current time), fast; they are served and listed but take no part in the
        stream or in webhooks."""
        _check_platform(platform)
        with self.lock:
            until = _aware(until, "until") if until else self.clock.current
            since = _aware(since, "since") if since else until - DEFAULT_HISTORY
            orders = historical_orders(self.factories[platform], self._bulk_rng(platform), count, since, until)
            self.books[platform].put_many(orders)
            return len(orders)

    def sample_orders(self, platform: str, count: int, state: str = "paid") -> list[dict]:
        """`count` new orders placed just now in `state`, stored like bulk ones (no stream, no webhook log) and
        returned as the platform's JSON: bodies to send by hand, e.g. as webhooks in a latency benchmark."""
        _check_platform(platform)
        if state not in STATES:
            raise ValueError(f"state must be one of {', '.join(STATES)}")
        with self.lock:
            factory, rng, now = self.factories[platform], self._bulk_rng(platform), self.clock.current
            orders = []
            for _ in range(count):
                # Samples are sent by hand as paid orders (webhook benchmarks): never cash on delivery.
                order = factory.new_order(rng, now - timedelta(seconds=ADDED_LOOKBACK[state]), prepaid=True)
                order.state = state
                settle_times(order, rng, now, factory.english)
                orders.append(order)
            self.books[platform].put_many(orders)
            return [json.loads(json.dumps(build(platform, order, self.encrypted))) for order in orders]

    def _bulk_rng(self, platform: str) -> random.Random:
        """A fresh generator per bulk call, so bulk orders never shift the stream's own sequence."""
        self._bulk_calls += 1
        return random.Random(f"{self.seed}:{platform}:bulk:{self._bulk_calls}")

    def ids_and_statuses(self, platform: str, since: datetime, until: datetime) -> list[tuple[str, str]]:
        """(order id, CHANNELS.md status key) of every order the platform lists with modified time in
        [since, until], in modified-time order: what a complete poll of that window must find."""
        _check_platform(platform)
        window = (int(_aware(since, "since").timestamp()), int(_aware(until, "until").timestamp()))
        with self.lock:
            return [(item.order_id, item.status_key) for item in self.books[platform].select(modified=window)]

    def order_json(self, platform: str, order_id: str) -> dict | None:
        """The platform's JSON for one order, as it would be served now."""
        _check_platform(platform)
        with self.lock:
            book = self.books[platform]
            listing = book.get(str(order_id))
            if listing is None or not listing.listed:
                return None
            return json.loads(json.dumps(book.render(listing)))

    # ------------------------------------------------------------ webhooks
    def _record_webhook(self, platform: str, order: SimOrder, kind: str) -> None:
        if platform not in WEBHOOK_PLATFORMS:
            return
        if kind == "duplicate":
            self.outbox.redeliver(platform, order.id)
            return
        body = json.dumps(build(platform, order, self.encrypted), ensure_ascii=False, separators=(",", ":")).encode()
        self.outbox.record(new_delivery(platform, order.id, "created" if kind == "new" else "updated", body))

    def push_webhooks(self, platform: str, target_url: str, secret: str | None = None,
                      order_ids=None, timeout: float = 10.0) -> list[DeliveryResult]:
        """POST webhooks to target_url as the platform would, signed with `secret` (default: the configured
        webhook secret). Without order_ids: every change this target has not received yet, plus earlier failed
        deliveries. With order_ids: those orders as they are now (create the first time, then updated)."""
        if platform not in WEBHOOK_PLATFORMS:
            raise ValueError(f"{platform} sends no webhooks; only {', '.join(WEBHOOK_PLATFORMS)} do")
        credentials = self.credentials[platform]
        secret = secret or credentials["webhook_secret"]
        with self.lock:
            if order_ids is None:
                deliveries = self.outbox.take_pending(platform, target_url)
            else:
                deliveries = [self._fresh_delivery(platform, target_url, str(order_id)) for order_id in order_ids]
        site = f"{self.url(platform)}/" if self.base_url else f"http://127.0.0.1/{platform}/"
        results = []
        with httpx.Client(timeout=timeout) as client:  # sent outside the lock: the receiver may call us back
            for delivery in deliveries:
                headers = signed_headers(delivery, secret, credentials.get("shop_domain", ""), site)
                result = send(client, target_url, delivery, headers)
                with self.lock:
                    self.outbox.outcome(platform, target_url, delivery, result)
                results.append(result)
        return results

    def _fresh_delivery(self, platform: str, target_url: str, order_id: str):
        book = self.books[platform]
        listing = book.get(order_id)
        if listing is None:
            raise KeyError(f"no {platform} order {order_id}")
        kind = "updated" if self.outbox.topic_for(platform, target_url, order_id).endswith("updated") else "created"
        body = json.dumps(book.render(listing), ensure_ascii=False, separators=(",", ":")).encode()
        return new_delivery(platform, order_id, kind, body)

    # ------------------------------------------------------------ context manager
