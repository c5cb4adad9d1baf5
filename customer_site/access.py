"""Who the visitor is, and the only ways the customer site loads orders: scoped to their owner in SQL.

A signed-in customer reaches orders whose customer_id is theirs; a guest reaches orders whose id was put in
their session by a successful look-up. Anything else is a 404, whatever the URL says.
"""
import functools

from flask import abort, jsonify, redirect, request, session, url_for
from flask_login import LoginManager, current_user
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from shared import order_numbers, paging
from shared.extensions import db
from shared.models import Customer, Order
from shared.actors import Actor
from shared.services import guest_lookup as guest_lookup_service
from shared.services.errors import ValidationFailed

# The portal owns shared.extensions.login_manager; the customer site has its own, bound in create_app.
customer_login = LoginManager()
GUEST_ORDERS_KEY = "guest_orders"
MAX_GUEST_ORDERS = 20
PAGE_SIZE = 20


@customer_login.user_loader
def load_customer(user_id: str) -> Customer | None:
    """Only "customer:<id>" ids of customers who can sign in; a staff id never loads here."""
    kind, _, raw_id = (user_id or "").partition(":")
    if kind != "customer" or not raw_id.isdigit():
        return None
    from shared.security import sessions

    customer = db.session.get(Customer, int(raw_id))
    if customer is None or not customer.password_hash or not sessions.still_valid(session, customer):
        session.pop("_user_id", None)  # ended on the server; a guest's looked-up orders stay
        return None
    return customer


def signed_in_customer() -> Customer | None:
    return current_user if current_user.is_authenticated and isinstance(current_user, Customer) else None


def customer_required(view):
    """Signed-in customers only: browsers go to sign-in, htmx gets HX-Redirect, JSON clients a 401 body."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        if signed_in_customer() is None:
            return _sign_in_required()
        return view(*args, **kwargs)

    return wrapper


def _sign_in_required():
    target = url_for("auth.sign_in", next=request.full_path.rstrip("?") if request.method == "GET" else None)
    if request.headers.get("HX-Request"):
        response = jsonify({})
        response.headers["HX-Redirect"] = target
        return response, 401
    if request.accept_mimetypes.best == "application/json":
        return jsonify({"error": {"code": "unauthenticated", "message": "sign in first"}}), 401
    return redirect(target)


def _order_number_or_404(order_no: str) -> str:
    try:
        return order_numbers.validate(order_no)
    except ValidationFailed:
        abort(404)


def _order_query():
    return select(Order).options(selectinload(Order.lines))


def order_for_customer_or_404(customer: Customer, order_no: str) -> Order:
    """The customer's own order with this number; anyone else's (or none) is a 404."""
    number = _order_number_or_404(order_no)
    order = db.session.execute(
        _order_query().where(Order.order_no == number, Order.customer_id == customer.id)
    ).scalar_one_or_none()
    if order is None:
        abort(404)
    return order


def order_for_guest_or_404(session_ids, order_no: str) -> Order:
    """An order this browser proved it may see by a guest look-up; anything else is a 404."""
    number = _order_number_or_404(order_no)
    ids = [i for i in (session_ids or []) if isinstance(i, int)]
    if not ids:
        abort(404)
    order = db.session.execute(
        _order_query().where(Order.order_no == number, Order.id.in_(ids))
    ).scalar_one_or_none()
    if order is None:
        abort(404)
    return order


def orders_for_customer(customer: Customer, cursor: str | None = None, limit: int | None = None):
    """One page of the customer's orders, newest first, and the cursor of the next page (None on the last)."""
    limit = limit or PAGE_SIZE
    query = select(Order).where(Order.customer_id == customer.id)
    return paging.page(db.session, query, Order.placed_at, Order.id, cursor, limit, descending=True)


def guest_lookup(order_no: str, phone_last4: str, ip: str | None = None) -> int | None:
    """The id of the order when the last four digits of its receiver phone match; None otherwise.

    An unknown number, a wrong phone and an order whose look-up is locked after repeated wrong tries give the
    same answer, so a look-up cannot tell which orders exist. Only the id leaves here: the order itself is
    loaded through order_for_guest_or_404. The caller commits (the count of wrong tries).
    """
    return guest_lookup_service.check(order_no, phone_last4, Actor(id=None, label="guest", role="guest", ip=ip))


def guest_order_ids() -> list[int]:
    return list(session.get(GUEST_ORDERS_KEY, []))


def remember_guest_order(order_id: int) -> None:
    """Keep the order in this browser's session (most recent first, a bounded list)."""
    ids = [order_id] + [i for i in guest_order_ids() if i != order_id]
    session[GUEST_ORDERS_KEY] = ids[:MAX_GUEST_ORDERS]


def profile_for_customer_or_404(customer: Customer, profile_id: int):
    """The customer's own invoice profile; anyone else's (or none) is a 404, whatever the URL says."""
    from shared.services import invoice_profiles
    from shared.services.errors import NotFound

    try:
        return invoice_profiles.profile_for_customer(customer.id, profile_id)
    except NotFound:
        abort(404)


def after_sale_for_customer_or_404(customer: Customer, order: Order, after_sale_id: int):
    """The customer's own after-sales request on this order (their id in SQL); anyone else's is a 404."""
    from shared.services import after_sales

    found = after_sales.for_customer(customer.id, after_sale_id)
    if found is None or found.order_id != order.id:
        abort(404)
    return found
