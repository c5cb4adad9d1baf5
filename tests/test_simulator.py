"""The channel simulator over real HTTP: signing, window filters, paging, amounts, failures and webhooks.

The clients here are written from docs/CHANNELS.md and `shared.channels.signing` alone, and read times and
amounts with their own code, so a simulator that drifts from the contract fails these tests. No database needed.
"""
import base64
import json
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from shared.channels.signing import douyin_param_json, douyin_sign, jd_sign, pdd_sign, top_sign, verify_body_hmac
from devtools.simulators.channels import DEFAULT_CREDENTIALS, PLATFORMS, ChannelSimulator
from devtools.simulators.channels.stream import DEFAULT_SKUS

BEIJING = ZoneInfo("Asia/Shanghai")
START = datetime(2025, 11, 10, 16, 0, tzinfo=UTC)  # 2025-11-11 00:00 in Beijing
FIXTURES = Path(__file__).parent / "fixtures" / "channels"
PDD_MAX_WINDOW = timedelta(minutes=30)

# Status values CHANNELS.md allows, per platform.
TAOBAO_STATUSES = {"TRADE_NO_CREATE_PAY", "WAIT_BUYER_PAY", "WAIT_SELLER_SEND_GOODS", "SELLER_CONSIGNED_PART",
                   "WAIT_BUYER_CONFIRM_GOODS", "TRADE_BUYER_SIGNED", "TRADE_FINISHED", "TRADE_CLOSED",
                   "TRADE_CLOSED_BY_TAOBAO"}
TAOBAO_REFUNDS = {"NO_REFUND", "WAIT_SELLER_AGREE", "SUCCESS", "CLOSED"}
JD_STATES = {"WAIT_SELLER_STOCK_OUT", "WAIT_GOODS_RECEIVE_CONFIRM", "FINISHED_L", "TRADE_CANCELED", "LOCKED"}
DOUYIN_STATUSES = {1, 105, 2, 101, 3, 4, 5}
SHOPIFY_FINANCIAL = {"pending", "authorized", "partially_paid", "paid", "partially_refunded", "refunded", "voided"}
SHOPIFY_FULFILLMENT = {None, "partial", "fulfilled", "restocked"}
WOO_STATUSES = {"pending", "processing", "on-hold", "completed", "cancelled", "refunded", "failed"}


def beijing(moment: datetime) -> str:
    return moment.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S")


# ------------------------------------------------------------------------- reading orders, independently

def order_id(platform: str, order: dict) -> str:
    key = {"taobao": "tid_str", "jd": "orderId", "pinduoduo": "order_sn", "douyin": "order_id", "shopify": "id",
           "woocommerce": "id"}[platform]
    return str(order[key])


def status_key(platform: str, order: dict) -> str:
    if platform == "taobao":
        return order["status"]
    if platform == "jd":
        return order["orderState"]
    if platform == "pinduoduo":
        return f"{order['order_status']}/{order['refund_status']}"
    if platform == "douyin":
        return str(order["order_status"])
    if platform == "shopify":
        if order["cancelled_at"]:
            return f"cancelled/{order['financial_status']}"
        return f"{order['financial_status']}/{order['fulfillment_status'] or 'unfulfilled'}"
    return order["status"]


def modified_at(platform: str, order: dict) -> datetime:
    if platform in ("taobao", "jd"):
        return datetime.strptime(order["modified"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=BEIJING)
    if platform == "pinduoduo":
        return datetime.strptime(order["updated_at"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=BEIJING)
    if platform == "douyin":
        return datetime.fromtimestamp(order["update_time"], UTC)
    if platform == "shopify":
        moment = datetime.fromisoformat(order["updated_at"])
        assert moment.utcoffset() is not None, "Shopify times carry an offset"
        return moment
    moment = datetime.fromisoformat(order["date_modified_gmt"])
    assert moment.tzinfo is None, "WooCommerce *_gmt times carry no offset"
    return moment.replace(tzinfo=UTC)


def skus_of(platform: str, order: dict) -> list[str]:
    if platform == "taobao":
        return [item["outer_sku_id"] for item in order["orders"]["order"]]
    if platform == "jd":
        return [item["outerSkuId"] for item in order["itemInfoList"]]
    if platform == "pinduoduo":
        return [item["outer_id"] for item in order["item_list"]]
    if platform == "douyin":
        return [item["code"] for item in order["sku_order_list"]]
    return [item["sku"] for item in order["line_items"]]


def yuan_text(value) -> Decimal:
    assert isinstance(value, str), f"amount {value!r} should be a string"
    amount = Decimal(value)
    assert amount == amount.quantize(Decimal("0.01")) and amount >= 0, value
    return amount


def yuan_number(value) -> Decimal:
    assert isinstance(value, (int, float)) and not isinstance(value, bool), f"amount {value!r} should be a number"
    return Decimal(repr(value))


def fen_integer(value) -> int:
    assert isinstance(value, int) and not isinstance(value, bool) and value >= 0, f"{value!r} should be fen"
    return value


def amount_problems(platform: str, order: dict) -> list[str]:
    """Where an order's amounts break the CHANNELS.md formula (empty when they add up exactly)."""
    problems = []

    def expect(label: str, actual, expected) -> None:
        if actual != expected:
            problems.append(f"{order_id(platform, order)} {label}: {actual} != {expected}")

    if platform == "taobao":
        lines = order["orders"]["order"]
        goods = sum(yuan_text(item["price"]) * item["num"] for item in lines)
        for item in lines:
            expect("order.total_fee", yuan_text(item["total_fee"]), yuan_text(item["price"]) * item["num"])
        expect("total_fee", yuan_text(order["total_fee"]), goods)
        expect("payment", yuan_text(order["payment"]),
               goods + yuan_text(order["post_fee"]) - yuan_text(order["discount_fee"]))
    elif platform == "jd":
        goods = sum(yuan_text(item["jdPrice"]) * int(item["itemTotal"]) for item in order["itemInfoList"])
        assert all(isinstance(item["itemTotal"], str) for item in order["itemInfoList"])
        expect("orderTotalPrice", yuan_text(order["orderTotalPrice"]), goods)
        expect("orderPayment", yuan_text(order["orderPayment"]),
               goods + yuan_text(order["freightPrice"]) - yuan_text(order["sellerDiscount"]))
    elif platform == "pinduoduo":
        goods = sum(yuan_number(item["goods_price"]) * item["goods_count"] for item in order["item_list"])
        expect("goods_amount", yuan_number(order["goods_amount"]), goods)
        expect("pay_amount", yuan_number(order["pay_amount"]),
               goods + yuan_number(order["postage"]) - yuan_number(order["discount_amount"]))
    elif platform == "douyin":
        goods = sum(fen_integer(item["origin_amount"]) for item in order["sku_order_list"])
        for item in order["sku_order_list"]:
            expect("origin_amount divisible by item_num", fen_integer(item["origin_amount"]) % item["item_num"], 0)
        expect("order_amount", fen_integer(order["order_amount"]),
               goods + fen_integer(order["post_amount"]) - fen_integer(order["promotion_amount"]))
        expect("pay_amount", fen_integer(order["pay_amount"]), order["order_amount"])
    elif platform == "shopify":
        lines = sum(yuan_text(item["price"]) * item["quantity"] for item in order["line_items"])
        subtotal = yuan_text(order["subtotal_price"])
        expect("total_line_items_price", yuan_text(order["total_line_items_price"]), lines)
        expect("subtotal_price", subtotal, lines - yuan_text(order["total_discounts"]))
        shipping = yuan_text(order["total_shipping_price_set"]["shop_money"]["amount"])
        tax = Decimal(0) if order["taxes_included"] else yuan_text(order["total_tax"])
        expect("total_price", yuan_text(order["total_price"]), subtotal + shipping + tax)
    else:
        subtotals = sum(yuan_text(item["subtotal"]) for item in order["line_items"])
        for item in order["line_items"]:
            expect("line subtotal", yuan_text(item["subtotal"]), yuan_number(item["price"]) * item["quantity"])
        expect("line totals", sum(yuan_text(item["total"]) for item in order["line_items"]),
               subtotals - yuan_text(order["discount_total"]))
        expect("total", yuan_text(order["total"]), subtotals - yuan_text(order["discount_total"])
               + yuan_text(order["shipping_total"]) + yuan_text(order["total_tax"]))
    return problems


# ------------------------------------------------------------------------- signed clients, one per platform

class Client:
    """Calls each platform's order list exactly as CHANNELS.md describes, signing with the given secrets."""

    def __init__(self, sim: ChannelSimulator, http: httpx.Client, credentials: dict | None = None):
        self.sim = sim
        self.http = http
        self.credentials = credentials or DEFAULT_CREDENTIALS

    def page(self, platform: str, start: datetime, end: datetime, cursor=None, size: int = 100) -> httpx.Response:
        """One page request; cursor None asks for the first page."""
        return getattr(self, f"_{platform}")(start, end, cursor, size)

    def _taobao(self, start, end, page, size):
        creds = self.credentials["taobao"]
        params = {"method": "taobao.trades.sold.increment.get", "app_key": creds["app_key"],
                  "session": creds["access_token"], "timestamp": beijing(datetime.now(UTC)), "format": "json",
                  "v": "2.0", "sign_method": "md5", "fields": "tid,tid_str,status,modified,orders",
                  "start_modified": beijing(start), "end_modified": beijing(end), "page_no": str(page or 1),
                  "page_size": str(size), "use_has_next": "true"}
        params["sign"] = top_sign(params, creds["app_secret"])
        return self.http.post(f"{self.sim.url('taobao')}/router/rest", data=params)

    def _jd(self, start, end, page, size):
        creds = self.credentials["jd"]
        business = {"start_date": beijing(start), "end_date": beijing(end),
                    "order_state": "WAIT_SELLER_STOCK_OUT,WAIT_GOODS_RECEIVE_CONFIRM,FINISHED_L,TRADE_CANCELED,LOCKED",
                    "page": str(page or 1), "page_size": str(size), "dateType": "1"}
        params = {"method": "jingdong.pop.order.enSearch", "app_key": creds["app_key"],
                  "access_token": creds["access_token"], "timestamp": beijing(datetime.now(UTC)), "v": "2.0",
                  "sign_method": "md5", "360buy_param_json": json.dumps(business, ensure_ascii=False)}
        params["sign"] = jd_sign(params, creds["app_secret"])
        return self.http.post(f"{self.sim.url('jd')}/routerjson", data=params)

    def _pinduoduo(self, start, end, page, size):
        creds = self.credentials["pinduoduo"]
        params = {"type": "pdd.order.list.increment.get", "client_id": creds["app_key"],
                  "access_token": creds["access_token"], "timestamp": str(int(time.time())), "data_type": "JSON",
                  "version": "V1", "is_lucky_flag": "0", "order_status": "5", "refund_status": "5",
                  "start_updated_at": str(int(start.timestamp())), "end_updated_at": str(int(end.timestamp())),
                  "page": str(page or 1), "page_size": str(size), "use_has_next": "true"}
        params["sign"] = pdd_sign(params, creds["app_secret"])
        return self.http.post(f"{self.sim.url('pinduoduo')}/api/router", data=params)

    def _douyin(self, start, end, page, size):
        creds = self.credentials["douyin"]
        param_json = douyin_param_json({"update_time_start": int(start.timestamp()),
                                        "update_time_end": int(end.timestamp()), "page": page or 0, "size": size,
                                        "order_by": "update_time"})
        timestamp = beijing(datetime.now(UTC))
        params = {"app_key": creds["app_key"], "method": "order.searchList", "access_token": creds["access_token"],
                  "param_json": param_json, "timestamp": timestamp, "v": "2", "sign_method": "hmac-sha256",
                  "sign": douyin_sign(creds["app_key"], "order.searchList", param_json, timestamp,
                                      creds["app_secret"])}
        return self.http.get(f"{self.sim.url('douyin')}/order/searchList", params=params)

    def _shopify(self, start, end, next_url, size):
        headers = {"X-Shopify-Access-Token": self.credentials["shopify"]["access_token"]}
        if next_url:
            return self.http.get(next_url, headers=headers)
        params = {"status": "any", "updated_at_min": start.isoformat(), "updated_at_max": end.isoformat(),
                  "limit": str(size)}
        return self.http.get(f"{self.sim.url('shopify')}/admin/api/2024-10/orders.json", params=params,
                             headers=headers)

    def _woocommerce(self, start, end, page, size):
        creds = self.credentials["woocommerce"]
        gmt = "%Y-%m-%dT%H:%M:%S"
        params = {"modified_after": start.astimezone(UTC).strftime(gmt),
                  "modified_before": end.astimezone(UTC).strftime(gmt), "dates_are_gmt": "true",
                  "page": str(page or 1), "per_page": str(size)}
        return self.http.get(f"{self.sim.url('woocommerce')}/wp-json/wc/v3/orders", params=params,
                             auth=(creds["consumer_key"], creds["consumer_secret"]))

    def orders_and_next(self, platform: str, response: httpx.Response, cursor, size: int):
        """The orders of a page, and the cursor of the next page (None: the platform says there is no more)."""
        assert response.status_code == 200, response.text
        body = response.json()
        if platform == "taobao":
            answer = body["trades_sold_increment_get_response"]
            return (answer.get("trades") or {}).get("trade", []), ((cursor or 1) + 1 if answer["has_next"] else None)
        if platform == "jd":
            result = body["jingdong_pop_order_enSearch_responce"]["searchorderinfo_result"]
            assert result["apiResult"]["success"] is True
            page = cursor or 1
            return result["orderInfoList"], (page + 1 if page * size < result["orderTotal"] else None)
        if platform == "pinduoduo":
            answer = body["order_list_get_response"]
            return answer["order_list"], ((cursor or 1) + 1 if answer["has_next"] else None)
        if platform == "douyin":
            assert body["code"] == 10000, body
            data = body["data"]
            page = cursor or 0
            return data["shop_order_list"], (page + 1 if (page + 1) * size < data["total"] else None)
        if platform == "shopify":
            link = response.headers.get("Link", "")
            following = [part.split(";")[0].strip(" <>") for part in link.split(",") if 'rel="next"' in part]
            return body["orders"], (following[0] if following else None)
        page = cursor or 1
        return body, (page + 1 if page < int(response.headers["X-WP-TotalPages"]) else None)

    def fetch_window(self, platform: str, start: datetime, end: datetime, size: int = 100) -> list[dict]:
        """Every page of one window, until the platform says there are no more."""
        orders, cursor = [], None
        while True:
            page, cursor = self.orders_and_next(platform, self.page(platform, start, end, cursor, size), cursor, size)
            orders.extend(page)
            if cursor is None:
                return orders

    def fetch_all(self, platform: str, start: datetime, end: datetime, size: int = 100) -> list[dict]:
        """A long range, in windows the platform accepts (Pinduoduo: 30 minutes), without overlaps."""
        if platform != "pinduoduo":
            return self.fetch_window(platform, start, end, size)
        orders, window_start = [], start
        while window_start <= end:
            window_end = min(window_start + PDD_MAX_WINDOW - timedelta(seconds=1), end)
            orders.extend(self.fetch_window(platform, window_start, window_end, size))
            window_start = window_end + timedelta(seconds=1)
        return orders


@pytest.fixture
def sim():
    simulator = ChannelSimulator(seed=11, start=START)
    simulator.start()
    yield simulator
    simulator.stop()


@pytest.fixture
def http():
    with httpx.Client(timeout=10) as client:
        yield client


@pytest.fixture
def client(sim, http):
    return Client(sim, http)


# ------------------------------------------------------------------------- signing

@pytest.mark.parametrize("platform", PLATFORMS)
def test_signed_request_succeeds_and_bad_signature_gets_the_platform_error(platform, sim, http):
    sim.add_order(platform, state="paid", created=START)
    start, end = START - timedelta(minutes=5), START + timedelta(minutes=20)
    good = Client(sim, http).page(platform, start, end)
    assert good.status_code == 200
    assert len(Client(sim, http).orders_and_next(platform, good, None, 100)[0]) == 1

    wrong = json.loads(json.dumps(DEFAULT_CREDENTIALS))
    for key in ("app_secret", "access_token", "consumer_secret"):
        if key in wrong[platform] and (platform in ("shopify", "woocommerce") or key == "app_secret"):
            wrong[platform][key] = "not-the-secret"
    bad = Client(sim, http, wrong).page(platform, start, end)
    expected = {
        "taobao": {"error_response": {"code": 25, "msg": "Invalid signature", "sub_code": "isv.invalid-signature"}},
        "jd": {"error_response": {"code": "19", "zh_desc": "签名无效", "en_desc": "Invalid signature"}},
        "pinduoduo": {"error_response": {"error_code": 10019, "error_msg": "签名错误"}},
        "douyin": {"code": 40004, "msg": "签名校验失败", "data": {}},
    }
    if platform in expected:
        assert bad.status_code == 200
        assert bad.json() == expected[platform]
    else:
        assert bad.status_code == 401


def test_tampered_parameter_breaks_the_signature(sim, http):
    """The sign covers the business parameters too: changing one after signing is caught."""
    creds = DEFAULT_CREDENTIALS["taobao"]
    params = {"method": "taobao.trades.sold.increment.get", "app_key": creds["app_key"],
              "session": creds["access_token"], "timestamp": beijing(datetime.now(UTC)), "format": "json",
              "v": "2.0", "sign_method": "md5", "fields": "tid", "start_modified": beijing(START),
              "end_modified": beijing(START + timedelta(hours=1)), "page_no": "1", "page_size": "100"}
    params["sign"] = top_sign(params, creds["app_secret"])
    params["page_size"] = "50"
    body = http.post(f"{sim.url('taobao')}/router/rest", data=params).json()
    assert body["error_response"]["code"] == 25


# ------------------------------------------------------------------------- windows and pages

@pytest.mark.parametrize("platform", PLATFORMS)
def test_pages_return_every_order_in_the_window_exactly_once(platform, sim, client):
    window_start = START + timedelta(minutes=5)
    window_end = window_start + timedelta(minutes=25)  # within Pinduoduo's 30-minute limit
    sim.bulk_generate(platform, 260, since=window_start, until=window_end)
    sim.bulk_generate(platform, 60, since=window_start - timedelta(hours=3), until=window_start - timedelta(seconds=1))
    sim.advance(400)  # stream orders from START on: some inside the window, some after it

    fetched = client.fetch_window(platform, window_start, window_end, size=50)
    expected = dict(sim.ids_and_statuses(platform, window_start, window_end))
    ids = [order_id(platform, order) for order in fetched]

    assert len(expected) > 150  # several pages' worth
    assert len(ids) == len(set(ids)), "an order came twice"
    assert set(ids) == set(expected)
    assert {order_id(platform, order): status_key(platform, order) for order in fetched} == expected
    assert all(window_start <= modified_at(platform, order) <= window_end for order in fetched)


@pytest.mark.parametrize("platform", PLATFORMS)
def test_paging_ends_exactly_at_the_last_order(platform, sim, client):
    """Around page boundaries (a full last page, one order over it) nothing is lost and nothing repeats."""
    window_start = START + timedelta(hours=1)
    placed = []
    for count in range(1, 6):
        order = sim.add_order(platform, state="paid", created=START, modified=window_start + timedelta(seconds=count))
        placed.append(order.id)
        fetched = client.fetch_window(platform, window_start, window_start + timedelta(minutes=1), size=2)
        assert sorted(order_id(platform, order) for order in fetched) == sorted(placed)


@pytest.mark.parametrize("platform", PLATFORMS)
def test_window_is_inclusive_at_both_ends_and_nothing_more(platform, sim, client):
    window_start, window_end = START + timedelta(hours=2), START + timedelta(hours=2, minutes=10)
    placed = {}
    for label, modified in (("before", window_start - timedelta(seconds=1)), ("start", window_start),
                            ("end", window_end), ("after", window_end + timedelta(seconds=1))):
        order = sim.add_order(platform, state="paid", created=START, modified=modified)
        placed[label] = order.id

    ids = {order_id(platform, order) for order in client.fetch_window(platform, window_start, window_end)}
    assert ids == {placed["start"], placed["end"]}


def test_jd_and_pinduoduo_list_only_paid_orders(sim, client):
    for platform in ("jd", "pinduoduo"):
        unpaid = sim.add_order(platform, state="unpaid", created=START)
        cancelled = sim.add_order(platform, state="cancelled_unpaid", created=START)
        paid = sim.add_order(platform, state="paid", created=START)
        ids = {order_id(platform, order)
               for order in client.fetch_window(platform, START, START + timedelta(minutes=29))}
        assert paid.id in ids and unpaid.id not in ids and cancelled.id not in ids
        assert unpaid.id not in dict(sim.ids_and_statuses(platform, START, START + timedelta(days=1)))


def test_pinduoduo_refuses_a_window_over_30_minutes(sim, http):
    response = Client(sim, http).page("pinduoduo", START, START + timedelta(minutes=30, seconds=1))
    assert response.json()["error_response"]["error_code"] == 10000
    ok = Client(sim, http).page("pinduoduo", START, START + timedelta(minutes=30))
    assert "order_list_get_response" in ok.json()


def test_shopify_lists_open_orders_unless_asked_for_any(sim, http):
    open_order = sim.add_order("shopify", state="paid", created=START)
    closed_order = sim.add_order("shopify", state="completed", created=START)
    cancelled_order = sim.add_order("shopify", state="cancelled_unpaid", created=START)
    url = f"{sim.url('shopify')}/admin/api/2024-10/orders.json"
    headers = {"X-Shopify-Access-Token": DEFAULT_CREDENTIALS["shopify"]["access_token"]}

    def ids(**params) -> set[str]:
        return {str(order["id"]) for order in http.get(url, params=params, headers=headers).json()["orders"]}

    assert ids() == {open_order.id}
    assert ids(status="any") == {open_order.id, closed_order.id, cancelled_order.id}
    assert ids(status="cancelled") == {cancelled_order.id}


def test_woocommerce_reports_totals_in_headers(sim, http):
    sim.bulk_generate("woocommerce", 45, since=START, until=START + timedelta(hours=1))
    creds = DEFAULT_CREDENTIALS["woocommerce"]
    response = http.get(f"{sim.url('woocommerce')}/wp-json/wc/v3/orders",
                        params={"modified_after": "2025-11-10T16:00:00", "modified_before": "2025-11-10T17:00:00",
                                "dates_are_gmt": "true", "page": "3", "per_page": "20"},
                        auth=(creds["consumer_key"], creds["consumer_secret"]))
    assert response.headers["X-WP-Total"] == "45"
    assert response.headers["X-WP-TotalPages"] == "3"
    assert len(response.json()) == 5


def test_raw_orders_are_served_exactly_as_given(sim, client):
    odd = {"tid": 1, "tid_str": "1", "status": "WAIT_SELLER_SEND_GOODS", "modified": beijing(START),
           "payment": "not money", "orders": {"order": []}, "receiver_name": None}
    assert sim.put_raw("taobao", odd) == "1"
    fetched = client.fetch_window("taobao", START, START)
    assert fetched == [odd]


# ------------------------------------------------------------------------- the stream and amounts

@pytest.mark.parametrize("platform", PLATFORMS)
def test_amounts_add_up_in_every_generated_order(platform, sim, client):
    sim.bulk_generate(platform, 300, since=START - timedelta(hours=6), until=START)
    sim.advance(600, platform=platform)
    orders = client.fetch_all(platform, START - timedelta(hours=6), sim.now())

    assert len(orders) == len(sim.ids_and_statuses(platform, START - timedelta(hours=6), sim.now())) > 300
    problems = [problem for order in orders for problem in amount_problems(platform, order)]
    assert problems == []
    discount = {"taobao": "discount_fee", "jd": "sellerDiscount", "pinduoduo": "discount_amount",
                "douyin": "promotion_amount", "shopify": "total_discounts", "woocommerce": "discount_total"}[platform]
    assert any(Decimal(str(order[discount])) > 0 for order in orders), "no order had a discount to add up"


def test_the_stream_is_deterministic_for_a_seed():
    def run(seed: int):
        simulator = ChannelSimulator(seed=seed, start=START)
        events = [(event.kind, event.platform, event.order_id, event.at) for event in simulator.advance(500)]
        orders = {(platform, order_id): simulator.order_json(platform, order_id)
                  for _kind, platform, order_id, _at in events}
        return events, orders

    assert run(5) == run(5)
    assert run(5)[0] != run(6)[0]


def paired_events(platform: str, count: int, seed: int = 11):
    """(event, the order's JSON just before it, just after it), from two simulators with the same seed, one of
    them a step behind."""
    ahead, behind = ChannelSimulator(seed=seed, start=START), ChannelSimulator(seed=seed, start=START)
    for _ in range(count):
        (event,) = ahead.advance(1, platform=platform)
        yield event, behind.order_json(platform, event.order_id), ahead.order_json(platform, event.order_id)
        (replayed,) = behind.advance(1, platform=platform)
        assert replayed == event  # same seed, same stream


def first_event(platform: str, kind: str, limit: int = 3000):
    for event, before, after in paired_events(platform, limit):
        if event.kind == kind:
            return event, before, after
    pytest.fail(f"no {kind} event in {limit} {platform} events")


@pytest.mark.parametrize("platform", PLATFORMS)
def test_every_change_moves_modified_forward(platform):
    kinds = set()
    for event, before, after in paired_events(platform, 250):
        kinds.add(event.kind)
        if event.kind == "new":
            assert before is None and after is not None
        elif event.kind == "duplicate" and platform in ("shopify", "woocommerce"):
            assert after == before  # a webhook redelivery: the order itself is unchanged
        else:
            assert modified_at(platform, after) > modified_at(platform, before), event
    expected = {"new", "address_change", "refund_request", "refund", "ship", "complete", "duplicate"}
    if platform not in ("jd", "pinduoduo"):
        expected |= {"pay", "cancel"}  # JD and Pinduoduo orders arrive paid
    assert kinds == expected


def test_changes_within_one_second_still_move_modified_forward():
    """In real time many events share a wall-clock second; each change must still advance modified."""
    simulator = ChannelSimulator(seed=4, realtime=True)
    latest: dict[str, datetime] = {}
    repeated = 0
    for _ in range(300):
        (event,) = simulator.advance(1, platform="taobao")
        modified = modified_at("taobao", simulator.order_json("taobao", event.order_id))
        if event.order_id in latest:
            assert modified > latest[event.order_id], event
            repeated += 1
        latest[event.order_id] = modified
    assert repeated > 100


def test_duplicates_on_polling_platforms_change_nothing_but_modified():
    _event, before, after = first_event("taobao", "duplicate")
    assert {key: value for key, value in after.items() if key != "modified"} == \
        {key: value for key, value in before.items() if key != "modified"}
    assert after["modified"] > before["modified"]


@pytest.mark.parametrize("platform", PLATFORMS)
def test_address_change_keeps_the_id_and_changes_only_the_receiver(platform):
    _event, before, after = first_event(platform, "address_change")
    assert order_id(platform, after) == order_id(platform, before)
    assert modified_at(platform, after) > modified_at(platform, before)
    assert status_key(platform, after) == status_key(platform, before)
    assert skus_of(platform, after) == skus_of(platform, before)
    assert amount_problems(platform, after) == []
    receiver = {"taobao": "receiver_name", "jd": "consigneeInfo", "pinduoduo": "receiver_name",
                "douyin": "post_receiver", "shopify": "shipping_address", "woocommerce": "shipping"}[platform]
    address = {"taobao": "receiver_address", "jd": "consigneeInfo", "pinduoduo": "address", "douyin": "post_addr",
               "shopify": "shipping_address", "woocommerce": "shipping"}[platform]
    assert (after[receiver], after[address]) != (before[receiver], before[address])


def test_sku_codes_come_from_the_list_unless_unknown_ones_are_asked_for():
    def codes_in(simulator: ChannelSimulator) -> list[str]:
        simulator.advance(400)
        return [code for platform in PLATFORMS
                for order_id_, _status in simulator.ids_and_statuses(platform, START, simulator.now())
                for code in skus_of(platform, simulator.order_json(platform, order_id_))]

    assert set(codes_in(ChannelSimulator(seed=2, start=START))) <= set(DEFAULT_SKUS)
    custom = ["TEE-WHITE-L", "TEE-BLACK-M", "MUG-500"]
    codes = codes_in(ChannelSimulator(seed=2, start=START, skus=custom, unknown_sku_rate=0.2))
    unknown = [code for code in codes if code not in custom]
    assert 0.05 < len(unknown) / len(codes) < 0.4


def test_bulk_generate_makes_100000_orders(sim, client):
    assert sim.bulk_generate("taobao", 100_000) == 100_000

    listed = sim.ids_and_statuses("taobao", START - timedelta(hours=20), START)
    assert len(listed) == 100_000  # by default, history is the 20 hours before the stream's current time
    window = (START - timedelta(hours=10), START - timedelta(hours=9, minutes=50))
    assert len(client.fetch_window("taobao", *window)) == len(sim.ids_and_statuses("taobao", *window)) > 100


def test_sample_orders_are_new_distinct_and_listed(sim):
    bodies = sim.sample_orders("shopify", 30)
    ids = [str(body["id"]) for body in bodies]
    assert len(set(ids)) == 30
    assert all(body["financial_status"] == "paid" and amount_problems("shopify", body) == [] for body in bodies)
    assert set(ids) <= {order_id_ for order_id_, _status in sim.ids_and_statuses("shopify", START - timedelta(
        hours=1), sim.now())}


# ------------------------------------------------------------------------- failures

@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("kind", ["http500", "error_body"])
def test_fail_next_fails_once_then_recovers(platform, kind, sim, client):
    sim.add_order(platform, state="paid", created=START)
    window = (START - timedelta(minutes=5), START + timedelta(minutes=20))
    sim.fail_next(platform, 1, kind)

    failed = client.page(platform, *window)
    if kind == "http500":
        assert failed.status_code == 500
    elif platform == "shopify":
        assert failed.status_code == 429
    elif platform == "woocommerce":
        assert failed.status_code == 500 and failed.json()["code"] == "internal_server_error"
    else:
        body = failed.json()
        assert failed.status_code == 200
        assert ("error_response" in body) if platform != "douyin" else body["code"] != 10000

    recovered = client.page(platform, *window)
    assert len(client.orders_and_next(platform, recovered, None, 100)[0]) == 1


def test_fail_next_timeout_holds_the_answer_once(sim):
    sim.add_order("jd", state="paid", created=START)
    sim.fail_next("jd", 1, "timeout", delay=5)
    window = (START - timedelta(minutes=5), START + timedelta(minutes=20))
    with httpx.Client(timeout=0.5) as impatient:
        with pytest.raises(httpx.ReadTimeout):
            Client(sim, impatient).page("jd", *window)
        answer = Client(sim, impatient).page("jd", *window)  # within the 0.5 s timeout: the delay was spent
    assert answer.json()["jingdong_pop_order_enSearch_responce"]["searchorderinfo_result"]["orderTotal"] == 1


# ------------------------------------------------------------------------- webhooks

class Receiver:
    """A tiny loopback webhook endpoint that records every request; answers `status` (a list: one per call)."""

    def __init__(self, statuses=None):
        self.requests: list[tuple[dict, bytes]] = []
        self.statuses = list(statuses or [])
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append(({key: value for key, value in self.headers.items()}, body))
                self.send_response(receiver.statuses.pop(0) if receiver.statuses else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/webhooks"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    endpoint = Receiver()
    yield endpoint
    endpoint.close()


HEADERS = {"shopify": ("X-Shopify-Hmac-Sha256", "X-Shopify-Topic", ("orders/create", "orders/updated"),
                       ("X-Shopify-Webhook-Id", "X-Shopify-Shop-Domain")),
           "woocommerce": ("X-WC-Webhook-Signature", "X-WC-Webhook-Topic", ("order.created", "order.updated"),
                           ("X-WC-Webhook-ID", "X-WC-Webhook-Delivery-ID"))}


@pytest.mark.parametrize("platform", ["shopify", "woocommerce"])
def test_webhooks_carry_a_valid_base64_hmac(platform, sim, receiver):
    signature_header, topic_header, (create, update), other_headers = HEADERS[platform]
    secret = "the-order-centers-secret"
    sim.add_order(platform)
    sim.advance(80, platform=platform)

    results = sim.push_webhooks(platform, receiver.url, secret)
    assert results and all(result.status == 200 for result in results)
    assert len(receiver.requests) == len(results)
    first_topic: dict[str, str] = {}
    for headers, body in receiver.requests:
        assert len(base64.b64decode(headers[signature_header], validate=True)) == 32
        assert verify_body_hmac(secret, body, headers[signature_header])
        assert not verify_body_hmac("another-secret", body, headers[signature_header])
        assert all(headers.get(name) for name in other_headers)
        order = json.loads(body)
        first_topic.setdefault(str(order["id"]), headers[topic_header])
        assert headers[topic_header] in (create, update)
    assert set(first_topic.values()) == {create}  # each order's first delivery is its creation

    assert sim.push_webhooks(platform, receiver.url, secret) == []  # nothing new: nothing sent
    order_id_ = next(iter(first_topic))
    (again,) = sim.push_webhooks(platform, receiver.url, secret, order_ids=[order_id_])
    assert again.topic == update and again.status == 200
    headers, body = receiver.requests[-1]
    assert json.loads(body) == sim.order_json(platform, order_id_)


def test_webhook_duplicates_resend_the_same_delivery(sim, receiver):
    sim.add_order("shopify")
    for _ in range(3000):
        (event,) = sim.advance(1, platform="shopify")
        if event.kind == "duplicate":
            break
    else:
        pytest.fail("no duplicate in 3000 events")
    sim.push_webhooks("shopify", receiver.url, "secret")
    deliveries = [(headers["X-Shopify-Webhook-Id"], body) for headers, body in receiver.requests
                  if str(json.loads(body)["id"]) == event.order_id]
    assert deliveries[-1] in deliveries[:-1]  # the very same delivery id and body came before


def test_failed_webhook_deliveries_are_retried_on_the_next_push(sim):
    endpoint = Receiver(statuses=[503])
    try:
        sim.add_order("woocommerce")
        (first,) = sim.push_webhooks("woocommerce", endpoint.url, "secret")
        assert first.status == 503
        (retry,) = sim.push_webhooks("woocommerce", endpoint.url, "secret")
        assert retry.status == 200 and retry.order_id == first.order_id
        assert endpoint.requests[0][1] == endpoint.requests[1][1]
    finally:
        endpoint.close()


# ------------------------------------------------------------------------- control endpoints

def test_control_endpoints_drive_the_simulator(sim, http):
    base = sim.base_url
    events = http.post(f"{base}/_sim/advance", json={"events": 25}).json()["events"]
    assert len(events) == 25
    added = http.post(f"{base}/_sim/add", json={"platform": "douyin", "state": "shipped",
                                                "created": "2025-11-10T16:00:00+00:00"})
    assert added.status_code == 201 and added.json()["order"]["order_status"] == 3
    assert http.post(f"{base}/_sim/raw", json={"platform": "jd", "order": {"orderId": "X1", "modified":
                                                                          beijing(START)}}).json() == {"id": "X1"}
    assert http.post(f"{base}/_sim/add", json={"platform": "nowhere"}).status_code == 400
    statuses = http.get(f"{base}/_sim/statuses", params={"platform": "douyin", "since": "2025-11-10T00:00:00Z",
                                                         "until": "2025-11-12T00:00:00Z"}).json()["orders"]
    assert {"id": added.json()["id"], "status": "3"} in statuses

    http.post(f"{base}/_sim/fail", json={"platform": "douyin", "kind": "http500"})
    assert Client(sim, http).page("douyin", START, START + timedelta(minutes=5)).status_code == 500
    assert Client(sim, http).page("douyin", START, START + timedelta(minutes=5)).status_code == 200


# ------------------------------------------------------------------------- fixtures

def _fixture_files():
    return sorted(FIXTURES.glob("*/*.json"))


def test_fixtures_exist_for_every_platform_and_state():
    names = {(path.parent.name, path.stem) for path in _fixture_files()}
    for platform in PLATFORMS:
        states = ["paid", "shipped", "completed", "refunding", "refunded", "paid_address_changed"]
        if platform not in ("jd", "pinduoduo"):
            states += ["unpaid", "cancelled_unpaid"]
        assert {(platform, state) for state in states} <= names


@pytest.mark.parametrize("path", _fixture_files(), ids=lambda path: f"{path.parent.name}/{path.stem}")
def test_fixture_follows_the_contract(path):
    platform, order = path.parent.name, json.loads(path.read_text(encoding="utf-8"))
    assert amount_problems(platform, order) == []
    assert set(skus_of(platform, order)) <= {f"SKU-000{number}" for number in range(1, 6)}
    modified_at(platform, order)
    if platform == "taobao":
        assert order["status"] in TAOBAO_STATUSES and str(order["tid"]) == order["tid_str"]
        assert {item["refund_status"] for item in order["orders"]["order"]} <= TAOBAO_REFUNDS
    elif platform == "jd":
        assert order["orderState"] in JD_STATES
    elif platform == "pinduoduo":
        assert order["order_status"] in (1, 2, 3) and order["refund_status"] in (1, 2, 3, 4)
    elif platform == "douyin":
        assert order["order_status"] in DOUYIN_STATUSES
    elif platform == "shopify":
        assert order["financial_status"] in SHOPIFY_FINANCIAL
        assert order["fulfillment_status"] in SHOPIFY_FULFILLMENT
    else:
        assert order["status"] in WOO_STATUSES
        assert (order["date_paid_gmt"] is None) == (order["status"] in ("pending", "cancelled"))


def test_fixture_ids_are_distinct_except_the_address_change_pair():
    for platform in PLATFORMS:
        files = {path.stem: json.loads(path.read_text(encoding="utf-8"))
                 for path in (FIXTURES / platform).glob("*.json")}
        ids = {stem: order_id(platform, order) for stem, order in files.items()}
        changed, original = files["paid_address_changed"], files["paid"]
        assert ids["paid_address_changed"] == ids["paid"]
        assert modified_at(platform, changed) > modified_at(platform, original)
        assert changed != original
        others = [value for stem, value in ids.items() if stem != "paid_address_changed"]
        assert len(others) == len(set(others)), platform


# ------------------------------------------------------------------------- the long-running simulator

def test_run_serves_advances_and_pushes_webhooks_with_one_log_line_per_batch(receiver, caplog):
    from devtools.simulators.channels.run import run

    stop = threading.Event()
    caplog.set_level("INFO", logger="orderloom.simulator")
    worker = threading.Thread(target=run, kwargs={
        "port": 0, "seed": 3, "rate_per_minute": 6000, "batch_seconds": 0.2, "stop": stop,
        "webhook_targets": {"shopify": (receiver.url, "run-secret")}})
    worker.start()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (len(receiver.requests) < 3 or len(_batch_lines(caplog)) < 3):
            time.sleep(0.05)
    finally:
        stop.set()
        worker.join(timeout=10)
    assert not worker.is_alive()
    lines = _batch_lines(caplog)
    assert len(lines) >= 3 and all("events=" in line and "webhooks=shopify:" in line for line in lines)
    assert receiver.requests
    assert all(verify_body_hmac("run-secret", body, headers["X-Shopify-Hmac-Sha256"])
               for headers, body in receiver.requests)


def _batch_lines(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records if "simulate=batch" in record.getMessage()]
