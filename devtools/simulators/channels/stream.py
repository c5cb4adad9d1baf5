"""A deterministic stream of order events per platform: new orders, payments, address changes, refunds before
shipping, shipping, completion, cancellation and duplicates.

Everything random comes from seeded `random.Random` instances, so the same seed, start time and sequence of calls
give the same orders and events. Every change moves the order's modified time strictly forward.

JD and Pinduoduo only list paid orders, so their new orders arrive already paid; the other platforms show an
order from its creation, unpaid.
"""
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from devtools.simulators.channels.formats import (BEIJING, CENT, PAID_STATES, PLATFORMS, STATES, ZERO, Address,
                                                  OrderLine, SimOrder, is_listed)

DEFAULT_SKUS = tuple(f"SKU-{number:04d}" for number in range(1, 51))
ONE_SECOND = timedelta(seconds=1)
ENGLISH_PLATFORMS = frozenset({"shopify", "woocommerce"})
PAID_ON_ARRIVAL = frozenset({"jd", "pinduoduo"})  # platforms that list an order only once it is paid

# ---------------------------------------------------------------- catalog

PRODUCTS = (("纯棉圆领T恤", "Cotton Crew Tee"), ("加绒连帽卫衣", "Fleece Hoodie"), ("直筒牛仔裤", "Straight Jeans"),
            ("轻薄羽绒服", "Light Down Jacket"), ("运动跑步鞋", "Running Shoes"), ("保温杯 500ml", "Insulated Bottle"),
            ("真丝眼罩", "Silk Sleep Mask"), ("蓝牙耳机", "Wireless Earbuds"), ("双肩背包", "Daypack"),
            ("羊毛围巾", "Wool Scarf"))
COLOURS = (("白色", "White"), ("黑色", "Black"), ("藏青", "Navy"), ("燕麦色", "Oat"), ("灰色", "Grey"))
SIZES = ("S", "M", "L", "XL", "XXL")
CNY_PRICES = tuple(Decimal(text) for text in ("19.90", "29.90", "39.00", "49.90", "59.90", "69.00", "79.90",
                                              "89.00", "99.00", "129.00", "159.00", "199.00", "259.00", "299.00"))
USD_PRICES = tuple(Decimal(text) for text in ("9.99", "14.50", "19.99", "24.95", "29.00", "34.99", "49.99", "59.00",
                                              "79.95", "99.00"))


@dataclass(frozen=True, slots=True)
class CatalogItem:
    code: str
    title_zh: str
    spec_zh: str
    title_en: str
    spec_en: str
    price_cny: Decimal
    price_usd: Decimal


class Catalog:
    """The merchant's SKU codes with a title and a price each, drawn once from the seed."""

    def __init__(self, skus, seed):
        rng = random.Random(f"{seed}:catalog")
        self.codes = tuple(skus or DEFAULT_SKUS)
        if not self.codes:
            raise ValueError("the catalog needs at least one SKU code")
        self.items = []
        for index, code in enumerate(self.codes):
            title_zh, title_en = PRODUCTS[index % len(PRODUCTS)]
            colour_zh, colour_en = COLOURS[(index // len(PRODUCTS)) % len(COLOURS)]
            size = rng.choice(SIZES)
            self.items.append(CatalogItem(code, title_zh, f"颜色分类:{colour_zh};尺码:{size}", title_en,
                                          f"{colour_en} / {size}", rng.choice(CNY_PRICES), rng.choice(USD_PRICES)))
        self._known = frozenset(self.codes)

    def unknown_code(self, rng: random.Random) -> str:
        """A code that looks like the merchant's but is not in the catalog (a typo, a retired SKU)."""
        while True:
            code = f"SKU-9{rng.randrange(1000):03d}"
            if code not in self._known:
                return code


# ---------------------------------------------------------------- shoppers

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高"
GIVEN_NAMES = ("伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "洋", "艳", "勇", "军", "杰", "娟", "涛", "明", "超",
               "秀英", "子涵", "雨桐")
NICK_WORDS = ("小", "爱吃", "快乐", "tb", "jd_", "阿")
# province, city, district, (sub-districts), (roads), postal code
CHINA_PLACES = (
    ("浙江省", "杭州市", "西湖区", ("西溪街道", "文新街道"), ("文三路", "古墩路", "天目山路"), "310012"),
    ("广东省", "深圳市", "南山区", ("粤海街道", "南头街道"), ("科技南十二路", "南海大道"), "518057"),
    ("上海市", "上海市", "浦东新区", ("张江镇", "花木街道"), ("祖冲之路", "锦绣路"), "201203"),
    ("北京市", "北京市", "朝阳区", ("望京街道", "三里屯街道"), ("阜通东大街", "工体北路"), "100102"),
    ("四川省", "成都市", "武侯区", ("玉林街道", "火车南站街道"), ("玉林南路", "人民南路四段"), "610041"),
    ("江苏省", "南京市", "鼓楼区", ("湖南路街道", "宁海路街道"), ("中山北路", "北京西路"), "210009"),
    ("湖北省", "武汉市", "洪山区", ("珞南街道", "关山街道"), ("珞喻路", "光谷大道"), "430070"),
)
FIRST_NAMES = ("Emma", "Liam", "Olivia", "Noah", "Ava", "Ethan", "Mia", "Lucas", "Sophia", "Mason", "Chloe", "Leo")
LAST_NAMES = ("Johnson", "Smith", "Garcia", "Miller", "Davis", "Chen", "Wilson", "Brown", "Lee", "Taylor")
# state, state code, city, zip, phone area code, sales tax rate
US_PLACES = (("California", "CA", "San Francisco", "94103", "415", Decimal("0.08625")),
             ("New York", "NY", "Brooklyn", "11201", "718", Decimal("0.08875")),
             ("Texas", "TX", "Austin", "78701", "512", Decimal("0.0825")),
             ("Washington", "WA", "Seattle", "98101", "206", Decimal("0.1025")),
             ("Oregon", "OR", "Portland", "97205", "503", Decimal("0")),
             ("Illinois", "IL", "Chicago", "60601", "312", Decimal("0.1025")))
US_STREETS = ("Market St", "Atlantic Ave", "Congress Ave", "Pine St", "Burnside St", "Wacker Dr")
CN_SHIPPING = tuple(Decimal(text) for text in ("0.00", "0.00", "0.00", "6.00", "8.00", "10.00", "12.00"))
CN_COUPONS = tuple(Decimal(text) for text in ("5.00", "10.00", "20.00", "30.00"))
US_SHIPPING = tuple(Decimal(text) for text in ("0.00", "4.99", "7.99", "9.99"))
CN_SHOP_PROMOTIONS = tuple(Decimal(text) for text in ("3.00", "5.00", "4.50"))
US_TIPS = tuple(Decimal(text) for text in ("1.00", "2.00", "5.00"))
WOO_COD_FEE = Decimal("2.00")
COD_RATE = 0.08  # cash on delivery: unpaid until the courier hands the cash over
COD_PLATFORMS = frozenset({"taobao", "jd", "douyin"})  # Pinduoduo has no cash on delivery
NO_CODE_RATE = 0.05  # lines whose listing shows no merchant code


class OrderFactory:
    """New simulated orders for one platform: ids in the platform's own shape, shoppers, lines and amounts."""

    def __init__(self, platform: str, catalog: Catalog, unknown_sku_rate: float = 0.0):
        if platform not in PLATFORMS:
            raise ValueError(f"unknown platform {platform!r}")
        self.platform = platform
        self.catalog = catalog
        self.unknown_sku_rate = unknown_sku_rate
        self.english = platform in ENGLISH_PLATFORMS
        self.sequence = 0

    # -- ids, each in the platform's real shape; unique because the sequence number is part of them
    def next_id(self, rng: random.Random, created: datetime) -> tuple[str, int]:
        self.sequence += 1
        seq = self.sequence
        if self.platform == "taobao":  # 19 digits, beyond 2^53: why TOP also sends tid_str
            return f"{380 + seq % 20}{seq:013d}{rng.randrange(900):03d}", 0
        if self.platform == "jd":
            return f"3{seq:09d}{rng.randrange(100):02d}", 0
        if self.platform == "pinduoduo":  # yyMMdd-15 digits, the date of the order in Beijing
            return f"{created.astimezone(BEIJING):%y%m%d}-{seq:09d}{rng.randrange(1_000_000):06d}", 0
        if self.platform == "douyin":
            return f"69{seq:012d}{rng.randrange(10_000, 90_000)}", 0
        if self.platform == "shopify":
            return f"56{seq:08d}{rng.randrange(1000):03d}", 1000 + seq
        return str(1000 + seq), 1000 + seq  # WooCommerce: the post id, also the order number

    # -- shoppers
    def new_receiver(self, rng: random.Random) -> Address:
        if self.english:
            state, code, city, postal, area, _rate = rng.choice(US_PLACES)
            name = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
            town = f"Apt {rng.randrange(1, 30)}{rng.choice('ABCD')}" if rng.random() < 0.4 else ""
            return Address(name, f"+1{area}555{rng.randrange(10_000):04d}", state, city, "",
                           f"{rng.randrange(100, 3000)} {rng.choice(US_STREETS)}", town, postal, "US", code)
        province, city, district, towns, roads, postal = rng.choice(CHINA_PLACES)
        name = rng.choice(SURNAMES) + rng.choice(GIVEN_NAMES)
        street = f"{rng.choice(roads)}{rng.randrange(1, 999)}号{rng.randrange(1, 30)}幢{rng.randrange(101, 2800)}室"
        phone = f"1{rng.choice('3578')}{rng.randrange(10**9):09d}"
        return Address(name, phone, province, city, district, street, rng.choice(towns), postal)

    def _buyer(self, rng: random.Random, receiver: Address) -> tuple[str, str]:
        """(buyer, email): the buyer is often the receiver; Chinese platforms show a nick instead of a name."""
        if self.english:
            buyer = receiver.name if rng.random() < 0.8 else f"{rng.choice(FIRST_NAMES)} {receiver.name.split()[-1]}"
            email = f"{buyer.lower().replace(' ', '.')}{rng.randrange(100)}@example.com"
            return buyer, email
        return f"{rng.choice(NICK_WORDS)}{receiver.name}{rng.randrange(10, 9999)}", ""

    # -- lines and amounts
    def new_lines(self, rng: random.Random) -> list[OrderLine]:
        lines = []
        codes_used = set()
        for _ in range(rng.choice((1, 1, 1, 2, 2, 3))):
            item = rng.choice(self.catalog.items)
            if item.code in codes_used:
                continue
            codes_used.add(item.code)
            code = item.code
            if self.unknown_sku_rate and rng.random() < self.unknown_sku_rate:
                code = self.catalog.unknown_code(rng)
            if self.english:
                line = OrderLine(code, item.title_en, rng.choice((1, 1, 1, 2, 3)), item.price_usd, item.spec_en)
            else:
                line = OrderLine(code, item.title_zh, rng.choice((1, 1, 1, 2, 3)), item.price_cny, item.spec_zh)
            # Some listings carry no merchant code on the platform (an item without variants, a code never
            # entered): the order center maps those lines by the platform's variant id.
            line.code_shown = rng.random() >= NO_CODE_RATE
            lines.append(line)
        return lines

    def _amounts(self, rng: random.Random, order: SimOrder) -> None:
        goods = order.goods_total()
        if self.english:
            order.currency = "USD"
            order.shipping = rng.choice(US_SHIPPING)
            if rng.random() < 0.25:
                order.discount = min((goods * Decimal("0.10")).quantize(CENT, ROUND_HALF_UP), goods)
                order.notes["discount_code"] = "WELCOME10"
            rate = next(place[5] for place in US_PLACES if place[1] == order.receiver.province_code)
            taxable = goods - order.discount
            # Shopify shops in some places enter prices with tax included; WooCommerce amounts exclude it.
            order.taxes_included = self.platform == "shopify" and rng.random() < 0.2
            if order.taxes_included:
                order.tax = (taxable - taxable / (1 + rate)).quantize(CENT, ROUND_HALF_UP)
            else:
                order.tax = (taxable * rate).quantize(CENT, ROUND_HALF_UP)
            order.notes["tax_rate"] = float(rate)
            if self.platform == "woocommerce" and rng.random() < COD_RATE:
                order.cash_on_delivery, order.fees = True, WOO_COD_FEE  # a fee line the buyer pays the shop
            elif self.platform == "shopify":
                order.cash_on_delivery = rng.random() < COD_RATE
                if not order.cash_on_delivery and rng.random() < 0.15:
                    order.fees = rng.choice(US_TIPS)  # total_tip_received
            return
        order.shipping = rng.choice(CN_SHIPPING)
        if goods >= 99 and rng.random() < 0.35:
            order.discount = min(rng.choice(CN_COUPONS), goods - CENT)
            # Part of it is the shop's order-level promotion (满减, 平台券), shown apart from item promotions.
            if rng.random() < 0.5:
                order.shop_discount_share = min(rng.choice(CN_SHOP_PROMOTIONS), order.discount)
        if self.platform in COD_PLATFORMS and rng.random() < COD_RATE:
            order.cash_on_delivery = True

    def new_order(self, rng: random.Random, created: datetime, prepaid: bool = False) -> SimOrder:
        """An order just placed at `created`, unpaid, with its lines and amounts; `prepaid` rules out cash on
        delivery (an order that is to be paid online)."""
        order_id, number = self.next_id(rng, created)
        receiver = self.new_receiver(rng)
        buyer, email = self._buyer(rng, receiver)
        lines = []
        while not lines:
            lines = self.new_lines(rng)
        order = SimOrder(id=order_id, created=created, modified=created, lines=lines, receiver=receiver,
                         buyer=buyer, email=email, number=number)
        self._amounts(rng, order)
        if prepaid and order.cash_on_delivery:
            order.cash_on_delivery = False
            order.fees = ZERO if self.platform == "woocommerce" else order.fees  # the COD fee goes with it
        return order


def tracking_number(rng: random.Random, english: bool) -> str:
    if english:
        return f"1Z{rng.randrange(16**10):010X}{rng.randrange(10**6):06d}"
    return f"SF{rng.randrange(10**12):012d}"


def settle_times(order: SimOrder, rng: random.Random, until: datetime | None = None, english: bool = False) -> None:
    """Fill the payment, shipping and closing times its state implies, each after the previous, never after
    `until`; modified becomes the latest of them."""
    def later(moment: datetime, low: int, high: int) -> datetime:
        step = moment + timedelta(seconds=rng.randrange(low, high))
        return min(step, until) if until else step

    state = order.state
    if state in PAID_STATES and order.paid is None:
        order.paid = later(order.created, 10, 1800)
    if state in ("shipped", "completed") and order.shipped is None:
        order.shipped = later(order.paid, 3600, 2 * 86400)
        order.tracking_number = order.tracking_number or tracking_number(rng, english)
    if state in ("completed", "cancelled_unpaid", "refunded") and order.closed is None:
        base = order.shipped or order.paid or order.created
        order.closed = later(base, 600, 7 * 86400 if state == "completed" else 86400)
    moments = [moment for moment in (order.created, order.paid, order.shipped, order.closed) if moment]
    order.modified = max(moments + [order.modified])


# ---------------------------------------------------------------- clock and events

class StreamClock:
    """Simulated time: each event moves it forward by a few seconds, but never past the wall clock. In real-time
    mode (the long-running simulator) it simply reads the wall clock."""

    def __init__(self, start: datetime, realtime: bool = False):
        if start.tzinfo is None:
            raise ValueError("the stream start needs a time zone")
        self.current = start.astimezone(UTC).replace(microsecond=0)
        self.realtime = realtime

    def tick(self, rng: random.Random) -> datetime:
        gap = timedelta(seconds=rng.randrange(1, 31))
        wall = datetime.now(UTC).replace(microsecond=0)
        self.current = max(self.current, wall if self.realtime else min(self.current + gap, wall))
        return self.current


@dataclass(frozen=True, slots=True)
class Event:
    kind: str  # new, pay, cancel, address_change, refund_request, refund, ship, complete, duplicate
    platform: str
    order_id: str
    at: datetime

    def as_json(self) -> dict:
        return {"kind": self.kind, "platform": self.platform, "order_id": self.order_id,
                "at": self.at.isoformat(timespec="seconds")}


# kind: (state the order must be in, weight). "new" and "duplicate" need no particular state.
TRANSITIONS = {"pay": ("unpaid", 22), "cancel": ("unpaid", 5), "address_change": ("paid", 5),
               "refund_request": ("paid", 4), "refund": ("refunding", 4), "ship": ("paid", 16),
               "complete": ("shipped", 10)}
NEW_WEIGHT, DUPLICATE_WEIGHT = 30, 4
NEXT_STATE = {"pay": "paid", "cancel": "cancelled_unpaid", "refund_request": "refunding", "refund": "refunded",
              "ship": "shipped", "complete": "completed"}


class PlatformStream:
    """The changing orders of one platform. It keeps, per state, the orders that can still change."""

    def __init__(self, platform: str, factory: OrderFactory, clock: StreamClock, seed):
        self.platform = platform
        self.factory = factory
        self.clock = clock
        self.rng = random.Random(f"{seed}:{platform}:stream")
        self.pools: dict[str, list[SimOrder]] = {state: [] for state in STATES}
        self.seen: list[SimOrder] = []  # every order the stream made or adopted, for duplicates

    def adopt(self, order: SimOrder) -> None:
        """Let the stream change an order made elsewhere (add_order)."""
        self.pools[order.state].append(order)
        self.seen.append(order)

    def next_event(self) -> tuple[Event, SimOrder]:
        kind = self._pick_kind()
        at = self.clock.tick(self.rng)
        if kind == "new":
            order = self._new_order(at)
        elif kind == "duplicate":
            order = self.rng.choice(self.seen)
            if self.platform not in ("shopify", "woocommerce"):
                # A polling platform re-lists the unchanged order under a new modified time (as they do after
                # internal updates the order center never sees); webhook platforms re-send the same delivery.
                touch(order, at)
        else:
            order = self._take(TRANSITIONS[kind][0])
            self._apply(kind, order, at)
            self.pools[order.state].append(order)
        return Event(kind, self.platform, order.id, at), order

    def _pick_kind(self) -> str:
        kinds, weights = ["new"], [NEW_WEIGHT]
        if self.seen:
            kinds.append("duplicate")
            weights.append(DUPLICATE_WEIGHT)
        for kind, (state, weight) in TRANSITIONS.items():
            if self.pools[state]:
                kinds.append(kind)
                weights.append(weight)
        return self.rng.choices(kinds, weights)[0]

    def _take(self, state: str) -> SimOrder:
        """Remove a random order from a state's pool in O(1)."""
        pool = self.pools[state]
        index = self.rng.randrange(len(pool))
        pool[index], pool[-1] = pool[-1], pool[index]
        return pool.pop()

    def _new_order(self, at: datetime) -> SimOrder:
        if self.platform in PAID_ON_ARRIVAL:
            created = at - timedelta(seconds=self.rng.randrange(30, 900))
            order = self.factory.new_order(self.rng, created)
            order.state, order.paid, order.modified = "paid", at, at
        else:
            order = self.factory.new_order(self.rng, at)
        self.pools[order.state].append(order)
        self.seen.append(order)
        return order

    def _apply(self, kind: str, order: SimOrder, at: datetime) -> None:
        touch(order, at)
        moment = order.modified
        if kind == "address_change":
            old = order.receiver
            while order.receiver == old:
                order.receiver = self.factory.new_receiver(self.rng)
            return
        order.state = NEXT_STATE[kind]
        if kind == "pay":
            order.paid = moment
        elif kind == "ship":
            order.shipped = moment
            order.tracking_number = tracking_number(self.rng, self.factory.english)
        elif kind in ("complete", "cancel", "refund"):
            order.closed = moment


def touch(order: SimOrder, at: datetime) -> None:
    """Every change moves modified strictly forward, even when two changes fall in the same second."""
    order.modified = max(at, order.modified + ONE_SECOND)


# ---------------------------------------------------------------- bulk history

# Share of each state among historical orders; JD and Pinduoduo never show the unpaid ones.
HISTORY_STATES = (("completed", 55), ("shipped", 15), ("paid", 10), ("refunded", 6), ("refunding", 2),
                  ("cancelled_unpaid", 8), ("unpaid", 4))


def historical_orders(factory: OrderFactory, rng: random.Random, count: int, since: datetime,
                      until: datetime) -> list[SimOrder]:
    """`count` orders whose last change falls uniformly in [since, until], in a realistic mix of states; their
    earlier times (placed, paid, shipped) are worked out backwards from that last change."""
    states = [state for state, _weight in HISTORY_STATES if is_listed(factory.platform, state)]
    weights = [weight for state, weight in HISTORY_STATES if is_listed(factory.platform, state)]
    span = max(int((until - since).total_seconds()), 0) + 1
    orders = []
    for state in rng.choices(states, weights, k=count):
        times = _times_ending_at(state, since + timedelta(seconds=rng.randrange(span)), rng)
        order = factory.new_order(rng, times["created"])
        order.state = state
        order.paid, order.shipped, order.closed = times.get("paid"), times.get("shipped"), times.get("closed")
        order.modified = times["modified"]
        if order.shipped:
            order.tracking_number = tracking_number(rng, factory.english)
        orders.append(order)
    return orders


def _times_ending_at(state: str, last: datetime, rng: random.Random) -> dict[str, datetime]:
    """The times an order in `state` went through, its latest change being at `last`."""
    def before(moment: datetime, low: int, high: int) -> datetime:
        return moment - timedelta(seconds=rng.randrange(low, high))

    times = {"modified": last}
    if state == "unpaid":
        times["created"] = last
        return times
    if state == "cancelled_unpaid":
        times["closed"] = last
        times["created"] = before(last, 600, 86400)
        return times
    if state in ("completed", "refunded"):
        times["closed"] = last
    if state == "completed":
        times["shipped"] = before(last, 600, 7 * 86400)
    elif state == "shipped":
        times["shipped"] = last
    if "shipped" in times:
        times["paid"] = before(times["shipped"], 3600, 2 * 86400)
    elif state == "paid":
        times["paid"] = last
    else:  # refunding, refunded: the refund came some time after payment
        times["paid"] = before(last, 600, 86400)
    times["created"] = before(times["paid"], 10, 1800)
    return times
