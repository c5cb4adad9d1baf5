"""The scan API for handheld devices: /scan/v1, JSON, `Authorization: Bearer <device token>`.

Every scan is recorded with operator, device, station and time, accepted or refused; a refusal answers 409
with the reason and changes nothing else.
"""
from flask import Blueprint, current_app, g, jsonify, request
from sqlalchemy import select

from portal.access import register_public
from shared.extensions import csrf, db
from shared.models import PickTask, Shipment
from shared.services import scans
from shared.services.errors import ServiceError
from shared.services.validation import check_types

bp = Blueprint("scan", __name__, url_prefix="/scan/v1")
KINDS = ("pick", "pack", "load")


def carriers():
    """The e-waybill client from configuration (the carrier simulator in the demo and the tests)."""
    from shared.carriers.waybills import WaybillClient

    config = current_app.config
    return WaybillClient(config["CARRIER_API_URL"], config["CARRIER_BUSINESS_ID"], config["CARRIER_APP_KEY"])


@bp.before_request
def _device():
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    try:
        g.device = scans.device_for_token(token.strip()) if scheme.lower() == "bearer" else None
    except ServiceError:
        g.device = None
    if g.device is None:
        db.session.rollback()
        return jsonify({"error": {"code": "device_refused",
                                  "message": "send Authorization: Bearer <device token> of an active device"}}), 401
    db.session.commit()  # when the token was last used (written at most every few minutes)


# Every field a scan may carry and its type: checked before use, and only these are kept in the scan record.
SCAN_BODY = {"operator": "text", "station": "text", "task": "id", "bin": "text", "sku": "text", "lot": "text",
             "quantity": "integer", "order": "text", "box": "text", "parcel": "text", "truck": "text"}


def _payload() -> dict:
    try:
        body = request.get_json(silent=True)
    except RecursionError:  # nested too deeply for the parser: as unreadable as any other non-JSON body
        body = None
    if not isinstance(body, dict):
        return {}
    check_types(body, SCAN_BODY)
    return {name: body[name] for name in SCAN_BODY if name in body}


@bp.post("/<kind>")
@csrf.exempt
def scan(kind: str):
    if kind not in KINDS:
        return jsonify({"error": {"code": "unknown_scan", "message": "scan pick, pack or load"}}), 404
    payload = _payload()
    if not payload.get("operator"):
        return jsonify({"error": {"code": "required", "message": "operator is required", "field": "operator"}}), 422
    actor = scans.scan_actor(g.device, payload, request.remote_addr)
    try:
        if kind == "pack":
            plan = scans.plan_pack(g.device, payload)
            # End the read transaction before the carrier is asked: no row (and, on SQLite, no write lock) is held
            # during the HTTP call; apply_pack locks the order and checks again.
            db.session.commit()
            with carriers() as client:
                if current_app.config.get("CARRIER_LOAD_CHECK"):
                    from shared.services.return_pickups import pickup_client

                    with pickup_client() as capacity:  # the 运力 query: a carrier over its load is skipped
                        answers = scans.ask_carriers(plan, client, capacity)
                else:
                    answers = scans.ask_carriers(plan, client)
        with db.session.begin_nested():
            if kind == "pick":
                task = scans.pick(g.device, payload)
                shipment_id, answer = task.shipment_id, {"task": task.id, "picked": task.picked,
                                                         "remaining": task.quantity - task.picked,
                                                         "status": task.status}
            elif kind == "pack":
                shipment = scans.apply_pack(g.device, plan, answers, actor)
                shipment_id, answer = shipment.id, {"order": shipment.order.order_no, "carrier": shipment.carrier_code,
                                                    "waybill": shipment.waybill_no, "sort_code": shipment.sort_code}
            else:
                shipment = scans.load(g.device, payload, actor)
                shipment_id, answer = shipment.id, {"parcel": shipment.waybill_no, "truck": shipment.truck_code,
                                                    "order": shipment.order.order_no, "status": shipment.status}
    except ServiceError as refused:
        scans.record_scan(g.device, kind, payload, False, refused.message, refused=refused)
        db.session.commit()
        return jsonify(refused.as_json()), refused.status
    scans.record_scan(g.device, kind, payload, True, "ok", shipment_id)
    db.session.commit()
    return jsonify(answer), 200


@bp.get("/tasks")
def tasks():
    """Open pick tasks of the device's warehouse, in walking order (what the handheld shows next)."""
    rows = db.session.execute(
        select(PickTask).join(Shipment, Shipment.id == PickTask.shipment_id)
        .where(Shipment.warehouse_id == g.device.warehouse_id, PickTask.status != "done")
        .order_by(PickTask.walk_order, PickTask.bin_id, PickTask.id).limit(200)).scalars().all()
    return jsonify({"items": [{"task": t.id, "bin": t.bin.code, "sku": t.sku.code, "lot": t.lot.lot_no,
                               "quantity": t.quantity - t.picked, "shipment": t.shipment_id} for t in rows]})


register_public("scan.scan")  # device tokens, not staff sessions
register_public("scan.tasks")
