"""`POST /api/v1/after-sales` with `pickup` (issue 13): the courier is booked with the carrier in the same call through
return_pickups, as the customer's own booking is, against the carrier simulator (Kuaidi100 商家寄件) over loopback
HTTP; the booking is in the 201 body; approving the request moves it on to awaiting_return with that booking,
declining it cancels the pickup at the carrier. A slot in the past, a slot that is not the carrier's, the carrier's
refusal and the carrier being down are refused with nothing created."""
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from devtools.simulators.carriers import DEFAULT_CREDENTIALS, CarrierSimulator
from shared.extensions import db
from shared.models import AfterSale, AuditEvent, CustomerNotification, ReturnPickup
from shared.services import after_sales, return_pickups
from shared.timekeeping import as_utc, utc_now
from tests.factories import ADMIN
from tests.test_after_sales import deliver
from tests.test_api import ApiClient, api_as, token_for  # noqa: F401  (fixtures)

RETURN_TO = {"receiver": "杭州仓退货组", "phone": "0571-88886666", "province": "浙江省", "city": "杭州市",
             "district": "余杭区", "street": "仓前街道文一西路 1 号"}


@pytest.fixture
def simulator():
    sim = CarrierSimulator(seed=13, start=utc_now())
    sim.start()
    yield sim
    sim.stop()


def point_at(apps, url: str):
    credentials = DEFAULT_CREDENTIALS["kuaidi100"]
    patch = pytest.MonkeyPatch()
    for app in (apps.portal, apps.core):
        patch.setitem(app.config, "KUAIDI100_API_URL", url)
        patch.setitem(app.config, "KUAIDI100_KEY", credentials["key"])
        patch.setitem(app.config, "KUAIDI100_SECRET", credentials["secret"])
        patch.setitem(app.config, "PICKUP_SALT", "s")
        patch.setitem(app.config, "PICKUP_CALLBACK_URL", "http://127.0.0.1:9/hooks/pickups/kuaidi100")
    return patch


@pytest.fixture
def carrier(apps, simulator):
    patch = point_at(apps, simulator.base_url)
    yield simulator
    patch.undo()


@pytest.fixture
def delivered(create_order):
    """A delivered order of 2 × SKU-1 from HZ1 (carriers SF, YTO), HZ1's return address set."""
    def make():
        order = create_order(status="shipped", lines=[{"sku": "SKU-1", "quantity": 2, "unit_price": "59.90"}],
                             customer={"name": "张伟", "phone": "13812345678", "email": "zhang.wei@example.com"})
        deliver(order)
        return_pickups.set_return_address("HZ1", RETURN_TO, ADMIN)
        db.session.commit()
        return order
    return make


def body(order, **pickup) -> dict:
    return {"order_no": order.order_no, "type": "return_refund",
            "lines": [{"sku": "SKU-1", "quantity": 1, "reason": "damaged"}], "pickup": pickup}


def offered(order) -> list:
    return return_pickups.slots(order, after_sales.pickup_address(order), utc_now())


def count(model, *where) -> int:
    db.session.expire_all()
    return db.session.execute(select(func.count()).select_from(model).where(*where)).scalar_one()


def nothing_created(simulator) -> None:
    assert count(AfterSale) == 0 and count(ReturnPickup) == 0 and simulator.pickups == {}
    assert count(AuditEvent, AuditEvent.action.in_(("after_sale.requested", "return_pickup.book"))) == 0
    assert count(CustomerNotification, CustomerNotification.event == "pickup_booked") == 0


def error_of(response) -> tuple[int, str]:
    return response.status_code, response.get_json()["error"]["code"]


def test_a_pickup_slot_is_booked_with_the_carrier_and_answered_in_the_201(api_as, delivered, carrier):
    order = delivered()
    slot, cs = offered(order)[1], api_as("customer_service")
    created = cs.post("/after-sales", body(order, slot=slot.key))
    assert created.status_code == 201, created.get_json()
    answer = created.get_json()
    assert (answer["state"], answer["return_method"]) == ("requested", "pickup")
    pickup = answer["pickup"]
    assert (pickup["status"], pickup["carrier"]) == ("booked", "SF") and pickup["waybill_no"].startswith("SF")
    assert pickup["waybill_no"] in carrier.parcels  # the return e-waybill at the carrier: customer → warehouse
    booking = db.session.execute(select(ReturnPickup)).scalar_one()
    assert (booking.after_sale_id, booking.slot_start, booking.order_id) == (answer["id"], slot.starts_at, order.id)
    sent = carrier.pickup(booking.task_id).param
    assert (sent["thirdOrderId"], sent["pickupStartTime"]) == (booking.serial, slot.start)
    case = after_sales.get_after_sale(answer["id"])
    assert as_utc(case.pickup_at) == slot.starts_at
    assert count(CustomerNotification, CustomerNotification.event == "pickup_booked") == 1
    # Approved: the courier is coming already, so the request waits for the goods with that booking.
    moved = cs.post(f"/after-sales/{case.id}/transitions", {"to": "approved"})
    assert moved.status_code == 200 and moved.get_json()["state"] == "awaiting_return"
    assert moved.get_json()["pickup"]["id"] == booking.id and count(ReturnPickup) == 1 and len(carrier.pickups) == 1


def test_a_pickup_time_books_the_carriers_slot_that_holds_it(api_as, delivered, carrier):
    order = delivered()
    slot = offered(order)[2]
    created = api_as("customer_service").post("/after-sales", body(order, at=(slot.starts_at + timedelta(
        minutes=20)).isoformat()))
    assert created.status_code == 201, created.get_json()
    assert created.get_json()["pickup"]["slot_start"] is not None
    assert db.session.execute(select(ReturnPickup.slot_start)).scalar_one() == slot.starts_at


@pytest.mark.parametrize("pickup", [
    {"at": "2020-01-01T10:00:00+08:00"},
    {"slot": "2020-01-01 10:00-11:00"},
])
def test_a_pickup_in_the_past_is_422_and_creates_nothing(api_as, delivered, carrier, pickup):
    order = delivered()
    assert error_of(api_as("customer_service").post("/after-sales", body(order, **pickup))) == (422, "pickup_in_past")
    nothing_created(carrier)


@pytest.mark.parametrize("pickup, code", [
    ({"slot": "tomorrow morning"}, "invalid_slot"),
    ({"slot": "2099-01-01 10:00-12:00"}, "invalid_slot"),  # not one of SF's hourly slices
    ({"slot": "2099-01-01 10:00-11:00"}, "slot_not_bookable"),  # beyond the carrier's three days
    ({"at": "2099-01-01T03:00:00+08:00"}, "invalid_slot"),  # no slice holds 03:00
    ({"at": "2099-01-01T10:00:00+08:00", "slot": "2099-01-01 10:00-11:00"}, "invalid_pickup"),
])
def test_a_pickup_the_carrier_does_not_offer_is_422_and_creates_nothing(api_as, delivered, carrier, pickup, code):
    order = delivered()
    assert error_of(api_as("customer_service").post("/after-sales", body(order, **pickup))) == (422, code)
    nothing_created(carrier)


def test_a_refusal_by_the_carrier_is_422_and_creates_nothing(api_as, delivered, carrier):
    order = delivered()
    carrier.refuse_pickups_from("浙江省")
    response = api_as("customer_service").post("/after-sales", body(order, slot=offered(order)[0].key))
    assert error_of(response) == (422, "pickup_refused")
    assert "寄件地址超出服务范围" in response.get_json()["error"]["message"]
    nothing_created(carrier)


def test_the_carrier_down_is_503_and_creates_nothing(api_as, delivered, apps, simulator):
    order = delivered()
    patch = point_at(apps, "http://127.0.0.1:9")  # nothing listens there
    try:
        response = api_as("customer_service").post("/after-sales", body(order, slot=offered(order)[0].key))
    finally:
        patch.undo()
    assert error_of(response) == (503, "carrier_unavailable")
    nothing_created(simulator)


def test_declining_a_request_with_its_pickup_booked_cancels_the_pickup_at_the_carrier(api_as, delivered, carrier):
    order = delivered()
    cs = api_as("customer_service")
    answer = cs.post("/after-sales", body(order, slot=offered(order)[0].key)).get_json()
    declined = cs.post(f"/after-sales/{answer['id']}/transitions", {"to": "declined", "reason": "超出质保范围"})
    assert declined.status_code == 200 and declined.get_json()["state"] == "declined"
    booking = db.session.execute(select(ReturnPickup)).scalar_one()
    assert booking.status == "cancelled" and carrier.pickup(booking.task_id).status == "9"


def test_a_pickup_on_a_request_that_returns_nothing_is_refused(api_as, delivered, carrier):
    order = delivered()
    refund_only = {**body(order, slot=offered(order)[0].key), "type": "refund_only"}
    assert error_of(api_as("customer_service").post("/after-sales", refund_only)) == (422, "invalid_return_method")
    nothing_created(carrier)
