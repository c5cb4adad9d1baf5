"""Inbound channel webhooks: POST /hooks/<channel_code>, verified with the platform's own signature.

Order of checks: the channel exists and takes webhooks, the body is within the size limit, it is sent as
JSON, and the signature over the raw bytes is right. A request that fails any of them is refused and logged
(without its body) and stores nothing. A signed payload is stored raw in the inbox before anything else,
then processed by a job; a signed payload that is not valid JSON is kept (nothing received is lost) and
answered 400 so the platform sends it again.

The platform's topic header (`X-Shopify-Topic`, `X-WC-Webhook-Topic`) is stored with the body: processing reads the
body as the topic says (an order, a deletion, a refund, or a topic that changes no order and is only recorded).
WooCommerce's test delivery when a webhook is saved (the unsigned form body `webhook_id=N`) is answered 200 and
logged, and stores nothing: it carries nothing and proves nothing.

Carrier tracking pushes (/hooks/tracking/...) go through an inbox of their own the same way: verified, stored raw,
answered, then processed in batches by a job (shared/services/tracking.py).
"""
import logging

from flask import Blueprint, current_app, jsonify, request
from sqlalchemy import select

from portal.access import register_public
from shared.channels import adapter_for, takes_webhooks
from shared.channels.canonical import PayloadProblem
from shared.channels.signing import verify_body_hmac
from shared.channels.topics import DELIVERY_HEADERS, IGNORED, TOPIC_HEADERS, UNKNOWN, is_woocommerce_ping, topic_meaning
from shared.extensions import csrf, db
from shared.models import Channel
from shared.services import inbox, knocking
from shared.services.channel_settings import connection_for

bp = Blueprint("hooks", __name__)
log = logging.getLogger("orderloom.hooks")


def _refuse(channel_code: str, status: int, reason: str, message: str, size: int = 0):
    """Refuse, count the refusal per hour and address, and keep its row while under the limits."""
    db.session.rollback()
    kept = knocking.record_refusal(channel_code, reason, message, request.remote_addr, size or 0)
    db.session.commit()
    if kept:  # past the limit the roll-up counts on, and the log stays quiet too
        log.warning("webhook refused channel=%s reason=%s ip=%s", channel_code[:40], reason, request.remote_addr)
    return jsonify({"error": {"code": reason, "message": message}}), status


@bp.before_request
def _too_many_refusals():
    """An address (or the whole site) that collected too many refusals this hour is answered 429 at once,
    before a body is read or a channel looked up."""
    scope = knocking.over_limit(request.remote_addr or "")
    if scope is not None:
        knocking.record_refusal(request.path.removeprefix("/hooks/")[:40], f"rate_limited_{scope}",
                                "too many refused requests", request.remote_addr, request.content_length or 0)
        db.session.commit()
        response = jsonify({"error": {"code": "rate_limited",
                                      "message": "too many refused requests from here; try again later"}})
        response.headers["Retry-After"] = "3600"
        return response, 429


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
    if is_woocommerce_ping(channel.kind, body) and not request.headers.get(TOPIC_HEADERS["woocommerce"]):
        log.info("webhook ping channel=%s %s ip=%s", channel.code, body.decode()[:40], request.remote_addr)
        return jsonify({"ping": True}), 200  # WooCommerce saves the webhook only when its ping gets exactly 200
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
    topic = (request.headers.get(TOPIC_HEADERS.get(channel.kind, "")) or "").strip() or None
    item_id = inbox.receive_one(channel, "webhook", body, request.content_type or "application/json", topic=topic,
                                delivery_id=request.headers.get(DELIVERY_HEADERS.get(channel.kind, "")))
    db.session.commit()
    try:
        inbox.kick(channel.id)  # one drain job takes a burst of webhooks in batches
    except Exception:  # noqa: BLE001  (stored and committed: the sweeper processes it; the platform must not resend)
        log.exception("webhook stored but not started channel=%s inbox_id=%s", channel.code, item_id)
        db.session.rollback()
    meaning = topic_meaning(channel.kind, topic)
    if meaning in (IGNORED, UNKNOWN):  # recorded, changes nothing: acknowledged as done (the body is not read)
        return jsonify({"received": item_id, "topic": topic, "ignored": True}), 200
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

def _tracking_push(source: str, verify):
    """Verify a tracking push and store it raw in the tracking inbox; a job processes it. Returns (refusal, None) or
    (None, the stored row id). Nothing is stored for a push that is unsigned, forged or too large."""
    from shared.carriers.tracking import TrackingPayloadError
    from shared.services import tracking

    secret = current_app.config["KUAIDI100_SALT" if source == "kuaidi100" else "TRACK17_KEY"]
    size = request.content_length or 0
    if not secret:  # an unsigned push proves nothing: refuse until the secret is configured
        return _refuse(source, 503, "not_configured", f"the {source} push secret is not configured", size), None
    limit = current_app.config["WEBHOOK_MAX_BYTES"]
    if size > limit:  # refused before the body is read
        return _refuse(source, 413, "too_large", f"the body is over {limit} bytes", size), None
    body = request.get_data(cache=True)
    if len(body) > limit:
        return _refuse(source, 413, "too_large", f"the body is over {limit} bytes", len(body)), None
    try:
        verify(body)
    except TrackingPayloadError as problem:
        return _refuse(source, 401 if problem.code == "bad_signature" else 400, problem.code, str(problem),
                       len(body)), None
    push_id = tracking.receive_push(source, body, request.content_type or "")
    db.session.commit()
    tracking.kick()  # one drain job takes a burst of pushes in batches
    return None, push_id


@bp.post("/hooks/tracking/kuaidi100")
@csrf.exempt
def kuaidi100():
    """Kuaidi100 subscription callback: form fields param and sign; answers in Kuaidi100's own shape once stored."""
    from shared.carriers.tracking import verify_kuaidi100_push

    refused, push_id = _tracking_push(
        "kuaidi100", lambda body: verify_kuaidi100_push(request.form.to_dict(), current_app.config["KUAIDI100_SALT"]))
    if refused is not None:
        return refused
    return jsonify({"result": True, "returnCode": "200", "message": "成功", "received": push_id})


@bp.post("/hooks/tracking/17track")
@csrf.exempt
def track17():
    """17TRACK webhook: JSON body, header `sign` = sha256(body + "/" + key); answered once stored."""
    from shared.carriers.tracking import verify_17track_push

    refused, push_id = _tracking_push(
        "17track", lambda body: verify_17track_push(body, request.headers.get("sign"), current_app.config["TRACK17_KEY"]))
    if refused is not None:
        return refused
    return jsonify({"code": 0, "received": push_id})


register_public("hooks.kuaidi100")  # verified by the carrier's signature
register_public("hooks.track17")


# --- payment notifications of the direct channels (WeChat Pay API v3, Alipay) ---------------------------------

def _payment_refusal(door: str, status: int, code: str, message: str, size: int, provider: str):
    """Refused and counted like any webhook (nothing stored); answered in the provider's own shape."""
    db.session.rollback()
    kept = knocking.record_refusal(door, code, message, request.remote_addr, size)
    db.session.commit()
    if kept:
        log.warning("payment notify refused door=%s reason=%s ip=%s", door, code, request.remote_addr)
    if provider == "alipay":
        return current_app.response_class("failure", status=status, mimetype="text/plain")
    return jsonify({"code": "FAIL", "message": message}), status


def _payment_notice(provider: str, channel_code: str, verify):
    """Look up the channel's account, check the size, verify, store raw, answer; a job applies it."""
    from shared.payments import PaymentMessageError
    from shared.services import payments

    door = f"pay-{provider}-{channel_code}"[:40]
    size = request.content_length or 0
    account = payments.account_for(channel_code, provider)
    if account is None:
        return _payment_refusal(door, 404, "unknown_channel", f"no {provider} account for {channel_code[:8]!r}",
                                size, provider)
    limit = current_app.config["WEBHOOK_MAX_BYTES"]
    if size > limit:
        return _payment_refusal(door, 413, "too_large", f"the body is over {limit} bytes", size, provider)
    body = request.get_data(cache=True)
    if len(body) > limit:
        return _payment_refusal(door, 413, "too_large", f"the body is over {limit} bytes", len(body), provider)
    try:
        verify(account, body)
    except PaymentMessageError as problem:
        return _payment_refusal(door, 401, problem.code, str(problem), len(body), provider)
    notice_id = payments.receive_notice(account, body, request.content_type or "")
    db.session.commit()
    try:
        payments.kick()
    except Exception:  # noqa: BLE001  (stored and committed: the sweeper applies it)
        log.exception("payment notice stored but not started id=%s", notice_id)
    if provider == "alipay":
        return current_app.response_class("success", status=200, mimetype="text/plain")
    return jsonify({"code": "SUCCESS", "message": "成功"}), 200


@bp.post("/hooks/pay/wechatpay/<channel_code>")
@csrf.exempt
def wechatpay_notify(channel_code: str):
    """WeChat Pay API v3 payment notification: signed headers over the raw JSON body; the resource is decrypted when
    applied. Answered 200 {"code": "SUCCESS"} once stored, 4xx {"code": "FAIL"} when refused (WeChat sends again)."""
    from shared.services import payments

    if request.mimetype != "application/json":
        return _payment_refusal(f"pay-wechatpay-{channel_code}"[:40], 415, "unsupported_media_type",
                                "send the notification as application/json", request.content_length or 0,
                                "wechatpay")
    return _payment_notice("wechatpay", channel_code,
                           lambda account, body: payments.verify_wechatpay(account, request.headers, body))


@bp.post("/hooks/pay/alipay/<channel_code>")
@csrf.exempt
def alipay_notify(channel_code: str):
    """Alipay asynchronous notification: form fields signed RSA2; answered `success` once stored, `failure` when
    refused (Alipay sends again)."""
    from shared.services import payments

    return _payment_notice("alipay", channel_code,
                           lambda account, body: payments.verify_alipay(account, request.form.to_dict()))


register_public("hooks.wechatpay_notify")  # verified by WeChat Pay's platform signature
register_public("hooks.alipay_notify")  # verified by Alipay's RSA2 signature


# --- the invoicing provider's pushes (诺诺-style callback of an issued or failed invoice) -----------------------

INVOICING_PROVIDERS = ("nuonuo",)  # the adapters of shared/finance/providers/ that push


@bp.post("/hooks/invoicing/<provider>")
@csrf.exempt
def invoicing_callback(provider: str):
    """The invoicing provider's push of one invoice's result (a queryInvoiceResult row as JSON, X-Nuonuo-Sign = the
    HMAC-SHA256 of the raw body with our app secret). Checked in order: a provider we use, the size, JSON, the
    signature; a refusal is counted (knocking) and changes nothing. A signed push is applied at once and answered
    {"code": "E0000"} (the provider sends again until it gets that); a repeat or late push is kept and changes
    nothing (answered E0000 with applied false, so the provider stops).

    Why no inbox table here (unlike payment notices): the push is about a part we created and sent ourselves, its
    truth stays with the provider and is asked for by our serial — the sweeper polls every part in flight every
    minute — so a push we could not apply loses nothing, it is at worst a minute late. Applying is one part's row
    (no order, stock or money moves), idempotent by construction (an issued part takes no further answer,
    services.invoices.apply_result), and the raw row is kept on the part (provider_answers, via "callback") in the
    same commit as its effect: stored and applied are one step, so there is nothing between them to lose. A push we
    cannot apply (unknown serial, unreadable) is refused 4xx with its reason and counted, and the provider keeps it.
    """
    from shared.services import invoices
    from shared.services.errors import ServiceError

    door = f"invoicing-{provider}"[:40]
    size = request.content_length or 0
    if provider not in INVOICING_PROVIDERS:
        return _invoicing_refusal(door, 404, "unknown_provider", f"no invoicing provider {provider[:20]!r}", size)
    limit = current_app.config["WEBHOOK_MAX_BYTES"]
    if size > limit:
        return _invoicing_refusal(door, 413, "too_large", f"the body is over {limit} bytes", size)
    body = request.get_data(cache=True)
    if len(body) > limit:
        return _invoicing_refusal(door, 413, "too_large", f"the body is over {limit} bytes", len(body))
    if request.mimetype != "application/json":
        return _invoicing_refusal(door, 415, "unsupported_media_type", "send the push as application/json",
                                  len(body))
    try:
        applied = invoices.apply_callback(body, request.headers.get("X-Nuonuo-Sign"))  # verifies before it reads
    except ServiceError as refused:
        status = 401 if refused.code in ("missing_signature", "bad_signature") else refused.status
        return _invoicing_refusal(door, status, refused.code, str(refused), len(body))
    db.session.commit()
    return jsonify({"code": "E0000", "describe": "成功", "applied": applied}), 200


def _invoicing_refusal(door: str, status: int, code: str, message: str, size: int):
    """Refused and counted like any webhook; answered in the provider's shape (a code that is not E0000)."""
    db.session.rollback()
    kept = knocking.record_refusal(door, code, message, request.remote_addr, size)
    db.session.commit()
    if kept:
        log.warning("invoicing push refused door=%s reason=%s ip=%s", door, code, request.remote_addr)
    return jsonify({"code": "E9999", "describe": message, "error": {"code": code, "message": message}}), status


register_public("hooks.invoicing_callback")  # verified by the provider's signature


# --- door pickups of returns: the carrier's order callbacks (Kuaidi100 商家寄件) -------------------------------------

@bp.post("/hooks/pickups/kuaidi100")
@csrf.exempt
def pickup_callback():
    """Kuaidi100 商家寄件 order callback (form taskId, param, sign = md5(param + salt)): the courier assigned,
    collected, cancelled. Applied at once and answered in Kuaidi100's shape; a refusal is counted and changes
    nothing. No inbox: the order is ours, the carrier keeps its truth and sends again until answered, and applying
    is one booking's row, idempotent (shared/services/return_pickups.py apply_callback)."""
    from shared.carriers.tracking import TrackingPayloadError
    from shared.services import return_pickups
    from shared.services.errors import ServiceError

    door, size = "pickups-kuaidi100", request.content_length or 0
    if not current_app.config.get("PICKUP_SALT"):
        return _refuse(door, 503, "not_configured", "the pickup callback salt is not configured", size)
    limit = current_app.config["WEBHOOK_MAX_BYTES"]
    if size > limit:
        return _refuse(door, 413, "too_large", f"the body is over {limit} bytes", size)
    try:
        return_pickups.apply_callback(request.form.to_dict())
    except TrackingPayloadError as problem:
        return _refuse(door, 401 if problem.code == "bad_signature" else 400, problem.code, str(problem), size)
    except ServiceError as refused:
        return _refuse(door, refused.status, refused.code, str(refused), size)
    db.session.commit()
    return jsonify({"result": True, "returnCode": "200", "message": "成功"})


register_public("hooks.pickup_callback")  # verified by the carrier's signature
