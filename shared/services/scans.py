"""Handheld scans: devices, pick (a unit out of a lot's bin), pack (with a waybill, falling back to a backup
carrier) and load. Every scan is recorded; the ledger records the shipment when the parcel is loaded."""
import logging
from dataclasses import dataclass, replace
from datetime import date

from sqlalchemy import select, update

from shared.actors import SYSTEM, Actor
from shared.extensions import db
from shared.floor_lifecycle import PICK_TASK, SHIPMENT
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
from shared.services import carrier_scores
from shared.services import orders as order_service
from shared.services import validation as check
from shared.services.allocation import open_parcels, lines_of
# Device tokens live in shared.services.devices (lifetime, revocation); callers keep using these names.
from shared.services.devices import device_for_token, register_device  # noqa: F401
from shared.services.errors import Conflict, NotFound, ValidationFailed
from shared.services.lots import merchant_today
from shared.services.validation import N_
from shared.timekeeping import utc_now

S = OrderStatus
log = logging.getLogger("orderloom.scans")


class ScanRefused(Conflict):
    code = "scan_refused"


# ------------------------------------------------------------------------------------------ allocation

def record_scan(device: Device, kind: str, payload: dict, accepted: bool, message: str,
                shipment_id: int | None = None, refused: Exception | None = None) -> ScanEvent:
    """Keep a scan; a refusal keeps its code and parameters too (REFUSALS), so the scan log reads it in the
    viewer's language."""
    event = ScanEvent(device_id=device.id, operator=str(payload.get("operator") or "")[:60] or "unknown",
                      station=(str(payload.get("station"))[:40] if payload.get("station") else None), kind=kind,
                      shipment_id=shipment_id, payload=payload, accepted=accepted, message=message[:300],
                      refusal=getattr(refused, "refusal", None), refusal_params=getattr(refused, "params", None),
                      occurred_at=utc_now())
    db.session.add(event)
    return event


# Why a scan is refused: the handheld's answer keeps these English texts (as before); the scan log shows them in the
# reader's language from the code and parameters the scan keeps (shared.history.scan_words).
REFUSALS = {
    "no_task": N_("no pick task %(task)s"),
    "task_elsewhere": N_("this task belongs to another warehouse"),
    "task_done": N_("task %(task)s is already picked"),
    "wrong_bin": N_("wrong bin: go to %(bin)s"),
    "wrong_sku": N_("wrong SKU: this task takes %(sku)s"),
    "wrong_lot": N_("wrong batch: take batch %(lot)s"),
    "lot_expired": N_("batch %(lot)s has expired: set it aside and call the supervisor"),
    "bad_quantity": N_("quantity must be a positive whole number"),
    "bin_short": N_("the bin holds only %(quantity)s of batch %(lot)s"),
    "over_pick": N_("over-pick: the task needs %(quantity)s more"),
    "bin_changed": N_("the bin no longer holds %(quantity)s of batch %(lot)s"),
    "order_elsewhere": N_("%(order)s is not for this warehouse"),
    "packed_already": N_("%(order)s is packed already (box %(box)s)"),
    "not_picked": N_("%(order)s is not fully picked yet"),
    "no_order": N_("no order %(order)s"),
    "order_changed": N_("%(order)s changed while the carrier was asked: scan it again"),
    "no_parcel": N_("no parcel %(parcel)s in this warehouse"),
    "parcel_not_packed": N_("parcel %(parcel)s is %(status)s, not packed"),
    "no_waybill": N_("no carrier issued a waybill: %(problems)s"),
}


def _refuse(refusal: str, field: str | None = None, code: str | None = None, **params):
    params = {name: str(value) for name, value in params.items()}
    error = ScanRefused(REFUSALS[refusal] % params if params else REFUSALS[refusal], field=field, code=code)
    error.refusal, error.params = refusal, params or None
    raise error


def pick(device: Device, payload: dict, today: date | None = None) -> PickTask:
    """Pick `quantity` of the task's SKU and batch from its bin; wrong bin, SKU, batch or too many are refused."""
    today = today or merchant_today()
    task_id = payload.get("task")
    task = db.session.execute(select(PickTask).where(PickTask.id == task_id).with_for_update(of=PickTask)
                              ).scalar_one_or_none() if isinstance(task_id, int) and not isinstance(task_id, bool) \
        else None
    if task is None:
        _refuse("no_task", "task", task=repr(task_id))
    shipment = db.session.get(Shipment, task.shipment_id)
    if shipment.warehouse_id != device.warehouse_id:
        _refuse("task_elsewhere", "task")
    if task.status == "done":
        _refuse("task_done", "task", task=task.id)
    if payload.get("bin") != task.bin.code:
        _refuse("wrong_bin", "bin", bin=task.bin.code)
    if payload.get("sku") != task.sku.code:
        _refuse("wrong_sku", "sku", sku=task.sku.code)
    if payload.get("lot") != task.lot.lot_no:
        _refuse("wrong_lot", "lot", lot=task.lot.lot_no)
    if task.lot.expires_on is not None and task.lot.expires_on <= today:
        _refuse("lot_expired", "lot", lot=task.lot.lot_no)
    quantity = payload.get("quantity")
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity <= 0:
        _refuse("bad_quantity", "quantity")
    if quantity > task.lot.quantity:
        _refuse("bin_short", "quantity", quantity=task.lot.quantity, lot=task.lot.lot_no)
    if task.picked + quantity > task.quantity:
        _refuse("over_pick", "quantity", quantity=task.quantity - task.picked)
    now = utc_now()
    # One atomic update of the lot: two handhelds picking from the same bin never lose each other's units.
    taken = db.session.execute(
        update(Lot).where(Lot.id == task.lot_id, Lot.quantity >= quantity, Lot.allocated >= quantity)
        .values(quantity=Lot.quantity - quantity, allocated=Lot.allocated - quantity)
        .execution_options(synchronize_session=False)).rowcount
    if taken != 1:
        _refuse("bin_changed", "quantity", quantity=quantity, lot=task.lot.lot_no)
    db.session.expire(task.lot, ["quantity", "allocated"])
    task.picked += quantity
    task.device_id, task.started_at = device.id, task.started_at or now
    PICK_TASK.move(task, "done" if task.picked == task.quantity else "picking")
    task.done_at = now if task.status == "done" else None
    if shipment.picked_at is None and not db.session.execute(select(PickTask.id).where(
            PickTask.shipment_id == shipment.id, PickTask.status != "done", PickTask.id != task.id)).first() \
            and task.status == "done":
        SHIPMENT.move(shipment, "picked")
        shipment.picked_at = now
    return task


def scan_actor(device: Device, payload: dict, ip: str | None = None) -> Actor:
    """Who a scan is done by: the operator named on the handheld, at that device (warehouse role)."""
    operator = str(payload.get("operator") or "")[:50].strip() or "unknown"
    return Actor(id=None, label=f"{operator}@{device.name}", role="warehouse", ip=ip)


@dataclass(frozen=True)
class PackPlan:
    """What packing needs from the database before the carrier is asked; no row is locked while it is held."""

    shipment_id: int
    order_no: str
    box: str
    carriers: tuple[str, ...]  # first choice, then the backups
    request: object  # a shared.carriers.waybills.WaybillRequest
    platform_client: object | None = None  # the platform's own e-waybill, for a platform-encrypted receiver
    load_threshold: float = 1.0  # a carrier whose reported load is at or over this is skipped for the next one
    send_address: str = ""  # where the parcel is sent from, as the carrier's capacity query takes it


@dataclass(frozen=True)
class CarrierAnswer:
    carrier_code: str
    outcome: str  # issued, refused, unavailable
    message: str
    waybill: object = None  # a shared.carriers.waybills.Waybill when issued


def _packable(device: Device, order) -> Shipment:
    shipment = db.session.execute(select(Shipment).where(
        Shipment.order_id == order.id, Shipment.warehouse_id == device.warehouse_id, Shipment.status != "cancelled")
        .execution_options(populate_existing=True)).scalar_one_or_none()
    if shipment is None:
        _refuse("order_elsewhere", "order", order=order.order_no)
    if shipment.status in ("packed", "shipped", "delivered"):
        _refuse("packed_already", "order", order=order.order_no, box=shipment.box_code)
    if shipment.status != "picked":
        _refuse("not_picked", "order", order=order.order_no)
    return shipment


def plan_pack(device: Device, payload: dict) -> PackPlan:
    """Check that the order may be packed here and build its waybill request; reads only, locks nothing."""
    order_no = payload.get("order")
    try:
        order = order_service.get_order(str(order_no or ""))
    except (NotFound, ValidationFailed):
        _refuse("no_order", "order", order=repr(order_no))
    shipment = _packable(device, order)
    box = check.text(payload.get("box"), "box", 40)
    codes, request = waybill_request(shipment)
    platform_client = None
    if order.platform_protected:  # ciphertext for the platform's e-waybill; else decrypted by the platform, logged
        request, platform_client = _protected_request(order, request, None)
    warehouse = shipment.warehouse
    return PackPlan(shipment_id=shipment.id, order_no=order.order_no, box=box, carriers=codes, request=request,
                    platform_client=platform_client, load_threshold=float(carrier_scores.rules().load_threshold),
                    send_address=f"{warehouse.province}{warehouse.city}{warehouse.name}")


def ask_carriers(plan: PackPlan, carriers, capacity=None) -> list[CarrierAnswer]:
    """The HTTP calls to the e-waybill API, first choice first, until one issues: no database access here, so
    the caller runs this outside any transaction (a slow carrier holds no lock).

    With `capacity` (a client with `carrier_loads(send_address)`, the Kuaidi100 运力 query), a carrier whose reported
    load is at or over the plan's threshold is skipped for the next one (answer `skipped`), unless every carrier is
    over it (then they are asked in order as usual); a capacity query that fails skips nobody."""
    from shared.carriers.pickups import PickupRefused, PickupUnavailable
    from shared.carriers.waybills import CarrierRefused, CarrierUnavailable

    answers = []
    order = plan.carriers
    if capacity is not None and len(order) > 1:
        try:
            loads = capacity.carrier_loads(plan.send_address)
        except (PickupRefused, PickupUnavailable) as error:
            log.warning("carrier_load=unknown order=%s reason=%s", plan.order_no, str(error)[:200])
            loads = {}
        full = carrier_scores.over_load({code: loads[code] for code in order if code in loads}, plan.load_threshold)
        if full and set(order) - full:
            for code in order:
                if code in full:
                    answers.append(CarrierAnswer(code, "skipped", f"load {loads[code]:.2f} ≥ {plan.load_threshold:.2f}"))
                    log.warning("carrier_load=skipped order=%s carrier=%s load=%.2f threshold=%.2f", plan.order_no,
                                code, loads[code], plan.load_threshold)
            order = tuple(code for code in order if code not in full)
    carriers = plan.platform_client or carriers
    for code in order:
        try:
            waybill = carriers.request(replace(plan.request, carrier_code=code))
        except (CarrierRefused, CarrierUnavailable) as error:
            outcome = "refused" if isinstance(error, CarrierRefused) else "unavailable"
            answers.append(CarrierAnswer(code, outcome, str(error)[:300]))
            continue
        answers.append(CarrierAnswer(code, "issued", waybill.waybill_no, waybill))
        break
    return answers


def apply_pack(device: Device, plan: PackPlan, answers: list[CarrierAnswer], actor: Actor) -> Shipment:
    """Lock the order, check again that nobody packed it meanwhile, and record the carriers' answers."""
    order = order_service.get_order(plan.order_no, for_update=True)
    shipment = _packable(device, order)
    if shipment.id != plan.shipment_id:
        _refuse("order_changed", "order", order=order.order_no)
    record_waybill(shipment, answers, actor)
    SHIPMENT.move(shipment, "packed")
    shipment.box_code, shipment.packed_at = plan.box, utc_now()
    if all(parcel.status in ("packed", "shipped", "delivered") for parcel in open_parcels(order.id)):
        order_service.transition_order(order, S.PACKED, actor)  # a split order: when its last parcel is packed
    return shipment


def pack(device: Device, payload: dict, carriers, actor: Actor = SYSTEM) -> Shipment:
    """Pack a fully picked order into a box and get its waybill (the warehouse's carriers in order).

    The carrier is asked between reading and locking, so the order row is not locked during the HTTP call. A
    caller that holds a transaction open across the call (SQLite takes its write lock at BEGIN) should call
    plan_pack, end the transaction, ask_carriers, then apply_pack, as the scan API does."""
    plan = plan_pack(device, payload)
    return apply_pack(device, plan, ask_carriers(plan, carriers), actor)


def waybill_request(shipment: Shipment):
    """The warehouse's carriers (first choice, then backups) and the e-waybill request for this parcel."""
    from shared.carriers.waybills import WaybillRequest

    order, warehouse = shipment.order, shipment.warehouse
    # The carrier allocation chose first, then the warehouse's others as the scores rank them now.
    ranked = carrier_scores.carriers_for(warehouse, order.province)
    first = shipment.carrier_code if shipment.carrier_code in ranked else ranked[0]
    codes = (first, *(code for code in ranked if code != first))
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
    return codes, request


def record_waybill(shipment: Shipment, answers: list[CarrierAnswer], actor: Actor) -> None:
    """Log every carrier's answer; the issued waybill goes on the parcel, or the pack is refused."""
    problems, skipped = [], []
    for answer in answers:
        db.session.add(CarrierAttempt(shipment_id=shipment.id, carrier_code=answer.carrier_code,
                                      outcome=answer.outcome, message=answer.message, occurred_at=utc_now()))
        if answer.outcome == "skipped":
            skipped.append(answer)
            continue
        if answer.waybill is None:
            problems.append(f"{answer.carrier_code}: {answer.message}")
            continue
        waybill = answer.waybill
        shipment.carrier_code, shipment.waybill_no = answer.carrier_code, waybill.waybill_no
        shipment.sort_code, shipment.label_html = waybill.sort_code, waybill.label_html
        for skip in skipped:
            audit.record(actor, "shipment.carrier_load_skip", "order", shipment.order.order_no,
                         after={"skipped": skip.carrier_code, "carrier": answer.carrier_code, "load": skip.message})
        if problems:
            audit.record(actor, "shipment.backup_carrier", "order", shipment.order.order_no,
                         after={"carrier": answer.carrier_code, "refused": problems})
        return
    _refuse("no_waybill", "order", code="no_waybill",
            problems="; ".join(problems + [f"{a.carrier_code}: {a.message}" for a in skipped]))


def _protected_request(order, request, carriers):
    """A platform-encrypted receiver: the platform's own e-waybill takes the ciphertext (never decrypted);
    any other e-waybill service needs the plain receiver, decrypted by the platform for it (access-logged)."""
    from shared.carriers import platform_waybills
    from shared.services import platform_privacy
    from shared.services.polling import credentials

    kind = order.channel.kind
    ciphertext = platform_privacy.ciphertext_of(order)
    if kind in platform_privacy.CIPHERTEXT_WAYBILLS:
        connection = platform_privacy.connection_of(order)
        client = platform_waybills.PlatformWaybillClient(kind, credentials(connection))
        fields = {"kind": kind, "order_id": order.channel_order_id, "oaid": ciphertext.get("oaid")}
        return replace(request, receiver=platform_waybills.receiver_fields(kind, ciphertext, order),
                       platform=fields), client
    try:
        plain = platform_privacy.waybill_receiver(order, SYSTEM)
    except platform_privacy.DecryptFailed as failed:
        raise ScanRefused(failed.message, field="order", code=failed.code) from None
    return replace(request, receiver={**request.receiver, "Name": plain["receiver"], "Mobile": plain["phone"],
                                      "Address": plain["street"]}), carriers


def load(device: Device, payload: dict, actor: Actor = SYSTEM) -> Shipment:
    """Load a packed parcel onto a truck: the order ships and its stock leaves the ledger."""
    parcel = str(payload.get("parcel") or "")
    shipment = db.session.execute(select(Shipment).where(Shipment.waybill_no == parcel)
                                  .with_for_update(of=Shipment)).scalar_one_or_none()
    if shipment is None or shipment.warehouse_id != device.warehouse_id:
        _refuse("no_parcel", "parcel", parcel=repr(parcel))
    if shipment.status != "packed":
        _refuse("parcel_not_packed", "parcel", parcel=parcel, status=shipment.status)
    shipment.truck_code = check.text(payload.get("truck"), "truck", 40)
    SHIPMENT.move(shipment, "shipped")
    shipment.shipped_at = utc_now()
    shipment.tracking_step, shipment.last_event_at = "awaiting_pickup", shipment.shipped_at
    if all(parcel.status in ("shipped", "delivered") for parcel in open_parcels(shipment.order_id)) \
            and shipment.order.status == S.PACKED:
        order_service.transition_order(shipment.order, S.SHIPPED, actor)  # the stock leaves with the last parcel
    return shipment


