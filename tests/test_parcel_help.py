""""Not received yet?" (issue 13 item 5): the courier read from Kuaidi100's courierInfo (fixtures and the
simulator over loopback), the last known position and the estimate on the customer's order page, and the
one-click case with customer service opened once, with the order attached and its SLA."""
import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from devtools.simulators.carriers import DEFAULT_CREDENTIALS, CarrierSimulator
from shared.carriers.tracking import Kuaidi100Client, read_kuaidi100_courier
from shared.extensions import db, limiter
from shared.models import ExceptionCase, ParcelCourier, Shipment, TrackingEvent, TransitEstimate
from shared.services import customers, orders, parcel_help, tracking
from shared.timekeeping import utc_now
from tests.factories import ADMIN, open_shop, order_payload

FIXTURES = Path(__file__).parent / "fixtures" / "carriers" / "kuaidi100"
PASSWORD = "correct-horse-battery"
OWN_PHONE = "13900001111"
TOKEN = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def answer(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


# --- courier info from Kuaidi100 ---------------------------------------------------------------------------------

def test_courier_info_is_read_from_a_query_answer():
    courier = read_kuaidi100_courier(answer("poll_answer_courier.json"))
    assert (courier.pickup_name, courier.pickup_phone) == ("王师傅", "13822452231")
    assert (courier.delivery_name, courier.delivery_phone) == ("李师傅", "13911227788")
    assert courier.current == ("李师傅", "13911227788")  # the one delivering it is the one to call


def test_empty_strings_mean_not_extracted_and_the_collector_is_called_until_a_deliverer_is_named():
    courier = read_kuaidi100_courier(answer("poll_answer_courier_pickup_only.json"))
    assert (courier.delivery_name, courier.delivery_phone) == (None, None)
    assert courier.current == ("王师傅", "13822452231,075586001234")  # several numbers, as Kuaidi100 gives them


def test_an_answer_without_courier_info_names_nobody():
    assert read_kuaidi100_courier(answer("poll_answer.json")) is None
    assert read_kuaidi100_courier({"courierInfo": {"pickupManName": "", "deliveryManName": " "}}) is None


@pytest.fixture
def simulator():
    sim = CarrierSimulator(seed=11)
    sim.start()
    yield sim
    sim.stop()


def shipped(waybill_no: str, carrier: str = "YTO", phone: str = OWN_PHONE, hours_ago: float = 30):
    order = orders.create_order(order_payload(channel_order_id=f"T-{waybill_no}", phone=phone), ADMIN)
    db.session.flush()
    from shared.services import stock

    shipment = Shipment(order_id=order.id, warehouse_id=order.warehouse_id or stock.get_warehouse("HZ1").id,
                        status="shipped", priority=0, carrier_code=carrier, waybill_no=waybill_no,
                        shipped_at=utc_now() - timedelta(hours=hours_ago))
    db.session.add(shipment)
    order.status = "shipped"  # set-up only: as if packed and loaded (the floor is tested elsewhere)
    db.session.commit()
    return order, shipment


def test_the_couriers_come_from_the_carrier_over_http_and_are_kept_with_the_parcel(session, simulator):
    open_shop()
    number = simulator.add_parcel("YTO")
    simulator.advance_parcel(number, "collected")
    simulator.advance_parcel(number, "in_transit")
    _order, shipment = shipped(number)
    credentials = DEFAULT_CREDENTIALS["kuaidi100"]
    with Kuaidi100Client(simulator.base_url, credentials["customer"], credentials["key"]) as client:
        outcome = tracking.poll_quiet(client)
    db.session.commit()
    assert outcome["couriers"] == 1 and outcome["stored"] == 2
    kept = db.session.get(ParcelCourier, shipment.id)
    assert kept.pickup_name and kept.pickup_phone and kept.delivery_name is None
    simulator.advance_parcel(number, "out_for_delivery")
    with Kuaidi100Client(simulator.base_url, credentials["customer"], credentials["key"]) as client:
        _events, courier = client.query_courier("YTO", number)
    assert courier.delivery_name and courier.delivery_name in simulator.events_of(number)[-1].description


# --- the case with customer service --------------------------------------------------------------------------------

def test_contacting_customer_service_opens_one_case_with_the_order_and_its_sla(session):
    open_shop()
    order, shipment = shipped("YT7500000000001")
    customer = order.customer
    from shared.actors import Actor

    actor = Actor.for_customer(customer)
    case = parcel_help.contact_service(order, actor)
    db.session.commit()
    assert (case.kind, case.category, case.order_id, case.shipment_id) == ("parcel_not_received", "logistics",
                                                                          order.id, shipment.id)
    assert case.resolve_due_at is not None and case.first_response_due_at is not None
    again = parcel_help.contact_service(order, actor)
    db.session.commit()
    assert again.id == case.id
    assert db.session.execute(select(func.count()).select_from(ExceptionCase)
                              .where(ExceptionCase.kind == "parcel_not_received")).scalar() == 1


def test_no_case_for_an_order_without_a_parcel_on_its_way(session):
    from shared.actors import Actor
    from shared.services.errors import ValidationFailed

    open_shop()
    order = orders.create_order(order_payload(channel_order_id="T-none"), ADMIN)
    db.session.commit()
    with pytest.raises(ValidationFailed) as refused:
        parcel_help.contact_service(order, Actor.for_customer(order.customer))
    assert refused.value.code == "parcel_not_on_its_way"
    assert db.session.execute(select(func.count()).select_from(ExceptionCase)).scalar() == 0


# --- the order page --------------------------------------------------------------------------------------------------

@pytest.fixture
def client(customer_app):
    limiter.reset()
    browser = customer_app.test_client()
    browser.environ_base["HTTP_ACCEPT_LANGUAGE"] = "zh-CN"
    return browser


@pytest.fixture
def account(session):
    customer = customers.create_account("李雷", OWN_PHONE, "li.lei@example.com", PASSWORD, ADMIN)
    db.session.commit()
    return customer


def sign_in(client):
    token = TOKEN.search(client.get("/sign-in").text).group(1)
    return client.post("/sign-in", data={"email": "li.lei@example.com", "password": PASSWORD, "csrf_token": token})


def on_its_way(shipment):
    """The parcel's news and an estimate for its carrier (a figure as the refresh job writes it)."""
    db.session.add(TrackingEvent(shipment_id=shipment.id, occurred_at=utc_now() - timedelta(hours=3),
                                 source="kuaidi100", raw_status="1001", step="at_local_station", flag=None,
                                 description="快件已到达【北京朝阳区三里屯营业部】", description_hash="h1",
                                 location="北京,北京市"))
    db.session.add(TransitEstimate(carrier_code="YTO", origin_province="*", destination_province="*",
                                   deliveries=40, median_seconds=48 * 3600, p90_seconds=72 * 3600))
    db.session.add(ParcelCourier(shipment_id=shipment.id, delivery_name="李师傅", delivery_phone="13911227788",
                                 source="kuaidi100"))
    db.session.commit()


def test_the_order_page_shows_position_estimate_courier_and_opens_the_case_once(client, account):
    open_shop()
    order, shipment = shipped("YT7500000000002")
    on_its_way(shipment)
    sign_in(client)
    page = client.get(f"/orders/{order.order_no}").text
    assert 'data-testid="parcel-help"' in page
    position = page[page.find('data-testid="parcel-position"'):][:400]
    assert "快件已到达【北京朝阳区三里屯营业部】" in position and "北京,北京市" in position
    # The range from shipped + median to shipped + p90, as days in the viewer's language and zone (Shanghai); the
    # sentence around it ("预计 …送达") comes from the catalog the lead fills from reports/cs_parcel.zh.json.
    earliest = shipment.shipped_at + timedelta(hours=48 + 8)
    latest = shipment.shipped_at + timedelta(hours=72 + 8)
    estimate = page[page.find('data-testid="parcel-estimate"'):][:300]
    assert f"{earliest.month}月{earliest.day}日–{latest.month}月{latest.day}日" in estimate, estimate
    assert "李师傅" in page and "13911227788" in page
    token = TOKEN.search(page).group(1)
    first = client.post(f"/orders/{order.order_no}/parcel-help", data={"csrf_token": token})
    assert first.status_code == 303
    page = client.get(f"/orders/{order.order_no}").text
    case = db.session.execute(select(ExceptionCase).where(ExceptionCase.kind == "parcel_not_received")).scalar_one()
    assert f"#{case.id}" in page and 'data-testid="parcel-case"' in page
    assert 'data-testid="parcel-contact-form"' not in page  # the same case is shown, not a second button
    client.post(f"/orders/{order.order_no}/parcel-help", data={"csrf_token": token})
    assert db.session.execute(select(func.count()).select_from(ExceptionCase)).scalar() == 1


def test_a_guest_sees_the_help_with_a_masked_courier_phone_and_is_asked_to_sign_in(client, session):
    open_shop()
    order, shipment = shipped("YT7500000000003")
    on_its_way(shipment)
    token = TOKEN.search(client.get("/track/").text).group(1)
    client.post("/track/", data={"order_no": order.order_no, "phone_last4": OWN_PHONE[-4:], "csrf_token": token})
    page = client.get(f"/track/{order.order_no}").text
    assert 'data-testid="parcel-help"' in page and "139****7788" in page and "13911227788" not in page
    assert 'data-testid="parcel-contact-form"' not in page


def test_no_estimate_is_said_plainly_and_a_delivered_parcel_shows_no_help(client, account):
    open_shop()
    order, shipment = shipped("YT7500000000004")
    sign_in(client)
    page = client.get(f"/orders/{order.order_no}").text
    estimate = page.split('data-testid="parcel-estimate">', 1)[1].split("</dd>", 1)[0]
    assert "暂时无法预估送达时间" in estimate and "预计" not in estimate  # said plainly, no range made up
    shipment.status, shipment.delivered_at = "delivered", utc_now()
    db.session.commit()
    assert 'data-testid="parcel-help"' not in client.get(f"/orders/{order.order_no}").text


def test_another_customers_order_cannot_be_asked_about(client, account):
    open_shop()
    order, _shipment = shipped("YT7500000000005", phone="13700002222")
    sign_in(client)
    token = TOKEN.search(client.get("/orders/").text).group(1)
    assert client.post(f"/orders/{order.order_no}/parcel-help", data={"csrf_token": token}).status_code == 404
    assert db.session.execute(select(func.count()).select_from(ExceptionCase)).scalar() == 0
