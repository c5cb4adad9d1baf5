"""Each platform's order JSON, built from one platform-neutral simulated order as docs/CHANNELS.md describes it.

A `SimOrder` holds times in UTC, money as Decimal and a neutral state; the builders turn it into the platform's
own field names, time formats (Beijing local text, unix seconds, ISO with offset, naive GMT), amount types
(yuan strings, yuan numbers, integer fen) and status values. The amounts always add up exactly per CHANNELS.md:
paid = goods + shipping − discount (+ tax on Shopify/WooCommerce when prices exclude it).

The readers at the end (`order_id_of`, `modified_of`, `status_key_of`, ...) read a platform's raw JSON back,
so orders stored verbatim (`put_raw`) can be indexed and filtered like generated ones.
"""
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from devtools.simulators.channels.privacy import protect

PLATFORMS = ("taobao", "jd", "pinduoduo", "douyin", "shopify", "woocommerce")
WEBHOOK_PLATFORMS = ("shopify", "woocommerce")
STATES = ("unpaid", "paid", "shipped", "completed", "cancelled_unpaid", "refunding", "refunded")
PAID_STATES = frozenset({"paid", "shipped", "completed", "refunding", "refunded"})

BEIJING = ZoneInfo("Asia/Shanghai")  # the Chinese platforms' declared zone
SHOPIFY_SHOP_ZONE = ZoneInfo("America/New_York")  # Shopify writes times in the shop's zone, with its offset
WOOCOMMERCE_SITE_ZONE = ZoneInfo("America/Los_Angeles")  # the site zone of WooCommerce's non-`_gmt` fields
BEIJING_FORMAT = "%Y-%m-%d %H:%M:%S"
CENT = Decimal("0.01")
ZERO = Decimal("0.00")


@dataclass(slots=True)
class OrderLine:
    sku: str  # the merchant's own SKU code (outer_sku_id, outerSkuId, outer_id, code, sku)
    title: str
    quantity: int
    unit_price: Decimal
    spec: str = ""  # e.g. "颜色分类:白色;尺码:L"
    # False: the platform line carries no merchant code (an item without SKU variants, a code never entered);
    # the order center then maps it by the platform's variant or product id (`mapping_key_for`).
    code_shown: bool = True

    @property
    def total(self) -> Decimal:
        return self.unit_price * self.quantity


@dataclass(slots=True)
class Address:
    name: str
    phone: str
    province: str  # province, or state for Shopify/WooCommerce
    city: str
    district: str  # 区/县; empty outside China
    street: str  # the detail line: road, number, building, room
    town: str = ""  # 街道/乡镇 (sub-district) in China, "Apt 4B" style second line elsewhere
    postal_code: str = ""
    country_code: str = "CN"
    province_code: str = ""


@dataclass(slots=True)
class SimOrder:
    """One order as the simulator thinks of it; `id` is already in the platform's own id shape."""

    id: str
    created: datetime
    modified: datetime
    lines: list[OrderLine]
    receiver: Address
    buyer: str  # buyer nick on the Chinese platforms, customer's full name on Shopify/WooCommerce
    state: str = "unpaid"
    paid: datetime | None = None
    shipped: datetime | None = None
    closed: datetime | None = None  # completed, cancelled or refunded
    shipping: Decimal = ZERO
    discount: Decimal = ZERO
    tax: Decimal = ZERO
    taxes_included: bool = False
    fees: Decimal = ZERO  # WooCommerce fee lines (a COD fee), a Shopify tip: charged on top, in the paid figure
    cash_on_delivery: bool = False  # the buyer pays the courier: the platform reports it unpaid until then
    # The share of `discount` the platform shows as the shop's order-level promotion (Taobao part_mjz_discount,
    # Pinduoduo platform_discount); the rest is item-level (Taobao discount_fee, Pinduoduo seller_discount).
    shop_discount_share: Decimal = ZERO
    currency: str = "CNY"
    email: str = ""
    number: int = 0  # the buyer-facing order number (Shopify "#1001", WooCommerce "number")
    tracking_number: str = ""
    notes: dict = field(default_factory=dict)

    def goods_total(self) -> Decimal:
        return sum((line.total for line in self.lines), ZERO)

    def paid_amount(self) -> Decimal:
        tax = ZERO if self.taxes_included else self.tax
        return self.goods_total() + self.shipping - self.discount + self.fees + tax

    def cash_collected(self) -> bool:
        """A COD order's cash is in once it is completed (the courier handed it over)."""
        return self.state == "completed"


# ---------------------------------------------------------------- status tables (CHANNELS.md "status key")

TAOBAO_STATUS = {"unpaid": "WAIT_BUYER_PAY", "paid": "WAIT_SELLER_SEND_GOODS", "shipped": "WAIT_BUYER_CONFIRM_GOODS",
                 "completed": "TRADE_FINISHED", "cancelled_unpaid": "TRADE_CLOSED_BY_TAOBAO",
                 # A refund request does not change the trade status on Taobao, only the sub-orders' refund_status.
                 "refunding": "WAIT_SELLER_SEND_GOODS", "refunded": "TRADE_CLOSED"}
TAOBAO_REFUND = {"refunding": "WAIT_SELLER_AGREE", "refunded": "SUCCESS"}  # every other state: NO_REFUND
# JD and Pinduoduo list paid orders only: unpaid and cancelled-before-payment orders have no row here.
JD_STATE = {"paid": "WAIT_SELLER_STOCK_OUT", "shipped": "WAIT_GOODS_RECEIVE_CONFIRM", "completed": "FINISHED_L",
            "refunding": "LOCKED", "refunded": "TRADE_CANCELED"}
JD_STATE_REMARK = {"WAIT_SELLER_STOCK_OUT": "等待出库", "WAIT_GOODS_RECEIVE_CONFIRM": "等待确认收货",
                   "FINISHED_L": "完成", "LOCKED": "锁定", "TRADE_CANCELED": "取消"}
# (order_status, refund_status): 1 waiting to ship / 2 shipped / 3 received × 1 none / 2 after-sale / 4 refunded.
PDD_STATUS = {"paid": (1, 1), "shipped": (2, 1), "completed": (3, 1), "refunding": (1, 2), "refunded": (1, 4)}
# Douyin: a refund request leaves the order "preparing" (2) with the after-sale on the sku order; a refund
# before shipping cancels the order (4) while pay_time stays set.
DOUYIN_STATUS = {"unpaid": 1, "paid": 105, "refunding": 2, "shipped": 3, "completed": 5, "cancelled_unpaid": 4,
                 "refunded": 4}
DOUYIN_STATUS_DESC = {1: "待支付", 105: "已支付", 2: "备货中", 101: "部分发货", 3: "已发货", 4: "已取消", 5: "已完成"}
# (financial_status, fulfillment_status, cancelled, closed). Cancelling also closes (archives) a Shopify order.
SHOPIFY_STATUS = {"unpaid": ("pending", None, False, False), "paid": ("paid", None, False, False),
                  "shipped": ("paid", "fulfilled", False, False), "completed": ("paid", "fulfilled", False, True),
                  "cancelled_unpaid": ("voided", None, True, True),
                  # Shopify has no "refund pending": the closest is a refund under way for part of the order.
                  "refunding": ("partially_refunded", None, False, False),
                  "refunded": ("refunded", None, True, True)}
# WooCommerce has no "shipped": `completed` means fulfilled; a refund being handled puts the order on hold.
WOOCOMMERCE_STATUS = {"unpaid": "pending", "paid": "processing", "shipped": "completed", "completed": "completed",
                      "cancelled_unpaid": "cancelled", "refunding": "on-hold", "refunded": "refunded"}


def is_listed(platform: str, state: str) -> bool:
    """Whether the platform shows an order in this state at all (JD and Pinduoduo only list paid orders)."""
    if platform == "jd":
        return state in JD_STATE
    if platform == "pinduoduo":
        return state in PDD_STATUS
    return True


def shopify_financial(state: str, cash_on_delivery: bool = False) -> str:
    """Shopify's financial_status: a COD order stays `pending` until it is completed (the cash is in)."""
    financial = SHOPIFY_STATUS[state][0]
    if cash_on_delivery and state in ("paid", "shipped"):
        return "pending"
    return financial


def paid_time(order: "SimOrder") -> datetime | None:
    """When the platform says the buyer paid: a COD order only once the courier handed the cash over."""
    if order.cash_on_delivery:
        return order.closed if order.cash_collected() else None
    return order.paid


def status_key_for_state(platform: str, state: str, cash_on_delivery: bool = False) -> str:
    """The CHANNELS.md status key the platform's JSON carries for a neutral state."""
    if platform == "taobao":
        return TAOBAO_STATUS[state]
    if platform == "jd":
        return JD_STATE[state]
    if platform == "pinduoduo":
        return "{}/{}".format(*PDD_STATUS[state])
    if platform == "douyin":
        return str(DOUYIN_STATUS[state])
    if platform == "shopify":
        _financial, fulfillment, cancelled, _closed = SHOPIFY_STATUS[state]
        financial = shopify_financial(state, cash_on_delivery)
        return f"cancelled/{financial}" if cancelled else f"{financial}/{fulfillment or 'unfulfilled'}"
    if platform == "woocommerce":
        return WOOCOMMERCE_STATUS[state]
    raise ValueError(f"unknown platform {platform!r}")


def shopify_open_state(state: str) -> str:
    """What Shopify's `status` filter sees: open, closed or cancelled."""
    _financial, _fulfillment, cancelled, closed = SHOPIFY_STATUS[state]
    return "cancelled" if cancelled else "closed" if closed else "open"


# ---------------------------------------------------------------- times and amounts in each platform's shape

def beijing_text(moment: datetime) -> str:
    """`yyyy-MM-dd HH:mm:ss` in Beijing time (Taobao, JD, Pinduoduo)."""
    return moment.astimezone(BEIJING).strftime(BEIJING_FORMAT)


def unix_seconds(moment: datetime) -> int:
    return int(moment.timestamp())


def shop_time(moment: datetime | None) -> str | None:
    """ISO 8601 with the shop's offset, e.g. 2025-11-10T21:04:05-05:00 (Shopify)."""
    return None if moment is None else moment.astimezone(SHOPIFY_SHOP_ZONE).isoformat(timespec="seconds")


def gmt_text(moment: datetime | None) -> str | None:
    """ISO 8601 without an offset, UTC by definition (WooCommerce `*_gmt` fields)."""
    return None if moment is None else moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="seconds")


def site_text(moment: datetime | None) -> str | None:
    """ISO 8601 without an offset in the site's zone (WooCommerce fields without `_gmt`)."""
    if moment is None:
        return None
    return moment.astimezone(WOOCOMMERCE_SITE_ZONE).replace(tzinfo=None).isoformat(timespec="seconds")


def money_text(amount: Decimal) -> str:
    return str(amount.quantize(CENT))


def yuan_number(amount: Decimal) -> float:
    """Pinduoduo sends yuan as JSON numbers; the shortest float repr of a two-decimal amount reads back exactly."""
    return float(amount.quantize(CENT))


def fen(amount: Decimal) -> int:
    return int((amount * 100).to_integral_value(ROUND_HALF_UP))


def allocate(amount: Decimal, weights: list[Decimal]) -> list[Decimal]:
    """Split an amount into cents proportionally to weights; the parts always sum to the amount exactly."""
    cents = fen(amount)
    total = sum(weights, ZERO)
    if not weights:
        return []
    if total == 0:
        shares = [0] * len(weights)
        shares[0] = cents
        return [Decimal(share) / 100 for share in shares]
    exact = [Decimal(cents) * weight / total for weight in weights]
    shares = [int(part) for part in exact]
    by_remainder = sorted(range(len(weights)), key=lambda index: exact[index] - shares[index], reverse=True)
    for index in by_remainder[:cents - sum(shares)]:
        shares[index] += 1
    return [(Decimal(share) / 100).quantize(CENT) for share in shares]


def platform_number(code: str, salt: str, low: int, span: int) -> int:
    """A stable platform-side id (item id, sku id) for a merchant SKU code: same code, same id, every run."""
    return low + zlib.crc32(f"{salt}:{code}".encode()) % span


def platform_ids(platform: str, code: str) -> tuple[str, str]:
    """(variant id, product id) the platform gives a merchant SKU code's listing, as the builders emit them."""
    salts = {"taobao": (("taobao-sku", 5_000_000_000_000, 999_999_999_999),
                        ("taobao-item", 600_000_000_000, 99_999_999_999)),
             "jd": (("jd-sku", 10_000_000_000, 89_999_999_999), ("jd-ware", 100_000_000_000, 899_999_999_999)),
             "pinduoduo": (("pdd-sku", 1_000_000_000_000, 8_999_999_999_999),
                           ("pdd-goods", 100_000_000_000, 899_999_999_999)),
             "douyin": (("douyin-sku", 1_700_000_000_000_000, 99_999_999_999_999),
                        ("douyin-product", 3_500_000_000_000_000_000, 99_999_999_999_999_999)),
             "shopify": (("shopify-variant", 40_000_000_000_000, 9_999_999_999_999),
                         ("shopify-product", 8_000_000_000_000, 999_999_999_999)),
             "woocommerce": (("woo-variation", 10_000, 89_990_000), ("woo-product", 10, 9_990))}[platform]
    return tuple(str(platform_number(code, salt, low, span)) for salt, low, span in salts)


def mapping_key_for(platform: str, code: str) -> tuple[str, str]:
    """What a merchant maps for a line of this SKU that shows no merchant code: (key kind, platform id)."""
    return "variant", platform_ids(platform, code)[0]


def _split_name(full_name: str) -> tuple[str, str]:
    first, _, last = full_name.partition(" ")
    return first, last


# ---------------------------------------------------------------- builders

def taobao_trade(order: SimOrder) -> dict:
    """A TOP trade as `taobao.trades.sold.increment.get` returns it; absent values are left out, as TOP does."""
    receiver = order.receiver
    status = TAOBAO_STATUS[order.state]
    refund_status = TAOBAO_REFUND.get(order.state, "NO_REFUND")
    paid = paid_time(order)
    totals = [line.total for line in order.lines]
    item_discounts = allocate(order.discount - order.shop_discount_share, totals)
    shop_shares = allocate(order.shop_discount_share, totals)
    trade = {
        "tid": int(order.id), "tid_str": order.id, "type": "cod" if order.cash_on_delivery else "fixed",
        "status": status, "created": beijing_text(order.created), "modified": beijing_text(order.modified),
        "pay_time": beijing_text(paid) if paid else None,
        "consign_time": beijing_text(order.shipped) if order.shipped else None,
        "end_time": beijing_text(order.closed) if order.closed else None,
        "buyer_nick": order.buyer,
        "receiver_name": receiver.name, "receiver_mobile": receiver.phone, "receiver_state": receiver.province,
        "receiver_city": receiver.city, "receiver_district": receiver.district, "receiver_town": receiver.town or None,
        "receiver_address": receiver.street, "receiver_zip": receiver.postal_code,
        "num": sum(line.quantity for line in order.lines),
        "total_fee": money_text(order.goods_total()), "post_fee": money_text(order.shipping),
        "discount_fee": money_text(order.discount), "adjust_fee": "0.00", "payment": money_text(order.paid_amount()),
    }
    if order.cash_on_delivery:  # the courier collects; SIGN_IN once the buyer signed and paid
        trade["cod_status"] = "SIGN_IN" if order.cash_collected() else "ACCEPTED_BY_COMPANY"
        trade["cod_fee"], trade["buyer_cod_fee"] = "0.00", "0.00"
    trade = {key: value for key, value in trade.items() if value is not None}
    promotions = [{"id": int(order.id), "promotion_name": name, "discount_fee": money_text(amount)}
                  for name, amount in (("单品优惠", order.discount - order.shop_discount_share),
                                       ("店铺满减", order.shop_discount_share)) if amount]
    if promotions:
        trade["promotion_details"] = {"promotion_detail": promotions}
    trade["orders"] = {"order": [_taobao_sub_order(order, index, line, status, refund_status, item, shop)
                                 for index, (line, item, shop) in enumerate(zip(order.lines, item_discounts,
                                                                                shop_shares))]}
    return trade


def _taobao_sub_order(order: SimOrder, index: int, line: OrderLine, status: str, refund_status: str,
                      item_discount: Decimal, shop_share: Decimal) -> dict:
    """TOP's sub-order amounts: total_fee = payment = price × num − discount_fee (item-level promotions);
    divide_order_fee = that − part_mjz_discount (its share of the shop's promotions)."""
    oid = int(order.id) + index  # a single-item trade's oid equals its tid, as on Taobao
    variant_id, item_id = platform_ids("taobao", line.sku)
    sub = {
        "oid": oid, "oid_str": str(oid), "status": status, "refund_status": refund_status,
        "num_iid": int(item_id), "sku_id": variant_id, "outer_sku_id": line.sku,
        "title": line.title, "sku_properties_name": line.spec,
        "num": line.quantity, "price": money_text(line.unit_price), "total_fee": money_text(line.total - item_discount),
        "payment": money_text(line.total - item_discount), "discount_fee": money_text(item_discount),
        "adjust_fee": "0.00", "part_mjz_discount": money_text(shop_share),
        "divide_order_fee": money_text(line.total - item_discount - shop_share),
    }
    if not line.code_shown:  # an item without SKU variants: no sku_id, the merchant code is the item's outer_iid
        del sub["sku_id"], sub["outer_sku_id"]
        sub["outer_iid"], sub["sku_properties_name"] = line.sku, ""
    return sub


def jd_order(order: SimOrder) -> dict:
    """A JD POP order as `jingdong.pop.order.enSearch` lists it (paid orders only)."""
    if not is_listed("jd", order.state):
        raise ValueError(f"JD does not list {order.state} orders")
    receiver = order.receiver
    state = JD_STATE[order.state]
    consignee = {
        "fullname": receiver.name, "mobile": receiver.phone, "telephone": receiver.phone,
        "province": receiver.province, "city": receiver.city, "county": receiver.district,
        # fullAddress is the whole address in one line, province first, as JD prints it on the waybill.
        "fullAddress": "".join(part for part in (receiver.province, receiver.city, receiver.district,
                                                 receiver.town, receiver.street) if part),
    }
    if receiver.town:
        consignee["town"] = receiver.town
    return {
        "orderId": order.id, "venderId": "10086001", "orderType": "22",
        "payType": "1-货到付款" if order.cash_on_delivery else "4-在线支付",
        "orderState": state, "orderStateRemark": JD_STATE_REMARK[state], "pin": order.buyer,
        "orderStartTime": beijing_text(order.created), "modified": beijing_text(order.modified),
        "paymentConfirmTime": beijing_text(paid_time(order)) if paid_time(order) else "",
        "orderEndTime": beijing_text(order.closed) if order.closed else "",
        "orderTotalPrice": money_text(order.goods_total()), "freightPrice": money_text(order.shipping),
        "sellerDiscount": money_text(order.discount),
        "orderSellerPrice": money_text(order.goods_total() - order.discount),
        "orderPayment": money_text(order.paid_amount()),
        "waybill": order.tracking_number, "consigneeInfo": consignee,
        # Every discount, by who gave it and on which SKU: here the seller's own, allocated to the lines.
        "couponDetailList": [{"orderId": order.id, "skuId": platform_ids("jd", line.sku)[0],
                              "couponType": "30-单品促销优惠", "couponPrice": money_text(part)}
                             for line, part in zip(order.lines, allocate(order.discount,
                                                                         [line.total for line in order.lines]))
                             if part],
        "itemInfoList": [{
            "skuId": platform_ids("jd", line.sku)[0], "wareId": platform_ids("jd", line.sku)[1],
            "outerSkuId": line.sku if line.code_shown else "", "skuName": f"{line.title} {line.spec}".strip(),
            "itemTotal": str(line.quantity), "jdPrice": money_text(line.unit_price),
        } for line in order.lines],
    }


def pinduoduo_order(order: SimOrder) -> dict:
    """A Pinduoduo order as `pdd.order.list.increment.get` lists it (paid orders only; yuan as numbers)."""
    if not is_listed("pinduoduo", order.state):
        raise ValueError(f"Pinduoduo does not list {order.state} orders")
    receiver = order.receiver
    order_status, refund_status = PDD_STATUS[order.state]
    detail = f"{receiver.town}{receiver.street}"
    return {
        "order_sn": order.id, "order_status": order_status, "refund_status": refund_status,
        "confirm_status": 1, "trade_type": 0, "is_lucky_flag": 1,
        "created_time": beijing_text(order.created), "pay_time": beijing_text(order.paid) if order.paid else "",
        "confirm_time": beijing_text(order.paid) if order.paid else "",
        "shipping_time": beijing_text(order.shipped) if order.shipped else "",
        "receive_time": beijing_text(order.closed) if order.state == "completed" and order.closed else "",
        "updated_at": beijing_text(order.modified),
        "goods_amount": yuan_number(order.goods_total()), "discount_amount": yuan_number(order.discount),
        # discount_amount = seller_discount + platform_discount + capital_free_discount
        "seller_discount": yuan_number(order.discount - order.shop_discount_share),
        "platform_discount": yuan_number(order.shop_discount_share), "capital_free_discount": 0,
        "postage": yuan_number(order.shipping), "pay_amount": yuan_number(order.paid_amount()),
        "receiver_name": receiver.name, "receiver_phone": receiver.phone, "country": "中国",
        "province": receiver.province, "city": receiver.city, "town": receiver.district, "address": detail,
        "receiver_address": f"{receiver.province}{receiver.city}{receiver.district}{detail}",
        "tracking_number": order.tracking_number,
        "item_list": [{
            "goods_id": int(platform_ids("pinduoduo", line.sku)[1]),
            "sku_id": int(platform_ids("pinduoduo", line.sku)[0]),
            "outer_id": line.sku if line.code_shown else "", "outer_goods_id": "",
            "goods_name": line.title, "goods_spec": line.spec, "goods_count": line.quantity,
            "goods_price": yuan_number(line.unit_price),
        } for line in order.lines],
    }


def douyin_order(order: SimOrder) -> dict:
    """A Douyin shop order as `order.searchList` lists it: unix seconds, amounts in fen."""
    receiver = order.receiver
    status = DOUYIN_STATUS[order.state]
    after_sale = {"refunding": {"after_sale_status": 6, "refund_status": 1},  # not read by the order center
                  "refunded": {"after_sale_status": 12, "refund_status": 3}}.get(
        order.state, {"after_sale_status": 0, "refund_status": 0})
    paid_fen = fen(order.paid_amount())
    paid = paid_time(order)
    promotions = allocate(order.discount, [line.total for line in order.lines])
    freight = allocate(order.shipping, [line.total for line in order.lines])
    return {
        "order_id": order.id, "shop_id": 80_012_345, "order_status": status,
        "order_status_desc": DOUYIN_STATUS_DESC[status], "order_type": 0, "biz": 2,
        "create_time": unix_seconds(order.created), "update_time": unix_seconds(order.modified),
        "pay_type": 0 if order.cash_on_delivery else 1,  # 0 货到付款, 1 微信
        "pay_time": unix_seconds(paid) if paid else 0,
        "ship_time": unix_seconds(order.shipped) if order.shipped else 0,
        "finish_time": unix_seconds(order.closed) if order.closed else 0,
        "order_amount": paid_fen, "pay_amount": paid_fen, "post_amount": fen(order.shipping),
        "promotion_amount": fen(order.discount), "promotion_shop_amount": fen(order.discount),
        "promotion_platform_amount": 0, "promotion_talent_amount": 0, "promotion_pay_amount": 0,
        "post_receiver": receiver.name, "post_tel": receiver.phone,
        "post_addr": {
            "province": {"name": receiver.province}, "city": {"name": receiver.city},
            "town": {"name": receiver.district}, "street": {"name": receiver.town},
            "detail": receiver.street,
        },
        "buyer_words": "", "seller_words": "",
        "sku_order_list": [{
            "order_id": str(int(order.id) + 1 + index), "parent_order_id": order.id,
            "order_status": status, "order_status_desc": DOUYIN_STATUS_DESC[status],
            "product_id": platform_ids("douyin", line.sku)[1],
            "sku_id": int(platform_ids("douyin", line.sku)[0]),
            "code": line.sku if line.code_shown else "", "product_name": line.title,
            "spec": [{"name": "规格", "value": line.spec}],
            "item_num": line.quantity, "origin_amount": fen(line.total), "goods_price": fen(line.unit_price),
            "promotion_amount": fen(part), "coupon_amount": fen(part), "promotion_pay_amount": 0,
            "post_amount": fen(post), "pay_amount": fen(line.total - part + post), "after_sale_info": after_sale,
        } for index, (line, part, post) in enumerate(zip(order.lines, promotions, freight))],
    }


def shopify_order(order: SimOrder) -> dict:
    """A Shopify REST Admin order (2024-10), as orders.json lists it and webhooks carry it."""
    _financial, fulfillment, cancelled, closed = SHOPIFY_STATUS[order.state]
    financial = shopify_financial(order.state, order.cash_on_delivery)
    receiver = order.receiver
    first, last = _split_name(order.buyer)
    goods = order.goods_total()
    line_discounts = allocate(order.discount, [line.total for line in order.lines])
    shipping = money_text(order.shipping)
    currency = order.currency
    address = {
        "first_name": _split_name(receiver.name)[0], "last_name": _split_name(receiver.name)[1],
        "name": receiver.name, "phone": receiver.phone, "company": None, "address1": receiver.street,
        "address2": receiver.town or None, "city": receiver.city, "province": receiver.province,
        "province_code": receiver.province_code or None, "zip": receiver.postal_code,
        "country": "United States" if receiver.country_code == "US" else receiver.country_code,
        "country_code": receiver.country_code,
    }
    end_time = shop_time(order.closed) if order.closed else None
    return {
        "id": int(order.id), "admin_graphql_api_id": f"gid://shopify/Order/{order.id}",
        "name": f"#{order.number}", "order_number": order.number, "number": order.number - 1000,
        "email": order.email, "contact_email": order.email, "phone": receiver.phone,
        "created_at": shop_time(order.created), "updated_at": shop_time(order.modified),
        "processed_at": shop_time(order.created),
        "cancelled_at": end_time if cancelled else None, "cancel_reason": "customer" if cancelled else None,
        "closed_at": end_time if closed else None,
        "currency": currency, "presentment_currency": currency,
        "financial_status": financial, "fulfillment_status": fulfillment,
        "total_line_items_price": money_text(goods), "total_discounts": money_text(order.discount),
        "subtotal_price": money_text(goods - order.discount),
        "total_shipping_price_set": {"shop_money": {"amount": shipping, "currency_code": currency},
                                     "presentment_money": {"amount": shipping, "currency_code": currency}},
        "total_tax": money_text(order.tax), "taxes_included": order.taxes_included,
        "tax_lines": [{"title": "Sales Tax", "price": money_text(order.tax), "rate": order.notes.get("tax_rate", 0)}]
        if order.tax else [],
        "total_tip_received": money_text(order.fees),
        "total_price": money_text(order.paid_amount()), "current_total_price": money_text(order.paid_amount()),
        "gateway": "Cash on Delivery (COD)" if order.cash_on_delivery else "shopify_payments",
        "payment_gateway_names": ["Cash on Delivery (COD)" if order.cash_on_delivery else "shopify_payments"],
        "discount_codes": [{"code": order.notes.get("discount_code", "SAVE"), "amount": money_text(order.discount),
                            "type": "fixed_amount"}] if order.discount else [],
        "customer": {"id": platform_number(order.email, "shopify-customer", 7_000_000_000_000, 999_999_999_999),
                     "first_name": first, "last_name": last, "email": order.email, "phone": receiver.phone},
        "shipping_address": address, "billing_address": dict(address),
        "shipping_lines": [{"title": "Standard Shipping", "code": "STANDARD", "price": shipping}],
        "line_items": [{
            "id": int(order.id) * 10 + index,
            "variant_id": int(platform_ids("shopify", line.sku)[0]),
            "product_id": int(platform_ids("shopify", line.sku)[1]),
            "sku": line.sku if line.code_shown else None, "title": line.title, "variant_title": line.spec or None,
            "quantity": line.quantity, "price": money_text(line.unit_price),
            "total_discount": "0.00",
            "discount_allocations": [{"amount": money_text(part), "discount_application_index": 0}] if part else [],
            "fulfillment_status": fulfillment, "taxable": True,
        } for index, (line, part) in enumerate(zip(order.lines, line_discounts))],
    }


def woocommerce_order(order: SimOrder) -> dict:
    """A WooCommerce REST v3 order, as /wp-json/wc/v3/orders lists it and webhooks carry it.

    WooCommerce keeps every line amount without tax: total = Σ line subtotal − discount_total + shipping_total +
    total_tax, with prices_include_tax only recording how the shop entered its prices.
    """
    receiver = order.receiver
    first, last = _split_name(order.buyer)
    to_first, to_last = _split_name(receiver.name)
    line_discounts = allocate(order.discount, [line.total for line in order.lines])
    line_totals = [line.total - part for line, part in zip(order.lines, line_discounts)]
    line_taxes = allocate(order.tax, line_totals)
    number = int(order.id)
    completed = order.shipped if order.state in ("shipped", "completed") else None
    refunds = [{"id": number * 10 + 9, "reason": "Customer request", "total": f"-{money_text(order.paid_amount())}"}]
    return {
        "id": number, "parent_id": 0, "number": str(number), "order_key": f"wc_order_{number:x}sim",
        "created_via": "checkout", "version": "9.3.3", "status": WOOCOMMERCE_STATUS[order.state],
        "currency": order.currency,
        "date_created": site_text(order.created), "date_created_gmt": gmt_text(order.created),
        "date_modified": site_text(order.modified), "date_modified_gmt": gmt_text(order.modified),
        "date_paid": site_text(order.paid), "date_paid_gmt": gmt_text(order.paid),
        "date_completed": site_text(completed), "date_completed_gmt": gmt_text(completed),
        "discount_total": money_text(order.discount), "discount_tax": "0.00",
        "shipping_total": money_text(order.shipping), "shipping_tax": "0.00",
        "cart_tax": money_text(order.tax), "total_tax": money_text(order.tax),
        "total": money_text(order.paid_amount()), "prices_include_tax": False,
        "customer_id": platform_number(order.email, "woo-customer", 100, 99_900), "customer_note": "",
        "billing": {"first_name": first, "last_name": last, "company": "", "address_1": receiver.street,
                    "address_2": receiver.town, "city": receiver.city, "state": receiver.province_code,
                    "postcode": receiver.postal_code, "country": receiver.country_code, "email": order.email,
                    "phone": receiver.phone},
        "shipping": {"first_name": to_first, "last_name": to_last, "company": "", "address_1": receiver.street,
                     "address_2": receiver.town, "city": receiver.city, "state": receiver.province_code,
                     "postcode": receiver.postal_code, "country": receiver.country_code, "phone": receiver.phone},
        # WooCommerce sets date_paid on a COD order as it reaches "processing", before any cash is taken.
        "payment_method": "cod" if order.cash_on_delivery else "stripe",
        "payment_method_title": "Cash on delivery" if order.cash_on_delivery else "Credit Card (Stripe)",
        "transaction_id": f"pi_sim{number}" if order.paid and not order.cash_on_delivery else "",
        "line_items": [{
            "id": number * 10 + index, "name": line.title,
            "product_id": int(platform_ids("woocommerce", line.sku)[1]),
            "variation_id": int(platform_ids("woocommerce", line.sku)[0]),
            "quantity": line.quantity, "tax_class": "",
            "subtotal": money_text(line.total), "subtotal_tax": money_text(tax),
            "total": money_text(total), "total_tax": money_text(tax), "taxes": [],
            "sku": line.sku if line.code_shown else "",
            "price": float(line.unit_price),  # WooCommerce sends the unit price as a JSON number, not a string
        } for index, (line, total, tax) in enumerate(zip(order.lines, line_totals, line_taxes))],
        "tax_lines": [{"id": number * 10 + 7, "rate_code": "US-TAX-1", "label": "Tax", "compound": False,
                       "tax_total": money_text(order.tax), "shipping_tax_total": "0.00"}] if order.tax else [],
        "shipping_lines": [{"id": number * 10 + 8, "method_title": "Flat rate", "method_id": "flat_rate",
                            "total": money_text(order.shipping), "total_tax": "0.00"}],
        "fee_lines": [{"id": number * 10 + 5, "name": "Cash on delivery fee", "tax_class": "", "tax_status": "none",
                       "total": money_text(order.fees), "total_tax": "0.00", "taxes": []}] if order.fees else [],
        "coupon_lines": [{"id": number * 10 + 6, "code": order.notes.get("discount_code", "save"),
                          "discount": money_text(order.discount), "discount_tax": "0.00"}] if order.discount else [],
        "refunds": refunds if order.state == "refunded" else [],
    }


BUILDERS = {"taobao": taobao_trade, "jd": jd_order, "pinduoduo": pinduoduo_order, "douyin": douyin_order,
            "shopify": shopify_order, "woocommerce": woocommerce_order}


def build(platform: str, order: SimOrder, encrypted: bool = True) -> dict:
    """The platform's JSON for a simulated order; the Chinese platforms' buyer fields encrypted as they are today
    (devtools/simulators/channels/privacy.py), or in plain text with `encrypted=False`."""
    raw = BUILDERS[platform](order)
    return protect(platform, raw, order) if encrypted else raw


# ---------------------------------------------------------------- reading raw platform JSON back

def parse_beijing(text: str) -> datetime:
    return datetime.strptime(text, BEIJING_FORMAT).replace(tzinfo=BEIJING).astimezone(UTC)


def parse_iso(text: str, naive_zone=UTC) -> datetime:
    """ISO 8601; a value without an offset is read in `naive_zone` (UTC for `_gmt` fields)."""
    moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=naive_zone)
    return moment.astimezone(UTC)


def order_id_of(platform: str, raw: dict) -> str | None:
    """The platform's order id in a raw order, as text, or None when it has none."""
    key = {"taobao": "tid_str", "jd": "orderId", "pinduoduo": "order_sn", "douyin": "order_id",
           "shopify": "id", "woocommerce": "id"}[platform]
    value = raw.get(key)
    if value is None and platform == "taobao":
        value = raw.get("tid")
    return None if value is None else str(value)


def _time_of(platform: str, raw: dict, which: str) -> datetime | None:
    keys = {"taobao": ("created", "modified"), "jd": ("orderStartTime", "modified"),
            "pinduoduo": ("created_time", "updated_at"), "douyin": ("create_time", "update_time"),
            "shopify": ("created_at", "updated_at"),
            "woocommerce": ("date_created_gmt", "date_modified_gmt")}[platform]
    value = raw.get(keys[0] if which == "created" else keys[1])
    try:
        if platform in ("taobao", "jd", "pinduoduo"):
            return parse_beijing(value)
        if platform == "douyin":
            return datetime.fromtimestamp(int(value), UTC)
        return parse_iso(value)
    except (TypeError, ValueError, OverflowError):
        return None


def modified_of(platform: str, raw: dict) -> datetime | None:
    """The modified time a raw order carries, in UTC, or None when it is missing or unreadable."""
    return _time_of(platform, raw, "modified")


def created_of(platform: str, raw: dict) -> datetime | None:
    return _time_of(platform, raw, "created")


def status_key_of(platform: str, raw: dict) -> str:
    """The CHANNELS.md status key of a raw order ("" when the fields are missing)."""
    if platform == "taobao":
        return str(raw.get("status", ""))
    if platform == "jd":
        return str(raw.get("orderState", ""))
    if platform == "pinduoduo":
        return f"{raw.get('order_status', '')}/{raw.get('refund_status', '')}"
    if platform == "douyin":
        return str(raw.get("order_status", ""))
    if platform == "shopify":
        financial = raw.get("financial_status")
        if raw.get("cancelled_at"):
            return f"cancelled/{financial}"
        return f"{financial}/{raw.get('fulfillment_status') or 'unfulfilled'}"
    if platform == "woocommerce":
        return str(raw.get("status", ""))
    raise ValueError(f"unknown platform {platform!r}")


def shopify_open_state_of(raw: dict) -> str:
    return "cancelled" if raw.get("cancelled_at") else "closed" if raw.get("closed_at") else "open"
