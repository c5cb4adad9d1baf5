"""The demo: migrate, seed a believable merchant once, print the sign-ins, serve both apps and run the jobs.

Everything is seeded through the services (create_order, transition_order, adjust_stock, ...), so the
demo data has the same audit trail, ledger and reservations as data made by hand in the portal.
"""
import random
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from shared.actors import Actor
from shared.appcore import create_core_app
from shared.config import PROJECT_ROOT
from shared.database import upgrade
from shared.dispatch import jobs_run_inline, resolve
from shared.extensions import db
from shared.lifecycle import OrderStatus
from shared.models import Channel, Customer, Order, Sku, StaffUser, Warehouse
from shared.security import crypto
from shared.services import catalog, customers, orders, staff, stock
from shared.timekeeping import utc_now

SEED_ACTOR = Actor(id=None, label="demo-seed", role="admin")
RANDOM_SEED = 2026
BATCH_SIZE = 100
SHANGHAI = ZoneInfo("Asia/Shanghai")

# (code, name, kind, timezone, currency, share of orders, price factor against the list price)
CHANNELS = (
    ("TB", "淘宝/天猫", "taobao", "Asia/Shanghai", "CNY", 30, "1.00"),
    ("JD", "京东", "jd", "Asia/Shanghai", "CNY", 18, "1.00"),
    ("PD", "拼多多", "pinduoduo", "Asia/Shanghai", "CNY", 15, "0.88"),
    ("DY", "抖音小店", "douyin", "Asia/Shanghai", "CNY", 15, "0.95"),
    ("WX", "微信小程序", "wechat", "Asia/Shanghai", "CNY", 8, "0.98"),
    ("OS", "官网商城", "own_shop", "Asia/Shanghai", "CNY", 6, "0.96"),
    ("SF", "Shopify", "shopify", "America/Los_Angeles", "USD", 4, "0.19"),
    ("WC", "WooCommerce", "woocommerce", "Europe/Berlin", "EUR", 2, "0.13"),
    ("OF", "线下门店", "offline", "Asia/Shanghai", "CNY", 4, "1.00"),
)

DIRECT_CODES = tuple(c[0] for c in CHANNELS if c[2] in ("own_shop", "wechat", "offline"))

# (code, name, province, city, share of opening stock)
WAREHOUSES = (
    ("HZ1", "杭州仓", "浙江省", "杭州市", 5),
    ("GZ1", "广州仓", "广东省", "广州市", 3),
    ("CD1", "成都仓", "四川省", "成都市", 2),
)

# (sku, name, list price in CNY, safety stock, popularity, deliberately short of stock)
PRODUCTS = (
    ("TEA-001", "西湖龙井 明前特级 250g", "398.00", 20, 8, False),
    ("TEA-002", "安溪铁观音 清香型 500g", "168.00", 20, 6, False),
    ("TEA-003", "武夷山大红袍 礼盒装 200g", "258.00", 15, 5, True),
    ("TEA-004", "云南普洱熟茶 357g 饼茶", "129.00", 15, 5, False),
    ("TEA-005", "福鼎白茶 白牡丹 300g", "188.00", 15, 4, False),
    ("TEA-006", "正山小种红茶 罐装 150g", "98.00", 20, 5, False),
    ("TEA-007", "茉莉花茶 袋泡茶 50包", "39.90", 30, 7, False),
    ("TEA-008", "黄山毛峰 雨前一级 250g", "119.00", 15, 3, False),
    ("SNK-001", "每日坚果 混合果仁 750g/30袋", "139.00", 40, 10, False),
    ("SNK-002", "临安手剥山核桃 500g", "89.00", 30, 6, False),
    ("SNK-003", "五常稻花香大米 5kg", "79.90", 40, 7, False),
    ("SNK-004", "云南玫瑰鲜花饼 10枚装", "36.80", 30, 6, False),
    ("SNK-005", "重庆麻辣牛肉干 250g", "49.90", 30, 6, True),
    ("SNK-006", "潮汕手打牛肉丸 冷冻 500g", "59.00", 20, 4, False),
    ("SNK-007", "新疆和田大枣 特级 1kg", "68.00", 25, 5, False),
    ("SNK-008", "京式糕点礼盒 1.2kg", "128.00", 15, 3, False),
    ("SNK-009", "柳州螺蛳粉 原味 5袋装", "45.90", 50, 9, False),
    ("SNK-010", "九蒸九晒黑芝麻丸 300g", "39.90", 30, 5, False),
    ("SNK-011", "金华火腿切片 200g", "88.00", 15, 2, False),
    ("SNK-012", "宁夏中宁枸杞 头茬 500g", "59.90", 25, 4, False),
    ("COS-001", "玻尿酸补水保湿面膜 10片装", "69.00", 40, 9, False),
    ("COS-002", "氨基酸温和洁面乳 120g", "59.00", 30, 7, False),
    ("COS-003", "烟酰胺亮肤精华液 30ml", "199.00", 20, 6, True),
    ("COS-004", "清透防晒乳 SPF50+ PA++++ 50ml", "129.00", 30, 7, False),
    ("COS-005", "丝绒哑光口红 正红色 3.5g", "149.00", 20, 5, False),
    ("COS-006", "温和卸妆油 200ml", "99.00", 20, 4, False),
    ("COS-007", "桂花香护手霜 5支礼盒", "49.90", 25, 5, False),
    ("COS-008", "无硅油控油洗发水 500ml", "69.90", 25, 5, False),
    ("COS-009", "抗皱紧致眼霜 15g", "259.00", 10, 3, False),
    ("COS-010", "自然色气垫BB霜 15g×2", "159.00", 15, 4, True),
    ("APL-001", "陶瓷内胆电炖锅 1.6L", "199.00", 10, 4, False),
    ("APL-002", "破壁豆浆机 1.2L", "599.00", 8, 3, False),
    ("APL-003", "304不锈钢电热水壶 1.7L", "89.00", 15, 5, False),
    ("APL-004", "智能预约电饭煲 4L", "329.00", 10, 3, False),
    ("APL-005", "可视空气炸锅 5.5L", "299.00", 12, 5, True),
    ("APL-006", "便携无线榨汁杯", "129.00", 15, 4, False),
    ("APL-007", "负离子吹风机 1800W", "219.00", 10, 4, False),
    ("APL-008", "声波电动牙刷 5档", "159.00", 15, 5, False),
    ("APL-009", "USB静音桌面小风扇", "59.00", 20, 4, False),
    ("APL-010", "手持蒸汽挂烫机", "169.00", 10, 3, False),
    ("APL-011", "多功能养生壶 1.5L", "139.00", 12, 4, False),
    ("APL-012", "上加水加湿器 4L", "149.00", 10, 3, True),
    ("HOM-001", "景德镇陶瓷茶具套装 一壶六杯", "268.00", 8, 3, False),
    ("HOM-002", "桑蚕丝春秋被 200×230cm", "899.00", 5, 2, False),
    ("HOM-003", "竹纤维毛巾 4条装", "49.90", 30, 6, False),
    ("HOM-004", "316不锈钢保温杯 500ml", "119.00", 20, 6, False),
    ("HOM-005", "檀香香薰蜡烛 200g", "79.00", 15, 3, False),
    ("HOM-006", "桑蚕丝真丝眼罩", "39.00", 20, 4, False),
    ("HOM-007", "宜兴原矿朱泥紫砂壶 200ml", "458.00", 5, 2, False),
    ("HOM-008", "天然乳胶枕 2只装", "299.00", 10, 4, False),
)

# (province, city, district, postal code, real roads of that district)
REGIONS = (
    ("浙江省", "杭州市", "西湖区", "310012", ("文三路", "天目山路", "古墩路")),
    ("浙江省", "杭州市", "滨江区", "310051", ("江南大道", "滨盛路", "网商路")),
    ("浙江省", "宁波市", "鄞州区", "315100", ("天童南路", "四明中路")),
    ("上海市", "上海市", "浦东新区", "200120", ("张杨路", "世纪大道", "锦绣路")),
    ("上海市", "上海市", "徐汇区", "200030", ("漕溪北路", "肇嘉浜路", "虹桥路")),
    ("北京市", "北京市", "朝阳区", "100020", ("建国路", "朝阳北路", "望京街")),
    ("北京市", "北京市", "海淀区", "100080", ("中关村大街", "学院路", "知春路")),
    ("广东省", "广州市", "天河区", "510620", ("天河路", "体育西路", "黄埔大道西")),
    ("广东省", "深圳市", "南山区", "518052", ("深南大道", "科技园南路", "南海大道")),
    ("江苏省", "南京市", "鼓楼区", "210008", ("中山北路", "广州路", "湖南路")),
    ("江苏省", "苏州市", "姑苏区", "215000", ("人民路", "干将西路", "十全街")),
    ("四川省", "成都市", "武侯区", "610041", ("人民南路四段", "武侯祠大街", "科华北路")),
    ("湖北省", "武汉市", "洪山区", "430070", ("珞喻路", "雄楚大道", "光谷大道")),
    ("陕西省", "西安市", "雁塔区", "710061", ("小寨东路", "长安南路", "科技路")),
    ("福建省", "厦门市", "思明区", "361001", ("中山路", "湖滨南路", "厦禾路")),
    ("重庆市", "重庆市", "渝北区", "401120", ("金开大道", "新牌坊一路")),
    ("湖南省", "长沙市", "岳麓区", "410006", ("麓山南路", "枫林三路")),
    ("山东省", "青岛市", "市南区", "266001", ("香港中路", "山东路")),
)
COMPOUNDS = ("阳光花园", "翠苑小区", "金色家园", "锦绣华庭", "东方名苑", "滨江花园", "世纪新城", "梧桐苑", "香樟园",
             "和平里小区")
OFFICE_TOWERS = ("国际大厦", "创业大厦", "时代广场", "科技园A座", "金融中心")

# Shopify ships abroad: (state, city, county, ZIP, area code, streets)
US_REGIONS = (
    ("California", "Los Angeles", "Los Angeles County", "90012", "213", ("W 1st St", "S Broadway")),
    ("California", "San Francisco", "San Francisco County", "94103", "415", ("Mission St", "Folsom St")),
    ("New York", "New York", "New York County", "10013", "212", ("Canal St", "Mott St")),
    ("Washington", "Seattle", "King County", "98104", "206", ("S Jackson St", "2nd Ave")),
    ("Texas", "Houston", "Harris County", "77002", "713", ("Main St", "Travis St")),
)
US_FIRST_NAMES = ("Emily", "Kevin", "Sarah", "Michael", "Jessica", "David", "Olivia", "James", "Sophia", "Daniel")
US_LAST_NAMES = ("Chen", "Wang", "Lin", "Zhang", "Liu", "Huang", "Brown", "Wilson", "Lee", "Wu")

SURNAMES = ("王李张刘陈杨黄赵吴周徐孙马朱胡郭何林高罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
            "姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔汤")
GIVEN_NAME_CHARACTERS = ("伟芳娜敏静丽强磊军洋勇艳杰娟涛明超霞平刚桂英华玉萍红娥玲芬燕彬鹏辉俊宇浩然子涵欣怡梓轩"
                         "雨萱思远嘉怡晨阳佳琪文博一鸣建国志强海燕丹婷雪梅晓东立新春花秀兰")
MOBILE_PREFIXES = ("130", "131", "132", "133", "135", "136", "137", "138", "139", "150", "151", "152", "155", "156",
                   "157", "158", "159", "166", "173", "176", "177", "180", "181", "182", "183", "185", "186", "187",
                   "188", "189", "191", "198", "199")
EMAIL_DOMAINS = ("example.com", "example.cn", "example.org")

# (role, username, password, display name): one sign-in per role, printed every time the demo starts.
STAFF = (
    ("admin", "admin", "demo-admin-2026", "系统管理员"),
    ("ops_manager", "ops", "demo-ops-2026", "运营经理 周敏"),
    ("customer_service", "cs", "demo-cs-2026", "客服 林晓雨"),
    ("warehouse", "warehouse", "demo-warehouse-2026", "仓库主管 陈刚"),
    ("finance", "finance", "demo-finance-2026", "财务 赵静"),
    ("auditor", "auditor", "demo-auditor-2026", "审计 孙伟"),
    ("cs_lead", "cslead", "demo-cslead-2026", "客服组长 王磊"),
    ("warehouse_manager", "whmanager", "demo-whmanager-2026", "仓储经理 刘洋"),
    ("finance_director", "fd", "demo-fd-2026", "财务总监 郑华"),
)
# (code, name zh, name en, lead's username, members' usernames, parent code): the exception routes seeded by
# migration 0009_exceptions point to customer_service, warehouse and finance.
TEAMS = (
    ("operations", "运营中心", "Operations", "ops", (), None),
    ("customer_service", "客服组", "Customer service", "cslead", ("cs",), "operations"),
    ("warehouse", "仓储组", "Warehouse", "whmanager", ("warehouse",), "operations"),
    ("finance", "财务组", "Finance", "fd", ("finance",), "operations"),
)
# The stuck approval: a customer-service order of 6 × 899.00 CNY (≥ 5,000.00: rule order_5k) held since before
# its step's 2 business hours ran out, marked stalled (审批滞留) and escalated to the cs lead's superior (ops).
STUCK_ORDER = ("HOM-002", 6)
# (kind, summary, minutes ago it was raised): the payment one is past its 120 minutes (breached, escalated to the
# finance lead); the callback one, answered in time and in progress, is at 73% of its 120 minutes, so it warns at
# 80% a few minutes into the demo.
EXCEPTIONS = (
    ("payment_not_received", "平台显示已付款，30 分钟后本系统仍未收到付款通知", 150),
    ("callback_failed", "支付平台回调验签失败，订单付款状态未同步", 88),
    ("duplicate_buyer_orders", "同一买家 10 分钟内下了 3 笔相同订单", 30),
    ("out_of_stock", "可售库存低于待发订单需求", 20),
)
# Regular buyers who open a customer-site account; their seeded orders show up under "my orders".
CUSTOMER_ACCOUNTS = (
    ("王小雨", "xiaoyu.wang@example.com", "demo-customer-2026"),
    ("李建国", "jianguo.li@example.com", "demo-customer-2026"),
)

FLOW = ("allocated", "picking", "packed", "shipped", "completed")
ON_THE_FLOOR = ("allocated", "picking", "packed")  # seeded as allocated with a shipment; the floor moves them on
# How often each final status appears, and how long ago (minutes) such an order was typically placed.
FATES = {
    "pending_review": (4, 30, 2 * 24 * 60),
    "confirmed": (9, 5, 24 * 60),
    "allocated": (8, 30, 36 * 60),
    "picking": (5, 60, 48 * 60),
    "packed": (5, 120, 60 * 60),
    "shipped": (14, 12 * 60, 6 * 24 * 60),
    "completed": (34, 3 * 24 * 60, 14 * 24 * 60),
    "on_hold": (4, 60, 5 * 24 * 60),
    "cancelled": (11, 60, 14 * 24 * 60),
    "closed": (6, 7 * 24 * 60, 14 * 24 * 60),
}
HOLD_REASONS = ("收货地址不完整，待客服与买家核实", "买家要求延迟发货", "疑似刷单，待风控审核", "发票信息待补充",
                "同一买家多笔订单，待合并发货")
BUYER_CANCEL_REASONS = ("买家申请取消：拍错了/多拍了", "买家申请取消：不想要了",
                        "买家申请取消：地址填写错误，已重新下单")
PICKING_CANCEL_REASON = "拣货发现外包装破损，无可替换库存，经买家同意取消"
UNPAID_CANCEL_REASON = "超时未支付，系统关闭交易并释放库存"
HOLD_POOL_REASONS = ("直播间专享库存预留", "618大促活动库存预留", "质检待定，暂不可售")


@dataclass
class Shopper:
    name: str
    phone: str
    email: str | None
    address: dict
    account_email: str | None = None  # set for the regulars who open a customer-site account


@dataclass
class OrderPlan:
    placed_at: datetime
    channel: str
    shopper: Shopper
    lines: list[tuple[str, int]]
    fate: str
    paid: bool = True
    paid_later: bool = False
    unpaid_window: int | None = None
    route: list[tuple[str, str | None]] = field(default_factory=list)


@dataclass
class SeedOutcome:
    seeded: bool
    order_count: int
    seconds: float = 0.0
    statuses: dict = field(default_factory=dict)


# ---------------------------------------------------------------- planning (pure, seeded randomness)

def chinese_name(rng: random.Random) -> str:
    given = "".join(rng.choice(GIVEN_NAME_CHARACTERS) for _ in range(rng.choice((1, 2, 2))))
    return rng.choice(SURNAMES) + given


def mobile_number(rng: random.Random) -> str:
    return rng.choice(MOBILE_PREFIXES) + f"{rng.randrange(10 ** 8):08d}"


def street_address(rng: random.Random, roads: tuple[str, ...]) -> str:
    road, number = rng.choice(roads), rng.randint(1, 999)
    pattern = rng.random()
    if pattern < 0.55:
        return (f"{road}{number}号{rng.choice(COMPOUNDS)}{rng.randint(1, 30)}幢{rng.randint(1, 4)}单元"
                f"{rng.randint(1, 28)}{rng.randint(1, 4):02d}室")
    if pattern < 0.85:
        return (f"{road}{number}号{rng.choice(COMPOUNDS)}{rng.randint(1, 20)}栋"
                f"{rng.randint(1, 33)}{rng.randint(1, 8):02d}")
    return f"{road}{number}号{rng.choice(OFFICE_TOWERS)}{rng.randint(2, 40)}楼{rng.randint(1, 30):02d}室"


def domestic_shopper(rng: random.Random, name: str | None = None, with_email: bool | None = None) -> Shopper:
    province, city, district, postal_code, roads = rng.choice(REGIONS)
    name, phone = name or chinese_name(rng), mobile_number(rng)
    email = None
    if with_email if with_email is not None else rng.random() < 0.3:
        email = f"{phone[-8:]}{rng.randint(10, 99)}@{rng.choice(EMAIL_DOMAINS)}"
    address = {"receiver": name, "phone": phone, "province": province, "city": city, "district": district,
               "street": street_address(rng, roads), "postal_code": postal_code}
    return Shopper(name=name, phone=phone, email=email, address=address)


def overseas_shopper(rng: random.Random) -> Shopper:
    state, city, county, zip_code, area_code, streets = rng.choice(US_REGIONS)
    name = f"{rng.choice(US_FIRST_NAMES)} {rng.choice(US_LAST_NAMES)}"
    phone = f"+1{area_code}555{rng.randint(100, 199):04d}"  # 555-01xx numbers are reserved for fiction
    email = f"{name.split()[0].lower()}{rng.randint(1, 999)}@example.com"
    address = {"receiver": name, "phone": phone, "province": state, "city": city, "district": county,
               "street": f"{rng.randint(100, 2999)} {rng.choice(streets)}, Apt {rng.randint(1, 40)}",
               "postal_code": zip_code}
    return Shopper(name=name, phone=phone, email=email, address=address)


def placed_moment(rng: random.Random, now: datetime, low_minutes: float, high_minutes: float) -> datetime:
    """A moment in the window, mostly in waking hours (China time) as real shopping is."""
    moment = now
    for _ in range(3):
        moment = now - timedelta(minutes=rng.uniform(low_minutes, high_minutes))
        if moment.astimezone(SHANGHAI).hour >= 8 or rng.random() < 0.15:
            break
    return moment


def route_for(rng: random.Random, plan: OrderPlan) -> None:
    """Decide payment and the lifecycle steps that bring the order to its fate."""
    fate = plan.fate
    if fate in FLOW:
        plan.route = [(step, None) for step in FLOW[:FLOW.index(fate) + 1]]
    elif fate == "on_hold":
        # Held before it reached the floor: a hold released later goes back to confirmed and is allocated then
        # (an order held in picking with no parcel behind it would never move again).
        rng.randint(0, 3)  # keeps the random sequence, so every other order is seeded as before
        plan.route = [("on_hold", rng.choice(HOLD_REASONS))]
    elif fate == "cancelled":
        kind = rng.random()
        if kind < 0.4:
            plan.paid, plan.route = False, [("cancelled", UNPAID_CANCEL_REASON)]
        elif kind < 0.85:
            before = [(step, None) for step in FLOW[:rng.randint(0, 1)]]
            plan.route = before + [("cancelled", rng.choice(BUYER_CANCEL_REASONS))]
        else:
            plan.route = [(step, None) for step in FLOW[:2]] + [("cancelled", PICKING_CANCEL_REASON)]
    elif fate == "closed":
        if rng.random() < 0.75:
            plan.route = [(step, None) for step in FLOW] + [("closed", "售后期已过，订单归档")]
        else:
            plan.route = [("cancelled", rng.choice(BUYER_CANCEL_REASONS)), ("closed", "已取消订单归档")]


def plan_orders(rng: random.Random, count: int, now: datetime, unpaid_minutes: int) -> list[OrderPlan]:
    """Decide every order up front (who, where, what, how far it got), oldest first."""
    regulars = [domestic_shopper(rng, name=name, with_email=False) for name, _email, _pw in CUSTOMER_ACCOUNTS]
    for shopper, (_name, email, _password) in zip(regulars, CUSTOMER_ACCOUNTS, strict=True):
        shopper.account_email = email
    domestic = regulars + [domestic_shopper(rng) for _ in range(max(20, count * 55 // 100))]
    overseas = [overseas_shopper(rng) for _ in range(max(5, count // 40))]
    channel_codes = [c[0] for c in CHANNELS]
    channel_weights = [c[5] for c in CHANNELS]
    home_weights = [0 if c[4] != "CNY" else c[5] for c in CHANNELS]
    fate_names = list(FATES)
    fate_weights = [weight for weight, _low, _high in FATES.values()]
    sku_codes = [p[0] for p in PRODUCTS]
    sku_weights = [p[4] for p in PRODUCTS]
    regular_every = max(10, count // 12)  # about a dozen orders each: enough to fill "my orders"
    plans = []
    for index in range(count):
        # The first orders cover every status once, so even a tiny demo shows the whole lifecycle.
        fate = fate_names[index] if index < len(fate_names) else rng.choices(fate_names, fate_weights)[0]
        if index % regular_every < len(regulars):  # the regulars buy at home, through the Chinese channels
            shopper = regulars[index % regular_every]
            channel = rng.choices(channel_codes, home_weights)[0]
        else:
            channel = rng.choices(channel_codes, channel_weights)[0]
            shopper = rng.choice(overseas if channel in ("SF", "WC") else domestic[len(regulars):])
        skus = set()
        for _ in range(rng.choices((1, 2, 3), (70, 22, 8))[0]):
            skus.add(rng.choices(sku_codes, sku_weights)[0])
        lines = [(sku, rng.choices((1, 2, 3), (75, 18, 7))[0]) for sku in sorted(skus)]
        plan = OrderPlan(placed_at=now, channel=channel, shopper=shopper, lines=lines, fate=fate)
        _weight, low, high = FATES[fate]
        if fate == "pending_review" and (index == 0 or rng.random() < 0.45):
            # Unpaid and recent: some reservations run out while the demo runs and the job cancels them.
            age = rng.uniform(2, max(3, unpaid_minutes - 1))
            plan.placed_at, plan.paid = now - timedelta(minutes=age), False
            if plan.channel not in DIRECT_CODES:  # platforms close their own unpaid orders; direct ones expire here
                plan.channel = rng.choice(DIRECT_CODES)
                if shopper in overseas:
                    plan.shopper = rng.choice(domestic[len(regulars):])
            plan.unpaid_window = max(1, round(unpaid_minutes - age))
        else:
            plan.placed_at = placed_moment(rng, now, low, high)
            plan.paid_later = fate == "pending_review"  # bank transfer received, waiting for manual review
            route_for(rng, plan)
            if not plan.paid:
                plan.unpaid_window = unpaid_minutes
        plans.append(plan)
    plans.sort(key=lambda p: p.placed_at)
    return plans


def units_kept(plans: list[OrderPlan]) -> dict[str, int]:
    """Units each SKU must have for the orders that keep their stock (all but the cancelled)."""
    kept = {p[0]: 0 for p in PRODUCTS}
    for plan in plans:
        if any(step == "cancelled" for step, _reason in plan.route):
            continue
        for sku, quantity in plan.lines:
            kept[sku] += quantity
    return kept


def channel_order_id(rng: random.Random, channel: str, placed_at: datetime, serial: int) -> str:
    """An order id in the shape each platform uses."""
    local = placed_at.astimezone(SHANGHAI)
    shapes = {
        "TB": lambda: f"{rng.randint(1, 4)}{rng.randrange(10 ** 17):017d}{serial % 10}",
        "JD": lambda: f"{rng.randint(28, 31)}{rng.randrange(10 ** 10):010d}",
        "PD": lambda: f"{local:%y%m%d}-{rng.randrange(10 ** 15):015d}",
        "DY": lambda: f"69{rng.randrange(10 ** 17):017d}",
        "WX": lambda: f"wx{local:%Y%m%d%H%M%S}{rng.randrange(10 ** 4):04d}",
        "OS": lambda: f"OS{local:%y%m%d}{rng.randrange(10 ** 5):05d}",
        "SF": lambda: f"#{1001 + serial}",
        "WC": lambda: f"{5000 + serial}",
        "OF": lambda: f"POS-HZ01-{local:%Y%m%d}-{rng.randrange(10 ** 4):04d}",
    }
    return shapes[channel]()


def channel_price(list_price: str, factor: str, currency: str) -> Decimal:
    """The price a channel sells at: its own discount on the list price, or the list price in its currency."""
    price = (Decimal(list_price) * Decimal(factor)).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
    if currency == "USD":  # shop prices abroad end in .99
        return max(Decimal("4.99"), price.quantize(Decimal("1"), rounding=ROUND_HALF_UP) - Decimal("0.01"))
    return price.quantize(Decimal("0.01"))


def order_payload(rng: random.Random, plan: OrderPlan, now: datetime, serial: int, used_ids: set) -> dict:
    """The canonical order a channel would send for this plan."""
    code, _name, _kind, zone, currency, _share, factor = next(c for c in CHANNELS if c[0] == plan.channel)
    prices = {p[0]: p[2] for p in PRODUCTS}
    lines = [{"sku": sku, "quantity": qty, "unit_price": str(channel_price(prices[sku], factor, currency))}
             for sku, qty in plan.lines]
    goods = sum(Decimal(line["unit_price"]) * line["quantity"] for line in lines)
    if currency == "USD":
        shipping, discount = (Decimal("0.00") if goods >= 49 else Decimal("7.95")), Decimal("0.00")
    else:
        shipping = Decimal("0.00") if goods >= 99 or code == "OF" else Decimal("6.00" if code == "JD" else "8.00")
        discount = Decimal("0.00")
        for threshold, amount in ((299, "30.00"), (199, "20.00"), (99, "10.00")):
            if goods >= threshold:
                discount = Decimal(amount) if rng.random() < 0.35 else Decimal("0.00")
                break
    order_id = channel_order_id(rng, code, plan.placed_at, serial)
    while order_id in used_ids:
        order_id = channel_order_id(rng, code, plan.placed_at, serial)
    used_ids.add(order_id)
    placed_local = plan.placed_at.astimezone(ZoneInfo(zone))
    paid_at = None
    if plan.paid and not plan.paid_later:
        paid_at = min(now, plan.placed_at + timedelta(seconds=rng.randint(20, 600))).astimezone(ZoneInfo(zone))
    return {
        "channel": code, "channel_order_id": order_id, "placed_at": placed_local.isoformat(timespec="seconds"),
        "paid_at": paid_at.isoformat(timespec="seconds") if paid_at else None, "currency": currency,
        "customer": {"name": plan.shopper.name, "phone": plan.shopper.phone, "email": plan.shopper.email},
        "shipping_address": dict(plan.shopper.address), "lines": lines,
        "shipping_fee": str(shipping), "discount": str(discount),
    }


# ---------------------------------------------------------------- seeding (through the services)

def database_has_data() -> bool:
    """True when the database already holds a merchant's data: the demo never seeds over it."""
    return any(db.session.execute(select(model.id).limit(1)).first() is not None
               for model in (Channel, Warehouse, Sku, Order, StaffUser))


def open_channels_and_warehouses() -> None:
    for code, name, kind, zone, currency, _share, _factor in CHANNELS:
        catalog.create_channel(code, name, kind, SEED_ACTOR, timezone=zone, currency=currency)
    from shared.services import return_pickups

    for code, name, province, city, _share in WAREHOUSES:
        catalog.create_warehouse({"code": code, "name": name, "province": province, "city": city}, SEED_ACTOR)
        # Where door pickups of returns go (the receiver of return e-waybills).
        return_pickups.set_return_address(code, {"receiver": f"{name}退货组", "phone": "4008201234",
                                                 "province": province, "city": city, "district": "物流园区",
                                                 "street": "仓储路 8 号 退货收件处"}, SEED_ACTOR)


# Tax data by product family (prefix): 19-digit 税收分类编码, short category name (printed *简称*商品名), rate, unit.
# The codes follow the classification's shape (the family's branch, zero-padded); a merchant imports the exact ones.
TAX_DATA = {
    "TEA": ("1030201000000000000", "茶叶", 13, "盒"),
    "SNK": ("1030107000000000000", "食品", 13, "袋"),
    "COS": ("1070222000000000000", "化妆品", 13, "件"),
    "APL": ("1090416000000000000", "家用电器", 13, "台"),
    "HOM": ("1060512000000000000", "日用品", 13, "件"),
}
TAX_DATA_OF = {"SNK-003": ("1010101020000000000", "谷物", 9, "袋"),  # rice: 粮食 9 %
               "SNK-007": ("1010112000000000000", "水果", 9, "袋")}  # dried dates: agricultural 9 %


def list_products(rng: random.Random) -> None:
    from shared.services import sku_tax

    for code, name, _price, safety, _popularity, short in PRODUCTS:
        safety_stock = safety + rng.randint(20, 40) if short else safety
        sku = catalog.create_sku({"sku": code, "name": name, "safety_stock": safety_stock}, SEED_ACTOR)
        tax_code, short_name, rate, unit = TAX_DATA_OF.get(code) or TAX_DATA[code.split("-")[0]]
        sku_tax.set_tax_data(sku, {"tax_code": tax_code, "tax_short_name": short_name, "tax_rate": rate,
                                   "tax_unit": unit}, SEED_ACTOR)


def split_by_warehouse(units: int) -> list[int]:
    shares = [w[4] for w in WAREHOUSES]
    parts = [units * share // sum(shares) for share in shares]
    parts[0] += units - sum(parts)
    return parts


def stock_shelves(rng: random.Random, plans: list[OrderPlan]) -> None:
    """Receive enough opening stock for every planned order, hold some, and book a few stocktake differences."""
    # Each SKU ends the seed with just its spare units available: a few for the deliberately short SKUs (below
    # their safety stock), a comfortable margin for the rest. Nine spare units is the least that guarantees some
    # warehouse can still take a line of three, so no planned order ever fails for want of stock.
    kept = units_kept(plans)
    holds = {(sku, WAREHOUSES[rng.randrange(len(WAREHOUSES))][0]): rng.choice((5, 10, 20))
             for sku in rng.sample([p[0] for p in PRODUCTS if not p[5]], 8)}
    shrinkage = {(sku, WAREHOUSES[0][0]): rng.randint(1, 3) for sku in rng.sample([p[0] for p in PRODUCTS], 6)}
    for code, _name, _price, _safety, popularity, short in PRODUCTS:
        spare = rng.randint(9, 14) if short else rng.randint(60, 120) + popularity * 20
        for (warehouse, *_), units in zip(WAREHOUSES, split_by_warehouse(kept[code] + spare), strict=True):
            units += holds.get((code, warehouse), 0) + shrinkage.get((code, warehouse), 0)
            first = units if popularity < 7 else units * 7 // 10  # best sellers were restocked once since
            if first:
                stock.adjust_stock(code, warehouse, first, "期初库存导入", SEED_ACTOR, kind="receipt")
            if units - first:
                purchase_order = f"PO{utc_now():%Y%m}{rng.randint(1000, 9999)}"
                stock.adjust_stock(code, warehouse, units - first, f"采购入库 {purchase_order}", SEED_ACTOR,
                                   kind="receipt")
    for (code, warehouse), units in sorted(shrinkage.items()):
        stock.adjust_stock(code, warehouse, -units, "月度盘点差异：实盘少于账面", SEED_ACTOR, kind="stocktake")
    for (code, warehouse), units in sorted(holds.items()):
        stock.set_held(code, warehouse, units, rng.choice(HOLD_POOL_REASONS), SEED_ACTOR)


@contextmanager
def unpaid_window(minutes: int | None):
    """Hold an unpaid order's stock only for what is left of its window, as if it had arrived when placed."""
    config = current_app.config
    saved = config["UNPAID_RESERVATION_MINUTES"]
    if minutes is not None:
        config["UNPAID_RESERVATION_MINUTES"] = minutes
    try:
        yield
    finally:
        config["UNPAID_RESERVATION_MINUTES"] = saved


def place_orders(rng: random.Random, plans: list[OrderPlan], now: datetime, report) -> None:
    """Create each order and walk it through its lifecycle, committing every BATCH_SIZE orders."""
    used_ids: set[str] = set()
    started = time.perf_counter()
    step = max(BATCH_SIZE, len(plans) // 4 // BATCH_SIZE * BATCH_SIZE)
    for serial, plan in enumerate(plans):
        payload = order_payload(rng, plan, now, serial, used_ids)
        with unpaid_window(plan.unpaid_window):
            order = orders.create_order(payload, SEED_ACTOR)
        if plan.paid_later:
            paid_at = min(now, plan.placed_at + timedelta(minutes=rng.randint(10, 24 * 60)))
            orders.record_payment(order, paid_at, SEED_ACTOR)
        for target, reason in plan.route:
            if plan.fate in ON_THE_FLOOR and target == OrderStatus.ALLOCATED:
                allocate_for_the_floor(order)
                break
            orders.transition_order(order, target, SEED_ACTOR, reason=reason)
        done = serial + 1
        if done % BATCH_SIZE == 0 or done == len(plans):
            db.session.commit()
            if done % step == 0 or done == len(plans):
                report(f"  orders {done:>6,}/{len(plans):,}  {time.perf_counter() - started:5.1f} s")


def allocate_for_the_floor(order: Order) -> None:
    """An order that is on the warehouse floor is seeded as allocated with a real shipment (the service does it);
    the demo's floor crew then waves, picks, packs and loads it, so picking and packed orders appear within the
    first shifts and every one of them has a parcel that moves on. One no warehouse can ship whole stays confirmed
    for the allocation job."""
    from shared.services import allocation
    from shared.services.errors import Conflict

    try:
        allocation.allocate(order, SEED_ACTOR)
    except Conflict:
        pass


def create_staff() -> None:
    for role, username, password, display_name in STAFF:
        staff.create_user(username, password, role, SEED_ACTOR, display_name=display_name)


def form_teams() -> None:
    """The operations team over customer service, warehouse and finance, each with its lead and members."""
    from shared.services import roles

    made = {}
    for code, zh, en, lead, members, parent in TEAMS:
        made[code] = roles.create_team(code, zh, en, SEED_ACTOR, lead=staff.get_user(lead),
                                       parent=made.get(parent))
        for username in members:
            roles.assign_team(staff.get_user(username), made[code], SEED_ACTOR)


def enrol_second_factors() -> None:
    """Every demo user who must use TOTP at sign-in (admins, auditors, finance, approvers) gets it enrolled ten
    minutes ago, so every code of the present is unused; the sign-in sheet prints each secret."""
    import pyotp

    from shared.services import second_factor

    earlier = utc_now() - timedelta(minutes=10)
    for _role, username, *_rest in STAFF:
        user = staff.get_user(username)
        if second_factor.second_factor_required(user):
            enrolment = second_factor.enrol(user, SEED_ACTOR, now=earlier)
            second_factor.confirm_enrolment(user, pyotp.TOTP(enrolment.secret).at(earlier), SEED_ACTOR, now=earlier)


@contextmanager
def approvals_clock(moment: datetime):
    """Requests raised inside are dated `moment` (the approvals engine reads the time as `now or utc_now()`)."""
    from shared.services import approvals

    real = approvals.utc_now
    approvals.utc_now = lambda: moment
    try:
        yield
    finally:
        approvals.utc_now = real


def stuck_approval(rng: random.Random, now: datetime) -> Order:
    """A customer-service agent's order of 5,394.00 CNY raised long enough ago that its step's 2 business hours
    are over, then escalated as the job `escalate_stalled_approvals` does at its due time."""
    from shared import business_hours
    from shared.actors import SYSTEM
    from shared.services import approvals

    calendar = business_hours.load("default")
    raised = now - timedelta(hours=3)
    while calendar.add(raised, timedelta(minutes=120)) > now - timedelta(minutes=10):
        raised -= timedelta(hours=1)  # back over a night or a weekend, as far as business time needs
    shopper = domestic_shopper(rng)
    sku, quantity = STUCK_ORDER
    price = next(p[2] for p in PRODUCTS if p[0] == sku)
    payload = {"channel": "OS", "channel_order_id": f"OS{raised:%Y%m%d%H%M}STUCK", "placed_at": raised.isoformat(),
               "paid_at": raised.isoformat(), "currency": "CNY",
               "customer": {"name": shopper.name, "phone": shopper.phone, "email": shopper.email},
               "shipping_address": dict(shopper.address),
               "lines": [{"sku": sku, "quantity": quantity, "unit_price": price}], "shipping_fee": "0.00",
               "discount": "0.00"}
    agent = staff.get_user("cs")
    with approvals_clock(raised):
        order = orders.create_order(payload, Actor.for_staff(agent))
    for step in approvals.stalled_steps(now):
        approvals.escalate(step, now, SYSTEM)
    return order


def open_exceptions(now: datetime) -> None:
    """A few open exceptions with running SLA clocks, routed to their teams, then one pass of the SLA job."""
    from shared.services import exceptions

    order = db.session.execute(select(Order).where(Order.status == OrderStatus.PENDING_REVIEW)
                               .order_by(Order.id).limit(1)).scalar_one_or_none()
    short = db.session.execute(select(Sku).where(Sku.code == next(p[0] for p in PRODUCTS if p[5]))).scalar_one()
    for kind, summary, minutes in EXCEPTIONS:
        links = {"sku_id": short.id} if kind == "out_of_stock" else {"order_id": order.id if order else None}
        label = short.code if kind == "out_of_stock" else (order.order_no if order else "-")
        raised = now - timedelta(minutes=minutes)
        row = exceptions.raise_exception(kind, f"demo:{kind}:{label}", f"{summary}（{label}）", SEED_ACTOR,
                                         now=raised, **links)
        if kind == "callback_failed":  # answered within its 15 minutes, being worked: only the resolution is near
            finance = staff.get_user("fd")
            exceptions.assign(row, finance, SEED_ACTOR, now=raised + timedelta(minutes=5))
            exceptions.transition(row, "in_progress", Actor.for_staff(finance), canned="checking_payment",
                                  now=raised + timedelta(minutes=7))
    exceptions.check_slas(now)


def seed_governance(rng: random.Random) -> None:
    """Teams with leads and members, TOTP for whoever needs it, one stuck approval, open exceptions."""
    now = utc_now()
    form_teams()
    enrol_second_factors()
    stuck_approval(rng, now)
    open_exceptions(now)


def open_customer_accounts(plans: list[OrderPlan]) -> None:
    """Give the regular buyers a customer-site account on the phone number their orders carry."""
    for name, email, password in CUSTOMER_ACCOUNTS:
        shopper = next((p.shopper for p in plans if p.shopper.account_email == email), None)
        if shopper is not None:  # a tiny demo may not have reached the second regular
            customers.create_account(name, shopper.phone, email, password, SEED_ACTOR)


def status_counts() -> dict[str, int]:
    rows = db.session.execute(select(Order.status, func.count()).group_by(Order.status)).all()
    counts = dict(rows)
    return {status.value: counts.get(status.value, 0) for status in OrderStatus}


def seed_demo_data(order_count: int = 2000, report=print, invoicing_url: str | None = None) -> SeedOutcome:
    """Seed the demo merchant through the services, unless the database already holds data. Invoices are issued
    through the invoicing simulator at `invoicing_url` (the demo's, kept running), or one started for the seeding."""
    if database_has_data():
        existing = db.session.execute(select(func.count(Order.id))).scalar_one()
        report(f"The database already holds data ({existing:,} orders): reusing it, nothing was seeded.")
        return SeedOutcome(seeded=False, order_count=existing, statuses=status_counts())
    started = time.perf_counter()
    rng = random.Random(RANDOM_SEED)
    now = utc_now()
    plans = plan_orders(rng, order_count, now, current_app.config["UNPAID_RESERVATION_MINUTES"])
    report(f"Seeding the demo merchant: {len(CHANNELS)} channels, {len(WAREHOUSES)} warehouses, "
           f"{len(PRODUCTS)} SKUs, {order_count:,} orders over the last 14 days")
    open_channels_and_warehouses()
    list_products(rng)
    stock_shelves(rng, plans)
    db.session.commit()
    report(f"  channels, warehouses, SKUs and opening stock  {time.perf_counter() - started:4.1f} s")
    place_orders(rng, plans, now, report)
    invoices_started = time.perf_counter()
    issued = issue_demo_invoices(invoicing_url)
    report(f"  B2B buyer, its invoice profile, {issued} invoices issued through the invoicing simulator, "
           f"one reversed in part (红字)  "
           f"{time.perf_counter() - invoices_started:4.1f} s")
    password_started = time.perf_counter()
    create_staff()
    if plans:
        open_customer_accounts(plans)
    db.session.commit()
    report(f"  staff and customer accounts  {time.perf_counter() - password_started:4.1f} s (Argon2 hashes)")
    governance_started = time.perf_counter()
    seed_governance(rng)
    db.session.commit()
    report(f"  teams, TOTP, a stuck approval, open exceptions  {time.perf_counter() - governance_started:4.1f} s")
    returns_started = time.perf_counter()
    from devtools.demo.returns import seed_returns

    returned = seed_returns(utc_now(), CUSTOMER_ACCOUNTS[0][1])
    db.session.commit()
    report(f"  {returned.requests} returns of {CUSTOMER_ACCOUNTS[0][1]} ({returned.pickups} pickups booked with a "
           f"carrier simulator, parcels coming back, one inspected with its refund countdown, one refunded, "
           f"{returned.replacements} exchange with its replacement shipped)  "
           f"{time.perf_counter() - returns_started:4.1f} s")
    purchasing_started = time.perf_counter()
    from devtools.demo.purchasing import seed_purchasing

    bought = seed_purchasing()
    db.session.commit()
    report(f"  {bought.suppliers} suppliers, this week's purchase suggestions: {bought.to_order} of {bought.lines} "
           f"lines to order, {bought.cannot_suggest} that cannot be suggested (a supplier with no lead time yet), "
           f"{bought.mails} supplier mails with their XLSX queued  {time.perf_counter() - purchasing_started:4.1f} s")
    scores_started = time.perf_counter()
    from devtools.demo.carriers import seed_carrier_scores

    scored = seed_carrier_scores(utc_now())
    db.session.commit()
    report(f"  {scored.parcels} delivered parcels scored by carrier for {', '.join(scored.months) or 'no month'}; "
           f"de-weighted: {', '.join(scored.deweighted) or 'none'}  {time.perf_counter() - scores_started:4.1f} s")
    offers_started = time.perf_counter()
    from devtools.demo.offers import seed_offers

    offered = seed_offers(utc_now(), CUSTOMER_ACCOUNTS[0][1], SEED_ACTOR)
    db.session.commit()
    report(f"  {offered.waiting} out-of-stock orders of VIP {CUSTOMER_ACCOUNTS[0][1]} wait with offers, "
           f"{offered.accepted} substitute accepted  {time.perf_counter() - offers_started:4.1f} s")
    seconds = time.perf_counter() - started
    report(f"Seeded in {seconds:.1f} s")
    return SeedOutcome(seeded=True, order_count=order_count, seconds=seconds, statuses=status_counts())


# ---------------------------------------------------------------- invoices (the invoicing simulator)

B2B_BUYER = {"name": "杭州西溪茶业有限公司", "phone": "13905710001", "email": "caiwu@xixi-tea.example.com"}
B2B_PROFILE = {"kind": "enterprise", "name": "杭州西溪茶业有限公司", "tax_id": "91330106MA27XL0E14",
               "address": "杭州市西湖区文三路 90 号", "phone": "0571-88886666", "bank": "招商银行杭州分行",
               "account": "571908888810101", "email": "caiwu@xixi-tea.example.com"}
B2B_ORDERS = (  # (channel order id, lines): one invoice, and one over the 10,000.00 limit (split into parts)
    ("B2B-2026-0001", [("TEA-002", 6, "168.00"), ("SNK-003", 4, "79.90")]),
    ("B2B-2026-0002", [("TEA-001", 24, "398.00"), ("HOM-001", 6, "268.00")]),
)


def start_invoicing(host: str = "127.0.0.1", port: int = 0, callback_url: str | None = None):
    """The invoicing simulator with the app's key and secret (issuing at once); None when the port is taken."""
    from devtools.simulators.invoicing import InvoicingSimulator

    config = current_app.config
    simulator = InvoicingSimulator(app_key=config["INVOICE_PROVIDER_APP_KEY"],
                                   app_secret=config["INVOICE_PROVIDER_APP_SECRET"], issue_after_polls=0,
                                   callback_url=callback_url)
    try:
        simulator.start(host, port)
    except OSError as taken:
        print(f"invoicing simulator: {host}:{port} is taken ({taken}); using what serves there", flush=True)
        return None
    return simulator


def issue_demo_invoices(invoicing_url: str | None = None) -> int:
    """A B2B buyer (a company ordering on the own shop, its stock received first), the invoice profile finance keeps
    for it, and its two orders invoiced through the simulator: one invoice, and one split over the amount limit; the
    first then reversed in part by a red invoice (红字, 销售折让 100.00). Returns the number of invoices (parts) issued."""
    from shared.finance.providers.nuonuo import NuonuoProvider
    from shared.services import invoice_profiles, invoices

    placed = (utc_now() - timedelta(days=2)).isoformat()
    made = []
    for number, lines in B2B_ORDERS:
        for sku, quantity, _price in lines:
            stock.adjust_stock(sku, WAREHOUSES[0][0], quantity, "B2B 团购备货", SEED_ACTOR, kind="receipt")
        order = orders.create_order({
            "channel": "OS", "channel_order_id": number, "placed_at": placed, "paid_at": placed, "currency": "CNY",
            "customer": dict(B2B_BUYER),
            "shipping_address": {"receiver": "陈会计", "phone": B2B_BUYER["phone"], "province": "浙江省",
                                 "city": "杭州市", "district": "西湖区", "street": "文三路 90 号", "postal_code": "310012"},
            "lines": [{"sku": sku, "quantity": quantity, "unit_price": price} for sku, quantity, price in lines],
            "shipping_fee": "0.00", "discount": "0.00"}, SEED_ACTOR)
        made.append(order)
    db.session.flush()
    profile = invoice_profiles.create_profile(made[0].customer_id, dict(B2B_PROFILE), SEED_ACTOR,
                                              created_by="staff")
    db.session.commit()
    config = current_app.config
    simulator = None if invoicing_url else start_invoicing()
    try:
        provider = NuonuoProvider(invoicing_url or simulator.base_url, config["INVOICE_PROVIDER_APP_KEY"],
                                  config["INVOICE_PROVIDER_APP_SECRET"], config["INVOICE_SELLER_TAX_ID"], timeout=5)
        issued = 0
        for order, kind in zip(made, ("special", "normal"), strict=True):
            request = invoices.request_invoice([order.order_no], profile.id, kind, SEED_ACTOR)
            db.session.commit()
            invoices.submit(request, provider)
            db.session.commit()
            invoices.poll(request, provider)
            db.session.commit()
            issued += sum(1 for part in request.parts if part.status == "issued")
            if kind == "special" and request.status == "issued":  # a 销售折让 after the fact: a partial red
                from shared.services import red_letters

                red = red_letters.open_red(request.parts[0].id, "allowance", "100.00", SEED_ACTOR)
                db.session.commit()
                red_letters.advance(red, provider)
                db.session.commit()
    finally:
        if simulator is not None:
            simulator.stop()
    return issued


# ---------------------------------------------------------------- live channels (the simulator)

# Demo channel code → simulated platform: polled every minute, Shopify and WooCommerce also push webhooks.
SIMULATED = {"TB": "taobao", "JD": "jd", "PD": "pinduoduo", "DY": "douyin", "SF": "shopify", "WC": "woocommerce"}
SIMULATOR_EVENTS_PER_MINUTE = 40
SIMULATOR_UNKNOWN_SKU_RATE = 0.02  # a few orders name a SKU nobody mapped: they wait in the inbox for review


def connect_simulated_channels(simulator_url: str) -> int:
    """Point every platform channel at the channel simulator and map its SKU codes (idempotent)."""
    from shared.services import channel_settings
    from shared.services.orders import get_channel
    from devtools.simulators.channels import DEFAULT_CREDENTIALS
    from devtools.simulators.channels.formats import mapping_key_for

    connected = 0
    for code, platform in SIMULATED.items():
        channel = get_channel(code)
        creds = DEFAULT_CREDENTIALS[platform]
        channel_settings.connect(
            channel, SEED_ACTOR, base_url=f"{simulator_url}/{platform}",
            app_key=creds.get("app_key") or creds.get("consumer_key"),
            app_secret=creds.get("app_secret") or creds.get("consumer_secret"),
            access_token=creds.get("access_token"), webhook_secret=creds.get("webhook_secret"), poll_minutes=1)
        mapped = {(row.key_kind, row.channel_sku) for row in channel_settings.sku_mappings(channel)}
        for sku, *_rest in PRODUCTS:
            # Lines whose listing shows no merchant code are mapped by the platform's variant id.
            for kind, value in (("code", sku), mapping_key_for(platform, sku)):
                if (kind, value) not in mapped:
                    channel_settings.map_sku(channel, value, sku, SEED_ACTOR, key_kind=kind)
        connected += 1
    return connected


def start_simulator(host: str, port: int, portal_url: str) -> tuple[threading.Thread, threading.Event]:
    """The six platforms on loopback, orders happening at a steady rate, webhooks pushed to the portal."""
    from devtools.simulators.channels import DEFAULT_CREDENTIALS
    from devtools.simulators.channels.run import run as run_simulator

    stop = threading.Event()
    targets = {platform: (f"{portal_url}/hooks/{code}", DEFAULT_CREDENTIALS[platform]["webhook_secret"])
               for code, platform in SIMULATED.items() if platform in ("shopify", "woocommerce")}
    thread = threading.Thread(target=run_simulator, name="orderloom-simulator", daemon=True, kwargs={
        "host": host, "port": port, "seed": RANDOM_SEED, "rate_per_minute": SIMULATOR_EVENTS_PER_MINUTE,
        "webhook_targets": targets, "skus": [p[0] for p in PRODUCTS],
        "unknown_sku_rate": SIMULATOR_UNKNOWN_SKU_RATE, "stop": stop})
    thread.start()
    return thread, stop


# ---------------------------------------------------------------- payments (the payment simulator)

DEMO_PAYMENTS = (("OS", "wechatpay"), ("WX", "alipay"))  # own shop paid by WeChat Pay, the mini program by Alipay
DEMO_NOTIFICATIONS_PER_CHANNEL = 3


def prepare_payments(host: str, port: int):
    """Start the payment simulator, give OS and WX their accounts with its keys, and pick a few unpaid orders it
    will pay (the caller commits). Returns (simulator, [(channel code, provider, out_trade_no, total)])."""
    from shared.services import payments
    from shared.services.orders import get_channel
    from devtools.simulators.payments import PaymentSimulator

    simulator = PaymentSimulator()
    simulator.start(host, port)
    planned = []
    for code, provider in DEMO_PAYMENTS:
        channel = get_channel(code)
        settings = simulator.wechatpay_settings() if provider == "wechatpay" else simulator.alipay_settings()
        payments.configure_account(channel, provider, SEED_ACTOR, **settings)
        unpaid = db.session.execute(
            select(Order.channel_order_id, Order.total).where(Order.channel_id == channel.id,
                                                              Order.payment_status == "unpaid",
                                                              Order.status.not_in(("cancelled", "closed")))
            .order_by(Order.id.desc()).limit(DEMO_NOTIFICATIONS_PER_CHANNEL)).all()
        planned += [(code, provider, number, total) for number, total in unpaid]
    return simulator, planned


def send_demo_payments(simulator, planned: list, portal_url: str) -> None:
    """Once the portal serves: the simulator pays the picked orders by signed notifications over HTTP."""
    def send() -> None:
        time.sleep(2)
        for code, provider, number, total in planned:
            url = f"{portal_url}/hooks/pay/{provider}/{code}"
            try:
                if provider == "wechatpay":
                    simulator.send_wechatpay(url, number, int(total * 100))
                else:
                    simulator.send_alipay(url, number, f"{total:.2f}")
            except Exception as error:  # noqa: BLE001  (the demo goes on without it)
                print(f"payment simulator: {provider} notify for {number} failed: {error}", flush=True)

    threading.Thread(target=send, name="orderloom-payments", daemon=True).start()


# ---------------------------------------------------------------- sign-ins

def sign_in_sheet(portal_url: str, customer_url: str) -> list[str]:
    """The demo's sign-ins, looked up in the database so that missing accounts are said so."""
    present = dict(db.session.execute(
        select(StaffUser.username, StaffUser.role).where(StaffUser.username.in_([s[1] for s in STAFF]))
    ).all())
    from shared.models import SecondFactor

    secrets = dict(db.session.execute(
        select(StaffUser.username, SecondFactor.secret).join(SecondFactor, SecondFactor.user_id == StaffUser.id)
        .where(StaffUser.username.in_([s[1] for s in STAFF]), SecondFactor.confirmed.is_(True))).all())
    lines = [f"Staff portal   {portal_url}/sign-in", f"  {'role':<18}{'username':<12}{'password':<22}TOTP secret",
             "  (add a TOTP secret to an authenticator app: 6 digits, every 30 s, SHA-1; the code is asked for at "
             "sign-in and before sensitive operations)"]
    for role, username, password, _display in STAFF:
        note = "" if present.get(username) == role else "   (not in this database)"
        lines.append(f"  {role:<18}{username:<12}{password:<22}{secrets.get(username, '-')}{note}".rstrip())
    lines += ["", f"Customer site  {customer_url}/", f"  {'email':<28}{'password':<22}{'orders':<8}name"]
    for name, email, password in CUSTOMER_ACCOUNTS:
        customer = db.session.execute(
            select(Customer).where(Customer.email_index == crypto.blind_index("email", email))
        ).scalar_one_or_none()
        if customer is None:
            lines.append(f"  {email:<28}{password:<22}{'-':<8}{name} (not in this database)")
            continue
        count = db.session.execute(select(func.count(Order.id)).where(Order.customer_id == customer.id)).scalar_one()
        lines.append(f"  {email:<28}{password:<22}{count:<8}{name}")
    example = db.session.execute(
        select(Order).where(Order.status == OrderStatus.SHIPPED, Order.currency == "CNY")
        .order_by(Order.placed_at.desc()).limit(1)
    ).scalar_one_or_none()
    if example is not None:
        lines.append(f"  guest lookup: order {example.order_no} + last 4 digits of the phone: "
                     f"{example.receiver_phone[-4:]}")
    return lines


def printable_url(url: str) -> str:
    """A database or Redis URL fit to print: any password is hidden."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url.rpartition("@")[2]


# ---------------------------------------------------------------- serving and background jobs

class ScheduledJobs(threading.Thread):
    """Run each scheduled job at its interval inside this process: the inline mode when no Redis answers."""

    def __init__(self, schedule, tick: float = 1.0):
        super().__init__(name="orderloom-jobs", daemon=True)
        self.schedule, self.tick = schedule, tick
        self.stopping = threading.Event()

    def run(self) -> None:
        due = {name: time.monotonic() + 2 for name, *_rest in self.schedule}
        while not self.stopping.wait(self.tick):
            for name, dotted, interval, _queue in self.schedule:
                if time.monotonic() < due[name]:
                    continue
                due[name] = time.monotonic() + interval
                try:
                    result = resolve(dotted)()  # each job enters its own app context (jobs.runtime.job)
                except Exception as failure:  # keep the loop alive; the job has logged and rolled back
                    print(f"[jobs] {name} failed: {failure}", flush=True)
                    continue
                if result:
                    print(f"[jobs] {name}: {result}", flush=True)

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=15)


def orderloom_command(*args: str) -> list[str]:
    """The `orderloom` console script of this interpreter, or the CLI run through it."""
    script = Path(sys.executable).parent / "orderloom"
    if script.exists():
        return [str(script), *args]
    return [sys.executable, "-c", "from cli import main; main()", *args]


def start_background_jobs(inline: bool, redis_url: str) -> tuple[ScheduledJobs | None, list[subprocess.Popen]]:
    """Run the schedule in a thread here, or start `orderloom worker` and `orderloom cron` when Redis answers."""
    if inline:
        schedule = resolve("jobs.schedule.SCHEDULE")  # by dotted path: shared never imports jobs
        why = "REDIS_URL is not set" if not redis_url else f"Redis does not answer at {printable_url(redis_url)}"
        print(f"Background jobs: inline in this process ({why}); "
              f"{', '.join(f'{name} every {interval} s' for name, _d, interval, _q in schedule)}")
        runner = ScheduledJobs(schedule)
        runner.start()
        return runner, []
    print(f"Background jobs: RQ on {printable_url(redis_url)}: started `orderloom worker` and `orderloom cron`")
    workers = [subprocess.Popen(orderloom_command(part), cwd=PROJECT_ROOT) for part in ("worker", "cron")]
    return None, workers


def stop_background_jobs(runner: ScheduledJobs | None, workers: list[subprocess.Popen]) -> None:
    """Stop the job thread or the worker and cron processes, gently first."""
    if runner is not None:
        runner.stop()
    # Ctrl-C in a terminal reaches the worker and cron too; give them a moment to finish on their own,
    # since a second signal would make the RQ worker abandon the job it is running.
    grace = time.monotonic() + 3
    while workers and any(p.poll() is None for p in workers) and time.monotonic() < grace:
        time.sleep(0.1)
    for process in workers:
        if process.poll() is None:
            process.terminate()
    for process in workers:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _stop_on_sigterm(_signum, _frame):
    raise KeyboardInterrupt


def serve_until_stopped(host: str, portal_port: int, customer_port: int, inline: bool, redis_url: str,
                        simulator_port: int | None = None, floor_tokens: dict | None = None,
                        demo_payments: tuple | None = None, invoicing=None) -> None:
    """Serve both apps from this process in threads, with the background jobs, until Ctrl-C or SIGTERM."""
    from werkzeug.serving import make_server

    from customer_site import create_app as create_customer_app
    from portal import create_app as create_portal_app

    servers = []
    for label, factory, port in (("portal", create_portal_app, portal_port),
                                 ("customer site", create_customer_app, customer_port)):
        try:
            servers.append(make_server(host, port, factory(), threaded=True))
        except OSError as refused:
            for server in servers:
                server.server_close()
            raise SystemExit(f"cannot serve the {label} on {host}:{port}: {refused}") from refused
    threads = [threading.Thread(target=server.serve_forever, name=f"orderloom-http-{server.port}", daemon=True)
               for server in servers]
    for thread in threads:
        thread.start()
    simulator = start_simulator(host, simulator_port, f"http://{host}:{portal_port}") if simulator_port else None
    floor = carriers = None
    if floor_tokens:
        from devtools.demo import floor as demo_floor

        carriers = demo_floor.start_carriers(host, simulator_port + 1, f"http://{host}:{portal_port}")
        floor = demo_floor.Floor(create_core_app("orderloom.demo.floor"), f"http://{host}:{portal_port}",
                                 floor_tokens, SEED_ACTOR)
        floor.start()
    runner, workers = start_background_jobs(inline, redis_url)
    if demo_payments:
        send_demo_payments(demo_payments[0], demo_payments[1], f"http://{host}:{portal_port}")
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _stop_on_sigterm) if in_main_thread else None
    print(f"\nServing  portal        http://{host}:{portal_port}/\n"
          f"         customer site http://{host}:{customer_port}/", flush=True)
    if simulator:
        print(f"         channel simulator http://{host}:{simulator_port}/<platform> (polled every minute; "
              f"Shopify and WooCommerce push webhooks; Taobao, JD, Pinduoduo and Douyin send the receiver as "
              f"platform ciphertext: reveal decrypts through the simulated platform, logged; Cainiao, Pinduoduo "
              f"and Douyin waybills take the ciphertext)", flush=True)
    if carriers:
        print(f"         carrier simulator http://{host}:{simulator_port + 1}/ (waybills; Kuaidi100 tracking pushed "
              f"to the portal); a demo crew picks, packs and loads every {demo_floor.FLOOR_SECONDS} s", flush=True)
    if demo_payments:
        print(f"         payment simulator {demo_payments[0].base_url}/ (pays {len(demo_payments[1])} unpaid "
              f"OS orders by WeChat Pay and WX orders by Alipay, signed; refunds and bills through its signed APIs, "
              f"reconciled on the portal's Payments page)", flush=True)
    if invoicing is not None:
        print(f"         invoicing simulator {invoicing.base_url}/ (诺诺-style: issues 数电票, pushes each one to "
              f"/hooks/invoicing/nuonuo; the seeded B2B buyer 杭州西溪茶业有限公司 has an issued 专票 and a split 普票)",
              flush=True)
    print("Press Ctrl-C to stop.", flush=True)
    try:
        while all(thread.is_alive() for thread in threads):
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("\nStopping the demo ...", flush=True)
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)
        for server in servers:
            server.shutdown()
            server.server_close()
        stop_background_jobs(runner, workers)
        if floor:
            floor.stop()
            carriers[1].set()
        if simulator:
            simulator[1].set()
            simulator[0].join(timeout=10)
        if demo_payments:
            demo_payments[0].stop()
        print("Demo stopped.", flush=True)


def run(host: str = "127.0.0.1", portal_port: int = 5000, customer_port: int = 5001, order_count: int = 2000,
        serve: bool = True, simulator_port: int | None = 5002) -> None:
    """Migrate the demo database, seed it once, print the sign-ins, then serve both apps (unless serve is False)."""
    app = create_core_app("orderloom.demo")
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    print(f"Orderloom demo: database {printable_url(url)}")
    upgrade(url)
    with app.app_context():
        invoicing = None
        if serve and simulator_port:  # beside the other simulators, where the apps' INVOICE_PROVIDER_URL points
            from urllib.parse import urlsplit

            provider_url = urlsplit(app.config["INVOICE_PROVIDER_URL"])
            if provider_url.hostname in ("127.0.0.1", "localhost"):
                invoicing = start_invoicing(provider_url.hostname, provider_url.port or 80,
                                            callback_url=f"http://{host}:{portal_port}/hooks/invoicing/nuonuo")
        outcome = seed_demo_data(order_count, report=lambda line: print(line, flush=True),
                                 invoicing_url=invoicing.base_url if invoicing else None)
        if outcome.seeded or outcome.order_count:
            print("  " + " · ".join(f"{status} {count:,}" for status, count in outcome.statuses.items()))
        if not outcome.seeded and url.startswith("sqlite:///"):
            print(f"  (to start over, stop the demo and delete {url.removeprefix('sqlite:///')})")
        print()
        for line in sign_in_sheet(f"http://{host}:{portal_port}", f"http://{host}:{customer_port}"):
            print(line)
        floor_tokens = demo_payments = None
        if serve and simulator_port:
            from devtools.demo import floor as demo_floor

            connect_simulated_channels(f"http://{host}:{simulator_port}")
            demo_floor.configure_carriers(host, simulator_port + 1, f"http://{host}:{portal_port}")
            floor_tokens = demo_floor.prepare(SEED_ACTOR)
            demo_payments = prepare_payments(host, simulator_port + 2)
            db.session.commit()
            from devtools.simulators.smtp_sink import start_for_demo

            if start_for_demo("127.0.0.1", 5025) is not None:  # the customers' mail (portal: Customer mail)
                print("  customer mail goes to the SMTP sink on 127.0.0.1:5025 (printed here as it arrives)")
        inline = jobs_run_inline() if serve else True
        redis_url = app.config["REDIS_URL"]
    with app.app_context():
        db.engine.dispose()
    if serve:
        try:
            serve_until_stopped(host, portal_port, customer_port, inline, redis_url, simulator_port, floor_tokens,
                                demo_payments, invoicing)
        finally:
            if invoicing is not None:
                invoicing.stop()
