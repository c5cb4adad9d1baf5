"""JSON API /api/v1: bearer tokens, the same permission table as the pages, thin views over the services.

Each view parses the JSON body, calls one service, commits, and serializes. Refusals are ServiceErrors,
turned into `{"error": {"code", "message", "field"?}}` by the app's error handler (which rolls back).
"""
import json
from decimal import Decimal

from flask import Blueprint, current_app, g, jsonify, request, url_for
from werkzeug.datastructures import MultiDict

from portal.access import requires
from shared.extensions import db
from shared.order_payloads import iso_time, order_payload
from shared.order_search import SearchRefused, parse_filters, personal_values_in_query, search_orders
from shared.security.permissions import Visibility, visibility
from shared.services import audit, catalog, orders, staff, stock
from shared.services.errors import ServiceError, ValidationFailed
from shared.web import staff_actor

bp = Blueprint("api", __name__)
DEFAULT_LIMIT = 50
MAX_BODY = 1024 * 1024  # bytes; MAX_CONTENT_LENGTH, when configured, takes precedence
DEFAULT_SORT = "updated_asc"  # sync clients follow updated_since in the order changes happened
REVEALED_FIELDS = ("name", "phone", "address", "email")
SEARCH_FIELDS = ("q", "phone_last4", "status", "channel", "warehouse", "updated_since", "date_from", "date_to", "sort",
                 "cursor", "limit")


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
    db.session.commit()  # user_for_token may have noted when the token was last used
    g.api_user = user


def _unauthorized(code: str, message: str):
    response = jsonify({"error": {"code": code, "message": message}})
    challenge = 'Bearer realm="orderloom"' if code == "unauthenticated" else 'Bearer error="invalid_token"'
    response.headers["WWW-Authenticate"] = challenge
    return response, 401


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def _json_body() -> dict:
    """The request body as a JSON object; floats are read as Decimal so no amount is ever rounded."""
    raw = request.get_data(cache=False)  # over MAX_CONTENT_LENGTH: 413 before anything is read
    if not request.is_json:
        raise NotJson("send the body as JSON with Content-Type: application/json")
    try:
        data = json.loads(raw, parse_float=Decimal, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:
        raise UnreadableBody(f"the body is not valid JSON ({str(exc)[:120]})") from exc
    if not isinstance(data, dict):
        raise ValidationFailed("the body must be a JSON object", field="body", code="invalid_type")
    return data


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
    warehouse = catalog.create_warehouse(_json_body(), _actor())
    db.session.commit()
    return _created({"code": warehouse.code, "name": warehouse.name, "province": warehouse.province,
                     "city": warehouse.city, "active": warehouse.active, "created_at": iso_time(warehouse.created_at)})


@bp.post("/skus")
@requires("catalog", "edit")
def create_sku():
    """Create a SKU."""
    sku = catalog.create_sku(_json_body(), _actor())
    db.session.commit()
    return _created({"sku": sku.code, "name": sku.name, "safety_stock": sku.safety_stock,
                     "batch_tracked": sku.batch_tracked, "active": sku.active, "created_at": iso_time(sku.created_at)},
                    url_for("api.stock_level", sku_code=sku.code))


@bp.post("/stock/adjustments")
@requires("stock", "edit")
def adjust_stock():
    """Change on-hand stock through the movement ledger."""
    data = _json_body()
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
    return jsonify(stock.stock_summary(stock.get_sku(sku_code)))


@bp.post("/orders")
@requires("orders", "edit")
def create_order():
    """Create an order of a direct channel and reserve its stock, all or nothing."""
    order = orders.create_order(_json_body(), _actor(), direct_only=True)
    db.session.commit()
    return _created(order_payload(order, g.api_user.role), url_for("api.order_detail", order_no=order.order_no))


def _order_page(args):
    """One page of orders for these filters; a personal-value search is checked, limited and access-logged."""
    args.setdefault("sort", DEFAULT_SORT)
    zone = current_app.config["MERCHANT_TIMEZONE"]
    filters = parse_filters(args, zone)
    raw_limit = str(args.get("limit") or DEFAULT_LIMIT)
    if not (raw_limit.isascii() and raw_limit.isdigit()):
        raise ValidationFailed("limit must be a whole number", field="limit", code="invalid_limit")
    try:
        rows, next_cursor = search_orders(filters, zone, cursor=args.get("cursor"), limit=int(raw_limit),
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
        raise ValidationFailed("a phone number is never sent in the address: POST /api/v1/orders/search",
                               field="q", code="personal_value_in_url")
    return _order_page(request.args.copy())


@bp.post("/orders/search")
@requires("orders", "view")
def search_orders_by_body():
    """The same page of orders, with the filters in a JSON body: the way to search by a phone."""
    data = _json_body()
    args = MultiDict()
    for key, value in data.items():
        if key not in SEARCH_FIELDS:
            raise ValidationFailed(f"unknown search field {key!r}", field=key, code="unknown_field")
        values = value if key == "status" and isinstance(value, list) else [value]
        for item in values:
            if item is not None and not isinstance(item, (str, int)) or isinstance(item, bool):
                raise ValidationFailed(f"{key} must be text", field=key, code="invalid_type")
            if item is not None:
                args.add(key, str(item))
    return _order_page(args)


@bp.get("/orders/<order_no>")
@requires("orders", "view")
def order_detail(order_no: str):
    """One order; personal data in full where the role may see it, and every such view is access-logged."""
    order = orders.get_order(order_no)
    role = g.api_user.role
    body = order_payload(order, role, reveal=True)
    revealed = [field for field in REVEALED_FIELDS if visibility(role, field) is Visibility.FULL]
    if revealed:
        audit.log_access(_actor(), "view", "order", order.order_no, revealed, channel="api")
        db.session.commit()
    return jsonify(body)


@bp.post("/orders/<order_no>/transitions")
@requires("orders", "edit")
def transition_order(order_no: str):
    """Move an order along its lifecycle."""
    data = _json_body()
    order = orders.get_order(order_no, for_update=True)
    orders.transition_order(order, data.get("to"), _actor(), data.get("reason"))
    db.session.commit()
    return jsonify(order_payload(order, g.api_user.role))
