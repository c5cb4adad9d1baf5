"""Wrong figures found by testing (issue 8, item 6): each test here failed before its fix."""
import threading
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy import func, select

from jobs.sync import process_inbox
from shared.actors import Actor
from shared.extensions import db
from shared.models import AuditEvent, FulfilmentAlarm, InboxItem, Order, StockLevel
from shared.order_search import parse_filters, search_orders
from shared.services import alarms, catalog, inbox, orders, stock, stock_ops
from tests import channel_payloads as p
from tests.factories import ADMIN, order_payload
from tests.test_shipping import carriers, picked_order, portal_with_carriers, scan  # noqa: F401  (fixtures)
from tests.test_fulfilment import SHENZHEN, floor, order_to, put  # noqa: F401  (floor is a fixture)


def _role(role: str, label: str) -> Actor:
    return Actor(id=None, label=label, role=role, ip="127.0.0.1")


# --- 1. a stock-take approved after stock moved during the count -------------------------------------------

def test_a_stock_take_counted_after_a_shipment_lands_on_the_counted_figure(session):
    catalog.create_warehouse({"code": "HZ1", "name": "杭州仓", "province": "浙江省", "city": "杭州市"}, ADMIN)
    catalog.create_sku({"sku": "TEA", "name": "龙井茶"}, ADMIN)
    stock.adjust_stock("TEA", "HZ1", 100, "opening stock", ADMIN, kind="receipt")
    counter, manager = _role("warehouse", "counter1"), _role("ops_manager", "boss1")
    take = stock_ops.start_stock_take("HZ1", counter)
    stock.adjust_stock("TEA", "HZ1", -10, "parcel shipped while the count runs", ADMIN)  # 90 on the shelf now
    stock_ops.record_count(take.id, "TEA", 90, counter)  # the counter finds exactly what is there
    stock_ops.submit(take.id, counter)
    stock_ops.decide(take.id, True, manager)
    level = db.session.execute(select(StockLevel).where(StockLevel.sku.has(code="TEA"))).scalar_one()
    assert level.on_hand == 90  # was 80: the shipped 10 were taken off twice
    assert take.lines[0].variance == 0


def test_stock_moved_after_the_shelf_was_counted_is_not_undone_by_the_approval(session):
    catalog.create_warehouse({"code": "HZ1", "name": "杭州仓", "province": "浙江省", "city": "杭州市"}, ADMIN)
    catalog.create_sku({"sku": "TEA", "name": "龙井茶"}, ADMIN)
    stock.adjust_stock("TEA", "HZ1", 100, "opening stock", ADMIN, kind="receipt")
    counter, manager = _role("warehouse", "counter1"), _role("ops_manager", "boss1")
    take = stock_ops.start_stock_take("HZ1", counter)
    stock_ops.record_count(take.id, "TEA", 97, counter)  # 3 missing on the shelf
    stock.adjust_stock("TEA", "HZ1", -10, "parcel shipped after the count", ADMIN)
    stock_ops.submit(take.id, counter)
    stock_ops.decide(take.id, True, manager)
    level = db.session.execute(select(StockLevel).where(StockLevel.sku.has(code="TEA"))).scalar_one()
    assert level.on_hand == 87  # 97 counted, 10 shipped since


# --- 2. a platform address change and the phone's blind index -----------------------------------------------

def test_after_a_platform_address_change_the_new_phone_finds_the_order(sync_channels):
    channel = sync_channels["taobao"]
    created = p.recent(60)
    for body in (p.taobao(created=created),
                 p.taobao(created=created, modified=created + timedelta(minutes=8), mobile="13900001111")):
        ids = inbox.store(channel, "poll", [p.body(body)])
        db.session.commit()
        process_inbox(ids)
    order = db.session.execute(select(Order).where(Order.channel_id == channel.id)).scalar_one()
    assert order.receiver_phone == "13900001111"

    def found(phone: str) -> list[str]:
        rows, _cursor = search_orders(parse_filters({"q": phone}, "Asia/Shanghai"), "Asia/Shanghai", limit=10,
                                      viewer=ADMIN)  # an admin sees phones in full, so may search by one
        return [row.order_no for row in rows]

    assert found("13900001111") == [order.order_no]
    assert found("13912345678") == []  # the old number no longer leads to it


# --- 3. scans and packing audited as the operator at the device ---------------------------------------------

def test_pack_and_load_are_audited_as_the_operator_at_the_handheld(floor, portal_with_carriers):  # noqa: F811
    order, task = picked_order(floor)
    client, token = portal_with_carriers.test_client(), floor["token"]
    assert scan(client, token, "pick", task=task.id, bin="A-01", sku="TEA", lot="T-9", quantity=2).status_code == 200
    packed = scan(client, token, "pack", order=order.order_no, box="BOX-S")
    assert packed.status_code == 200, packed.get_json()
    assert scan(client, token, "load", parcel=packed.get_json()["waybill"], truck="T-1").status_code == 200
    moves = db.session.execute(select(AuditEvent.actor_label, AuditEvent.after).where(
        AuditEvent.action == "order.transition", AuditEvent.entity_id == order.order_no)
        .order_by(AuditEvent.id)).all()
    by_status = {after["status"]: label for label, after in moves}
    assert by_status["packed"] == "王五@PDA-07" and by_status["shipped"] == "王五@PDA-07"
    assert "system" not in {by_status["packed"], by_status["shipped"]}


# --- 5. alarms once many are open ---------------------------------------------------------------------------

def test_new_late_orders_alarm_however_many_alarms_are_open(floor):  # noqa: F811
    put("TEA", "SZ1", "A-01", 10)
    made = [order_to(SHENZHEN, [{"sku": "TEA", "quantity": 1, "unit_price": "5.00"}], number=f"O-{n}")
            for n in range(3)]
    late = datetime.now(UTC) + timedelta(hours=5)
    first = alarms.check(late, limit=2)  # the batch limit stands in for the 1,000 of production
    db.session.flush()
    second = alarms.check(late, limit=2)
    db.session.flush()
    assert len(first) == 2 and [alarm.order_id for alarm in second] == [made[2].id]  # was []: never alarmed
    assert alarms.check(late, limit=2) == []
    assert db.session.execute(select(func.count()).select_from(FulfilmentAlarm)
                              .where(FulfilmentAlarm.kind == "not_packed_in_time")).scalar() == 3


# --- 6. the tax line on the order pages ---------------------------------------------------------------------

def _taxed_shopify_order(channels) -> Order:
    body = p.shopify()
    body["total_tax"], body["total_price"] = "2.25", "32.25"  # 25.00 goods + 5.00 shipping + 2.25 tax
    ids = inbox.store(channels["shopify"], "webhook", [p.body(body)])
    db.session.commit()
    process_inbox(ids)
    item = db.session.get(InboxItem, ids[0])
    assert item.status == "done", item.error
    return db.session.get(Order, item.order_id)


def test_the_portal_order_page_shows_the_tax_so_the_figures_add_up(sync_channels, client_for):
    order = _taxed_shopify_order(sync_channels)
    page = client_for("admin").get(f"/orders/{order.order_no}").get_data(as_text=True)
    assert 'data-testid="order-tax"' in page and "2.25" in page and "32.25" in page


def test_the_customer_order_page_shows_the_tax_so_the_figures_add_up(sync_channels, customer_app):
    order = _taxed_shopify_order(sync_channels)
    client = customer_app.test_client()
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    page = client.get("/track/")
    token = page.get_data(as_text=True).split('name="csrf_token" type="hidden" value="')[1].split('"')[0]
    found = client.post("/track/", data={"order_no": order.order_no, "phone_last4": "0101", "csrf_token": token},
                        follow_redirects=True)
    text = found.get_data(as_text=True)
    assert found.status_code == 200 and 'data-testid="order-tax"' in text and "2.25" in text


# --- 4. no row lock while the carrier is asked for a waybill ------------------------------------------------

class _LockProbingCarrier:
    """A carrier whose answer comes only after another connection tried to lock the order row (and write)."""

    def __init__(self, url: str, backend: str, order_id: int):
        self.url, self.backend, self.order_id = url, backend, order_id
        self.outcomes: list[str] = []

    def request(self, req):
        from shared.carriers.waybills import Waybill

        def other_clerk():
            if self.backend == "sqlite":
                engine = sa.create_engine(self.url, connect_args={"timeout": 0.5, "isolation_level": None})
            else:
                engine = sa.create_engine(self.url)
            try:
                with engine.connect() as connection:
                    if self.backend == "sqlite":
                        connection.exec_driver_sql("BEGIN IMMEDIATE")
                    else:
                        connection.exec_driver_sql("SET lock_timeout = '500ms'")
                    connection.execute(sa.text("SELECT id FROM orders WHERE id = :id" +
                                               ("" if self.backend == "sqlite" else " FOR UPDATE")),
                                       {"id": self.order_id})
                    connection.execute(sa.text("UPDATE orders SET hold_reason = hold_reason WHERE id = :id"),
                                       {"id": self.order_id})
                    connection.exec_driver_sql("ROLLBACK") if self.backend == "sqlite" else connection.rollback()
                self.outcomes.append("written")
            except sa.exc.OperationalError as error:
                self.outcomes.append(f"locked: {str(error.orig)[:80]}")
            finally:
                engine.dispose()

        clerk = threading.Thread(target=other_clerk)
        clerk.start()
        clerk.join()
        return Waybill(carrier_code=req.carrier_code, waybill_no=f"{req.carrier_code}1234567890",
                       sort_code="755", label_html="<p>label</p>")

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        return None


@pytest.mark.live
def test_the_order_row_is_not_locked_while_the_carrier_answers(live_apps, monkeypatch):
    from datetime import date

    from portal import scan as scan_api
    from shared.models import Bin
    from shared.services import allocation, lots, scans, waves

    app = live_apps.portal
    with app.app_context():
        catalog.create_channel("OS", "官网商城", "own_shop", ADMIN)
        warehouse = catalog.create_warehouse({"code": "SZ1", "name": "深圳仓", "province": "广东省",
                                              "city": "深圳市"}, ADMIN)
        catalog.create_bin(warehouse, {"code": "A-01", "walk_order": 1}, ADMIN)
        catalog.create_sku({"sku": "TEA", "name": "龙井茶"}, ADMIN)
        lots.receive("TEA", "SZ1", "A-01", 5, ADMIN, lot_no="T-1", expires_on=date.today() + timedelta(days=90))
        order = orders.create_order(order_payload(lines=[{"sku": "TEA", "quantity": 1, "unit_price": "9.00"}]), ADMIN)
        allocation.allocate(order, ADMIN)
        [wave] = waves.plan_waves("SZ1", ADMIN)
        waves.start_release(wave.id, ADMIN)
        waves.release_chunk(wave.id, date.today())
        _device, token = scans.register_device("PDA-1", "SZ1", ADMIN)
        db.session.commit()
        order_id, order_no = order.id, order.order_no
        [task] = waves.pick_list(wave.id)
        task_id = task.id
        assert db.session.execute(select(func.count()).select_from(Bin)).scalar() == 1
        db.session.remove()
    carrier = _LockProbingCarrier(live_apps.url, live_apps.backend, order_id)
    monkeypatch.setattr(scan_api, "carriers", lambda: carrier)
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    picked = client.post("/scan/v1/pick", headers=headers, json={"operator": "王五", "task": task_id, "bin": "A-01",
                                                                  "sku": "TEA", "lot": "T-1", "quantity": 1})
    assert picked.status_code == 200, picked.get_json()
    packed = client.post("/scan/v1/pack", headers=headers, json={"operator": "王五", "order": order_no, "box": "B"})
    assert packed.status_code == 200, packed.get_json()
    assert carrier.outcomes == ["written"]  # was "locked": the order row was held during the HTTP call
    with app.app_context():
        assert db.session.get(Order, order_id).status == "packed"
