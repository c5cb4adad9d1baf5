"""From allocation to delivery over real HTTP: handheld scans (/scan/v1) pick, pack and load; the carrier
simulator issues waybills (a refusing carrier gives way to the backup, logged); tracking pushes in the
Kuaidi100 and 17TRACK formats move the parcel to delivered and the order to completed."""
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from shared.extensions import db
from shared.models import (CarrierAttempt, FulfilmentAlarm, ScanEvent, Shipment, StockMovement, TrackingEvent,
                           TrackingPush)
from shared.services import allocation, scans, tracking, waves
from tests.factories import ADMIN
from tests.live_servers import LiveServer
from tests.test_fulfilment import SHENZHEN, TODAY, floor, order_to, put  # noqa: F401  (floor is a fixture)


@pytest.fixture
def carriers():
    from devtools.simulators.carriers import CarrierSimulator

    simulator = CarrierSimulator(seed=5)
    simulator.start()
    yield simulator
    simulator.stop()


@pytest.fixture
def portal_with_carriers(portal, carriers):
    from devtools.simulators.carriers import DEFAULT_CREDENTIALS

    creds = DEFAULT_CREDENTIALS
    saved = {k: portal.config.get(k) for k in ("CARRIER_API_URL", "CARRIER_BUSINESS_ID", "CARRIER_APP_KEY",
                                               "KUAIDI100_SALT", "TRACK17_KEY")}
    portal.config.update(CARRIER_API_URL=carriers.base_url, CARRIER_BUSINESS_ID=creds["kdniao"]["business_id"],
                         CARRIER_APP_KEY=creds["kdniao"]["app_key"], KUAIDI100_SALT=creds["kuaidi100"]["salt"],
                         TRACK17_KEY=creds["17track"]["key"])
    yield portal
    portal.config.update(saved)


def status_of(order) -> str:
    """Read afresh: each request ends its own session."""
    from shared.models import Order
    return db.session.execute(select(Order.status).where(Order.id == order.id)).scalar_one()


def scan(client, token, kind, **payload):
    return client.post(f"/scan/v1/{kind}", json={"operator": "王五", "station": "P-01"} | payload,
                       headers={"Authorization": f"Bearer {token}"})


def picked_order(floor):  # noqa: F811
    put("TEA", "SZ1", "A-01", 10, lot="T-9")
    order = order_to(SHENZHEN, [{"sku": "TEA", "quantity": 2, "unit_price": "50.00"}])
    allocation.allocate(order, ADMIN)
    [wave] = waves.plan_waves("SZ1", ADMIN)
    waves.start_release(wave.id, ADMIN)
    waves.release_chunk(wave.id, TODAY)
    db.session.commit()
    return order, waves.pick_list(wave.id)[0]


def test_pick_pack_load_then_tracking_to_delivered(floor, portal_with_carriers, carriers):  # noqa: F811
    order, task = picked_order(floor)
    client, token = portal_with_carriers.test_client(), floor["token"]
    answer = scan(client, token, "pick", task=task.id, bin="A-01", sku="TEA", lot="T-9", quantity=2)
    assert answer.status_code == 200 and answer.get_json()["status"] == "done"
    packed = scan(client, token, "pack", order=order.order_no, box="BOX-S")
    assert packed.status_code == 200, packed.get_json()
    waybill = packed.get_json()["waybill"]
    assert packed.get_json()["carrier"] == "SF" and waybill.startswith("SF") and status_of(order) == "packed"
    again = scan(client, token, "pack", order=order.order_no, box="BOX-S")
    assert again.status_code == 409 and "packed already" in again.get_json()["error"]["message"]
    loaded = scan(client, token, "load", parcel=waybill, truck="粤B-12345")
    assert loaded.status_code == 200 and status_of(order) == "shipped"
    shipped = db.session.execute(select(StockMovement).where(StockMovement.kind == "shipment")).scalar_one()
    assert shipped.delta == -2 and shipped.order_id == order.id
    scans = db.session.execute(select(ScanEvent.kind, ScanEvent.accepted, ScanEvent.operator)
                               .order_by(ScanEvent.id)).all()
    assert scans == [("pick", True, "王五"), ("pack", True, "王五"), ("pack", False, "王五"), ("load", True, "王五")]

    server = LiveServer(portal_with_carriers)
    try:
        from devtools.simulators.carriers import DEFAULT_CREDENTIALS
        for kind in ("collected", "in_transit", "out_for_delivery"):
            carriers.advance_parcel(waybill, kind)
        carriers.push_kuaidi100(f"{server.url}/hooks/tracking/kuaidi100", DEFAULT_CREDENTIALS["kuaidi100"]["salt"],
                                waybill)
        shipment = db.session.execute(select(Shipment).where(Shipment.waybill_no == waybill)).scalar_one()
        assert shipment.tracking_step == "out_for_delivery" and shipment.status == "shipped"
        carriers.advance_parcel(waybill, "delivered")
        carriers.push_17track(f"{server.url}/hooks/tracking/17track", DEFAULT_CREDENTIALS["17track"]["key"], waybill)
        carriers.push_17track(f"{server.url}/hooks/tracking/17track", DEFAULT_CREDENTIALS["17track"]["key"], waybill)
    finally:
        server.stop()
    db.session.expire_all()  # the pushes were handled by the server's own requests
    shipment = db.session.execute(select(Shipment).where(Shipment.waybill_no == waybill)).scalar_one()
    assert (shipment.tracking_step, shipment.status, status_of(order)) == ("delivered", "delivered", "completed")
    first = db.session.execute(select(func.count()).select_from(TrackingEvent)).scalar()
    assert first >= 4  # both sources kept; the repeated 17TRACK push added nothing new


def test_a_refusing_carrier_gives_way_to_the_backup_and_it_is_logged(floor, portal_with_carriers, carriers):  # noqa: F811
    order, task = picked_order(floor)
    carriers.refuse("SF", "电子面单余额不足")
    client, token = portal_with_carriers.test_client(), floor["token"]
    scan(client, token, "pick", task=task.id, bin="A-01", sku="TEA", lot="T-9", quantity=2)
    packed = scan(client, token, "pack", order=order.order_no, box="BOX-S")
    assert packed.status_code == 200 and packed.get_json()["carrier"] == "YTO"
    attempts = db.session.execute(select(CarrierAttempt.carrier_code, CarrierAttempt.outcome)
                                  .order_by(CarrierAttempt.id)).all()
    assert attempts == [("SF", "refused"), ("YTO", "issued")]


def test_when_every_carrier_refuses_nothing_is_packed(floor, portal_with_carriers, carriers):  # noqa: F811
    order, task = picked_order(floor)
    carriers.refuse("SF", "电子面单余额不足")
    carriers.refuse("YTO", "超区")
    client, token = portal_with_carriers.test_client(), floor["token"]
    scan(client, token, "pick", task=task.id, bin="A-01", sku="TEA", lot="T-9", quantity=2)
    packed = scan(client, token, "pack", order=order.order_no, box="BOX-S")
    assert packed.status_code == 409 and "no carrier issued a waybill" in packed.get_json()["error"]["message"]
    shipment = db.session.execute(select(Shipment)).scalar_one()
    assert (shipment.status, shipment.waybill_no, status_of(order)) == ("picked", None, "picking")


@pytest.mark.parametrize("kind, payload, status", [
    ("pack", {"order": "NOPE", "box": "B"}, 409), ("load", {"parcel": "SF000000000000", "truck": "T"}, 409),
    ("teleport", {}, 404), ("pick", {"operator": ""}, 422),
])
def test_bad_scans_are_refused_and_logged(floor, portal_with_carriers, kind, payload, status):  # noqa: F811
    answer = scan(portal_with_carriers.test_client(), floor["token"], kind, **payload)
    assert answer.status_code == status and answer.get_json()["error"]["message"]


def test_scans_need_a_device_token(floor, portal_with_carriers):  # noqa: F811
    answer = portal_with_carriers.test_client().post("/scan/v1/pick", json={"operator": "x"},
                                                     headers={"Authorization": "Bearer forged"})
    assert answer.status_code == 401 and db.session.execute(select(func.count()).select_from(ScanEvent)).scalar() == 0


def test_tracking_for_an_unknown_number_is_kept_for_review_and_a_bad_signature_is_refused(portal_with_carriers):
    from shared.carriers.signing import kuaidi100_push_sign
    client = portal_with_carriers.test_client()
    param = ('{"status":"polling","lastResult":{"message":"ok","state":"0","status":"200","ischeck":"0",'
             '"com":"shunfeng","nu":"SF999999999999","data":[{"context":"已揽收","time":"2026-11-21 10:00:00",'
             '"ftime":"2026-11-21 10:00:00","status":"揽收"}]}}')
    salt = portal_with_carriers.config["KUAIDI100_SALT"]
    unknown = client.post("/hooks/tracking/kuaidi100", data={"param": param, "sign": kuaidi100_push_sign(param, salt)})
    assert unknown.status_code == 200 and unknown.get_json()["result"] is True  # stored: Kuaidi100 need not resend
    push = db.session.get(TrackingPush, unknown.get_json()["received"])
    assert (push.status, push.error_code, push.waybill_no) == ("review", "unknown_tracking_number", "SF999999999999")
    assert "SF999999999999" in push.last_error
    forged = client.post("/hooks/tracking/kuaidi100", data={"param": param, "sign": "0" * 32})
    assert forged.status_code == 401
    assert db.session.execute(select(func.count()).select_from(TrackingEvent)).scalar() == 0
    assert db.session.execute(select(func.count()).select_from(TrackingPush)).scalar() == 1  # the forged one: none


def test_a_parcel_without_news_is_flagged_stalled_once(floor, portal_with_carriers, carriers):  # noqa: F811
    order, task = picked_order(floor)
    client, token = portal_with_carriers.test_client(), floor["token"]
    scan(client, token, "pick", task=task.id, bin="A-01", sku="TEA", lot="T-9", quantity=2)
    waybill = scan(client, token, "pack", order=order.order_no, box="B").get_json()["waybill"]
    scan(client, token, "load", parcel=waybill, truck="T-1")
    now = datetime.now(UTC)
    assert tracking.find_stalled(now + timedelta(hours=3)) == []
    [stalled] = tracking.find_stalled(now + timedelta(hours=5))
    assert stalled.waybill_no == waybill and tracking.find_stalled(now + timedelta(hours=6)) == []
    alarm = db.session.execute(select(FulfilmentAlarm).where(FulfilmentAlarm.kind == "parcel_stalled")).scalar_one()
    assert alarm.role == "customer_service" and waybill in alarm.message


def test_tracking_pushes_are_refused_while_no_secret_is_configured(portal_with_carriers):
    portal_with_carriers.config["TRACK17_KEY"] = ""
    answer = portal_with_carriers.test_client().post("/hooks/tracking/17track", json={"event": "TRACKING_UPDATED"})
    assert answer.status_code == 503 and answer.get_json()["error"]["code"] == "not_configured"


def test_events_out_of_time_order_or_duplicated_end_in_the_right_state(floor, portal_with_carriers, carriers):  # noqa: F811
    from shared.carriers.tracking import TrackingEvent as Event
    order, task = picked_order(floor)
    client, token = portal_with_carriers.test_client(), floor["token"]
    scan(client, token, "pick", task=task.id, bin="A-01", sku="TEA", lot="T-9", quantity=2)
    waybill = scan(client, token, "pack", order=order.order_no, box="B").get_json()["waybill"]
    scan(client, token, "load", parcel=waybill, truck="T-1")
    db.session.expire_all()  # the scans ran in their own requests
    base = datetime(2026, 11, 21, 2, 0, tzinfo=UTC)

    def event(hours, step, text):
        return Event(waybill, "SF", base + timedelta(hours=hours), text, None, "kuaidi100", "0", step, None)

    delivered, collected, moving = event(30, "delivered", "已签收"), event(1, "in_transit", "已揽收"), \
        event(5, "in_transit", "运输中")
    outcome = tracking.ingest([delivered, collected])
    assert outcome["stored"] == 2
    again = tracking.ingest([moving, collected, delivered])  # late, duplicated and repeated
    assert again["stored"] == 1
    shipment = db.session.execute(select(Shipment).where(Shipment.waybill_no == waybill)).scalar_one()
    assert shipment.tracking_step == "delivered" and shipment.status == "delivered" and status_of(order) == "completed"
    assert db.session.execute(select(func.count()).select_from(TrackingEvent)).scalar() == 3


def test_a_returned_item_is_restocked_only_after_inspection(floor, portal_with_carriers, carriers):  # noqa: F811
    from shared.services import stock_ops
    from shared.services.errors import Conflict, ValidationFailed
    order, task = picked_order(floor)
    with pytest.raises(Conflict):  # not shipped: nothing can come back
        stock_ops.restock_return(order.order_no, "TEA", "SZ1", 1, True, ADMIN)
    client, token = portal_with_carriers.test_client(), floor["token"]
    scan(client, token, "pick", task=task.id, bin="A-01", sku="TEA", lot="T-9", quantity=2)
    waybill = scan(client, token, "pack", order=order.order_no, box="B").get_json()["waybill"]
    scan(client, token, "load", parcel=waybill, truck="T-1")
    db.session.expire_all()
    with pytest.raises(ValidationFailed):
        stock_ops.restock_return(order.order_no, "TEA", "SZ1", 3, True, ADMIN)
    with pytest.raises(ValidationFailed):  # a failed inspection needs its reason
        stock_ops.restock_return(order.order_no, "TEA", "SZ1", 1, False, ADMIN)
    stock_ops.restock_return(order.order_no, "TEA", "SZ1", 1, False, ADMIN, note="外包装破损，报废")
    stock_ops.restock_return(order.order_no, "TEA", "SZ1", 1, True, ADMIN)
    returned = db.session.execute(select(StockMovement).where(StockMovement.kind == "return")).scalars().all()
    assert [(m.delta, m.order_id) for m in returned] == [(1, order.id)]


def test_parcels_without_pushes_are_asked_about_and_a_missed_push_loses_nothing(floor, portal_with_carriers,  # noqa: F811
                                                                                carriers):
    from devtools.simulators.carriers import DEFAULT_CREDENTIALS
    from shared.carriers.tracking import Kuaidi100Client
    order, task = picked_order(floor)
    client, token = portal_with_carriers.test_client(), floor["token"]
    scan(client, token, "pick", task=task.id, bin="A-01", sku="TEA", lot="T-9", quantity=2)
    waybill = scan(client, token, "pack", order=order.order_no, box="B").get_json()["waybill"]
    scan(client, token, "load", parcel=waybill, truck="T-1")
    db.session.expire_all()
    carriers.advance_parcel(waybill, "collected")
    carriers.advance_parcel(waybill, "in_transit")  # the carrier never pushed these
    creds = DEFAULT_CREDENTIALS["kuaidi100"]
    with Kuaidi100Client(carriers.base_url, creds["customer"], creds["key"]) as kuaidi100:
        assert tracking.poll_quiet(kuaidi100)["asked"] == 0  # loaded just now: not quiet yet
        outcome = tracking.poll_quiet(kuaidi100, now=datetime.now(UTC) + timedelta(hours=3))
    assert outcome["asked"] == 1 and outcome["stored"] == 2 and outcome["failed"] == []
    shipment = db.session.execute(select(Shipment).where(Shipment.waybill_no == waybill)).scalar_one()
    assert shipment.tracking_step == "in_transit"


def test_a_return_cannot_bring_back_more_than_was_sold(floor, portal_with_carriers, carriers):  # noqa: F811
    from shared.services import stock_ops
    from shared.services.errors import NotFound, ValidationFailed
    order, task = picked_order(floor)
    client, token = portal_with_carriers.test_client(), floor["token"]
    scan(client, token, "pick", task=task.id, bin="A-01", sku="TEA", lot="T-9", quantity=2)
    waybill = scan(client, token, "pack", order=order.order_no, box="B").get_json()["waybill"]
    scan(client, token, "load", parcel=waybill, truck="T-1")
    db.session.expire_all()
    stock_ops.restock_return(order.order_no, "TEA", "SZ1", 2, True, ADMIN)
    with pytest.raises(ValidationFailed, match="came back already"):
        stock_ops.restock_return(order.order_no, "TEA", "SZ1", 1, True, ADMIN)
    with pytest.raises(NotFound):
        stock_ops.restock_return(order.order_no, "TEA", "NOWHERE", 1, False, ADMIN, note="x")


def test_where_configured_an_order_splits_into_parcels_and_ships_when_the_last_one_leaves(
        floor, portal_with_carriers, carriers, apps):  # noqa: F811
    from devtools.simulators.carriers import DEFAULT_CREDENTIALS
    from shared.carriers.waybills import WaybillClient
    from shared.services.errors import Conflict
    put("TEA", "SZ1", "A-01", 5, lot="T-1")
    put("MILK", "HZ1", "A-01", 5, lot="M-1", expires=TODAY + timedelta(days=20))
    lines = [{"sku": "TEA", "quantity": 1, "unit_price": "50.00"}, {"sku": "MILK", "quantity": 2, "unit_price": "9.90"}]
    order = order_to(("广东省", "广州市", "天河区"), lines, "SPLIT-1")
    with pytest.raises(Conflict, match="No cold-chain warehouse"):
        allocation.allocate(order, ADMIN)  # not configured: no warehouse holds both lines
    db.session.rollback()
    apps.core.config["SPLIT_SHIPMENTS"] = True
    try:
        allocation.allocate(order, ADMIN)
        db.session.commit()
    finally:
        apps.core.config["SPLIT_SHIPMENTS"] = False
    parcels = {s.warehouse.code: s for s in db.session.execute(select(Shipment)).scalars()}
    assert sorted(parcels) == ["HZ1", "SZ1"] and order.status == "allocated"
    assert [line.sku.code for line in allocation.lines_of(parcels["SZ1"])] == ["TEA"]
    with pytest.raises(Conflict):
        allocation.allocate(order, ADMIN)  # still never twice
    db.session.rollback()
    hz_device, _token = scans.register_device("PDA-HZ", "HZ1", ADMIN)
    devices = {"SZ1": floor["device"], "HZ1": hz_device}
    creds = DEFAULT_CREDENTIALS["kdniao"]
    client = WaybillClient(carriers.base_url, creds["business_id"], creds["app_key"])
    for code in ("SZ1", "HZ1"):
        [wave] = waves.plan_waves(code, ADMIN)
        waves.start_release(wave.id, ADMIN)
        waves.release_chunk(wave.id, TODAY)
        for task in waves.pick_list(wave.id):
            scans.pick(devices[code], {"task": task.id, "bin": task.bin.code, "sku": task.sku.code,
                                            "lot": task.lot.lot_no, "quantity": task.quantity}, today=TODAY)
    assert order.status == "picking"
    scans.pack(devices["SZ1"], {"order": order.order_no, "box": "B1"}, client)
    assert order.status == "picking"  # one parcel of two is packed
    scans.pack(devices["HZ1"], {"order": order.order_no, "box": "B2"}, client)
    assert order.status == "packed"
    scans.load(devices["SZ1"], {"parcel": parcels["SZ1"].waybill_no, "truck": "T1"})
    assert order.status == "packed"
    scans.load(devices["HZ1"], {"parcel": parcels["HZ1"].waybill_no, "truck": "T2"})
    assert order.status == "shipped"
    shipped = db.session.execute(select(func.sum(StockMovement.delta)).where(StockMovement.kind == "shipment",
                                                                            StockMovement.order_id == order.id)).scalar()
    assert shipped == -3
    from shared.carriers.tracking import TrackingEvent as Event
    now = datetime.now(UTC)
    tracking.ingest([Event(parcels["SZ1"].waybill_no, "SF", now, "已签收", None, "kuaidi100", "3", "delivered", None)])
    assert order.status == "shipped"  # one parcel of two delivered
    tracking.ingest([Event(parcels["HZ1"].waybill_no, "SF", now, "已签收", None, "kuaidi100", "3", "delivered", None)])
    assert order.status == "completed"
