"""Callable fixtures that make domain objects through the services, as the product would."""
from contextlib import contextmanager
from datetime import timedelta
from decimal import Decimal

import pytest

from shared.actors import Actor
from shared.extensions import db
from shared.services import catalog, orders, staff, stock
from shared.services.errors import ServiceError
from shared.timekeeping import utc_now

ADMIN = Actor(id=None, label="test-admin", role="admin", ip="127.0.0.1")
PASSWORD = "correct-horse-battery"


def order_payload(channel: str = "OS", channel_order_id: str | None = None, lines=None, paid: bool = True,
                  phone: str = "13812345678", **overrides) -> dict:
    placed = utc_now() - timedelta(minutes=5)
    payload = {
        "channel": channel,
        "channel_order_id": channel_order_id or f"T{utc_now().timestamp():.6f}".replace(".", ""),
        "placed_at": placed.isoformat(),
        "paid_at": placed.isoformat() if paid else None,
        "currency": "CNY",
        "customer": {"name": "张伟", "phone": phone, "email": None},
        "shipping_address": {"receiver": "张伟", "phone": phone, "province": "浙江省", "city": "杭州市",
                             "district": "西湖区", "street": "文三路 90 号 3 幢 501", "postal_code": "310012"},
        "lines": lines if lines is not None else [{"sku": "SKU-1", "quantity": 1, "unit_price": "59.90"}],
        "shipping_fee": "8.00",
        "discount": "0.00",
    }
    payload.update(overrides)
    return payload


def open_shop(sku: str = "SKU-1", units: int = 20, sku_name: str = "龙井茶 250g") -> None:
    """For live tests: channel OS, warehouse HZ1 and one SKU with `units` on hand (the caller commits)."""
    catalog.create_channel("OS", "官网商城", "own_shop", ADMIN)
    catalog.create_warehouse({"code": "HZ1", "name": "杭州仓", "province": "浙江省", "city": "杭州市"}, ADMIN)
    catalog.create_sku({"sku": sku, "name": sku_name}, ADMIN)
    stock.adjust_stock(sku, "HZ1", units, "opening stock", ADMIN, kind="receipt")


def open_paying_shop(simulator):
    """open_shop() with OS's WeChat Pay and Alipay accounts set to a payment simulator's keys (committed)."""
    from sqlalchemy import select

    from shared.models import Channel
    from shared.services import payments

    open_shop()
    channel = db.session.execute(select(Channel).where(Channel.code == "OS")).scalar_one()
    payments.configure_account(channel, "wechatpay", ADMIN, **simulator.wechatpay_settings())
    payments.configure_account(channel, "alipay", ADMIN, **simulator.alipay_settings())
    db.session.commit()
    return channel


@pytest.fixture
def create_channel(session):
    def make(code="OS", name="官网商城", kind="own_shop"):
        return catalog.create_channel(code, name, kind, ADMIN)
    return make


@pytest.fixture
def create_sku(session):
    def make(code="SKU-1", name="龙井茶 250g", safety_stock=0):
        return catalog.create_sku({"sku": code, "name": name, "safety_stock": safety_stock}, ADMIN)
    return make


@pytest.fixture
def create_warehouse(session):
    def make(code="HZ1", name="杭州仓", province="浙江省", city="杭州市"):
        return catalog.create_warehouse({"code": code, "name": name, "province": province, "city": city}, ADMIN)
    return make


@pytest.fixture
def stocked(session, create_channel, create_sku, create_warehouse):
    """One direct channel, one warehouse and one SKU with 20 units on hand."""
    create_channel()
    sku = create_sku()
    warehouse = create_warehouse()
    stock.adjust_stock(sku.code, warehouse.code, 20, "opening stock", ADMIN, kind="receipt")
    db.session.commit()
    return {"sku": sku, "warehouse": warehouse}


@pytest.fixture
def create_order(session, stocked):
    def make(status: str | None = None, **payload_overrides):
        order = orders.create_order(order_payload(**payload_overrides), ADMIN)
        path = ["confirmed", "allocated", "picking", "packed", "shipped", "completed"]
        if status and status in path and order.status != status:
            start = path.index(order.status) + 1 if order.status in path else 0
            for step in path[start:path.index(status) + 1]:
                orders.transition_order(order, step, ADMIN, reason="test")
        elif status and status != order.status:
            orders.transition_order(order, status, ADMIN, reason="test")
        db.session.commit()
        return order
    return make


@pytest.fixture
def create_user(session):
    def make(username="staff1", role="admin", password=PASSWORD, locale="en"):
        user = staff.create_user(username, password, role, ADMIN, locale=locale)
        db.session.commit()
        return user
    return make


def money(value: str) -> Decimal:
    return Decimal(value)


SYNC_SKUS = ("SKU-0001", "SKU-0002", "SKU-0003", "SKU-0004", "SKU-0005")


def connect_channels(base_urls: dict | None = None, units: int = 100) -> dict:
    """Every platform channel connected (webhook secret set, default status mappings), warehouse HZ1 and
    SKU-0001..SKU-0005 with `units` each, each channel's SKU codes mapped to them. The caller commits."""
    from devtools.simulators.channels.formats import PLATFORMS, mapping_key_for
    from shared.services import channel_settings
    from tests.channel_payloads import CHANNELS, WEBHOOK_SECRET

    catalog.create_warehouse({"code": "HZ1", "name": "杭州仓", "province": "浙江省", "city": "杭州市"}, ADMIN)
    for code in SYNC_SKUS:
        catalog.create_sku({"sku": code, "name": f"茶叶 {code}"}, ADMIN)
        stock.adjust_stock(code, "HZ1", units, "opening stock", ADMIN, kind="receipt")
    channels = {}
    for platform, (code, name, kind) in CHANNELS.items():
        channel = catalog.create_channel(code, name, kind, ADMIN)
        url = (base_urls or {}).get(platform, f"http://127.0.0.1:9/{platform}")
        channel_settings.connect(channel, ADMIN, base_url=url, app_key=f"{platform}-key",
                                 app_secret=f"{platform}-secret", access_token=f"{platform}-token",
                                 webhook_secret=WEBHOOK_SECRET)
        for sku in SYNC_SKUS:
            channel_settings.map_sku(channel, sku, sku, ADMIN)
            if platform in PLATFORMS:  # lines that show no merchant code are mapped by the platform variant id
                kind, value = mapping_key_for(platform, sku)
                channel_settings.map_sku(channel, value, sku, ADMIN, key_kind=kind)
        channels[platform] = channel
    return channels


@pytest.fixture
def sync_channels(session):
    channels = connect_channels()
    db.session.commit()
    return channels


@pytest.fixture
def client_for(portal, create_user):
    """A portal test client signed in as a new user of the given role and language."""
    from tests.portal_client import english_client, sign_in

    def make(role: str, locale: str = "en"):
        user = create_user(f"{role}_{locale}", role, locale=locale)
        client = english_client(portal)
        assert sign_in(client, user.username).status_code == 302
        return client
    return make


@contextmanager
def count_queries():
    """Collect the SQL statements sent on the test connection (which the request sessions share)."""
    from sqlalchemy import event

    statements = []

    def _record(_conn, _cursor, statement, *_args):
        statements.append(statement)

    bind = db.session.get_bind()
    event.listen(bind, "before_cursor_execute", _record)
    try:
        yield statements
    finally:
        event.remove(bind, "before_cursor_execute", _record)


def race(app, clients: int, attempt, success: str, refused=(ServiceError,)) -> list[str]:
    """Run `attempt(number)` in `clients` threads released together (a barrier), each in its own app context and
    session with a real commit: returns each one's outcome, `success` or the refusal's code, or "error: ..." for
    anything else (a bug the caller's assertion shows)."""
    import threading

    start, lock, outcomes = threading.Barrier(clients), threading.Lock(), []

    def client(number: int):
        with app.app_context():
            try:
                start.wait()
                attempt(number)
                db.session.commit()
                result = success
            except refused as refusal:
                db.session.rollback()
                result = refusal.code
            except Exception as exc:  # noqa: BLE001  (any other failure is the outcome to assert on)
                db.session.rollback()
                result = f"error: {exc!r}"
            finally:
                db.session.remove()
            with lock:
                outcomes.append(result)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return outcomes
