"""A signed-in customer's orders: the list, and each order with its status timeline."""
from flask import Blueprint, render_template, request

from customer_site.access import customer_required, order_for_customer_or_404, orders_for_customer, signed_in_customer
from customer_site.timeline import order_timeline
from shared.security.masking import full_address, masked_address, masked_name, masked_phone

bp = Blueprint("orders", __name__, url_prefix="/orders")


def receiver_details(order, guest: bool) -> dict:
    """The receiver as shown here: the phone is always masked; a guest also sees name and address masked."""
    if guest:
        return {"name": masked_name(order.receiver_name), "phone": masked_phone(order.receiver_phone),
                "address": masked_address(order.province, order.city, order.district)}
    return {"name": order.receiver_name, "phone": masked_phone(order.receiver_phone),
            "address": full_address(order.province, order.city, order.district, order.street, order.postal_code)}


def render_order(order, guest: bool):
    return render_template("customer/order.html", order=order, timeline=order_timeline(order),
                           receiver=receiver_details(order, guest), guest=guest)


@bp.get("/")
@customer_required
def index():
    cursor = request.args.get("cursor") or None
    rows, next_cursor = orders_for_customer(signed_in_customer(), cursor)
    return render_template("customer/orders.html", orders=rows, next_cursor=next_cursor, paged=bool(cursor))


@bp.get("/<order_no>")
@customer_required
def detail(order_no: str):
    return render_order(order_for_customer_or_404(signed_in_customer(), order_no), guest=False)
