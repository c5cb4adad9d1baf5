"""A signed-in customer's orders: the list, and each order with its status timeline and the parcel's tracking."""
from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from customer_site.access import customer_required, order_for_customer_or_404, orders_for_customer, signed_in_customer
from customer_site.timeline import order_timeline
from customer_site.forms import StockOfferChoiceForm
from shared.actors import Actor
from shared.extensions import db
from shared.labels import CARRIER, CUSTOMER_TRACKING_FLAG, CUSTOMER_TRACKING_STEP, STOCK_OFFER_KIND, label
from shared.security.masking import order_contact
from shared.services import stock_offers, tracking
from shared.services.errors import NotFound, ServiceError
from shared.web import client_ip

bp = Blueprint("orders", __name__, url_prefix="/orders")


def receiver_details(order, guest: bool) -> dict:
    """The receiver as shown here, from the permission table: a signed-in customer sees name and address in full
    and the phone masked; a guest sees all three masked."""
    contact = order_contact(order, "guest" if guest else "customer", reveal=not guest)
    return {"name": contact["receiver"], "phone": contact["phone"], "address": contact["address"]}


def parcel_progress(order) -> dict | None:
    """The parcel as the customer follows it once it has left the warehouse: the carrier's five steps in their
    words, the carrier's events (newest first), exceptions, and whether it has stalled. None before shipping."""
    shipment, events = tracking.timeline(order.id)
    if shipment is None or (shipment.shipped_at is None and shipment.tracking_step is None and not events):
        return None
    codes = list(CUSTOMER_TRACKING_STEP)
    reached = codes.index(shipment.tracking_step) if shipment.tracking_step in codes else 0
    steps = [{"code": code, "label": label(CUSTOMER_TRACKING_STEP, code),
              "state": "done" if index < reached or (index == reached and code == "delivered")
              else "current" if index == reached else "todo"} for index, code in enumerate(codes)]
    flags = [label(CUSTOMER_TRACKING_FLAG, flag) for flag in (shipment.tracking_flags or "").split(",")
             if flag.strip() in CUSTOMER_TRACKING_FLAG]
    stalled = shipment.stalled_at is not None and shipment.status == "shipped"
    return {
        "carrier": label(CARRIER, shipment.carrier_code) if shipment.carrier_code else "",
        "waybill_no": shipment.waybill_no, "steps": steps, "flags": flags,
        "events": [{"at": e.occurred_at, "step": label(CUSTOMER_TRACKING_STEP, e.step) if e.step else "",
                    "description": e.description, "location": e.location} for e in events],
        "stalled_since": (shipment.last_event_at or shipment.shipped_at or shipment.stalled_at) if stalled else None,
    }


def render_order(order, guest: bool):
    from customer_site.invoices import order_invoices
    from customer_site.parcel_help import help_box

    # A guest (a look-up by phone digits) sees no invoices: they name the buyer; signing in shows them.
    invoice_box = None if guest else order_invoices(signed_in_customer(), order)
    return render_template("customer/order.html", order=order, timeline=order_timeline(order),
                           receiver=receiver_details(order, guest), guest=guest, parcel=parcel_progress(order),
                           invoices=invoice_box, parcel_help=help_box(order, guest),
                           stock_offers=offer_box(order, guest))


def offer_box(order, guest: bool) -> dict | None:
    """The out-of-stock offers the customer may choose from (signed in, and only where their tier shows them)."""
    if guest:
        return None
    offers = stock_offers.shown_to_customer(order)
    if not offers:
        return None
    return {"offers": [{"id": o.id, "kind": label(STOCK_OFFER_KIND, o.kind), "code": o.kind,
                        "text": stock_offers.describe(o)} for o in offers],
            "form": StockOfferChoiceForm(formdata=None)}


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


@bp.post("/<order_no>/offers/accept")
@customer_required
def accept_offer(order_no: str):
    """The customer chooses one offer for their own order; anyone else's order or offer is a 404."""
    customer = signed_in_customer()
    order = order_for_customer_or_404(customer, order_no)
    form = StockOfferChoiceForm()
    if not form.validate_on_submit():
        flash(_("Choose one of the offers."), "error")
        return redirect(url_for("orders.detail", order_no=order.order_no), 303)
    try:
        offer = stock_offers.offer_of_order(order, form.offer.data)
    except NotFound:
        abort(404)
    if offer not in stock_offers.shown_to_customer(order) and offer.status == "open":
        abort(404)  # the tier does not show offers on the site
    try:
        outcome = stock_offers.accept(offer, Actor.for_customer(customer, ip=client_ip()))
        db.session.commit()
    except ServiceError as refused:
        db.session.rollback()
        flash(refused.message, "error")
    else:
        flash(outcome.message, "info")
    return redirect(url_for("orders.detail", order_no=order.order_no), 303)
