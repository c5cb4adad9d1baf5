"""Return pickups (上门取件, issue 13 item 2, carrier side) against the carrier simulator over loopback HTTP: the
slots offered, a booking (return e-waybill with the customer as sender and the warehouse's return address as
receiver), the courier from the carrier's callback, refusals (a past slot, here and at the carrier's clock; an
address out of the service area) and bad input with nothing changed, cancelling, and the return parcel's tracking
events applied by the same push inbox as any parcel."""
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import pytest
from sqlalchemy import func, select

from devtools.simulators.carriers import DEFAULT_CREDENTIALS, CarrierSimulator
from devtools.simulators.carriers.formats import kuaidi100_push_param
from shared.carriers.pickups import (PickupClient, PickupRefused, PickupRequest, bookable, order_param, parse_slot,
                                     pickup_slots, read_pickup_callback, sign_callback)
from shared.carriers.signing import kuaidi100_order_sign
from shared.carriers.tracking import TrackingPayloadError
from shared.extensions import db
from shared.models import AuditEvent, Order, ReturnPickup, ReturnPickupEvent, TrackingPush
from shared.services import orders, return_pickups, stock
from shared.services.errors import Conflict, NotFound, ValidationFailed
from tests.factories import ADMIN, open_shop, order_payload

FIXTURES = Path(__file__).parent / "fixtures" / "carriers" / "kuaidi100_border"
NOW = datetime(2026, 12, 4, 2, 0, tzinfo=UTC)  # 10:00 in Beijing
SALT = "orderloom-pickup-salt"
CUSTOMER = {"name": "张伟", "phone": "13812345678", "province": "浙江省", "city": "杭州市", "district": "西湖区",
            "street": "文三路 90 号 3 幢 501"}
RETURN_TO = {"receiver": "杭州仓退货组", "phone": "0571-88886666", "province": "浙江省", "city": "杭州市",
             "district": "余杭区", "street": "仓前街道文一西路 1 号"}


def fixture(name: str):
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


# --- the published shapes ------------------------------------------------------------------------------------------

def test_slots_follow_the_published_slices_for_three_days_and_stop_two_hours_before_the_end():
    yto = pickup_slots("YTO", NOW)  # 10:00: 09–12 ends within 2 h, so today offers 12–16 and 16–19
    assert [slot.key for slot in yto[:3]] == ["2026-12-04 12:00-16:00", "2026-12-04 16:00-19:00",
                                               "2026-12-05 09:00-12:00"]
    assert len(yto) == 8 and yto[-1].key == "2026-12-06 16:00-19:00"
    assert {slot.day_type(NOW) for slot in yto} == {"今天", "明天", "后天"}
    assert len(pickup_slots("SF", NOW)) == 10 + 13 + 13  # hourly 09–22; today from 12:00–13:00 on (11–12 ends at 12)
    assert [slot.key for slot in pickup_slots("JD", NOW)] == ["2026-12-04 09:00-19:00"]  # 京东: same day only
    assert not bookable(parse_slot("YTO", "2026-12-04 09:00-12:00"), NOW)
    assert not bookable(parse_slot("YTO", "2026-12-07 09:00-12:00"), NOW)  # the fourth day


@pytest.mark.parametrize("key", ["tomorrow", "2026-12-05 09:00-11:00", "2026-13-05 09:00-12:00", "", None])
def test_a_malformed_slot_is_not_a_slot(key):
    with pytest.raises(ValueError):
        parse_slot("YTO", key)


def test_the_order_param_is_the_published_bOrder_shape():
    slot = parse_slot("YTO", "2026-12-05 09:00-12:00")
    published = fixture("order_param.json")
    request = PickupRequest("RPOS20261121000001X01", "YTO",
                            {"name": "张伟", "mobile": "13812345678", "address": published["sendManPrintAddr"]},
                            {"name": "杭州仓退货组", "mobile": "057188886666", "address": published["recManPrintAddr"]},
                            "退货 龙井茶 250g×1", slot, remark="退货 OS20261121000001X")
    ours = json.loads(order_param(request, NOW, published["callBackUrl"], published["salt"]))
    assert ours == published
    assert kuaidi100_order_sign("{}", "1", "k", "s") == kuaidi100_order_sign("{}", "1", "k", "s").upper()


def test_a_callback_is_verified_and_names_the_courier():
    param = (FIXTURES / "callback_status_1.json").read_text(encoding="utf-8").strip()
    callback = read_pickup_callback({"taskId": "T1", "param": param, "sign": sign_callback(param, SALT)}, SALT)
    assert (callback.meaning, callback.courier_name, callback.courier_mobile, callback.waybill_no) == (
        "courier_assigned", "王师傅", "13822452231", "YT7512345678951")
    with pytest.raises(TrackingPayloadError) as forged:
        read_pickup_callback({"taskId": "T1", "param": param, "sign": sign_callback(param, "other")}, SALT)
    assert forged.value.code == "bad_signature"


# --- against the simulator -----------------------------------------------------------------------------------------

@pytest.fixture
def simulator():
    sim = CarrierSimulator(seed=5, start=NOW)
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture
def client(simulator):
    credentials = DEFAULT_CREDENTIALS["kuaidi100"]
    with PickupClient(simulator.base_url, credentials["key"], credentials["secret"],
                      callback_url="http://127.0.0.1:9/hooks/pickups", salt=SALT) as made:
        yield made


@pytest.fixture
def delivered_order(session):
    """An order of our own shop that went out of HZ1 (carriers SF, YTO), with HZ1's return address set."""
    open_shop()
    order = orders.create_order(order_payload(channel_order_id="T-return"), ADMIN)
    db.session.flush()
    order.warehouse_id, order.status = stock.get_warehouse("HZ1").id, "completed"  # set-up: as if delivered
    return_pickups.set_return_address("HZ1", RETURN_TO, ADMIN)
    db.session.commit()
    return order


def pickups_count() -> int:
    return db.session.execute(select(func.count()).select_from(ReturnPickup)).scalar()


def test_booking_a_pickup_creates_the_return_waybill_and_the_callback_names_the_courier(
        delivered_order, simulator, client):
    offered = return_pickups.slots(delivered_order, CUSTOMER, now=NOW)
    assert offered[0].key == "2026-12-04 12:00-13:00"  # SF, the warehouse's first carrier: hourly slices
    booking = return_pickups.book(delivered_order.order_no, CUSTOMER, offered[3].key, "龙井茶 250g×1", ADMIN,
                                  after_sale_id=7, client=client, now=NOW)
    db.session.commit()
    assert (booking.status, booking.carrier_code, booking.after_sale_id) == ("booked", "SF", 7)
    assert booking.waybill_no.startswith("SF") and booking.slot_start == offered[3].starts_at
    parcel = simulator.parcels[booking.waybill_no]  # the return e-waybill: customer → warehouse
    assert (parcel.sender["Name"], parcel.sender["ProvinceName"], parcel.sender["ExpAreaName"]) == (
        "张伟", "浙江省", "西湖区")
    assert parcel.receiver["Name"] == "杭州仓退货组" and "余杭区" in parcel.receiver["ExpAreaName"]
    sent = simulator.pickup(booking.task_id).param
    assert (sent["dayType"], sent["pickupStartTime"], sent["thirdOrderId"]) == ("今天", "15:00", booking.serial)
    assert booking.courier_name is None  # named by the carrier's callback (status 1 已接单)
    return_pickups.apply_callback(simulator.pickup_callback_form(booking.task_id), SALT)
    db.session.commit()
    booking = db.session.get(ReturnPickup, booking.id)
    assert booking.courier_name == simulator.pickup(booking.task_id).courier_name
    assert booking.courier_phone == simulator.pickup(booking.task_id).courier_mobile
    actions = db.session.execute(select(AuditEvent.action).where(AuditEvent.entity_type == "return_pickup")
                                 .order_by(AuditEvent.id)).scalars().all()
    assert actions == ["return_pickup.book", "return_pickup.callback"]


def test_booking_again_gives_back_the_live_booking(delivered_order, simulator, client):
    slot = return_pickups.slots(delivered_order, CUSTOMER, now=NOW)[0].key
    first = return_pickups.book(delivered_order.order_no, CUSTOMER, slot, "龙井茶×1", ADMIN, client=client, now=NOW)
    db.session.commit()
    again = return_pickups.book(delivered_order.order_no, CUSTOMER, slot, "龙井茶×1", ADMIN, client=client, now=NOW)
    assert again.id == first.id and pickups_count() == 1 and len(simulator.pickups) == 1


def test_the_carrier_answers_a_repeated_serial_with_the_first_order(simulator, client):
    slot = pickup_slots("YTO", NOW)[0]
    request = PickupRequest("RPSERIAL01", "YTO", {"name": "张伟", "mobile": "13812345678", "address": "浙江省杭州市西湖区文三路"},
                            {"name": "仓", "mobile": "057188886666", "address": "浙江省杭州市余杭区仓前街道"}, "退货", slot)
    assert client.book(request, NOW) == client.book(request, NOW) and len(simulator.pickups) == 1


def test_a_past_slot_is_refused_here_without_asking_the_carrier(delivered_order, simulator, client):
    with pytest.raises(ValidationFailed) as refused:
        return_pickups.book(delivered_order.order_no, CUSTOMER, "2026-12-04 09:00-10:00", "龙井茶×1", ADMIN,
                            client=client, now=NOW)
    assert refused.value.code == "slot_not_bookable"
    assert pickups_count() == 0 and simulator.pickups == {}


def test_a_slot_past_at_the_carriers_clock_is_refused_by_the_carrier_and_nothing_is_kept(delivered_order, client,
                                                                                         simulator):
    simulator._clock = NOW + timedelta(hours=8)  # the carrier's 18:00; ours says 10:00
    with pytest.raises(ValidationFailed) as refused:
        return_pickups.book(delivered_order.order_no, CUSTOMER, "2026-12-04 15:00-16:00", "龙井茶×1", ADMIN,
                            client=client, now=NOW)
    assert refused.value.code == "pickup_refused" and "预约时间已过" in refused.value.message
    assert pickups_count() == 0


def test_an_address_out_of_the_service_area_is_refused_with_the_carriers_code(delivered_order, simulator, client):
    simulator.refuse_pickups_from("浙江省")
    slot = return_pickups.slots(delivered_order, CUSTOMER, now=NOW)[0].key
    with pytest.raises(ValidationFailed) as refused:
        return_pickups.book(delivered_order.order_no, CUSTOMER, slot, "龙井茶×1", ADMIN, client=client, now=NOW)
    assert refused.value.code == "pickup_refused" and "寄件地址超出服务范围" in refused.value.message
    with pytest.raises(PickupRefused) as carrier:
        client.book(PickupRequest("RPX", "SF", {"name": "a", "mobile": "13812345678", "address": "浙江省杭州市西湖区"},
                                  {"name": "b", "mobile": "13812345678", "address": "浙江省杭州市余杭区"}, "x",
                                  parse_slot("SF", slot)), NOW)
    assert carrier.value.code == fixture("order_refused.json")["returnCode"] == "400"
    assert pickups_count() == 0


@pytest.mark.parametrize("order_no, address, slot, lines, code", [
    ("OS20990101000001X", CUSTOMER, "2026-12-04 14:00-15:00", "x", "unknown_order"),
    (None, CUSTOMER, "tomorrow morning", "x", "invalid_slot"),
    (None, CUSTOMER, "2026-12-04 14:00-16:00", "x", "invalid_slot"),  # not one of SF's hourly slices
    (None, {**CUSTOMER, "phone": "call me"}, "2026-12-04 14:00-15:00", "x", "invalid_phone"),
    (None, {k: v for k, v in CUSTOMER.items() if k != "street"}, "2026-12-04 14:00-15:00", "x", "required"),
    (None, CUSTOMER, "2026-12-04 14:00-15:00", "  ", "required"),
])
def test_bad_input_is_refused_with_nothing_changed(delivered_order, simulator, client, order_no, address, slot, lines,
                                                   code):
    error = NotFound if code == "unknown_order" else ValidationFailed
    with pytest.raises(error) as refused:
        return_pickups.book(order_no or delivered_order.order_no, address, slot, lines, ADMIN, client=client, now=NOW)
    assert refused.value.code == code
    assert pickups_count() == 0 and simulator.pickups == {}
    assert db.session.execute(select(AuditEvent).where(AuditEvent.entity_type == "return_pickup")).first() is None


def test_no_pickup_before_shipping_or_without_a_return_address(session, simulator, client):
    open_shop()
    order = orders.create_order(order_payload(channel_order_id="T-early"), ADMIN)
    db.session.commit()
    with pytest.raises(ValidationFailed) as early:
        return_pickups.book(order.order_no, CUSTOMER, "2026-12-04 14:00-15:00", "x", ADMIN, client=client, now=NOW)
    assert early.value.code == "order_not_shipped"
    order.warehouse_id, order.status = stock.get_warehouse("HZ1").id, "completed"
    db.session.commit()
    with pytest.raises(ValidationFailed) as nowhere:
        return_pickups.book(order.order_no, CUSTOMER, "2026-12-04 14:00-15:00", "x", ADMIN, client=client, now=NOW)
    assert nowhere.value.code == "no_return_address" and pickups_count() == 0


def test_a_pickup_is_cancelled_before_collection_and_not_after(delivered_order, simulator, client):
    slots = [slot.key for slot in return_pickups.slots(delivered_order, CUSTOMER, now=NOW)]
    booking = return_pickups.book(delivered_order.order_no, CUSTOMER, slots[0], "龙井茶×1", ADMIN, client=client,
                                  now=NOW)
    db.session.commit()
    return_pickups.cancel(booking, ADMIN, client=client)
    db.session.commit()
    assert db.session.get(ReturnPickup, booking.id).status == "cancelled"
    assert booking.waybill_no not in simulator.parcels
    second = return_pickups.book(delivered_order.order_no, CUSTOMER, slots[1], "龙井茶×1", ADMIN, client=client,
                                 now=NOW)
    db.session.commit()
    simulator.collect_pickup(second.task_id)  # the courier has it: the carrier refuses, nothing changes here
    with pytest.raises(Conflict) as refused:
        return_pickups.cancel(second, ADMIN, client=client)
    assert refused.value.code == "pickup_refused"
    db.session.rollback()
    assert db.session.get(ReturnPickup, second.id).status == "booked"
    with pytest.raises(Conflict):
        return_pickups.cancel(db.session.get(ReturnPickup, booking.id), ADMIN, client=client)


@pytest.fixture
def hooks(portal):
    saved = portal.config.get("KUAIDI100_SALT")
    portal.config["KUAIDI100_SALT"] = DEFAULT_CREDENTIALS["kuaidi100"]["salt"]
    yield portal.test_client()
    portal.config["KUAIDI100_SALT"] = saved


def test_the_return_parcel_is_tracked_by_the_same_pushes_as_any_parcel(delivered_order, simulator, client, hooks):
    slot = return_pickups.slots(delivered_order, CUSTOMER, now=NOW)[0].key
    booking = return_pickups.book(delivered_order.order_no, CUSTOMER, slot, "龙井茶×1", ADMIN, client=client,
                                  now=NOW)
    db.session.commit()
    simulator.collect_pickup(booking.task_id)
    for _ in range(5):  # in transit ×2, arrived at the warehouse's city, out for delivery, delivered
        simulator.advance_parcel(booking.waybill_no)
    form = simulator.signed_kuaidi100(kuaidi100_push_param(booking.waybill_no, "SF",
                                                           simulator.events_of(booking.waybill_no), True))
    answer = hooks.post("/hooks/tracking/kuaidi100", data=urlencode(form),
                        headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert answer.status_code == 200 and answer.get_json()["result"] is True
    push = db.session.get(TrackingPush, answer.get_json()["received"])
    db.session.refresh(push)
    assert (push.status, push.outcome, push.events_stored) == ("done", "stored", 6)
    db.session.expire_all()
    booking = db.session.get(ReturnPickup, booking.id)
    assert (booking.status, booking.tracking_step) == ("received", "delivered")
    assert booking.received_at == simulator.events_of(booking.waybill_no)[-1].occurred_at
    assert db.session.execute(select(func.count()).select_from(ReturnPickupEvent)).scalar() == 6
    assert db.session.get(Order, delivered_order.id).status == "completed"  # the order itself is not moved
    hooks.post("/hooks/tracking/kuaidi100", data=urlencode(form),
               headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert db.session.execute(select(func.count()).select_from(ReturnPickupEvent)).scalar() == 6  # once each


def test_the_carriers_callback_reaches_the_portal_hook_verified(delivered_order, simulator, client, portal):
    saved = portal.config.get("PICKUP_SALT")
    portal.config["PICKUP_SALT"] = SALT
    try:
        slot = return_pickups.slots(delivered_order, CUSTOMER, now=NOW)[0].key
        booking = return_pickups.book(delivered_order.order_no, CUSTOMER, slot, "龙井茶×1", ADMIN, client=client,
                                      now=NOW)
        db.session.commit()
        form = simulator.pickup_callback_form(booking.task_id)
        hook = portal.test_client()
        forged = hook.post("/hooks/pickups/kuaidi100", data={**form, "sign": "0" * 32})
        assert forged.status_code == 401 and forged.get_json()["error"]["code"] == "bad_signature"
        db.session.expire_all()
        assert db.session.get(ReturnPickup, booking.id).courier_name is None
        answer = hook.post("/hooks/pickups/kuaidi100", data=form)
        assert answer.status_code == 200 and answer.get_json() == {"result": True, "returnCode": "200",
                                                                   "message": "成功"}
        db.session.expire_all()
        assert db.session.get(ReturnPickup, booking.id).courier_name == simulator.pickup(booking.task_id).courier_name
    finally:
        portal.config["PICKUP_SALT"] = saved


def test_the_return_address_is_set_and_read_through_the_api_and_bad_input_changes_nothing(session, portal,
                                                                                          create_user):
    from shared.services import staff

    open_shop()
    user = create_user("api-admin", "admin")
    headers = {"Authorization": f"Bearer {staff.issue_token(user, ADMIN)}"}
    db.session.commit()
    api = portal.test_client()
    assert api.get("/api/v1/warehouses/HZ1/return-address", headers=headers).status_code == 404
    saved = api.put("/api/v1/warehouses/HZ1/return-address", json=RETURN_TO, headers=headers)
    assert saved.status_code == 200 and saved.get_json()["receiver"] == "杭州仓退货组"
    assert saved.get_json()["phone"] == "0571-88886666".replace("-", "")
    bad = api.put("/api/v1/warehouses/HZ1/return-address", json={**RETURN_TO, "street": ""}, headers=headers)
    assert bad.status_code == 422 and bad.get_json()["error"]["field"] == "street"
    read = api.get("/api/v1/warehouses/HZ1/return-address", headers=headers).get_json()
    assert read["street"] == RETURN_TO["street"]
    assert api.put("/api/v1/warehouses/NOPE/return-address", json=RETURN_TO, headers=headers).status_code == 404
    audits = db.session.execute(select(AuditEvent.action).where(
        AuditEvent.action == "warehouse.return_address")).scalars().all()
    assert audits == ["warehouse.return_address"]
