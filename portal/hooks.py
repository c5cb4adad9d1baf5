"""Inbound channel webhooks: POST /hooks/<channel_code>, verified with the platform's own signature.

Order of checks: the channel exists and takes webhooks, the body is within the size limit, it is sent as
JSON, and the signature over the raw bytes is right. A request that fails any of them is refused and logged
(without its body) and stores nothing. A signed payload is stored raw in the inbox before anything else,
then processed by a job; a signed payload that is not valid JSON is kept (nothing received is lost) and
answered 400 so the platform sends it again.
"""
import logging

from flask import Blueprint, current_app, jsonify, request
from sqlalchemy import select

from portal.access import register_public
from shared.channels import adapter_for, takes_webhooks
from shared.channels.canonical import PayloadProblem
from shared.channels.signing import verify_body_hmac
from shared.extensions import csrf, db
from shared.models import Channel, WebhookRejection
from shared.services import inbox
from shared.services.channel_settings import connection_for

bp = Blueprint("hooks", __name__)
log = logging.getLogger("orderloom.hooks")


def _refuse(channel_code: str, status: int, reason: str, message: str, size: int = 0):
    db.session.rollback()
    db.session.add(WebhookRejection(channel_code=channel_code[:40], reason=reason, detail=message[:300],
                                    remote_addr=(request.remote_addr or "")[:64], size=size))
    db.session.commit()
    log.warning("webhook refused channel=%s reason=%s ip=%s", channel_code[:40], reason, request.remote_addr)
    return jsonify({"error": {"code": reason, "message": message}}), status


@bp.post("/hooks/<channel_code>")
@csrf.exempt
def receive(channel_code: str):
    channel = None
    if len(channel_code) == 2:  # channel codes are two letters
        channel = db.session.execute(select(Channel).where(Channel.code == channel_code.upper(),
                                                           Channel.active)).scalar_one_or_none()
    if channel is None:
        return _refuse(channel_code, 404, "unknown_channel", f"no active channel {channel_code!r}")
    if not takes_webhooks(channel.kind):
        return _refuse(channel_code, 404, "no_webhooks", f"{channel.name} is synced by polling, not webhooks")
    limit = current_app.config["WEBHOOK_MAX_BYTES"]
    if (request.content_length or 0) > limit:
        return _refuse(channel_code, 413, "too_large", f"the body is over {limit} bytes", request.content_length)
    body = request.stream.read(limit + 1)
    if len(body) > limit:
        return _refuse(channel_code, 413, "too_large", f"the body is over {limit} bytes", len(body))
    if request.mimetype != "application/json":
        return _refuse(channel_code, 415, "unsupported_media_type", "send the order as application/json",
                       len(body))
    connection = connection_for(channel)
    adapter = adapter_for(channel.kind)
    signature = request.headers.get(adapter.webhook_signature_header)
    if connection is None or not connection.webhook_secret:
        return _refuse(channel_code, 401, "not_configured", f"{channel.name} has no webhook secret set", len(body))
    if not verify_body_hmac(connection.webhook_secret, body, signature):
        reason = "missing_signature" if not signature else "bad_signature"
        return _refuse(channel_code, 401, reason, f"the {adapter.webhook_signature_header} header does not match",
                       len(body))
    item_id = inbox.receive_one(channel, "webhook", body, request.content_type or "application/json")
    db.session.commit()
    try:
        inbox.kick(channel.id)  # one drain job takes a burst of webhooks in batches
    except Exception:  # noqa: BLE001  (stored and committed: the sweeper processes it; the platform must not resend)
        log.exception("webhook stored but not started channel=%s inbox_id=%s", channel.code, item_id)
        db.session.rollback()
    try:
        inbox.read_json(body)
    except PayloadProblem as problem:  # processing records why, and the item waits in the failed list
        if problem.code == "invalid_json":  # perhaps cut off on the way: asking for it again may help
            return jsonify({"error": {"code": "invalid_json", "message": "the body is not complete JSON; it was kept",
                                      "inbox_id": item_id}}), 400
        return jsonify({"received": item_id, "review": problem.code}), 202  # sending it again would not help
    return jsonify({"received": item_id}), 202


register_public("hooks.receive")  # authenticated by the platform's signature, not a staff session


# --- carrier tracking pushes --------------------------------------------------------------------------------

def _tracking(source: str, parse) -> tuple[object, dict | None]:
    """Verify and parse a tracking push, store its events; unknown parcels are refused, never guessed.

    Returns (a refusal response, None) or (None, the ingest outcome)."""
    from shared.carriers.tracking import TrackingPayloadError
    from shared.services import tracking

    secret = current_app.config["KUAIDI100_SALT" if source == "kuaidi100" else "TRACK17_KEY"]
    if not secret:  # an unsigned push proves nothing: refuse until the secret is configured
        return _refuse(source, 503, "not_configured", f"the {source} push secret is not configured",
                       request.content_length or 0), None
    try:
        events = parse()
    except TrackingPayloadError as problem:
        code = getattr(problem, "code", "invalid_payload")
        return _refuse(source, 401 if code == "bad_signature" else 400, code, str(problem),
                       request.content_length or 0), None
    outcome = tracking.ingest(events)
    db.session.commit()
    if outcome["unknown_numbers"]:
        log.warning("tracking push source=%s unknown=%s", source, ",".join(outcome["unknown_numbers"]))
    return None, outcome


def _all_unknown(outcome: dict) -> bool:
    """Every event of the push was for a parcel nobody here knows: refused as a whole."""
    return bool(outcome["unknown_numbers"]) and outcome["received_known"] == 0


@bp.post("/hooks/tracking/kuaidi100")
@csrf.exempt
def kuaidi100():
    """Kuaidi100 subscription callback: form fields param and sign; answers in Kuaidi100's own shape."""
    from shared.carriers.tracking import parse_kuaidi100_push

    refused, outcome = _tracking("kuaidi100", lambda: parse_kuaidi100_push(request.form.to_dict(),
                                                                           current_app.config["KUAIDI100_SALT"]))
    if refused is not None:
        return refused
    if _all_unknown(outcome):
        return jsonify({"result": False, "returnCode": "404",
                        "message": f"unknown tracking number {', '.join(outcome['unknown_numbers'])}"}), 404
    return jsonify({"result": True, "returnCode": "200", "message": "成功"})


@bp.post("/hooks/tracking/17track")
@csrf.exempt
def track17():
    """17TRACK webhook: JSON body, header `sign` = sha256(body + "/" + key)."""
    from shared.carriers.tracking import parse_17track_push

    body = request.get_data(cache=True)
    refused, outcome = _tracking("17track", lambda: parse_17track_push(body, request.headers.get("sign"),
                                                                       current_app.config["TRACK17_KEY"]))
    if refused is not None:
        return refused
    if _all_unknown(outcome):
        return jsonify({"error": {"code": "unknown_tracking_number",
                                  "message": f"unknown tracking number {', '.join(outcome['unknown_numbers'])}"}}), 404
    return jsonify({"code": 0, "stored": outcome["stored"]})


register_public("hooks.kuaidi100")  # verified by the carrier's signature
register_public("hooks.track17")
