""""Not received yet?" on the order page (issue 13 item 5): the parcel's last known position, the delivery estimate,
the courier's contact, and one click that opens a case with customer service (signed-in customers; a guest is
asked to sign in). The facts come from shared/services/parcel_help.py; the case is its `contact_service`."""
from flask import Blueprint, current_app, flash, g, redirect, url_for
from flask_babel import gettext as _

from customer_site.access import customer_required, order_for_customer_or_404, signed_in_customer
from shared.actors import Actor
from shared.appcore import current_language
from shared.extensions import db
from shared.labels import CUSTOMER_TRACKING_STEP, label
from shared.security.masking import masked_phone
from shared.services import parcel_help
from shared.services.errors import ServiceError
from shared.timekeeping import to_zone
from shared.web import client_ip

bp = Blueprint("parcel_help", __name__, url_prefix="/orders")


def _day(moment) -> str:
    local = to_zone(moment, g.get("timezone") or current_app.config["MERCHANT_TIMEZONE"])
    if current_language() == "zh_CN":
        return f"{local.month}月{local.day}日"
    return f"{local.day} {local:%b}"


def estimate_text(estimate) -> str:
    """The estimate as a range of days in the viewer's language and zone: 预计 12月6日–12月7日送达."""
    start, end = _day(estimate.earliest), _day(estimate.latest)
    if start == end:
        return _("Expected on %(day)s", day=start)
    return _("Expected %(start)s–%(end)s", start=start, end=end)


def help_box(order, guest: bool) -> dict | None:
    """What the partial shows; None when the order has no parcel on its way."""
    found = parcel_help.parcel_help(order)
    if found is None:
        return None
    last = found.last_event
    courier = None
    if found.courier is not None:
        name, phone = found.courier
        # A guest proved only the receiver's last four digits: the courier's phone is masked for them too.
        courier = {"name": name or "", "phone": (masked_phone(phone) if guest else phone) if phone else ""}
    estimate = found.estimate
    return {
        "position": None if last is None else {
            "at": last.occurred_at, "step": label(CUSTOMER_TRACKING_STEP, last.step) if last.step else "",
            "description": last.description, "location": last.location},
        "estimate": None if estimate is None else {
            "text": estimate_text(estimate), "late": estimate.late, "deliveries": estimate.deliveries,
            "scope": estimate.scope},
        "courier": courier, "case": found.case, "guest": guest,
    }


@bp.post("/<order_no>/parcel-help")
@customer_required
def contact(order_no: str):
    """Open (or show again) the "not received" case with customer service for the customer's own order."""
    customer = signed_in_customer()
    order = order_for_customer_or_404(customer, order_no)
    back = redirect(url_for("orders.detail", order_no=order.order_no, _anchor="parcel-help"), 303)
    try:
        case = parcel_help.contact_service(order, Actor.for_customer(customer, ip=client_ip()))
        db.session.commit()
    except ServiceError as refused:
        db.session.rollback()
        flash(refused.message, "error")
        return back
    flash(_("Customer service has your request, case #%(number)s.", number=case.id), "info")
    return back
