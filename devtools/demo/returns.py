"""Demo returns (issue 13 item 2): the first regular customer's after-sales requests at each stage a shopper meets,
made through the services with a carrier simulator started for the seeding (the pickups are booked over loopback
HTTP, the return parcels' events come back as Kuaidi100 pushes through the tracking service, like any parcel):

- a pickup booked for a time slot later today or tomorrow, the courier named by the carrier's callback;
- a return parcel collected and on its way back to the warehouse;
- a return delivered to the warehouse (so received at the carrier's delivery time), inspected, refund due: the
  countdown runs on the customer's request page;
- a return refunded;
- an exchange (换货): the parcel came back, passed inspection, and its replacement order (zero price, channel AS)
  was packed with a waybill from the carrier simulator and loaded, so the customer's request page shows the
  replacement shipped with its waybill.

Every step queues the customer's mail (approved, pickup booked, return received, refunded); the demo's sweeper
sends them to the SMTP sink once it runs. Orders placed here are marked in their channel order id (RET-DEMO-…).
"""
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from shared.actors import SYSTEM, Actor
from shared.extensions import db
from shared.models import Customer, Shipment
from shared.services import after_sales, orders, return_pickups, tracking

CS = Actor(id=None, label="demo-cs", role="customer_service")
FLOOR = Actor(id=None, label="demo-warehouse", role="warehouse")
SALT = "demo-pickup-salt"
# (stage, SKU, unit price): one order each, so every request has its own units to return.
STAGES = (("booked", "TEA-002", "168.00"), ("coming_back", "TEA-004", "129.00"),
          ("inspected", "TEA-001", "398.00"), ("refunded", "TEA-002", "168.00"), ("exchanged", "TEA-006", "98.00"))


@dataclass
class SeededReturns:
    requests: int = 0
    pickups: int = 0
    replacements: int = 0


def _customer_actor(order) -> Actor:
    return Actor(id=None, label=f"customer:{order.customer_id}", role="customer")


def _delivered_order(customer: Customer, serial: int, sku: str, price: str, now: datetime):
    """An own-shop order of the customer, paid, shipped from HZ1 and delivered two days ago."""
    placed = now - timedelta(days=4)
    payload = {
        "channel": "OS", "channel_order_id": f"RET-DEMO-{serial:03d}", "placed_at": placed.isoformat(),
        "paid_at": (placed + timedelta(minutes=3)).isoformat(), "currency": "CNY",
        "customer": {"name": customer.name, "phone": customer.phone, "email": customer.email},
        "shipping_address": {"receiver": customer.name, "phone": customer.phone, "province": "浙江省",
                             "city": "杭州市", "district": "西湖区", "street": f"文三路 {100 + serial} 号 2 幢 301"},
        "lines": [{"sku": sku, "quantity": 2, "unit_price": price}], "shipping_fee": "0.00", "discount": "0.00"}
    order = orders.create_order(payload, SYSTEM)
    for step in ("allocated", "picking", "packed", "shipped"):
        if order.status != step:
            orders.transition_order(order, step, SYSTEM, reason="demo return")
    db.session.add(Shipment(order_id=order.id, warehouse_id=order.warehouse_id, status="delivered",
                            shipped_at=now - timedelta(days=3), delivered_at=now - timedelta(days=2)))
    db.session.flush()
    return order


def _client(simulator):
    from devtools.simulators.carriers import DEFAULT_CREDENTIALS
    from shared.carriers.pickups import PickupClient

    credentials = DEFAULT_CREDENTIALS["kuaidi100"]
    return PickupClient(simulator.base_url, credentials["key"], credentials["secret"],
                        callback_url="http://127.0.0.1:5000/hooks/pickups/kuaidi100", salt=SALT)


def _carry_back(simulator, booking, collected: datetime, hours: int, now: datetime) -> None:
    """The courier collects the parcel at `collected` and it takes `hours` steps (one an hour) towards the
    warehouse (5 steps: delivered); the carrier's Kuaidi100 push is read and ingested like any parcel's."""
    from devtools.simulators.carriers.formats import kuaidi100_push_param
    from shared.carriers.tracking import read_kuaidi100_push

    simulator.collect_pickup(booking.task_id, at=collected)
    for hour in range(1, hours + 1):
        simulator.advance_parcel(booking.waybill_no, at=collected + timedelta(hours=hour))
    form = simulator.signed_kuaidi100(kuaidi100_push_param(booking.waybill_no, booking.carrier_code,
                                                           simulator.events_of(booking.waybill_no), True))
    tracking.ingest(read_kuaidi100_push(form), now)


def seed_returns(now: datetime, customer_email: str) -> SeededReturns:
    """The four returns above for the customer with this email (none when the account does not exist). The caller
    commits."""
    from devtools.simulators.carriers import CarrierSimulator

    seeded = SeededReturns()
    customer = db.session.execute(select(Customer).where(
        Customer.email_index == _email_index(customer_email))).scalar_one_or_none()
    if customer is None:
        return seeded
    earlier = CarrierSimulator(seed=2026, start=now - timedelta(hours=30))  # the clock the older bookings saw
    today = CarrierSimulator(seed=2027, start=now)
    earlier.start()
    today.start()
    try:
        for serial, (stage, sku, price) in enumerate(STAGES, start=1):
            order = _delivered_order(customer, serial, sku, price, now)
            asked_at = now - timedelta(hours=40 if stage != "booked" else 5)
            kind = "exchange" if stage == "exchanged" else "return_refund"
            case = after_sales.request_after_sale(order, kind, [{"sku": sku, "quantity": 1, "reason": "damaged"}],
                                                  _customer_actor(order), now=asked_at)
            after_sales.transition(case, "approved", CS, reason="请将商品寄回，我们收到后尽快退款。",
                                   now=asked_at + timedelta(hours=1))
            seeded.requests += 1
            simulator, booked_at = (today, now) if stage == "booked" else (earlier, now - timedelta(hours=30))
            with _client(simulator) as client:
                slot = after_sales.pickup_slots(case, now=booked_at)[0]
                booking = after_sales.book_pickup(case, slot.key, _customer_actor(order), client=client,
                                                  now=booked_at)
            return_pickups.apply_callback(simulator.pickup_callback_form(booking.task_id), SALT)
            seeded.pickups += 1
            if stage == "booked":
                continue
            if stage == "coming_back":
                _carry_back(simulator, booking, now - timedelta(hours=4), 2, now)
                continue
            delivered_hours_ago = 6 if stage == "inspected" else 20
            _carry_back(simulator, booking, now - timedelta(hours=delivered_hours_ago + 5), 5, now)
            case = after_sales.get_after_sale(case.id)
            after_sales.transition(case, "inspected", FLOOR, inspection=[{"sku": sku, "passed": True}],
                                   now=now - timedelta(hours=delivered_hours_ago - 2))
            if stage == "refunded":
                after_sales.transition(case, "refunded", CS, now=now - timedelta(hours=delivered_hours_ago - 6))
            if stage == "exchanged":
                after_sales.transition(case, "replaced", CS, now=now - timedelta(hours=delivered_hours_ago - 6))
                _ship(after_sales.get_after_sale(case.id).replacement, today)
                seeded.replacements += 1
    finally:
        earlier.stop()
        today.stop()
    db.session.flush()
    return seeded


def _ship(order, simulator) -> None:
    """The replacement out of the warehouse: its parcel picked (the demo's shortcut, as for its other shipped orders:
    no pick list), then packed with an e-waybill the carrier simulator issues and loaded, through the scan services
    with a handheld of that warehouse, as the floor does."""
    from devtools.simulators.carriers import DEFAULT_CREDENTIALS
    from shared.carriers.waybills import WaybillClient
    from shared.floor_lifecycle import SHIPMENT
    from shared.services import devices, scans

    if order is None or order.status != "allocated":
        return  # no warehouse held it all: the demo floor allocates and ships it once it runs
    shipment = db.session.execute(select(Shipment).where(Shipment.order_id == order.id)).scalar_one()
    device, _token = devices.register_device("PDA-RET-DEMO", shipment.warehouse.code, SYSTEM)
    orders.transition_order(order, "picking", SYSTEM, reason="demo exchange")
    for step in ("waved", "picking", "picked"):
        SHIPMENT.move(shipment, step)
    db.session.flush()
    credentials = DEFAULT_CREDENTIALS["kdniao"]
    with WaybillClient(simulator.base_url, credentials["business_id"], credentials["app_key"]) as client:
        packed = scans.pack(device, {"order": order.order_no, "box": "BOX-S"}, client, FLOOR)
    scans.load(device, {"parcel": packed.waybill_no, "truck": f"{shipment.warehouse.code}-TRUCK-1"}, FLOOR)


def _email_index(email: str) -> str:
    from shared.security import crypto

    return crypto.blind_index("email", email)
