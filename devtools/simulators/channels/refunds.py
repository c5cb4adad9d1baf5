"""The refund APIs of the simulated Shopify and WooCommerce shops, and what the shops do after a refund.

    GET  /shopify/admin/api/<v>/orders/<id>/transactions.json     the order's sale (and refund) transactions
    POST /shopify/admin/api/<v>/orders/<id>/refunds.json          create a refund (transactions kind "refund")
    GET  /shopify/admin/api/<v>/orders/<id>/refunds.json          the order's refunds
    POST /woocommerce/wp-json/wc/v3/orders/<id>/refunds           create a refund {amount, reason, api_refund, …}
    GET  /woocommerce/wp-json/wc/v3/orders/<id>/refunds           the order's refunds

Authenticated as the order lists are (Shopify `X-Shopify-Access-Token`, WooCommerce basic auth). A refund over what
is left of the order is refused in the platform's own shape: Shopify 422 `{"errors": {"base": [...]}}`, WooCommerce
500 `woocommerce_rest_cannot_create_order_refund` "Invalid refund amount." (what `wc_create_refund`'s exception
becomes in the REST controller). After a refund the order changes as the shop's would (Shopify `financial_status`
partially_refunded / refunded and `refunds[]`; WooCommerce `refunds[]` and status `refunded` when nothing is left),
its modified time moves on, and the webhooks follow: Shopify `refunds/create` (the Refund) and `orders/updated`,
WooCommerce `order.updated`. Shapes: tests/fixtures/channels/refunds/ (README.md names the sources).
"""
import json
from datetime import timedelta
from decimal import Decimal, InvalidOperation

from werkzeug.wrappers import Request, Response

from shared.channels.signing import constant_time_equal
from devtools.simulators.channels.endpoints import SHOPIFY_UNAUTHORIZED, json_response, woo_authenticate
from devtools.simulators.channels.formats import gmt_text, money_text, parse_iso, shop_time, site_text
from devtools.simulators.channels.webhooks import new_delivery

ZERO = Decimal("0.00")
CENT = Decimal("0.01")
SHOPIFY_NOT_FOUND = {"errors": "Not Found"}
REFUND_ID_BASE = {"shopify": 900_000_000_000, "woocommerce": 90_000}


def _money(value) -> Decimal | None:
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError, TypeError):
        return None
    return amount.quantize(CENT) if amount.is_finite() else None


def _body(request: Request):
    try:
        return json.loads(request.get_data(as_text=True) or "null")
    except ValueError:
        return None


def _moment_after(sim, platform: str, previous):
    """The shop's clock for a change: on from the stream's clock, and always after the order's last change."""
    now = sim.clock.tick(sim.streams[platform].rng)
    return max(now, previous + timedelta(seconds=1)) if previous is not None else now


def _next_id(sim, platform: str) -> int:
    sim.refund_counter[platform] += 1
    return REFUND_ID_BASE[platform] + sim.refund_counter[platform]


def _order(sim, platform: str, order_id: str) -> dict | None:
    book = sim.books[platform]
    listing = book.get(str(order_id))
    if listing is None or not listing.listed:
        return None
    return json.loads(json.dumps(book.render(listing)))


# ---------------------------------------------------------------- Shopify

def _shopify_authorized(sim, request: Request) -> bool:
    return constant_time_equal(request.headers.get("X-Shopify-Access-Token"),
                               sim.credentials["shopify"]["access_token"])


def _sale(order: dict) -> dict | None:
    """The order's one sale transaction (the simulated shops take the whole payment at checkout)."""
    if order.get("financial_status") not in ("paid", "partially_refunded", "refunded"):
        return None
    return {"id": int(order["id"]) * 10 + 1, "order_id": order["id"], "kind": "sale",
            "gateway": order.get("gateway") or "shopify_payments", "status": "success", "message": None,
            "created_at": order.get("processed_at"), "test": False, "authorization": f"ch_sim{order['id']}",
            "parent_id": None, "processed_at": order.get("processed_at"), "amount": order["total_price"],
            "currency": order.get("currency"), "error_code": None, "source_name": "web"}


def _shopify_refunded(sim, order_id: str) -> Decimal:
    return sum((_money(transaction["amount"]) for refund in sim.platform_refunds["shopify"].get(order_id, [])
                for transaction in refund["transactions"] if transaction["status"] == "success"), ZERO)


def shopify_transactions(sim, request: Request, version: str, order_id: str) -> Response:
    if not _shopify_authorized(sim, request):
        return json_response(SHOPIFY_UNAUTHORIZED, 401)
    with sim.lock:
        order = _order(sim, "shopify", order_id)
        if order is None:
            return json_response(SHOPIFY_NOT_FOUND, 404)
        sale = _sale(order)
        refunds = [transaction for refund in sim.platform_refunds["shopify"].get(str(order_id), [])
                   for transaction in refund["transactions"]]
        return json_response({"transactions": ([sale] if sale else []) + refunds})


def shopify_refunds(sim, request: Request, version: str, order_id: str) -> Response:
    if not _shopify_authorized(sim, request):
        return json_response(SHOPIFY_UNAUTHORIZED, 401)
    order_id = str(order_id)
    with sim.lock:
        order = _order(sim, "shopify", order_id)
        if order is None:
            return json_response(SHOPIFY_NOT_FOUND, 404)
        if request.method == "GET":
            return json_response({"refunds": sim.platform_refunds["shopify"].get(order_id, [])})
        return _shopify_create(sim, order, _body(request))


def _shopify_create(sim, order: dict, body) -> Response:
    order_id = str(order["id"])
    refund = body.get("refund") if isinstance(body, dict) else None
    if not isinstance(refund, dict):
        return json_response({"errors": {"refund": "Required parameter missing or invalid"}}, 400)
    asked = [item for item in refund.get("transactions") or [] if isinstance(item, dict)]
    sale = _sale(order)
    if not asked or any(item.get("kind") != "refund" for item in asked):
        return json_response({"errors": {"transactions": ["must be refund transactions"]}}, 422)
    if sale is None or any(str(item.get("parent_id")) != str(sale["id"]) for item in asked):
        return json_response({"errors": {"transactions": ["parent_id is not a successful sale of this order"]}}, 422)
    amounts = [_money(item.get("amount")) for item in asked]
    if any(amount is None or amount <= ZERO for amount in amounts):
        return json_response({"errors": {"transactions": ["amount must be greater than 0"]}}, 422)
    left = _money(order["total_price"]) - _shopify_refunded(sim, order_id)
    amount = sum(amounts, ZERO)
    if amount > left:
        return json_response({"errors": {"base": [
            f"Refund amount of {money_text(amount)} exceeds the refundable amount of {money_text(left)} "
            f"{order.get('currency')}"]}}, 422)
    moment = _moment_after(sim, "shopify", parse_iso(order["updated_at"]))
    refund_id = _next_id(sim, "shopify")
    when = shop_time(moment)
    created = {
        "id": refund_id, "order_id": int(order_id), "created_at": when, "note": refund.get("note"),
        "user_id": None, "processed_at": when, "restock": False, "duties": [],
        "admin_graphql_api_id": f"gid://shopify/Refund/{refund_id}", "refund_line_items": [],
        "transactions": [{
            "id": refund_id * 10 + index, "order_id": int(order_id), "kind": "refund",
            "gateway": item.get("gateway") or sale["gateway"], "status": "success", "message": "Transaction approved",
            "created_at": when, "test": False, "authorization": None, "location_id": None, "user_id": None,
            "parent_id": sale["id"], "processed_at": when, "device_id": None, "error_code": None,
            "source_name": "external", "receipt": {}, "amount": money_text(amounts[index]),
            "currency": refund.get("currency") or order.get("currency")} for index, item in enumerate(asked)],
        "order_adjustments": [],
    }
    sim.platform_refunds["shopify"].setdefault(order_id, []).append(created)
    # The shop after the refund: what is left, the financial status, the refunds, a new modified time; then the
    # webhooks a real shop sends (refunds/create with the Refund, orders/updated with the order).
    left -= amount
    order.update(financial_status="refunded" if left <= ZERO else "partially_refunded", updated_at=when,
                 current_total_price=money_text(left),
                 refunds=[*order.get("refunds", []), created])
    sim.outbox.record(new_delivery("shopify", order_id, "refund",
                                   json.dumps(created, separators=(",", ":")).encode()))
    sim.put_raw("shopify", order)
    return json_response({"refund": created}, 201)


# ---------------------------------------------------------------- WooCommerce

def _woo_error(code: str, message: str, status: int) -> Response:
    return json_response({"code": code, "message": message, "data": {"status": status}}, status)


def woocommerce_refunds(sim, request: Request, order_id: str) -> Response:
    refused = woo_authenticate(sim, request)
    if refused is not None:
        return refused
    order_id = str(order_id)
    with sim.lock:
        order = _order(sim, "woocommerce", order_id)
        if order is None:
            return _woo_error("woocommerce_rest_shop_order_invalid_id", "Invalid ID.", 404)
        if request.method == "GET":  # newest first, as the REST API lists them
            return json_response(list(reversed(sim.platform_refunds["woocommerce"].get(order_id, []))))
        return _woo_create(sim, order, _body(request))


def _woo_create(sim, order: dict, body) -> Response:
    order_id = str(order["id"])
    if not isinstance(body, dict):
        return _woo_error("rest_invalid_json", "Invalid JSON body passed.", 400)
    amount = _money(body.get("amount"))
    if amount is None:
        return _woo_error("rest_invalid_param", "Invalid parameter(s): amount", 400)
    if amount < ZERO:
        return _woo_error("woocommerce_rest_invalid_order_refund", "Refund amount must be greater than zero.", 400)
    refunded = sum((_money(refund["amount"]) for refund in sim.platform_refunds["woocommerce"].get(order_id, [])),
                   ZERO)
    left = _money(order["total"]) - refunded
    if amount > left or amount == ZERO:
        return _woo_error("woocommerce_rest_cannot_create_order_refund", "Invalid refund amount.", 500)
    moment = _moment_after(sim, "woocommerce", parse_iso(order["date_modified_gmt"]))
    refund_id = _next_id(sim, "woocommerce")
    meta = [{"id": refund_id * 10 + index, "key": str(item.get("key")), "value": item.get("value")}
            for index, item in enumerate(body.get("meta_data") or []) if isinstance(item, dict)]
    created = {"id": refund_id, "date_created": site_text(moment), "date_created_gmt": gmt_text(moment),
               "amount": money_text(amount), "reason": str(body.get("reason") or ""), "refunded_by": 1,
               "refunded_payment": body.get("api_refund", True) is not False, "meta_data": meta, "line_items": [],
               "shipping_lines": [], "tax_lines": [], "fee_lines": []}
    sim.platform_refunds["woocommerce"].setdefault(order_id, []).append(created)
    left -= amount
    order.update(date_modified=site_text(moment), date_modified_gmt=gmt_text(moment),
                 refunds=[{"id": refund_id, "reason": created["reason"], "total": f"-{money_text(amount)}"},
                          *order.get("refunds", [])])
    if left <= ZERO:
        order["status"] = "refunded"  # WooCommerce marks a fully refunded order refunded
    sim.put_raw("woocommerce", order)  # records order.updated, as the shop's webhook sends it
    return json_response(created, 201)


def refunds_of(sim, platform: str, order_id: str) -> list[dict]:
    """The refunds the simulated shop made on an order (tests: how many times a refund reached the platform)."""
    with sim.lock:
        return json.loads(json.dumps(sim.platform_refunds[platform].get(str(order_id), [])))
