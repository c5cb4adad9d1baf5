"""Guest order tracking: order number plus the last four digits of the receiver's phone, rate limited."""
from flask import Blueprint, current_app, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_limiter.util import get_remote_address

from customer_site.access import guest_lookup, guest_order_ids, order_for_guest_or_404, remember_guest_order
from customer_site.forms import GuestLookupForm
from customer_site.orders import render_order
from shared.extensions import db, limiter

bp = Blueprint("tracking", __name__, url_prefix="/track")


def _guest_lookup_limit() -> str:
    return current_app.config.get("GUEST_LOOKUP_LIMIT") or "5 per 10 minutes"


@bp.route("/", methods=["GET", "POST"])
@limiter.limit(_guest_lookup_limit, methods=["POST"], key_func=get_remote_address)
def lookup():
    form = GuestLookupForm()
    error = None
    if form.validate_on_submit():
        order_id = guest_lookup(form.order_no.data, form.phone_last4.data, request.remote_addr)
        db.session.commit()  # the order's count of wrong tries (5 lock its guest look-up for an hour)
        if order_id is not None:
            remember_guest_order(order_id)
            return redirect(url_for(".order", order_no=form.order_no.data))
        # One message for an unknown number and a wrong phone: a look-up must not tell which orders exist.
        error = _("We found no order with this number and phone. Check both and try again.")
    status = 404 if error else 422 if form.errors else 200
    return render_template("customer/track.html", form=form, error=error), status


@bp.get("/<order_no>")
def order(order_no: str):
    return render_order(order_for_guest_or_404(guest_order_ids(), order_no), guest=True)
