"""Handheld scans: devices, pick (a unit out of a lot's bin), pack (with a waybill, falling back to a backup
carrier) and load. Every scan is recorded; the ledger records the shipment when the parcel is loaded."""
from dataclasses import replace
from datetime import date

from sqlalchemy import select, update

from shared.actors import SYSTEM, Actor
from shared.extensions import db
from shared.lifecycle import OrderStatus
from shared.models import (
    CarrierAttempt,
    Device,
    Lot,
    PickTask,
    ScanEvent,
    Shipment,
)
from shared.services import audit
from shared.services import orders as order_service
from shared.services import validation as check
from shared.services.allocation import open_parcels, lines_of
# Device tokens live in shared.services.devices (lifetime, revocation); callers keep using these names.
from shared.services.devices import device_for_token, register_device  # noqa: F401
from shared.services.errors import Conflict, NotFound, ValidationFailed
from shared.services.lots import merchant_today
from shared.timekeeping import utc_now

S = OrderStatus


class ScanRefused(Conflict):
    code = "scan_refused"


# ------------------------------------------------------------------------------------------ allocation

def record_scan(device: Device, kind: str, payload: dict, accepted: bool, message: str,
                shipment_id: int | None = None) -> ScanEvent:
    event = ScanEvent(device_id=device.id, operator=str(payload.get("operator") or "")[:60] or "unknown",
                      station=(str(payload.get("station"))[:40] if payload.get("station") else None), kind=kind,
                      shipment_id=shipment_id, payload=payload, accepted=accepted, message=message[:300],
                      occurred_at=utc_now())
    db.session.add(event)
    return event


def _refuse(message: str, field: str | None = None):
    raise ScanRefused(message, field=field)


def pick(device: Device, payload: dict, today: date | None = None) -> PickTask:
    """Pick `quantity` of the task's SKU and batch from its bin; wrong bin, SKU, batch or too many are refused."""
    today = today or merchant_today()
    task_id = payload.get("task")
    task = db.session.execute(select(PickTask).where(PickTask.id == task_id).with_for_update(of=PickTask)
                              ).scalar_one_or_none() if isinstance(task_id, int) and not isinstance(task_id, bool) \
        else None
    if task is None:
        _refuse(f"no pick task {task_id!r}", "task")
    shipment = db.session.get(Shipment, task.shipment_id)
    if shipment.warehouse_id != device.warehouse_id:
        _refuse("this task belongs to another warehouse", "task")
    if task.status == "done":
        _refuse(f"task {task.id} is already picked", "task")
    if payload.get("bin") != task.bin.code:
        _refuse(f"wrong bin: go to {task.bin.code}", "bin")
    if payload.get("sku") != task.sku.code:
        _refuse(f"wrong SKU: this task takes {task.sku.code}", "sku")
    if payload.get("lot") != task.lot.lot_no:
        _refuse(f"wrong batch: take batch {task.lot.lot_no}", "lot")
    if task.lot.expires_on is not None and task.lot.expires_on <= today:
        _refuse(f"batch {task.lot.lot_no} has expired: set it aside and call the supervisor", "lot")
    quantity = payload.get("quantity")
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity <= 0:
        _refuse("quantity must be a positive whole number", "quantity")
    if quantity > task.lot.quantity:
        _refuse(f"the bin holds only {task.lot.quantity} of batch {task.lot.lot_no}", "quantity")
    if task.picked + quantity > task.quantity:
        _refuse(f"over-pick: the task needs {task.quantity - task.picked} more", "quantity")
    now = utc_now()
    # One atomic update of the lot: two handhelds picking from the same bin never lose each other's units.
    taken = db.session.execute(
        update(Lot).where(Lot.id == task.lot_id, Lot.quantity >= quantity, Lot.allocated >= quantity)
        .values(quantity=Lot.quantity - quantity, allocated=Lot.allocated - quantity)
        .execution_options(synchronize_session=False)).rowcount
    if taken != 1:
        _refuse(f"the bin no longer holds {quantity} of batch {task.lot.lot_no}", "quantity")
    db.session.expire(task.lot, ["quantity", "allocated"])
    task.picked += quantity
    task.device_id, task.started_at = device.id, task.started_at or now
    task.status = "done" if task.picked == task.quantity else "picking"
    task.done_at = now if task.status == "done" else None
    if shipment.picked_at is None and not db.session.execute(select(PickTask.id).where(
            PickTask.shipment_id == shipment.id, PickTask.status != "done", PickTask.id != task.id)).first() \
            and task.status == "done":
        shipment.status, shipment.picked_at = "picked", now
    return task


def pack(device: Device, payload: dict, carriers) -> Shipment:
    """Pack a fully picked order into a box and get its waybill (the warehouse's carriers in order)."""
    order_no = payload.get("order")
    try:
        order = order_service.get_order(str(order_no or ""), for_update=True)
    except (NotFound, ValidationFailed):
        _refuse(f"no order {order_no!r}", "order")
    shipment = db.session.execute(select(Shipment).where(
        Shipment.order_id == order.id, Shipment.warehouse_id == device.warehouse_id,
        Shipment.status != "cancelled")).scalar_one_or_none()
    if shipment is None:
        _refuse(f"{order.order_no} is not for this warehouse", "order")
    if shipment.status in ("packed", "shipped", "delivered"):
        _refuse(f"{order.order_no} is packed already (box {shipment.box_code})", "order")
    if shipment.status != "picked":
        _refuse(f"{order.order_no} is not fully picked yet", "order")
    box = check.text(payload.get("box"), "box", 40)
    request_waybill(shipment, carriers)
    shipment.status, shipment.box_code, shipment.packed_at = "packed", box, utc_now()
    if all(parcel.status in ("packed", "shipped", "delivered") for parcel in open_parcels(order.id)):
        order_service.transition_order(order, S.PACKED, SYSTEM)  # a split order: when its last parcel is packed
    return shipment


def request_waybill(shipment: Shipment, carriers) -> None:
    """Ask the warehouse's carriers in order; a refusal is logged and the next carrier is asked."""
    from shared.carriers.waybills import CarrierRefused, CarrierUnavailable, WaybillRequest

    order, warehouse = shipment.order, shipment.warehouse
    codes = [c.strip() for c in (warehouse.carriers or "SF").split(",") if c.strip()]
    # The e-waybill API answers the same order code with the same waybill (a retry is safe); each parcel of a
    # split order is an order of its own there.
    order_code = order.order_no if shipment.line_ids is None else f"{order.order_no}-{shipment.id}"
    request = WaybillRequest(
        order_code=order_code, carrier_code=codes[0],
        sender={"Name": warehouse.name, "Mobile": "4000000000", "ProvinceName": warehouse.province,
                "CityName": warehouse.city, "ExpAreaName": warehouse.city, "Address": warehouse.name},
        receiver={"Name": order.receiver_name, "Mobile": order.receiver_phone, "ProvinceName": order.province,
                  "CityName": order.city, "ExpAreaName": order.district, "Address": order.street},
        goods=[(line.sku.name, line.quantity) for line in lines_of(shipment)])
    problems = []
    for code in codes:
        try:
            waybill = carriers.request(replace(request, carrier_code=code))
        except (CarrierRefused, CarrierUnavailable) as error:
            outcome = "refused" if isinstance(error, CarrierRefused) else "unavailable"
            db.session.add(CarrierAttempt(shipment_id=shipment.id, carrier_code=code, outcome=outcome,
                                          message=str(error)[:300], occurred_at=utc_now()))
            problems.append(f"{code}: {error}")
            continue
        db.session.add(CarrierAttempt(shipment_id=shipment.id, carrier_code=code, outcome="issued",
                                      message=waybill.waybill_no, occurred_at=utc_now()))
        shipment.carrier_code, shipment.waybill_no = code, waybill.waybill_no
        shipment.sort_code, shipment.label_html = waybill.sort_code, waybill.label_html
        if code != codes[0]:
            audit.record(SYSTEM, "shipment.backup_carrier", "order", order.order_no,
                         after={"carrier": code, "refused": problems})
        return
    raise ScanRefused(f"no carrier issued a waybill: {'; '.join(problems)}", field="order", code="no_waybill")


def load(device: Device, payload: dict, actor: Actor = SYSTEM) -> Shipment:
    """Load a packed parcel onto a truck: the order ships and its stock leaves the ledger."""
    parcel = str(payload.get("parcel") or "")
    shipment = db.session.execute(select(Shipment).where(Shipment.waybill_no == parcel)
                                  .with_for_update(of=Shipment)).scalar_one_or_none()
    if shipment is None or shipment.warehouse_id != device.warehouse_id:
        _refuse(f"no parcel {parcel!r} in this warehouse", "parcel")
    if shipment.status != "packed":
        _refuse(f"parcel {parcel} is {shipment.status}, not packed", "parcel")
    shipment.truck_code = check.text(payload.get("truck"), "truck", 40)
    shipment.status, shipment.shipped_at = "shipped", utc_now()
    shipment.tracking_step, shipment.last_event_at = "awaiting_pickup", shipment.shipped_at
    if all(parcel.status in ("shipped", "delivered") for parcel in open_parcels(shipment.order_id)) \
            and shipment.order.status == S.PACKED:
        order_service.transition_order(shipment.order, S.SHIPPED, actor)  # the stock leaves with the last parcel
    return shipment


