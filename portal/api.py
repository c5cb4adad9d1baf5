"""JSON API /api/v1: bearer tokens, the same permission table as the pages, thin views over the services.

Each view parses the JSON body, calls one service, commits, and serializes. Refusals are ServiceErrors,
turned into `{"error": {"code", "message", "field"?}}` by the app's error handler (which rolls back).
"""
import json
from decimal import Decimal

from flask import Blueprint, current_app, g, jsonify, request, url_for
from flask_babel import lazy_gettext as _l
from werkzeug.datastructures import MultiDict

from portal.access import require_step_up, requires
from shared import paging
from shared.extensions import db
from shared.order_payloads import iso_time, order_payload, shipping_address
from shared.order_search import MAX_LIMIT, SearchRefused, parse_filters, personal_values_in_query, search_orders
from shared.security.masking import may_reveal
from shared.security.permissions import Visibility, visibility
from shared.models import ExceptionCase, StaffUser
from shared.services import (audit, catalog, channel_settings, exceptions, invoice_profiles, orders, platform_privacy,
                             second_factor, staff, stock)
from shared.services.errors import NotFound, ServiceError, ValidationFailed
from shared.services.validation import check_types, parameter, whole_number
from shared.services.validation import N_, say
from shared.web import staff_actor

# What a person reads when this module refuses: message codes, said in the reader's language (say).
NOT_JSON = N_("Send the body as JSON with Content-Type: application/json")
BODY_NOT_OBJECT = N_("The body must be a JSON object")
PERSONAL_VALUE_IN_URL = N_("A phone number is never sent in the address: POST /api/v1/orders/search")
NOT_A_CONNECTION_SETTING = N_("%(unknown)s is not a connection setting")
NO_RETURN_ADDRESS = N_("Warehouse %(warehouse_code)s has no return address")
UNKNOWN_APPROVAL = N_("No such approval request")
UNKNOWN_PART = N_("Invoice request %(invoice_id)s has no part %(part)s")
UNREADABLE_BODY = N_("The body is not valid JSON (%(exc)s)")
UNKNOWN_SEARCH_FIELD = N_("Unknown search field \"%(key)s\"")
UNKNOWN_USER = N_("No user \"%(name)s\"")
REQUIRED = N_("%(field)s is required")
MUST_BE_TEXT = N_("%(field)s must be text")

bp = Blueprint("api", __name__)
DEFAULT_LIMIT = 50
MAX_BODY = 1024 * 1024  # bytes; MAX_CONTENT_LENGTH, when configured, takes precedence
DEFAULT_SORT = "updated_asc"  # sync clients follow updated_since in the order changes happened
REVEALED_FIELDS = ("name", "phone", "address", "email")
# The type of every field each body may carry, checked before any service sees a value (check_types).
WAREHOUSE_BODY = {"code": "text", "name": "text", "province": "text", "city": "text", "cold_chain": "boolean"}
SKU_BODY = {"sku": "text", "name": "text", "safety_stock": "integer", "batch_tracked": "boolean"}
ADJUSTMENT_BODY = {"sku": "text", "warehouse": "text", "delta": "integer", "reason": "text"}
ORDER_BODY = {
    "channel": "text", "channel_order_id": "text", "placed_at": "text", "paid_at": "text", "currency": "text",
    "customer": {"name": "text", "phone": "text", "email": "text"},
    "shipping_address": {"receiver": "text", "phone": "text", "province": "text", "city": "text",
                         "district": "text", "street": "text", "postal_code": "text"},
    "lines": [{"sku": "text", "quantity": "integer", "unit_price": "money"}],
    "shipping_fee": "money", "discount": "money", "tax": "money",
}
TRANSITION_BODY = {"to": "text", "reason": "text"}
CHANNEL_BODY = {"code": "text", "name": "text", "kind": "text", "timezone": "text", "currency": "text"}
CHANNEL_UPDATE_BODY = {"name": "text", "timezone": "text", "currency": "text", "active": "boolean"}
CONNECTION_BODY = {"base_url": "text", "app_key": "text", "app_secret": "text", "access_token": "text",
                   "webhook_secret": "text", "poll_minutes": "integer", "polling_enabled": "boolean"}
SKU_MAPPING_BODY = {"channel_sku": "text", "sku": "text", "key_kind": "text"}
STATUS_MAPPING_BODY = {"lifecycle": "text", "payment_status": "text", "refund_status": "text", "note": "text"}
# carriers may be a list of codes or one comma-separated text: the service reads either
WAREHOUSE_UPDATE_BODY = {"name": "text", "province": "text", "city": "text", "cold_chain": "boolean",
                         "active": "boolean"}
BIN_BODY = {"code": "text", "walk_order": "integer", "capacity": "integer"}
RETURN_ADDRESS_BODY = {"receiver": "text", "phone": "text", "province": "text", "city": "text", "district": "text",
                       "street": "text"}
EXCEPTION_TRANSITION_BODY = {"to": "text", "comment": "text", "canned": "text", "assignee": "text"}
EXCEPTION_PARAMETERS = {"category": 40, "team": 40, "state": 20, "mine": 8, "breached": 8, "cursor": 512, "limit": 12}
# Query parameters of the order list and the longest text each may be (cursor and limit have rules of their own).
LIST_PARAMETERS = {"status": 40, "channel": 40, "warehouse": 64, "updated_since": 64, "date_from": 32, "date_to": 32,
                   "q": 200, "phone_last4": 8, "receiver": 200, "tag": 40, "sort": 40, "cursor": 100_000,
                   "limit": 100_000}
SEARCH_FIELDS = ("q", "phone_last4", "receiver", "tag", "status", "channel", "warehouse", "updated_since", "date_from",
                 "date_to", "sort", "cursor", "limit")


class UnreadableBody(ServiceError):
    """The request body is not a JSON document."""

    status = 400
    code = "invalid_json"


class NotJson(UnreadableBody):
    """The request body was not sent as application/json."""

    status = 415


@bp.before_request
def _authenticate():
    """Only a bearer token authenticates the API; the session cookie is never looked at."""
    request.max_content_length = current_app.config.get("MAX_CONTENT_LENGTH") or MAX_BODY
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return _unauthorized("unauthenticated", "send the header Authorization: Bearer <token>")
    try:
        user = staff.user_for_token(token.strip())
    except staff.TokenRefused as refused:
        db.session.rollback()
        return _unauthorized(refused.code, refused.message)
    if user.use_noted:
        db.session.commit()  # user_for_token noted when the token was last used (at most every 5 minutes)
    g.api_user = user


# Refusals of the token, in the caller's language (Accept-Language); other codes keep the service's message.
TOKEN_MESSAGES = {"unauthenticated": _l("Send the header Authorization: Bearer <token>."),
                  "invalid_token": _l("The bearer token is not valid."),
                  "token_expired": _l("The bearer token has expired.")}


def _unauthorized(code: str, message: str):
    response = jsonify({"error": {"code": code, "message": str(TOKEN_MESSAGES.get(code, message))}})
    challenge = 'Bearer realm="orderloom"' if code == "unauthenticated" else 'Bearer error="invalid_token"'
    response.headers["WWW-Authenticate"] = challenge
    return response, 401


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def _json_body(schema: dict) -> dict:
    """The request body as a JSON object whose fields have the types `schema` names; floats are read as Decimal
    so no amount is ever rounded."""
    raw = request.get_data(cache=False)  # over MAX_CONTENT_LENGTH: 413 before anything is read
    if not request.is_json:
        raise NotJson(say(NOT_JSON))
    try:
        data = json.loads(raw, parse_float=Decimal, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:
        raise UnreadableBody(say(UNREADABLE_BODY, exc=str(exc)[:120])) from exc
    if not isinstance(data, dict):
        raise ValidationFailed(say(BODY_NOT_OBJECT), field="body", code="invalid_type")
    return check_types(data, schema)


def _actor():
    return staff_actor(g.api_user)


def _created(body: dict, location: str | None = None):
    response = jsonify(body)
    if location:
        response.headers["Location"] = location
    return response, 201


@bp.post("/warehouses")
@requires("catalog", "edit")
def create_warehouse():
    """Create a warehouse."""
    warehouse = catalog.create_warehouse(_json_body(WAREHOUSE_BODY), _actor())
    db.session.commit()
    return _created({"code": warehouse.code, "name": warehouse.name, "province": warehouse.province,
                     "city": warehouse.city, "active": warehouse.active, "created_at": iso_time(warehouse.created_at)})


@bp.post("/skus")
@requires("catalog", "edit")
def create_sku():
    """Create a SKU."""
    sku = catalog.create_sku(_json_body(SKU_BODY), _actor())
    db.session.commit()
    return _created({"sku": sku.code, "name": sku.name, "safety_stock": sku.safety_stock,
                     "batch_tracked": sku.batch_tracked, "active": sku.active, "created_at": iso_time(sku.created_at)},
                    url_for("api.stock_level", sku_code=sku.code))


@bp.post("/stock/adjustments")
@requires("stock", "edit")
def adjust_stock():
    """Change on-hand stock through the movement ledger."""
    data = _json_body(ADJUSTMENT_BODY)
    movement = stock.adjust_stock(data.get("sku"), data.get("warehouse"), data.get("delta"), data.get("reason"),
                                  _actor())
    db.session.commit()
    return _created({"id": movement.id, "sku": movement.sku.code, "warehouse": movement.warehouse.code,
                     "delta": movement.delta, "on_hand_after": movement.on_hand_after, "kind": movement.kind,
                     "reason": movement.reason, "created_at": iso_time(movement.created_at)},
                    url_for("api.stock_level", sku_code=movement.sku.code))


@bp.get("/stock/<path:sku_code>")  # a SKU code may contain "/"
@requires("stock", "view")
def stock_level(sku_code: str):
    """The stock figure of one SKU, per warehouse and in total."""
    return jsonify(stock.stock_summary(stock.get_sku(parameter(sku_code, "sku", 64))))


@bp.post("/orders")
@requires("orders", "edit")
def create_order():
    """Create an order of a direct channel and reserve its stock, all or nothing."""
    order = orders.create_order(_json_body(ORDER_BODY), _actor(), direct_only=True, standalone=True)
    location = url_for("api.order_detail", order_no=order.order_no)
    held = order.approval_request
    if held is not None:  # made and held in pending review until the approval is given
        body = {"order_no": order.order_no, "status": "pending_approval", "approval_id": held.id}
        db.session.commit()
        response = jsonify(body)
        response.headers["Location"] = location
        return response, 202
    # From the view in hand (the standalone path returns no ORM object; nothing is loaded again).
    body = order_payload(order, g.api_user.role)
    db.session.commit()
    return _created(body, location)


def _order_page(args):
    """One page of orders for these filters; a personal-value search is checked, limited and access-logged."""
    for name, longest in LIST_PARAMETERS.items():  # bounded text without control characters, before any is used
        for value in args.getlist(name):
            parameter(value, name, longest)
    args.setdefault("sort", DEFAULT_SORT)
    zone = current_app.config["MERCHANT_TIMEZONE"]
    filters = parse_filters(args, zone)
    limit = whole_number(args.get("limit"), "limit", 1, MAX_LIMIT, DEFAULT_LIMIT)
    try:
        rows, next_cursor = search_orders(filters, zone, cursor=args.get("cursor"), limit=limit,
                                          viewer=_actor(), door="api")
    except SearchRefused:
        db.session.commit()  # keep the access-log entry of the refusal (and the alarm of an unusual rate)
        raise
    role = g.api_user.role
    body = {"items": [order_payload(order, role, detail=False) for order in rows], "next_cursor": next_cursor}
    db.session.commit()  # after serializing (a commit expires the rows): the access-log entry of the search
    return jsonify(body)


@bp.get("/orders")
@requires("orders", "view")
def list_orders():
    """One page of orders (masked personal data), oldest change first unless another sort is asked for."""
    if personal_values_in_query(request.args):
        raise ValidationFailed(say(PERSONAL_VALUE_IN_URL),
                               field="q", code="personal_value_in_url")
    return _order_page(request.args.copy())


@bp.post("/orders/search")
@requires("orders", "view")
def search_orders_by_body():
    """The same page of orders, with the filters in a JSON body: the way to search by a phone."""
    data = _json_body({})  # every field is checked below: text (a list of texts for status)
    args = MultiDict()
    for key, value in data.items():
        if key not in SEARCH_FIELDS:
            raise ValidationFailed(say(UNKNOWN_SEARCH_FIELD, key=key), field=key, code="unknown_field")
        values = value if key == "status" and isinstance(value, list) else [value]
        for item in values:
            if item is not None and not isinstance(item, (str, int)) or isinstance(item, bool):
                raise ValidationFailed(say(MUST_BE_TEXT, field=key), field=key, code="invalid_type")
            if item is not None:
                args.add(key, str(item))
    return _order_page(args)


@bp.get("/orders/<order_no>")
@requires("orders", "view")
def order_detail(order_no: str):
    """One order; personal data in full where the role may see it, and every such view is access-logged."""
    order = orders.get_order(parameter(order_no, "order_no", 64))
    role = g.api_user.role
    body = order_payload(order, role, reveal=True)
    revealed = [field for field in REVEALED_FIELDS if visibility(role, field) is Visibility.FULL
                # a platform-encrypted receiver is shown masked here (POST .../reveal decrypts it)
                and not (order.platform_protected and field in ("name", "phone", "address"))]
    if revealed:
        audit.log_access(_actor(), "view", "order", order.order_no, revealed, channel="api")
        db.session.commit()
    return jsonify(body)


@bp.post("/orders/<order_no>/reveal")
@requires("orders", "view", also=may_reveal)
def reveal_order(order_no: str):
    """The receiver in full, for a role with full visibility; a platform-encrypted order is decrypted by the
    platform's own API for this answer only. Every reveal (and every refused decrypt) is access-logged."""
    order = orders.get_order(order_no)
    try:
        contact = platform_privacy.reveal_contact(order, _actor(), "api")
    except platform_privacy.DecryptFailed:
        db.session.commit()  # keep the access-log row of the attempt; the order is unchanged
        raise
    db.session.commit()
    address = shipping_address(order, g.api_user.role, True, contact)
    return jsonify({"order_no": order.order_no, "shipping_address": address,
                    "decrypted_by_platform": order.platform_protected})


@bp.post("/orders/<order_no>/transitions")
@requires("orders", "edit")
def transition_order(order_no: str):
    """Move an order along its lifecycle."""
    data = _json_body(TRANSITION_BODY)
    number = parameter(order_no, "order_no", 64)
    if data.get("to") in second_factor.VOIDING_STATES and second_factor.transition_needs_step_up(
            orders.get_order(number), data.get("to"), g.api_user.role, data.get("reason")):
        require_step_up()  # voiding a paid order: X-Orderloom-OTP with a current code (before the row lock)
    order = orders.get_order(number, for_update=True)
    orders.transition_order(order, data.get("to"), _actor(), data.get("reason"))
    held = getattr(order, "approval_request", None)
    body = order_payload(order, g.api_user.role)
    if held is not None:  # nothing moved: the move waits for approval
        body = {"order_no": order.order_no, "status": "pending_approval", "approval_id": held.id}
    db.session.commit()
    return jsonify(body), 202 if held is not None else 200


ADDRESS_BODY = {"shipping_address": ORDER_BODY["shipping_address"], "reason": "text"}
PRICE_BODY = {"lines": [{"id": "integer", "unit_price": "money"}], "discount": "money", "shipping_fee": "money",
              "reason": "text"}


def _edited(order):
    """The answer to an order edit: the order (200), or 202 `pending_approval` when a rule held the change."""
    held = getattr(order, "approval_request", None)
    if held is not None:  # nothing changed: the change waits for approval
        body = {"order_no": order.order_no, "status": "pending_approval", "approval_id": held.id}
    else:
        body = order_payload(order, g.api_user.role)
    db.session.commit()
    return jsonify(body), 202 if held is not None else 200


@bp.post("/orders/<order_no>/address")
@requires("order_review", "edit")
def change_order_address(order_no: str):
    """Change the shipping address until the parcel is packed (after confirmation an approval rule may hold it)."""
    data = _json_body(ADDRESS_BODY)
    order = orders.get_order(parameter(order_no, "order_no", 64), for_update=True)
    orders.change_address(order, data.get("shipping_address"), _actor(), data.get("reason"))
    return _edited(order)


@bp.post("/orders/<order_no>/price")
@requires("order_review", "edit")
def change_order_price(order_no: str):
    """改价 before payment: new line prices, discount or shipping fee; a sensitive call (X-Orderloom-OTP). A change
    refused anyway gets its own answer first; the step-up is asked before the row lock (it commits)."""
    data = _json_body(PRICE_BODY)
    number = parameter(order_no, "order_no", 64)
    changes = {name: value for name, value in data.items() if name != "reason"}
    orders.check_price_change(orders.get_order(number), changes, data.get("reason"))
    require_step_up()
    order = orders.get_order(number, for_update=True)
    orders.change_price(order, changes, _actor(), data.get("reason"))
    return _edited(order)


REFUND_BODY = {"amount": "money", "reason": "text", "currency": "text", "goods_returned": "boolean"}
REFUND_REFUSED = _l("The payment provider refused the refund: %(message)s")


@bp.post("/orders/<order_no>/refunds")
@requires("payments", "edit")
def create_refund(order_no: str):
    """Refund part or all of what was paid: 202 with the refund (pending_approval, processing, awaiting_platform or
    succeeded); 409 `refund_refused` when the provider refused it (the attempt is kept, nothing refunded)."""
    from shared.services import refunds

    data = _json_body(REFUND_BODY)
    row = refunds.refund(parameter(order_no, "order_no", 64), data.get("amount"), data.get("reason"), _actor(),
                         goods_returned=bool(data.get("goods_returned")), currency=data.get("currency"))
    body = refunds.refund_json(row)
    db.session.commit()
    if row.status == "failed":
        message = f"{row.error_code}: {row.last_error or ''}".strip(": ")
        return jsonify({"error": {"code": "refund_refused", "message": str(REFUND_REFUSED % {"message": message}),
                                  "field": "amount"}, "refund": body}), 409
    return jsonify(body), 202


@bp.get("/orders/<order_no>/refunds")
@requires("orders", "view")
def list_refunds(order_no: str):
    """The refunds of an order, with what is refunded and what may still be."""
    from shared.services import refunds

    order = orders.get_order(parameter(order_no, "order_no", 64))
    items = [refunds.refund_json(row) for row in refunds.refunds_of(order)]
    body = {"order_no": order.order_no, "currency": order.currency, "items": items,
            "refunded": str(refunds.refunded_total(order)), "refundable": str(refunds.refundable(order))}
    db.session.commit()  # refunds whose approval was rejected are closed as they are read
    return jsonify(body)


# --- first-day set-up: channels, their connection and mappings, warehouse carriers and bins ------------------

def _channel_json(channel) -> dict:
    """A channel and its connection; secrets are never sent back, only whether each is set and its last chars."""
    connection = channel_settings.connection_for(channel)
    body = {"code": channel.code, "name": channel.name, "kind": channel.kind, "timezone": channel.timezone,
            "currency": channel.currency, "active": channel.active, "created_at": iso_time(channel.created_at),
            "connection": None}
    if connection is not None:
        body["connection"] = {
            "base_url": connection.base_url, "app_key": connection.app_key, "poll_minutes": connection.poll_minutes,
            "polling_enabled": connection.polling_enabled, "last_success_at": iso_time(connection.last_success_at),
            **{name: channel_settings.secret_hint(getattr(connection, name)) for name in channel_settings.SECRETS}}
    return body


@bp.get("/channels")
@requires("channels", "view")
def list_channels():
    """Every channel with its connection (secrets shown as set or not, never in full)."""
    return jsonify({"items": [_channel_json(channel) for channel in catalog.all_channels()]})


@bp.post("/channels")
@requires("channels", "edit")
def create_channel():
    """Create a sales channel: a two-letter code, a name and its platform kind."""
    data = _json_body(CHANNEL_BODY)
    channel = catalog.create_channel(data.get("code"), data.get("name"), data.get("kind"), _actor(),
                                     timezone=data.get("timezone") or "Asia/Shanghai",
                                     currency=data.get("currency") or "CNY")
    db.session.commit()
    return _created(_channel_json(channel), url_for("api.channel_detail", code=channel.code))


@bp.get("/channels/<code>")
@requires("channels", "view")
def channel_detail(code: str):
    return jsonify(_channel_json(catalog.get_channel(code)))


@bp.patch("/channels/<code>")
@requires("channels", "edit")
def update_channel(code: str):
    """Change a channel's name, time zone, currency or whether it is used."""
    channel = catalog.update_channel(catalog.get_channel(code), _json_body(CHANNEL_UPDATE_BODY), _actor())
    db.session.commit()
    return jsonify(_channel_json(channel))


@bp.put("/channels/<code>/connection")
@requires("channels", "edit")
def connect_channel(code: str):
    """Set the platform connection: API address, app key, secrets (stored encrypted), polling."""
    channel = catalog.get_channel(code)
    data = _json_body(CONNECTION_BODY)
    unknown = sorted(set(data) - set(channel_settings.CONNECTION_FIELDS))
    if unknown:
        raise ValidationFailed(say(NOT_A_CONNECTION_SETTING, unknown=unknown[0]), field=unknown[0], code="unknown_field")
    channel_settings.connect(channel, _actor(), **data)
    db.session.commit()
    return jsonify(_channel_json(channel))


@bp.post("/channels/<code>/sku-mappings")
@requires("channels", "edit")
def map_channel_sku(code: str):
    """Map what the platform calls a SKU to one of ours."""
    channel = catalog.get_channel(code)
    data = _json_body(SKU_MAPPING_BODY)
    row = channel_settings.map_sku(channel, data.get("channel_sku"), data.get("sku"), _actor(),
                                   key_kind=data.get("key_kind") or "code")
    db.session.commit()
    return _created({"channel": channel.code, "channel_sku": row.channel_sku, "sku": row.sku.code})


@bp.put("/channels/<code>/status-mappings/<platform_status>")
@requires("channels", "edit")
def map_channel_status(code: str, platform_status: str):
    """What a platform status means here: lifecycle target, payment and refund state."""
    channel = catalog.get_channel(code)
    data = _json_body(STATUS_MAPPING_BODY)
    row = channel_settings.set_status_mapping(channel, platform_status, data.get("lifecycle"),
                                              data.get("payment_status"), data.get("refund_status"), _actor(),
                                              note=data.get("note"))
    db.session.commit()
    return jsonify({"channel": channel.code, "platform_status": row.platform_status, "lifecycle": row.lifecycle,
                    "payment_status": row.payment_status, "refund_status": row.refund_status, "note": row.note})


def _warehouse_json(warehouse) -> dict:
    codes = [code for code in (warehouse.carriers or "").split(",") if code]
    return {"code": warehouse.code, "name": warehouse.name, "province": warehouse.province, "city": warehouse.city,
            "carriers": codes, "backup_carriers": codes[1:], "cold_chain": warehouse.cold_chain,
            "active": warehouse.active, "bins": len(catalog.bins_of(warehouse))}


@bp.patch("/warehouses/<code>")
@requires("catalog", "edit")
def update_warehouse(code: str):
    """Change a warehouse: name, place, carriers (first choice, then backups), cold chain, active."""
    warehouse = catalog.update_warehouse(stock.get_warehouse(code), _json_body(WAREHOUSE_UPDATE_BODY), _actor())
    db.session.commit()
    return jsonify(_warehouse_json(warehouse))


def _bin_json(warehouse, row) -> dict:
    return {"warehouse": warehouse.code, "code": row.code, "walk_order": row.walk_order, "capacity": row.capacity}


@bp.get("/warehouses/<code>/bins")
@requires("catalog", "view")
def list_bins(code: str):
    warehouse = stock.get_warehouse(code)
    return jsonify({"items": [_bin_json(warehouse, row) for row in catalog.bins_of(warehouse)]})


@bp.post("/warehouses/<code>/bins")
@requires("catalog", "edit")
def create_bin(code: str):
    """A storage location in a warehouse: `{"code", "walk_order"?, "capacity"?}`."""
    warehouse = stock.get_warehouse(code)
    row = catalog.create_bin(warehouse, _json_body(BIN_BODY), _actor())
    db.session.commit()
    return _created(_bin_json(warehouse, row))


def _return_address_json(warehouse, row) -> dict:
    return {"warehouse": warehouse.code, "receiver": row.receiver, "phone": row.phone, "province": row.province,
            "city": row.city, "district": row.district, "street": row.street, "updated_by": row.updated_by,
            "updated_at": row.updated_at.isoformat()}


@bp.get("/warehouses/<code>/return-address")
@requires("catalog", "view")
def get_return_address(code: str):
    """Where returns to this warehouse go (the receiver of return e-waybills and door pickups)."""
    from shared.services import return_pickups

    warehouse = stock.get_warehouse(code)
    row = return_pickups.return_address(warehouse.id)
    if row is None:
        raise NotFound(say(NO_RETURN_ADDRESS, warehouse_code=warehouse.code), code="no_return_address")
    return jsonify(_return_address_json(warehouse, row))


@bp.put("/warehouses/<code>/return-address")
@requires("catalog", "edit")
def set_return_address(code: str):
    """Set the warehouse's return address: `{"receiver", "phone", "province", "city", "district", "street"}`."""
    from shared.services import return_pickups

    row = return_pickups.set_return_address(code, _json_body(RETURN_ADDRESS_BODY), _actor())
    db.session.commit()
    return jsonify(_return_address_json(row.warehouse, row))


# --- the exception center -------------------------------------------------------------------------------------

def _exception_json(row) -> dict:
    left = exceptions.time_left(row)
    return {
        "id": row.id, "kind": row.kind, "category": row.category, "state": row.status, "summary": row.summary,
        "order_no": row.order.order_no if row.order else None, "sku": row.sku.code if row.sku else None,
        "team": row.team.code if row.team else None,
        "assignee": row.assignee.username if row.assignee else None, "opened_at": iso_time(row.opened_at),
        "sla_clock": row.sla_clock, "first_response_due_at": iso_time(row.first_response_due_at),
        "first_responded_at": iso_time(row.first_responded_at), "resolve_due_at": iso_time(row.resolve_due_at),
        "seconds_left": int(left.total_seconds()) if left is not None else None,
        "paused": row.status in ("waiting_customer", "waiting_platform"), "breached": row.breached,
        "escalation_level": row.escalation_level, "resolved_at": iso_time(row.resolved_at),
        "resolution": row.resolution, "occurrences": row.occurrences,
    }


@bp.get("/exceptions")
@requires("exceptions", "view")
def list_exceptions():
    """One page of exceptions, newest first: `{"items", "next_cursor"}`."""
    for name, longest in EXCEPTION_PARAMETERS.items():
        for value in request.args.getlist(name):
            parameter(value, name, longest)
    filters = exceptions.parse_filters(request.args)
    limit = whole_number(request.args.get("limit"), "limit", 1, exceptions.MAX_LIMIT, exceptions.DEFAULT_LIMIT)
    rows, next_cursor = paging.page(db.session, exceptions.list_query(filters, g.api_user.id),
                                    ExceptionCase.opened_at, ExceptionCase.id, request.args.get("cursor"), limit,
                                    descending=True)
    return jsonify({"items": [_exception_json(row) for row in rows], "next_cursor": next_cursor})


@bp.post("/exceptions/<exception_id>/transitions")
@requires("exceptions", "edit")
def transition_exception(exception_id: str):
    """Move an exception: `{"to", "comment"?, "canned"?, "assignee"?}` (assigning names the user)."""
    data = _json_body(EXCEPTION_TRANSITION_BODY)
    row = exceptions.get_exception(parameter(exception_id, "id", 20), for_update=True)
    language = "zh" if (request.accept_languages.best_match(["zh", "en"]) or "zh") == "zh" else "en"
    if data.get("to") == "assigned":
        name = data.get("assignee")
        assignee = db.session.query(StaffUser).filter(StaffUser.username == name).one_or_none() if name else None
        if name and assignee is None:
            raise ValidationFailed(say(UNKNOWN_USER, name=name[:64]), field="assignee", code="unknown_user")
        exceptions.assign(row, assignee, _actor(), comment=data.get("comment"))
    else:
        exceptions.transition(row, data.get("to"), _actor(), comment=data.get("comment"),
                              canned=data.get("canned"), language=language)
    db.session.commit()
    return jsonify(_exception_json(row))


# --- approvals ----------------------------------------------------------------------------------------------------

DECISION_BODY = {"decision": "text", "comment": "text"}


@bp.get("/approvals")
@requires("approvals", "view")
def list_approvals():
    """Approval requests: `state=pending` is what waits for the caller (as approver or delegate)."""
    from portal.approvals import request_json
    from shared.services import approvals

    state = parameter(request.args.get("state"), "state", 16) or None
    user = staff.get_user(g.api_user.username)
    found = approvals.list_requests(user, state=state)
    return jsonify({"items": [request_json(item) for item in found]})


@bp.get("/approvals/<int:approval_id>")
@requires("approvals", "view")
def approval_detail(approval_id: int):
    """One approval request with its steps and decisions."""
    from portal.approvals import may_see, request_json
    from shared.services import approvals
    from shared.services.errors import NotFound

    found = approvals.get_request(approval_id)
    if not may_see(found, staff.get_user(g.api_user.username)):
        raise NotFound(say(UNKNOWN_APPROVAL), field="approval", code="unknown_approval")
    return jsonify(request_json(found))


@bp.post("/approvals/<int:approval_id>/decision")
@requires("approvals", "approve")
def decide_approval(approval_id: int):
    """Approve or reject the open step the caller is named on (403 self_approval for one's own request)."""
    from portal.approvals import decision_step_up, request_json
    from shared.services import approvals

    data = _json_body(DECISION_BODY)
    found = approvals.get_request(approval_id)
    user = staff.get_user(g.api_user.username)
    try:
        approvals.assert_may_decide(found, user, _actor())  # a refusal needs no second factor to be told
        decision_step_up()
        approvals.decide(found, user, data.get("decision"), data.get("comment"), _actor())
    except ServiceError as refused:
        if getattr(refused, "keep_audit", False):
            db.session.commit()  # the refusal stays in the audit chain; nothing else was changed
        raise
    body = request_json(found)
    db.session.commit()
    return jsonify(body)


# --- Finance: invoice profiles (issue 12) -------------------------------------------------------------------------

INVOICE_PROFILE_BODY = {"order_no": "text", "type": "text", "name": "text", "tax_id": "text", "address": "text",
                        "phone": "text", "bank": "text", "account": "text", "email": "text", "is_default": "boolean"}
ORDER_NO_REQUIRED = _l("Send the order number (order_no) of one of the customer's orders.")


def _order_customer_id(order_no) -> int:
    if not order_no:
        raise ValidationFailed(str(ORDER_NO_REQUIRED), field="order_no", code="required")
    order = orders.get_order(parameter(order_no, "order_no", 64))
    return order.customer_id


@bp.post("/invoice-profiles")
@requires("invoices", "edit")
def create_invoice_profile():
    """Keep an invoice profile for the customer of an order (created by staff)."""
    data = _json_body(INVOICE_PROFILE_BODY)
    customer_id = _order_customer_id(data.get("order_no"))
    values = {**{k: v for k, v in data.items() if k not in ("order_no", "type")}, "kind": data.get("type")}
    try:
        profile = invoice_profiles.create_profile(customer_id, values, _actor(), created_by="staff")
    except ValidationFailed as refused:
        if refused.field == "kind":
            refused.field = "type"
        raise
    body, _shown = invoice_profiles.shown_to(profile, g.api_user.role)
    db.session.commit()
    return _created(body, url_for("api.list_invoice_profiles", order_no=data["order_no"]))


@bp.get("/invoice-profiles")
@requires("invoices", "view")
def list_invoice_profiles():
    """The invoice profiles of the customer of an order, the default first."""
    customer_id = _order_customer_id(request.args.get("order_no"))
    items, logged = [], False
    for profile in invoice_profiles.profiles_for_customer(customer_id):
        body, fields = invoice_profiles.shown_to(profile, g.api_user.role)
        items.append(body)
        if fields:  # every view of a personal value in full is access-logged
            audit.log_access(_actor(), "view", "invoice_profile", profile.id, fields, channel="api")
            logged = True
    if logged:
        db.session.commit()
    return jsonify({"items": items})
INVOICE_BODY = {"profile_id": "integer", "kind": "text"}


@bp.post("/orders/<order_no>/invoices")
@requires("invoices", "edit")
def request_order_invoice(order_no: str):
    """Ask for the invoice(s) of an order (split by the provider's rules); issued by a job through the provider."""
    from shared.services import invoices

    data = _json_body(INVOICE_BODY)
    for name in ("profile_id", "kind"):
        if data.get(name) is None:
            raise ValidationFailed(say(REQUIRED, field=name), field=name, code="required")
    found = invoices.request_invoice([parameter(order_no, "order_no", 64)], data["profile_id"], data["kind"],
                                     _actor())
    body = {"invoice_request_id": found.id, "status": found.status, **invoices.request_json(found)}
    db.session.commit()
    response = jsonify(body)
    response.headers["Location"] = url_for("api.invoice_detail", invoice_id=found.id)
    return response, 202


@bp.get("/invoices/<int:invoice_id>")
@requires("invoices", "view")
def invoice_detail(invoice_id: int):
    """An invoice request: its status, the invoice number(s), amounts and parts."""
    from shared.services import invoices

    return jsonify(invoices.request_json(invoices.get_request(invoice_id)))


@bp.get("/invoices/<int:invoice_id>/pdf")
@requires("invoices", "view")
def invoice_pdf(invoice_id: int):
    """The PDF of one issued invoice of the request (`part`, from 1; default 1): the provider's, else ours."""
    from flask import Response

    from shared.services import invoices

    position = whole_number(request.args.get("part"), "part", 1, 99, 1)
    content, filename = invoices.part_pdf(invoices.get_request(invoice_id), position)
    return Response(content, mimetype="application/pdf",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


RED_BODY = {"part": "id", "reason": "text", "amount": "money"}


@bp.post("/invoices/<int:invoice_id>/reds")
@requires("invoices", "edit")
def open_invoice_red(invoice_id: int):
    """红字: open a red-letter confirmation (确认单) for one issued invoice of the request (`part`, from 1), in full
    (no `amount`) or for a tax-inclusive `amount`; never more than remains un-reversed (422 `over_remaining`)."""
    from shared.services import invoices, red_letters

    data = _json_body(RED_BODY)
    for name in ("part", "reason"):
        if data.get(name) is None:
            raise ValidationFailed(say(REQUIRED, field=name), field=name, code="required")
    found = invoices.get_request(invoice_id)
    part = next((p for p in found.parts if p.position == data["part"]), None)
    if part is None:
        raise NotFound(say(UNKNOWN_PART, invoice_id=invoice_id, part=data['part']), field="part", code="unknown_part")
    amount = data.get("amount")
    red = red_letters.open_red(part.id, data["reason"], None if amount is None else str(amount), _actor())
    body = red_letters.red_json(red)
    db.session.commit()
    response = jsonify(body)
    response.headers["Location"] = url_for("api.invoice_detail", invoice_id=found.id)
    return response, 202


@bp.get("/invoices/credit-line")
@requires("invoices", "view")
def invoice_credit_line():
    """The credit line (授信额度) the invoicing provider reports: total, used, remaining."""
    from shared.services import invoices

    return jsonify(invoices.credit_line())


# --- after-sales (issue 13) -----------------------------------------------------------------------------------------

AFTER_SALE_BODY = {"order_no": "text", "type": "text",
                   "lines": [{"sku": "text", "quantity": "integer", "reason": "text"}],
                   "pickup": {"at": "text", "slot": "text"}}
AFTER_SALE_TRANSITION_BODY = {"to": "text", "reason": "text", "return_method": "text", "pickup_at": "text",
                              "inspection": [{"sku": "text", "passed": "boolean", "restock": "boolean",
                                              "note": "text"}]}
AFTER_SALE_PARAMETERS = {"order_no": 40, "state": 20, "type": 20, "overdue": 8, "cursor": 512, "limit": 12}


@bp.post("/after-sales")
@requires("after_sales", "edit")
def create_after_sale():
    """Open an after-sales request on a customer's behalf; an ineligible one is 422 with the reason's code. With
    `pickup` (`{"at"}` or `{"slot"}`) the courier is booked with the carrier in the same call (the booking is in the
    answer's `pickup`); a carrier's refusal or outage creates nothing (422 `pickup_refused`, 503
    `carrier_unavailable`)."""
    from shared.services import after_sales

    data = _json_body(AFTER_SALE_BODY)
    for name in ("order_no", "type", "lines"):
        if data.get(name) is None:
            raise ValidationFailed(say(REQUIRED, field=name), field=name, code="required")
    order = orders.get_order(parameter(data["order_no"], "order_no", 64))
    case = after_sales.request_after_sale(order, data["type"], data["lines"], _actor(), pickup=data.get("pickup"))
    body = after_sales.case_json(case)
    db.session.commit()
    return _created(body)


@bp.get("/after-sales")
@requires("after_sales", "view")
def list_after_sales():
    """After-sales requests, newest first, by `order_no`, `state`, `type`, `overdue`: `{"items", "next_cursor"}`."""
    from shared.models import AfterSale
    from shared.services import after_sales

    for name, longest in AFTER_SALE_PARAMETERS.items():
        for value in request.args.getlist(name):
            parameter(value, name, longest)
    filters = after_sales.parse_filters(request.args)
    limit = whole_number(request.args.get("limit"), "limit", 1, 200, DEFAULT_LIMIT)
    rows, next_cursor = paging.page(db.session, after_sales.list_query(filters), AfterSale.created_at, AfterSale.id,
                                    request.args.get("cursor"), limit, descending=True)
    return jsonify({"items": [after_sales.case_json(row) for row in rows], "next_cursor": next_cursor})


@bp.post("/after-sales/<after_sale_id>/transitions")
@requires("after_sales", "view")
def transition_after_sale(after_sale_id: str):
    """Move an after-sales request: `{"to", "reason"?, "return_method"?, "pickup_at"?, "inspection"?}`; who may
    fire each move is the lifecycle's (403 otherwise)."""
    from shared.services import after_sales

    data = _json_body(AFTER_SALE_TRANSITION_BODY)
    case = after_sales.get_after_sale(parameter(after_sale_id, "id", 20), for_update=True)
    after_sales.transition(case, data.get("to"), _actor(), data.get("reason"), return_method=data.get("return_method"),
                           pickup_at=data.get("pickup_at"), inspection=data.get("inspection"))
    body = after_sales.case_json(case)
    db.session.commit()
    return jsonify(body)
