"""JSON API /api/v1: bearer tokens, the same permission table as the pages, thin views over the services.

Each view parses the JSON body, calls one service, commits, and serializes. Refusals are ServiceErrors,
turned into `{"error": {"code", "message", "field"?}}` by the app's error handler (which rolls back).
"""
import json
from decimal import Decimal

from flask import Blueprint, current_app, g, jsonify, request, url_for

from portal.access import requires
from shared.extensions import db
from shared.money import format_money
from shared.order_search import parse_filters, search_orders
from shared.security.masking import order_contact, shown_value
from shared.security.permissions import Visibility, visibility
from shared.services import audit, catalog, orders, staff, stock
from shared.services.errors import ServiceError, ValidationFailed
from shared.timekeeping import as_utc
from shared.web import staff_actor

bp = Blueprint("api", __name__)
DEFAULT_LIMIT = 50
MAX_BODY = 1024 * 1024  # bytes; MAX_CONTENT_LENGTH, when configured, takes precedence
DEFAULT_SORT = "updated_asc"  # sync clients follow updated_since in the order changes happened
REVEALED_FIELDS = ("name", "phone", "address", "email")


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
    if db.session.dirty:
        db.session.commit()  # user_for_token noted when the token was last used (at most every 5 minutes)
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


def _time(moment) -> str | None:
    return None if moment is None else as_utc(moment).isoformat()


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
                     "city": warehouse.city, "active": warehouse.active, "created_at": _time(warehouse.created_at)})


@bp.post("/skus")
@requires("catalog", "edit")
def create_sku():
    """Create a SKU."""
    sku = catalog.create_sku(_json_body(), _actor())
    db.session.commit()
    return _created({"sku": sku.code, "name": sku.name, "safety_stock": sku.safety_stock,
                     "batch_tracked": sku.batch_tracked, "active": sku.active, "created_at": _time(sku.created_at)},
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
                     "reason": movement.reason, "created_at": _time(movement.created_at)},
                    url_for("api.stock_level", sku_code=movement.sku.code))


@bp.get("/stock/<path:sku_code>")  # a SKU code may contain "/"
@requires("stock", "view")
def stock_level(sku_code: str):
    """The stock figure of one SKU, per warehouse and in total."""
    return jsonify(stock.stock_summary(stock.get_sku(sku_code)))


def _shipping_address(order, role: str, reveal: bool) -> dict:
    contact = order_contact(order, role, reveal=reveal)
    whole = reveal and visibility(role, "address") is Visibility.FULL
    contact.update(street=order.street if whole else None, postal_code=order.postal_code if whole else None)
    return contact


def _order_json(order, role: str, reveal: bool = False, detail: bool = True) -> dict:
    """An order as the role may see it; list items (detail=False) carry neither lines nor the customer."""
    body = {
        "order_no": order.order_no, "channel": order.channel.code, "channel_order_id": order.channel_order_id,
        "status": order.status, "payment_status": order.payment_status, "refund_status": order.refund_status,
        "currency": order.currency, "goods_total": format_money(order.goods_total),
        "shipping_fee": format_money(order.shipping_fee), "discount": format_money(order.discount),
        "tax": format_money(order.tax), "total": format_money(order.total), "platform_status": order.platform_status,
        "placed_at": _time(order.placed_at), "paid_at": _time(order.paid_at),
        "shipped_at": _time(order.shipped_at), "created_at": _time(order.created_at),
        "updated_at": _time(order.updated_at), "warehouse": order.warehouse.code if order.warehouse else None,
        "shipping_address": _shipping_address(order, role, reveal),
    }
    if detail:
        customer = order.customer
        body["customer"] = {field: shown_value(role, field, getattr(customer, field), reveal)
                            for field in ("name", "phone", "email")}
        body["lines"] = [{"sku": line.sku.code, "name": line.sku.name, "quantity": line.quantity,
                          "unit_price": format_money(line.unit_price), "line_total": format_money(line.line_total)}
                         for line in order.lines]
    return body


@bp.post("/orders")
@requires("orders", "edit")
def create_order():
    """Create an order of a direct channel and reserve its stock, all or nothing."""
    order = orders.create_order(_json_body(), _actor(), direct_only=True)
    # From the objects in hand: after the commit they would be loaded again.
    body, location = _order_json(order, g.api_user.role), url_for("api.order_detail", order_no=order.order_no)
    db.session.commit()
    return _created(body, location)


@bp.get("/orders")
@requires("orders", "view")
def list_orders():
    """One page of orders (masked personal data), oldest change first unless another sort is asked for."""
    args = request.args.copy()
    args.setdefault("sort", DEFAULT_SORT)
    zone = current_app.config["MERCHANT_TIMEZONE"]
    filters = parse_filters(args, zone)
    raw_limit = args.get("limit") or str(DEFAULT_LIMIT)
    if not (raw_limit.isascii() and raw_limit.isdigit()):
        raise ValidationFailed("limit must be a whole number", field="limit", code="invalid_limit")
    rows, next_cursor = search_orders(filters, zone, cursor=args.get("cursor"), limit=int(raw_limit))
    role = g.api_user.role
    return jsonify({"items": [_order_json(order, role, detail=False) for order in rows], "next_cursor": next_cursor})


@bp.get("/orders/<order_no>")
@requires("orders", "view")
def order_detail(order_no: str):
    """One order; personal data in full where the role may see it, and every such view is access-logged."""
    order = orders.get_order(order_no)
    role = g.api_user.role
    body = _order_json(order, role, reveal=True)
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
    return jsonify(_order_json(order, g.api_user.role))
